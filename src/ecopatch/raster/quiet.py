"""Quiet helpers of the readers: thread-safe silencing of a warning category, short exception text."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from ecopatch._warnfilters import filters_guard

__all__ = ["ignoring", "short"]


@contextmanager
def ignoring(category: type[Warning]) -> Iterator[None]:
    """Ignore warnings of ``category`` inside the (short) block, in any thread.

    :class:`warnings.catch_warnings` saves the process-wide filter list on
    entry and puts it back on exit; entered by several threads at once, the
    exits interleave and a thread can put back a list holding another
    thread's "ignore", which then stays in the user's process.  The block
    holds :func:`ecopatch._warnfilters.filters_guard` for its length, so no
    other ecopatch thread enters or leaves such a block meanwhile.
    """
    with filters_guard(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category)
        yield


def short(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters)."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]
