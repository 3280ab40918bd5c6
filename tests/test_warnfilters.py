"""The process's warning filters are the same after ecopatch's threads as before them."""

import threading
import warnings

import numpy as np
from affine import Affine
from shapely.geometry import box

from ecopatch._warnfilters import filters_guard, guarded_catch_warnings
from ecopatch.compute.zonal import outline_pixels
from ecopatch.geo.grid import Grid
from ecopatch.raster.quiet import ignoring


class _Mine(UserWarning):
    pass


GRID = Grid((64, 64), Affine(10, 0, 500_000, 0, -10, 3_000_640), "EPSG:32650")
GEOM = box(500_100, 3_000_100, 500_300, 3_000_400)


def _hammer(stop: threading.Event) -> None:
    """What a pass's worker does all the time: rasterio rasterising (a catch_warnings of its own)."""
    while not stop.is_set():
        assert outline_pixels(GRID, GEOM) is not None


def test_blocks_of_ecopatchs_threads_never_leave_filters_behind():
    """rasterio enters ``catch_warnings`` + ``simplefilter("ignore")`` in every rasterize; entered while
    another thread's block was open and left after it, a block put back the other's filters: an
    "ignore everything" stayed in the user's process (4 ``detect_changes`` calls in 40 on a real pair)."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("error", category=_Mine)
        before = list(warnings.filters)
        stop = threading.Event()
        threads = [threading.Thread(target=_hammer, args=(stop,)) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(1000):
                with ignoring(DeprecationWarning):  # the main thread's own short blocks
                    outline_pixels(GRID, GEOM)
                if i % 50 == 0:
                    with guarded_catch_warnings(lambda: warnings.simplefilter("ignore", _Mine)):
                        warnings.warn("ignored inside", _Mine, stacklevel=1)
                with filters_guard():  # no worker inside rasterio's block now: the filters are ours
                    assert list(warnings.filters) == before
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert list(warnings.filters) == before
        try:
            warnings.warn("the user's own filter still holds", _Mine, stacklevel=1)
        except _Mine:
            pass
        else:  # pragma: no cover - the failure this test is for
            raise AssertionError("the user's 'error' filter was lost")


def test_the_guard_is_reentrant_and_a_long_block_restores_what_it_found():
    base = list(warnings.filters)
    with filters_guard(), filters_guard():
        with ignoring(_Mine):
            warnings.warn("quiet", _Mine, stacklevel=1)
    with guarded_catch_warnings(lambda: warnings.simplefilter("ignore", _Mine)):
        with filters_guard():
            pass
        warnings.warn("quiet too", _Mine, stacklevel=1)
    assert list(warnings.filters) == base
    np.testing.assert_equal(len(base), len(warnings.filters))


def test_a_block_entered_while_another_threads_is_open_waits_for_it():
    """The interleaving that left a filter behind, forced: a worker's block open, the main thread's
    entered meanwhile, the worker's left first. Without the lock the main thread's exit put back the
    worker's "ignore"; with it, the main thread's block starts once the worker's has ended."""
    class _Theirs(UserWarning):
        pass

    before = list(warnings.filters)
    entered, left = threading.Event(), threading.Event()

    def worker():
        with ignoring(_Theirs):
            entered.set()
            left.wait(0.2)  # held open while the main thread tries to enter its own
        left.set()

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(5)
    with ignoring(_Mine):
        left.set()  # the worker leaves now, if it has not yet
        t.join(5)
    assert list(warnings.filters) == before


def test_ecopatchs_warnings_are_not_swallowed_by_another_threads_block():
    """A polygon repaired in one window while other threads rasterise: the warning reaches the caller
    each time (raised inside another thread's rasterio block, it met that block's "ignore")."""
    from shapely.geometry import Polygon

    from ecopatch.compute.zonal import _check_geometries
    from ecopatch.errors import GeometryRepairedWarning

    bow_tie = np.array([Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])], dtype=object)
    stop = threading.Event()
    threads = [threading.Thread(target=_hammer, args=(stop,)) for _ in range(2)]
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        for t in threads:
            t.start()
        try:
            for _ in range(300):
                _check_geometries(bow_tie, "fix")
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert sum(issubclass(w.category, GeometryRepairedWarning) for w in got) == 300
