"""Python's warning filters, changed by one of ecopatch's threads at a time.

:class:`warnings.catch_warnings` saves the process-wide filter list (and
``showwarning``) on entry and puts it back on exit.  rasterio enters one,
with ``simplefilter("ignore")``, in every ``rasterize``, ``geometry_mask``,
``shapes`` and ``reproject`` of an array, and ecopatch's windowed passes call
those from worker threads.  When a block is entered while another thread's
block is open and that one is left first, the later exit puts back the
filters as they were inside the first: an "ignore everything" filter then
stayed in the user's process after ``detect_changes`` returned (4 calls in
40 on an eo-learn Sentinel-2 L1C pair of Slovenia).

Every such block ecopatch runs takes :data:`_LOCK`: short ones (a rasterio
call, a file opened quietly) for their whole length (:func:`filters_guard`),
long ones (a scheduled run's warnings sent to its log, the figure workers'
start) only while they enter and while they leave
(:func:`guarded_catch_warnings`), so that no short block is open across
either.  Blocks of the user's own threads are theirs to order.  While a
worker is inside rasterio's block, its "ignore" applies to every thread (the
filters are one list): a warning another thread raises at that moment is
not shown, so ecopatch's warnings that can be raised while its threads work
(a polygon repaired in a window, the detection's set-up beside the
background's reads) take the lock first.  The filters after a call are the
ones before it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["filters_guard", "guarded_catch_warnings"]

_LOCK = threading.RLock()


@contextmanager
def filters_guard() -> Iterator[None]:
    """No other ecopatch thread enters or leaves a ``catch_warnings`` block for the length of this one.

    For short blocks that enter one themselves, or call code that does
    (rasterio's ``rasterize``, ``geometry_mask``, ``shapes``, ``reproject``).
    """
    with _LOCK:
        yield


@contextmanager
def guarded_catch_warnings(setup: Callable[[], Any] | None = None) -> Iterator[None]:
    """:class:`warnings.catch_warnings` for a long block; ``setup()`` sets its filters when it is entered.

    The block is entered (and ``setup`` run) and left under the lock of
    :func:`filters_guard`, so no short block of another ecopatch thread is
    open across its entry or its exit: those opened inside it close inside
    it, and what it puts back on exit is what it found.
    """
    cm = warnings.catch_warnings()
    with _LOCK:
        cm.__enter__()
        try:
            if setup is not None:
                setup()
        except BaseException:
            cm.__exit__(None, None, None)
            raise
    try:
        yield
    finally:
        with _LOCK:
            cm.__exit__(None, None, None)
