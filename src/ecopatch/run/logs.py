"""Logging of a scheduled run: each scene's ``run.log``, and Python warnings sent to the log."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch._warnfilters import guarded_catch_warnings

if TYPE_CHECKING:

    pass

__all__ = [
    "LOG_FORMAT",
    "attach_log",
    "detach_log",
    "warnings_to_log",
]

log = logging.getLogger("ecopatch.run")


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def attach_log(path: Path) -> logging.Handler:
    """Also send the ``ecopatch`` logger's records to ``path`` until :func:`detach_log`."""
    from ecopatch.vector.sanitize import SafeLogFormatter

    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    handler.setFormatter(SafeLogFormatter(LOG_FORMAT))
    logging.getLogger("ecopatch").addHandler(handler)
    return handler


def detach_log(handler: logging.Handler) -> None:
    """Stop sending records to ``handler`` (from :func:`attach_log`) and close it."""
    logging.getLogger("ecopatch").removeHandler(handler)
    handler.close()


@contextlib.contextmanager
def warnings_to_log() -> Iterator[None]:
    """Log Python warnings (at WARNING) instead of printing them, inside the block.

    Entered and left while no other ecopatch thread is inside a block that
    saves and restores the warning filters (:mod:`ecopatch._warnfilters`).
    """
    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        log.warning("%s: %s", category.__name__, message)

    def setup() -> None:
        warnings.simplefilter("default")
        warnings.showwarning = show

    with guarded_catch_warnings(setup):
        yield

