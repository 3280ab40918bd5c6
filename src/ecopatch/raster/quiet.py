"""Quiet helpers of the readers: thread-safe silencing of a warning category, short exception text."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ignoring", "short"]


@contextmanager
def ignoring(category: type[Warning]) -> Iterator[None]:
    """Ignore warnings of ``category`` inside the block, in the main thread only.

    :class:`warnings.catch_warnings` saves the process-wide filter list on
    entry and puts it back on exit.  Entered by several threads at once, the
    exits interleave: a thread can put back a list that holds another
    thread's "ignore", which then stays in the user's process after ecopatch
    returns, or drop a filter the user set meanwhile.  So only the main
    thread silences here; in ecopatch's worker threads the block runs as it
    is.  Nothing is lost by that: the warnings silenced this way (rasterio's
    "no geotransform" when a file is first opened) come from the main
    thread, which opens and checks every file before a pass hands it to
    workers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


def short(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]
