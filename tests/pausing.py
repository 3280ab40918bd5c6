"""Run ecopatch in a child process that pauses at one of the library's seams: for the fault tests.

The library has no test switch: it calls two functions that do nothing,
:func:`ecopatch.ledger.connection.before_commit` (inside every write
transaction of the ledger, just before ``COMMIT``) and
:func:`ecopatch.run.scene.before_manifest` (after a scene's ledger commit and
outputs, just before its ``manifest.json``).  This script replaces one of
them with a pause, then runs the command, so that a test can hold a writer or
a run at that point and kill it there::

    python tests/pausing.py txn SECONDS SIGNAL_FILE -- cli run site/ecopatch.toml
    python tests/pausing.py run SECONDS SIGNAL_FILE -- cli run site/ecopatch.toml
    python tests/pausing.py txn SECONDS SIGNAL_FILE -- script.py ARGS...

``txn`` also gives every ledger connection a one-page cache, so the pages a
transaction changes reach the file before the pause: a kill there lands in the
middle of a real write, with a hot rollback journal beside the file.  On
reaching the pause the child writes its PID to ``SIGNAL_FILE``.
"""

from __future__ import annotations

import logging
import os
import runpy
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["command", "install"]

HERE = Path(__file__).resolve()
log = logging.getLogger("tests.pausing")


def command(where: str, seconds: float, signal_file: Path, *args: str) -> list[str]:
    """The argv of a child that pauses at ``where`` ("txn" or "run") and then runs ``args``."""
    return [sys.executable, str(HERE), where, str(seconds), str(signal_file), "--", *args]


def install(where: str, seconds: float, signal_file: str) -> None:
    """Replace the seam ``where`` ("txn": the ledger's commits, "run": a scene's manifest) with a pause."""

    def pause(*_: Any) -> None:
        if signal_file:
            Path(signal_file).write_text(str(os.getpid()))
        log.warning("pausing %.1f s at %s (tests/pausing.py)", seconds, where)
        time.sleep(seconds)

    if where == "txn":
        from ecopatch.ledger import connection

        connect = connection.connect

        def small_cache(path: Path, timeout_s: float) -> sqlite3.Connection:
            con = connect(path, timeout_s)
            con.execute("PRAGMA cache_size=1")  # spill changed pages to the file
            return con

        connection.connect = small_cache  # type: ignore[assignment]
        connection.before_commit = pause  # type: ignore[assignment]
    elif where == "run":
        from ecopatch.run import scene

        scene.before_manifest = pause  # type: ignore[assignment]
    else:
        raise SystemExit(f"where={where!r}: use 'txn' or 'run'")


def main(argv: list[str]) -> None:
    if len(argv) < 5 or argv[3] != "--":
        raise SystemExit(__doc__)
    where, seconds, signal_file, _, *rest = argv
    install(where, float(seconds), signal_file)
    if rest[0] == "cli":
        from ecopatch.cli.main import main as cli_main

        sys.argv = ["ecopatch", *rest[1:]]
        cli_main()
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
