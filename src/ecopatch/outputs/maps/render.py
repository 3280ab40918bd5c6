"""Drawing many figures to PNG at once: in worker processes where the platform forks.

A report's figures and a field package's chips are
independent, and drawing one (matplotlib's Agg renderer, PNG encoding) runs
on one core holding Python's GIL, so threads would not help; worker
processes do.  The workers are forked from the calling process, so they
start with everything it has read (a run's shared quick-looks, fonts, the
scenes' metadata) and nothing is pickled but each figure's PNG bytes on the
way back.  Each job builds its figure itself, with matplotlib's object API
(no pyplot state).

What a forked worker must not share with its parent is reset when it starts:
the raster handles of the calling thread and of the shared quick-looks
(another process reading through the same file offsets would corrupt both
reads); matplotlib resets its own font-file cache at fork.  Workers end with
``os._exit`` (as multiprocessing's do), so nothing of the parent (a ledger
connection, open files) is closed or flushed by them.  Where the platform
does not fork (Windows, macOS by default), or for a handful of figures, the
jobs run in the calling process.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any, cast

from ecopatch._warnfilters import guarded_catch_warnings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: A job: builds one figure (or several, drawn in turn) when called; or returns PNG bytes it drew itself.
FigureJob = Callable[[], "Figure | bytes | Sequence[Figure | bytes]"]

#: Fewer jobs than this are drawn in the calling process (a worker costs about what a small figure does).
MIN_PARALLEL_JOBS = 4

_JOBS: Sequence[FigureJob] | None = None  # the jobs of the running call, inherited by the forked workers
_OPTS: dict[str, Any] = {}


#: zlib level of the PNGs drawn here: 1 encodes about a third faster than PIL's default 6, and imagery
#: compresses little better at 6 (measured on chips and maps of the benchmark scene: files 3-8 % larger).
PNG_COMPRESS_LEVEL = 1


def png_bytes(fig: Figure, *, dpi: float, **savefig_kw: Any) -> bytes:
    """``fig`` saved as PNG bytes (zlib level :data:`PNG_COMPRESS_LEVEL` unless ``pil_kwargs`` say otherwise)."""
    buf = io.BytesIO()
    savefig_kw.setdefault("pil_kwargs", {"compress_level": PNG_COMPRESS_LEVEL})
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kw)
    return buf.getvalue()


def default_workers() -> int:
    """Worker processes for drawing: the CPUs this process may use (1 where the platform cannot fork)."""
    if not _can_fork():
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def render_pngs(jobs: Sequence[FigureJob], *, dpi: float, workers: int | None = None,
                **savefig_kw: Any) -> list[list[bytes]]:
    """Build and draw each job's figure(s) to PNG, in parallel worker processes where possible.

    Parameters
    ----------
    jobs : sequence of callables
        Each returns a Figure or a sequence of Figures (drawn in order), or
        PNG bytes it drew itself.
    dpi : float
        PNG resolution, dots per inch.
    workers : int, optional
        Worker processes; default :func:`default_workers`.  1 draws in the
        calling process.
    **savefig_kw
        Passed to :meth:`matplotlib.figure.Figure.savefig`.

    Returns
    -------
    list of list of bytes
        Per job, the PNG of each of its figures, in job order.

    Raises
    ------
    Exception
        The first error a job raised (re-raised here, as raised in the job).
    """
    global _JOBS, _OPTS
    n = len(jobs)
    w = min(default_workers() if workers is None else max(1, int(workers)), n)
    if w <= 1 or n < MIN_PARALLEL_JOBS or not _can_fork() or _JOBS is not None:
        return [_draw(job, dpi, savefig_kw) for job in jobs]
    _JOBS, _OPTS = jobs, dict(savefig_kw)
    try:
        ctx = multiprocessing.get_context("fork")
        # Python >= 3.12 warns about fork() in a process with threads (an idle Dask pool, say);
        # the workers only draw, with the handles they could share reset (see the module notes)
        with guarded_catch_warnings(lambda: warnings.filterwarnings("ignore", message=".*fork.*",
                                                                    category=DeprecationWarning)):
            ex = ProcessPoolExecutor(w, mp_context=ctx, initializer=_child_start)
            done: dict[int, list[bytes]] = {}
            try:
                # one job at a time: a worker takes the next job when it is free, so the workers
                # finish together (in chunks of several, one worker was left drawing the last chunk
                # alone; a job's round trip costs about a millisecond, a figure 50 ms to 1 s)
                futures = [ex.submit(_draw_index, i, dpi) for i in range(n)]
                done = _collect(futures)
            finally:
                stalled = len(done) < n
                if stalled:
                    _kill_workers(ex)
                ex.shutdown(wait=not stalled, cancel_futures=True)
        if stalled:
            log.warning("figure workers made no progress for %.0f s (a worker forked while another thread held a "
                        "lock it needs, e.g. inside GDAL): the %d figure(s) left are drawn in this process",
                        STALL_S, n - len(done))
        out = [done[i] if i in done else _draw(jobs[i], dpi, savefig_kw) for i in range(n)]
    finally:
        _JOBS, _OPTS = None, {}
    log.debug("%d figure job(s) drawn by %d worker process(es)", n, w)
    return out


#: Seconds without any figure finishing after which the workers are given up (a figure takes 0.05-5 s).
STALL_S = 120.0


def _collect(futures: Sequence[Future[list[bytes]]]) -> dict[int, list[bytes]]:
    """Results by job index, until all are in or none has come for :data:`STALL_S` seconds.

    A job's error is raised here, as the job raised it.
    """
    index = {f: i for i, f in enumerate(futures)}
    done: dict[int, list[bytes]] = {}
    pending = set(futures)
    while pending:
        finished, pending = wait(pending, timeout=STALL_S, return_when=FIRST_COMPLETED)
        if not finished:
            break
        for f in finished:
            done[index[f]] = f.result()
    return done


def _kill_workers(ex: ProcessPoolExecutor) -> None:
    """Kill the worker processes of ``ex`` (a stalled worker never returns to take the shutdown message)."""
    procs = getattr(ex, "_processes", None) or {}
    for proc in list(procs.values()):
        with contextlib.suppress(Exception):
            proc.kill()


def _draw(job: FigureJob, dpi: float, savefig_kw: dict[str, Any]) -> list[bytes]:
    made = job()
    figs: Sequence[Figure | bytes] = made if isinstance(made, (list, tuple)) else [cast("Figure | bytes", made)]
    return [f if isinstance(f, bytes) else png_bytes(f, dpi=dpi, **dict(savefig_kw)) for f in figs]


def _draw_index(i: int, dpi: float) -> list[bytes]:
    assert _JOBS is not None
    return _draw(_JOBS[i], dpi, _OPTS)


def _child_start() -> None:
    """In a forked worker: drop the raster handles shared with the parent (without closing them).

    And take what the worker inherited out of the cyclic garbage collector's
    reach (``gc.freeze``, in the worker only): its full collections then walk
    only the worker's own objects, not the calling process's hundreds of
    thousands, and leave those pages shared.
    """
    import gc

    from ecopatch.raster import fileread, quicklook

    gc.freeze()

    # kept referenced, never used or closed here: the parent's handles are the parent's
    _INHERITED.append(dict(fileread.thread_handles.__dict__))
    fileread.thread_handles.__dict__.clear()
    state = quicklook._ACTIVE.get()
    if state is not None:
        _INHERITED.append(state.handles)
        state.handles = quicklook._Handles()


_INHERITED: list[Any] = []
