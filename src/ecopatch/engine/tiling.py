"""Plan the windows to read, then run one task per window on Dask.

Planning is a pure function of a grid and the polygons of interest: only
the fixed-size blocks of the analysis grid that touch a polygon are read, so
50 small mines on a full Sentinel-2 tile cost a few blocks, not the tile.
Blocks are aligned to multiples of the block size from the grid origin, so a
pixel always falls in the same block and results do not depend on which
polygons were asked for.

Running is a scheduling choice: local threads (default, all cores),
``"synchronous"`` (one thread, for debugging), or a ``dask.distributed``
scheduler address or ``Client``.  Tasks get only picklable values (scenes are
paths and numbers), and each returns small partial results, so memory is
bounded by (workers × one block) whatever the raster size.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, TypeVar

import numpy as np
import shapely

from ecopatch._env import env_int
from ecopatch.errors import ConfigError, MissingDependencyError
from ecopatch.geo.grid import Grid, Window

__all__ = ["WindowPass", "blocks_touching", "joint_order", "locality_order", "run_passes", "run_tasks", "Scheduler",
           "tune_malloc"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Jobs estimated to read fewer pixels than this run in the calling thread unless a scheduler is named.
SMALL_JOB_PX = 250_000

#: What ``scheduler=`` accepts: None/"threads", "synchronous", an address, or a Client.
Scheduler = Any


def blocks_touching(
    grid: Grid, geometries: Sequence[Any] | np.ndarray, *, block: int, pad: int = 0, offset: int = 0
) -> list[tuple[Window, np.ndarray]]:
    """The blocks of ``grid`` that touch any geometry, with the geometries touching each.

    Parameters
    ----------
    grid : Grid
        Analysis grid; geometries are in its CRS.
    geometries : sequence of shapely geometries
        Polygons of interest (None/empty ignored).
    block : int
        Block size in pixels (square blocks aligned to the grid origin).
    pad : int
        Pixels added around each geometry's bounding box before deciding
        which blocks it touches (context needed around a polygon).
    offset : int
        Pixels by which every block starts before the multiples of
        ``block`` (0 ≤ ``offset`` < ``block``): blocks ``[k·block − offset,
        (k+1)·block − offset)``, the first and last clipped to the grid.
        A pass whose windows read ``offset`` pixels around each block then
        reads nothing beyond a multiple of ``block`` to the right or below:
        over files whose tiles are ``block`` or a multiple of it wide, no
        window decodes a tile of the next stripe for its halo.

    Returns
    -------
    list of (Window, ndarray of int)
        Each block (clipped to the grid) and the positions of the geometries
        that touch it, in row-major block order.
    """
    if block < 16:
        raise ConfigError(f"block size {block} px is too small; use at least 16 (default 512)")
    if not 0 <= offset < block:
        raise ConfigError(f"block offset {offset} px must be at least 0 and less than the block ({block} px)")
    geoms = np.asarray(geometries, dtype=object)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    ids = np.flatnonzero(ok)
    if not len(ids):
        return []
    # Grid.window_from_bounds for every geometry at once (the same arithmetic), clipped to the grid
    b = shapely.bounds(geoms[ids])
    c0, r0 = grid.pixel_of(b[:, 0], b[:, 3])
    c1, r1 = grid.pixel_of(b[:, 2], b[:, 1])
    eps = 1e-9
    col0 = np.floor(np.minimum(c0, c1) + eps).astype(np.int64) - pad
    row0 = np.floor(np.minimum(r0, r1) + eps).astype(np.int64) - pad
    col1 = np.maximum(np.ceil(np.maximum(c0, c1) - eps).astype(np.int64) + pad, col0 + 1)
    row1 = np.maximum(np.ceil(np.maximum(r0, r1) - eps).astype(np.int64) + pad, row0 + 1)
    height, width = grid.shape
    row0, col0 = np.maximum(row0, 0), np.maximum(col0, 0)
    row1, col1 = np.minimum(row1, height), np.minimum(col1, width)
    inside = (row1 > row0) & (col1 > col0)
    ids, row0, row1, col0, col1 = ids[inside], row0[inside], row1[inside], col0[inside], col1[inside]
    if not len(ids):
        return []
    # every (block, geometry) pair, then grouped by block in row-major order, geometries ascending
    br0, bc0 = (row0 + offset) // block, (col0 + offset) // block
    n_r = (row1 - 1 + offset) // block - br0 + 1
    n_c = (col1 - 1 + offset) // block - bc0 + 1
    counts = n_r * n_c
    owner = np.repeat(np.arange(len(ids)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    br = br0[owner] + k // n_c[owner]
    bc = bc0[owner] + k % n_c[owner]
    gi = ids[owner]
    order = np.lexsort((gi, bc, br))
    br, bc, gi = br[order], bc[order], gi[order]
    starts = np.flatnonzero(np.r_[True, (br[1:] != br[:-1]) | (bc[1:] != bc[:-1]), True])
    result = []
    for a, z in zip(starts[:-1], starts[1:]):
        w = Window(row_off=int(br[a]) * block - offset, col_off=int(bc[a]) * block - offset,
                   height=block, width=block).intersection(grid.window)
        if w is not None:
            result.append((w, gi[a:z].astype(np.int64)))
    return result


#: Width (pixels) of the stripes windows are taken in over 256-pixel tiles.  With the 128 MB tile cache
#: (:data:`ecopatch.raster.scene.TILE_CACHE_MB`) a stripe's row of tiles stays cached.  On
#: the benchmark tile (tiles of 256 px, 14 band files) stripes of 2048 px with a 64 MB
#: cache decoded 1577 Mpx, 1.38 times the files, most of the excess in the tile columns
#: either side of each stripe's border; 4096 px with 128 MB decoded 1380 Mpx.  Other layouts get
#: other widths from the files they read (:class:`WindowPass` ``reads``): rows across the whole
#: width over striped files, narrower stripes over JPEG 2000's 1024-pixel tiles.
STRIPE_PX = 4096


def set_back(halo: int, reach: int, block: int) -> int:
    """Pixels by which a pass's windows are set back from the multiples of ``block`` (:func:`blocks_touching`).

    A window reads ``halo`` pixels around itself, and its scenes' reads
    reach ``reach`` pixels further (coarser bands' whole pixels, a product
    mask's cloud growth: :func:`ecopatch.raster.source.read_reach_px`); set
    back by as much, its reads end at a multiple of the block, so over files
    whose tiles are the block or a multiple of it no window decodes a tile
    of the next stripe for its right-hand side (which that stripe decodes
    again).  The twice as many columns it reads to its left are kept by the
    tile cache (:data:`ecopatch.raster.blocks.EDGE_PX`).
    """
    return min(int(halo) + max(0, int(reach)), block - 1)


def locality_order(windows: Sequence[Window], *, stripe_px: int = STRIPE_PX) -> list[int]:
    """An order of ``windows`` in which neighbours follow each other closely.

    Windows are taken in vertical stripes ``stripe_px`` pixels wide, row by
    row within a stripe (down one stripe, up the next), so a window's
    neighbours above (below, going up) and to the left were
    processed at most a stripe's width of windows before it.  The tiles a
    padded window shares with them are then still in the tile cache
    (:class:`ecopatch.raster.blocks.TileCache`), whose working set is bounded by
    the stripe, not by the raster's width.

    Returns
    -------
    list of int
        Positions into ``windows``.
    """
    return sorted(range(len(windows)), key=lambda i: _stripe_key(windows[i], stripe_px))


def _stripe_key(w: Window, stripe_px: int) -> tuple[int, int, int]:
    """Stripe, then rows down the even stripes and up the odd ones, then columns.

    Going back up the next stripe, its first windows find the tiles the
    previous stripe's last windows decoded at their right-hand halo still in
    the tile cache.  A window belongs to the stripe of its last column, so
    that blocks set back by :func:`blocks_touching`'s ``offset`` stay in the
    stripe whose tiles they read.
    """
    stripe = (w.col_off + w.width - 1) // stripe_px
    return (stripe, w.row_off if stripe % 2 == 0 else -w.row_off, w.col_off)


def joint_order(windows: Sequence[Sequence[Window]], *, stripe_px: int = STRIPE_PX) -> list[tuple[int, int]]:
    """One locality order for the windows of several passes over the same imagery.

    The windows of all passes are sorted as :func:`locality_order` sorts
    one pass's, the first pass's before the others' at the same place; then
    each window of a later pass is moved one first-pass window later.  The
    first pass has then read the tiles both need, and the later one finds
    them in the tile cache instead of decoding them at the same moment on
    another thread.

    Parameters
    ----------
    windows : sequence of sequences of Window
        Per pass, the windows of its tasks (grid pixels of one analysis grid).
    stripe_px : int
        Stripe width (pixels), as in :func:`locality_order`.

    Returns
    -------
    list of (int, int)
        (pass, task position) pairs, every task of every pass once.
    """
    keyed = sorted((*_stripe_key(w, stripe_px), k, i) for k, ws in enumerate(windows) for i, w in enumerate(ws))
    out: list[tuple[int, int]] = []
    held: list[tuple[int, int]] = []
    for *_, k, i in keyed:
        if k:
            held.append((k, i))
            continue
        out.append((0, i))
        out.extend(held)
        held.clear()
    out.extend(held)
    return out


@dataclass
class WindowPass:
    """A windowed pass set up and ready to run: one task per window, then a finishing step.

    Built by :func:`ecopatch.analyses.restoration.assessment_pass` and
    :func:`ecopatch.analyses.encroachment.detection_pass`; :func:`run_passes` runs
    several over the same imagery at once, so each tile is decoded once for
    all of them.

    Attributes
    ----------
    desc : str
        Label of the progress bar.
    func : callable
        Picklable top-level function run on each task.
    tasks : list
        Picklable task descriptions, one per window.
    windows : list of Window
        The window of each task (analysis-grid pixels), for the run order.
    finish : callable
        Turns the list of task results (in task order) into the pass's result.
    reads : object, optional
        How the pass reads its files (:func:`ecopatch.raster.source.plan_pass_reads`):
        an object with ``stripe_px`` (the width of the stripes windows run in)
        and ``session()`` (a context manager holding the pass's read settings:
        the tile cache and GDAL's block cache, both released when it ends),
        and optionally ``trim_every`` (hand the heap back every so many windows)
        and ``release_caller()`` (called in the calling thread before the
        pass starts: let go of what the set-up's reads left there).
        None: the defaults.
    """

    desc: str
    func: Callable[[Any], Any]
    tasks: list[Any]
    windows: list[Window]
    finish: Callable[[list[Any]], Any]
    reads: Any = None


def _apply(item: tuple[Callable[[T], R], T]) -> R:
    func, task = item
    return func(task)


#: Windows run by :func:`_apply_and_trim` in this process (for its every-so-many trims).
_WINDOWS_RUN = itertools.count()


def _apply_and_trim(every: int, item: tuple[Callable[[Any], Any], Any]) -> Any:
    """:func:`_apply`, then, every ``every`` windows, the heap the windows freed handed back."""
    out = _apply(item)
    if next(_WINDOWS_RUN) % every == 0:
        _release_pass_memory()
    return out


def run_passes(passes: Sequence[WindowPass], *, scheduler: Scheduler = None,
               progress: bool | None = None) -> list[list[Any]]:
    """Run the tasks of several passes as one job; return each pass's results in task order.

    The tasks are interleaved in :func:`joint_order`, so passes over the
    same imagery share its decoded tiles.  Each pass's ``tasks`` are emptied
    once they have run (their results are what is kept), and the heap the
    pass freed is handed back, before any ``finish`` is called.

    Parameters
    ----------
    passes : sequence of WindowPass
        The passes; put first the one that reads most of the imagery.
    scheduler, progress
        As for :func:`run_tasks`.

    Returns
    -------
    list of list
        Per pass, the results of its tasks, for its ``finish``.
    """
    plan = _combine_reads([p.reads for p in passes])
    starts = np.cumsum([0] + [len(p.tasks) for p in passes]).tolist()
    items = [(p.func, task) for p in passes for task in p.tasks]
    stripe = plan.stripe_px if plan is not None else STRIPE_PX
    seq = [starts[k] + i for k, i in joint_order([p.windows for p in passes], stripe_px=stripe)]
    release = getattr(plan, "release_caller", None)
    if release is not None:
        release()
    with plan.session() if plan is not None else _null():
        every = int(getattr(plan, "trim_every", 0) or 0)
        apply = partial(_apply_and_trim, every) if every > 0 else _apply
        flat = run_tasks(apply, items, scheduler=scheduler, progress=progress,
                         desc="+".join(p.desc for p in passes), order=seq, reads=plan)
    del items
    out: list[list[Any]] = []
    for k, p in enumerate(passes):
        out.append(flat[starts[k]:starts[k + 1]])
        p.tasks = []
    del flat
    _release_pass_memory()
    return out


def _combine_reads(plans: Sequence[Any]) -> Any:
    """One read plan for passes run together (the first plan's ``combine``), or None."""
    given = [p for p in plans if p is not None]
    if not given:
        return None
    combine = getattr(type(given[0]), "combine", None)
    return combine(given) if combine is not None and len(given) > 1 else given[0]


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def run_tasks(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    scheduler: Scheduler = None,
    progress: bool | None = None,
    desc: str = "windows",
    order: Sequence[int] | None = None,
    work_px: float | None = None,
    reads: Any = None,
) -> list[R]:
    """Run ``func`` on every item and return the results in item order.

    Parameters
    ----------
    func : callable
        A picklable top-level function of one argument.
    items : iterable
        Picklable task descriptions.
    scheduler : None, str or distributed.Client
        None or ``"threads"``: Dask's threaded scheduler on all cores (the
        ``ECOPATCH_NUM_WORKERS`` environment variable caps it);
        ``"synchronous"``: in the calling thread; ``"processes"``: Dask's
        multiprocessing scheduler; a string with ``://`` (``tcp://host:8786``)
        or a ``distributed.Client``: that cluster.
    progress : bool, optional
        Show a progress bar (default: only when stderr is a terminal).
    desc : str
        Label of the progress bar.
    order : sequence of int, optional
        The order in which to start the items (a permutation of their
        positions), e.g. :func:`locality_order` so that neighbouring windows
        run close in time and share decoded tiles.  Results come back in item
        order whatever the order of execution.  Honoured by the local
        schedulers; a cluster receives the items in this order.
    work_px : float, optional
        Estimated pixels the whole job reads.  Under :data:`SMALL_JOB_PX`
        and with no scheduler asked for, the items run in the calling thread:
        starting Dask's thread pool costs more than a job of a few thousand
        pixels (patch statistics of 100 small patches) takes.
    reads : object, optional
        The job's read plan (see :class:`WindowPass`); on a cluster each
        batch of items runs inside its ``session()`` in the worker process
        (in this process the caller holds it).

    Returns
    -------
    list
        ``[func(item) for item in items]``.
    """
    items = list(items)
    if not items:
        return []
    seq = list(range(len(items))) if order is None else [int(i) for i in order]
    if sorted(seq) != list(range(len(items))):
        raise ConfigError(f"order must be a permutation of range({len(items)}) ({len(seq)} positions given)")
    show = _want_progress(progress)
    if scheduler is None and work_px is not None and work_px < SMALL_JOB_PX:
        scheduler = "synchronous"
    if scheduler is not None and not isinstance(scheduler, str):
        return _run_distributed(func, items, scheduler, show, desc, seq, reads)
    _tune_heap_once()
    name = (scheduler or "threads").strip().lower()
    if "://" in name:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "a dask.distributed scheduler address needs the 'distributed' extra: "
                "pip install 'ecopatch[distributed]'"
            ) from exc
        with Client(scheduler) as client:
            return _run_distributed(func, items, client, show, desc, seq, reads)
    if name in ("sync", "synchronous", "single-threaded"):
        out: list[Any] = [None] * len(items)
        for i in _bar(seq, show, desc):
            out[i] = func(items[i])
        return out
    if name not in ("threads", "threading", "processes"):
        raise ConfigError(
            f"scheduler={scheduler!r}; use 'threads', 'synchronous', 'processes' or a "
            "dask.distributed address such as 'tcp://127.0.0.1:8786'"
        )
    import dask
    from dask import delayed

    workers = _num_workers()
    # Dask starts independent tasks in reverse order of their keys, so the key of the
    # item started k-th counts down from n - 1: only speed depends on this, not results
    n = len(items)
    rank = {i: k for k, i in enumerate(seq)}
    if name == "processes":
        # each task in a worker process holds the job's read settings itself (GDAL's cache scoped)
        run = partial(_in_session, func, reads) if reads is not None else func
        tasks = [delayed(run, pure=False)(it, dask_key_name=f"ecopatch-{desc}-{n - 1 - rank[i]:09d}")
                 for i, it in enumerate(items)]
    else:
        # threads share the item list: pass each task its position, not its item, which
        # Dask would walk through looking for collections (1 s for a tile's windows)
        call = delayed(partial(_call_item, func, items), pure=False)
        tasks = [call(i, dask_key_name=f"ecopatch-{desc}-{n - 1 - rank[i]:09d}") for i in range(n)]
    # the scheduler's get function rather than its name: a name makes Dask import
    # dask.distributed to look for a client (0.2 s, the whole cost of a small job)
    get: Callable[..., Any]
    if name == "processes":
        from dask.multiprocessing import get as get_processes

        get = get_processes
    else:
        from dask.threaded import get as get_threads

        get = get_threads
    with _dask_bar(len(tasks), desc) if show else _null():
        results = dask.compute(*tasks, scheduler=get, num_workers=workers)
    return list(results)


def _call_item(func: Callable[[T], R], items: list[T], i: int) -> R:
    return func(items[i])


def _in_session(func: Callable[[T], R], reads: Any, item: T) -> R:
    with reads.session():
        return func(item)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _num_workers() -> int:
    return env_int("ECOPATCH_NUM_WORKERS", minimum=1) or os.cpu_count() or 1


def _bar(items: list[Any], show: bool, desc: str) -> Iterable[Any]:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="win", file=sys.stderr)


def _dask_bar(total: int, desc: str) -> Any:
    """A tqdm progress bar driven by Dask's scheduler callbacks."""
    from dask.callbacks import Callback
    from tqdm import tqdm

    class _Bar(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = tqdm(total=total, desc=desc, unit="win", file=sys.stderr)

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if self.bar.n < total:
                self.bar.update(1)

        def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
            self.bar.close()

    return _Bar()


def _run_distributed(func: Callable[[T], R], items: list[T], client: Any, show: bool, desc: str,
                     seq: list[int], reads: Any = None, batches_per_worker: int = 4) -> list[R]:
    """Run on a cluster in batches of consecutive items of ``seq``.

    Each worker process has its own tile cache, and a cluster hands tasks
    to whichever worker is free, so one window per task would scatter
    neighbouring windows over the workers.  Runs of consecutive windows of
    the locality order (about ``batches_per_worker`` per worker) keep
    neighbours in one process.
    """
    workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
    size = max(1, math.ceil(len(seq) / (workers * batches_per_worker)))
    batches = [seq[k:k + size] for k in range(0, len(seq), size)]
    futures = client.map(partial(_call_batch, func, reads=reads, tune=_malloc_opt_in),
                         [[items[i] for i in b] for b in batches], pure=False)
    if show:
        from distributed import as_completed
        from tqdm import tqdm

        with tqdm(total=len(seq), desc=desc, unit="win", file=sys.stderr) as bar:
            for done in as_completed(futures):
                bar.update(len(batches[futures.index(done)]))
    out: list[Any] = [None] * len(items)
    for b, res in zip(batches, client.gather(futures)):
        for i, r in zip(b, res):
            out[i] = r
    return out


def _call_batch(func: Callable[[T], R], batch: list[T], *, reads: Any = None, tune: bool = False) -> list[R]:
    """Run one batch on a cluster worker, inside the job's read session (released after the batch)."""
    if tune:
        tune_malloc(True)
    _tune_heap_once()
    with reads.session() if reads is not None else _null(), _reuse_freed_buffers():
        return [func(it) for it in batch]


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's default M_MMAP_THRESHOLD, and the largest it accepts on 64-bit systems (bytes)
_MMAP_THRESHOLD_DEFAULT = 128 * 1024
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: The mmap and trim thresholds the first windowed pass sets (bytes): the largest mmap threshold
#: glibc's adaptive mode reaches by itself
_HEAP_THRESHOLD = _MMAP_THRESHOLD_MAX
#: Environment variables through which a user (or a Dask nanny) sets glibc's malloc thresholds
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_reuse_lock = threading.Lock()  # guards _reuse_depth and _heap_tuned
_reuse_depth = 0
_heap_tuned = False
_malloc_opt_in = False  # set by tune_malloc(): ecopatch calls mallopt only when asked to


def tune_malloc(enable: bool = True) -> None:
    """Opt in (or out) to glibc malloc tuning for ecopatch's windowed passes in this process.

    Off by default: ecopatch never changes the C library's allocator settings
    unless asked, because they are process-wide and outlive the call (they
    change how every later allocation of the process behaves, the user's
    included).  What it does when enabled:

    * in a process whose environment sets no malloc threshold, the next
      windowed pass sets glibc's mmap and trim thresholds to 32 MiB with
      ``mallopt`` (fixed for the rest of the process; logged), so window
      buffers are reused instead of being returned to the kernel and faulted
      in again at every window: on the 2 x 2 benchmark mosaic 4.9 M minor
      page faults became 0.2 M and detection ran about 10 % faster (see
      ``benchmarks/RESULTS.md``);
    * on ``dask.distributed`` workers whose nanny sets
      ``MALLOC_TRIM_THRESHOLD_`` (which turns glibc's adaptive mmap
      threshold off, so every buffer over 128 KiB is fresh pages), the mmap
      threshold is raised for the length of each batch and restored after it
      with a ``malloc_trim``: detection on a 2-worker LocalCluster took 20.8 s
      without this, 11.5 s with it, on the full benchmark tile.

    Without it, passes run with whatever the allocator does by itself.  A
    ``MALLOC_*_`` variable or ``glibc.malloc`` tunable the user set is
    always respected.  Nothing happens where the C library is not glibc.
    ``ecopatch run`` does this when the run configuration says
    ``[run] tune_malloc = true``.

    Parameters
    ----------
    enable : bool
        True to opt in, False to opt out (thresholds already set stay set:
        glibc cannot be told to go back to its adaptive mode).
    """
    global _malloc_opt_in
    _malloc_opt_in = bool(enable)


@lru_cache(maxsize=1)
def _glibc() -> Any:
    """The C library if it is glibc (with mallopt and malloc_trim), else None."""
    import platform

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # pragma: no cover - glibc always has both
        return None
    return libc


def _tune_heap_once() -> None:
    """Before the first windowed pass of a process: let glibc keep window buffers in the heap.

    glibc serves blocks over its mmap threshold (128 KiB at start) with
    fresh pages, and returns the heap's free top to the system once it
    exceeds the trim threshold.  In its adaptive mode both rise only when a
    block that was mmapped is freed, so how a pass behaved depended on what
    the process had done before: where the thresholds were still low, each
    worker thread's heap grew and shrank by its window's working set (16-32
    MB) at every window and the pages were faulted in again.  Detection
    alone on the 2 x 2 benchmark mosaic: 4.9 M minor page faults and 47-49
    s, against 0.2 M and 43 s with both thresholds at 32 MiB, peak RSS the
    same (ad-hoc runs; 16 MiB still churned: 5.3 M faults).  Allocating and
    freeing one 16 MiB block to raise them the adaptive way was tried and
    is not reliable: where the heap has a free chunk that large the block
    comes from it and nothing changes (full tile, 1.2 M faults, 18 s against
    0.2 M, 16 s).

    So, once the user opted in (:func:`tune_malloc`), the first pass sets
    both thresholds to 32 MiB with ``mallopt`` (the largest mmap threshold
    glibc's adaptive mode reaches itself), which fixes them for the rest of
    the process, and logs it.  Where the user chose malloc settings (a
    ``MALLOC_*_`` variable, as a Dask nanny sets, or ``glibc.malloc``
    tunables) nothing is changed.  Does nothing where the C library is not
    glibc, or without the opt-in.
    """
    global _heap_tuned
    if _heap_tuned or not _malloc_opt_in:
        return
    with _reuse_lock:
        if _heap_tuned:
            return
        _heap_tuned = True
        libc = _glibc()
        if libc is None or any(k in os.environ for k in _MALLOC_ENV) \
                or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
            return
        libc.mallopt(_M_MMAP_THRESHOLD, _HEAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _HEAP_THRESHOLD)
    log.info("glibc malloc: mmap and trim thresholds set to %d MiB for this process (windowed passes "
             "reuse their buffers); set MALLOC_TRIM_THRESHOLD_ to choose otherwise", _HEAP_THRESHOLD >> 20)


def _release_pass_memory() -> None:
    """Return to the system the heap a windowed pass freed (glibc ``malloc_trim``).

    The pass's worker threads free their window buffers into their own
    malloc arenas, where the calling thread's next allocations (building the
    patches, or the next pass's set-up) do not look, so that memory stayed
    resident and what came next was added on top.  Assess + detect in one
    process, peak RSS (ad-hoc, one or two runs each): 2 × 2 benchmark mosaic
    854 → 771 MB; full tile 558–560 → 557–559 MB, where the peak is inside
    the detection pass.  The tile cache is kept: clearing it too made the
    next pass allocate its tile buffers afresh and raised the tile's peak to
    584–597 MB.  Does nothing where the C library is not glibc.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def _reuse_freed_buffers() -> Iterator[None]:
    """Let glibc reuse freed window-sized buffers for the length of a batch on a Dask worker.

    A ``dask.distributed`` nanny starts its workers with
    ``MALLOC_TRIM_THRESHOLD_`` set (65536 by default), and setting any
    malloc threshold switches off glibc's adaptive mmap threshold.  Every
    buffer over 128 KiB then gets fresh pages from the kernel and gives them
    back when freed, and each window allocates dozens of such buffers: on the
    full benchmark tile, detection on a 2-worker LocalCluster took 20.8 s
    instead of 11.5 s, and fresh pages cost 1-4 s per GB on the benchmark
    machine.  Within a batch, buffers up to 32 MiB now come from the heap and
    are reused; at the end the threshold goes back to what the environment
    says (or glibc's default) and the freed memory is returned to the system
    (``malloc_trim``), as the nanny intends.  Processes without such a
    variable are set up once by :func:`_tune_heap_once` instead; other C
    libraries are not touched.  Only after :func:`tune_malloc`.
    """
    global _reuse_depth
    libc = _glibc() if _malloc_opt_in else None
    if libc is None or not ({"MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"} & os.environ.keys()):
        yield
        return
    with _reuse_lock:
        if _reuse_depth == 0:
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        _reuse_depth += 1
    try:
        yield
    finally:
        with _reuse_lock:
            _reuse_depth -= 1
            if _reuse_depth == 0:
                try:
                    restore = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _MMAP_THRESHOLD_DEFAULT))
                except ValueError:
                    restore = _MMAP_THRESHOLD_DEFAULT
                libc.mallopt(_M_MMAP_THRESHOLD, restore)
                libc.malloc_trim(0)


@dataclass(frozen=True)
class PatchSums:
    """Per-patch partial sums from one block: ``index`` into the patch list, ``values`` (n, k)."""

    index: np.ndarray
    values: np.ndarray


def add_partials(n: int, k: int, partials: Iterable[PatchSums]) -> np.ndarray:
    """Add per-block partial sums into an (n, k) array, in a fixed order (block order)."""
    total = np.zeros((n, k), dtype=np.float64)
    for p in partials:
        if len(p.index):
            np.add.at(total, p.index, p.values)
    return total
