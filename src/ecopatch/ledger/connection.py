"""Connections to the ledger file (internal): opening, journal mode, SQLite errors in words.

:class:`ecopatch.ledger.Ledger` opens one connection per call through
:func:`connect` and runs each write as one ``BEGIN IMMEDIATE`` ... ``COMMIT``;
just before each ``COMMIT`` it calls :func:`before_commit`, which does nothing.
It is the seam the fault tests replace (from a script of their own, see
``tests/pausing.py``) to hold a writer inside its open transaction and kill
it there; the library has no test switch of its own.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ecopatch.errors import LedgerError, LedgerLockedError
from ecopatch.ledger.gpkg import register_functions

__all__ = ["before_commit", "connect", "translate"]

log = logging.getLogger(__name__)


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """Open the ledger file in autocommit mode, in the rollback-journal mode when it can.

    Parameters
    ----------
    path : Path
        The ledger file.
    timeout_s : float
        Seconds to wait for another process's lock.

    Raises
    ------
    LedgerError
        The file cannot be opened or is not an SQLite file.
    LedgerLockedError
        Another process held it longer than ``timeout_s``.
    """
    try:
        con = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot open ledger {path}: {exc}") from exc
    register_functions(con)
    try:
        mode = str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode != "delete":
            # Another program (QGIS opens GeoPackages in WAL mode) switched it; go back
            # to a rollback journal when we can.  WAL is as safe, so carry on if not.
            try:
                con.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:
                log.warning(
                    "ledger %s is in %s journal mode, set by another program that still "
                    "has it open (QGIS?); writes stay atomic",
                    path,
                    mode,
                )
    except sqlite3.OperationalError as exc:
        con.close()
        raise translate(exc, path, timeout_s, "open") from exc
    except sqlite3.DatabaseError as exc:
        con.close()
        raise LedgerError(f"{path} is not a GeoPackage/SQLite file ({exc}); is this the ledger?") from exc
    return con


def translate(exc: sqlite3.Error, path: Path, timeout_s: float, what: str) -> LedgerError:
    """The :class:`LedgerError` to raise for an SQLite error while doing ``what``."""
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        return LedgerLockedError(
            f"ledger {path} is locked by another process: waited {timeout_s:g} s "
            f"to {what} and gave up, nothing was written; try again when the other run "
            f"has finished, or pass a longer timeout_s"
        )
    return LedgerError(f"ledger {path}: cannot {what}: {exc}")


def before_commit(con: sqlite3.Connection) -> None:
    """Called inside every write transaction, just before its ``COMMIT``: does nothing.

    A seam, not a hook: the library never changes it.  The fault tests
    replace it in a child process of their own to pause there and kill the
    writer with a hot rollback journal on disk.
    """
