"""GDAL's block cache, scoped: set for the length of ecopatch's own reads, restored afterwards.

GDAL has one block cache per process.  :func:`gdal_cache` sets its size for
the length of a block and gives the size in force back when the outermost
scope ends, so nothing outlives the call (see its notes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ecopatch._env import env_int

__all__ = ["MIN_CACHE_BYTES", "gdal_cache"]

#: The least GDAL block cache (bytes) a scope of :func:`gdal_cache` sets, whatever size it is asked for.
MIN_CACHE_BYTES = 1024 * 1024

_gdal_lock = threading.Lock()
_gdal_depth = 0
_gdal_saved: Any = None
_gdal_now: int | None = None


def _user_chose_gdal_cache() -> bool:
    """True when the user set GDAL's cache size: in the environment or in an active ``rasterio.Env``."""
    if "GDAL_CACHEMAX" in os.environ:
        return True
    try:
        import rasterio.env

        return rasterio.env.hasenv() and "GDAL_CACHEMAX" in (rasterio.env.getenv() or {})
    except Exception:  # noqa: BLE001 - no rasterio env machinery: nothing chosen
        return False


@contextmanager
def gdal_cache(nbytes: int, *, at_least: bool = False) -> Iterator[None]:
    """GDAL's block cache at ``nbytes`` for the length of the block, then back to what it was.

    GDAL has one block cache per process, whose size (``GDAL_CACHEMAX``) is
    process-wide whatever thread sets it (rasterio's ``Env`` sets it with
    ``GDALSetCacheMax64`` and restores it on exit, in the thread that
    entered it).  ecopatch's windowed passes run their reads on worker
    threads, and several passes may run at once, so the scope is counted:
    the first to enter records the size in force and the last to leave
    restores it; nested scopes may raise the size, never lower it.  Dataset
    handles opened inside keep no setting of their own: the cache size is
    read by GDAL at every block it caches, so reads after the scope (by
    ecopatch or by the user, in any thread) run with the size the user had.

    Parameters
    ----------
    nbytes : int
        Cache size wanted, bytes (at least :data:`MIN_CACHE_BYTES` is set).
    at_least : bool
        Only raise the size when it is below ``nbytes`` (for reads that need
        a row of blocks cached), never lower it.

    Notes
    -----
    Nothing is changed where the user chose the size: ``GDAL_CACHEMAX`` in
    the environment or in an active ``rasterio.Env``.
    ``ECOPATCH_GDAL_CACHE_MB`` fixes the size of ecopatch's passes instead.
    """
    global _gdal_depth, _gdal_saved, _gdal_now
    if _user_chose_gdal_cache():
        yield
        return
    from rasterio.env import get_gdal_config, set_gdal_config

    fixed = env_int("ECOPATCH_GDAL_CACHE_MB", minimum=0, unit="MB")
    if fixed is not None and not at_least:
        nbytes = fixed * 1024 * 1024
    nbytes = max(MIN_CACHE_BYTES, int(nbytes))
    with _gdal_lock:
        if _gdal_depth == 0:
            _gdal_saved = get_gdal_config("GDAL_CACHEMAX")
            _gdal_now = _as_bytes(_gdal_saved)
        _gdal_depth += 1
        current = _gdal_now
        if at_least:
            change = current is None or current < nbytes
        else:
            # the first scope sets the size; nested ones may only raise it
            change = current is None or _gdal_depth == 1 or nbytes > current
        if change:
            # in bytes: rasterio hands an integer straight to GDALSetCacheMax64
            set_gdal_config("GDAL_CACHEMAX", nbytes)
            _gdal_now = nbytes
    try:
        yield
    finally:
        with _gdal_lock:
            _gdal_depth -= 1
            if _gdal_depth == 0:
                restore = _as_bytes(_gdal_saved)
                if restore is not None and restore != _gdal_now:
                    set_gdal_config("GDAL_CACHEMAX", restore)
                _gdal_saved = _gdal_now = None


def _as_bytes(value: Any) -> int | None:
    """GDAL_CACHEMAX as rasterio reports it (bytes, as int or text) -> int, None if unreadable."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
