"""Files the ledger and the field check write (internal): atomic replacement, existing targets, sheets.

Every file is written to a temporary name in its folder and moved into place
with :func:`os.replace`, so a reader never sees half a file and a failed write
leaves the old one.  Used by :mod:`ecopatch.ledger.report` and
:mod:`ecopatch.fieldcheck`; not part of the public API.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ecopatch.errors import OutputError, OutputExistsError, describe_os_error

__all__ = ["atomic_write", "check_targets", "remove_partial", "tmp_name", "write_sheet"]


def tmp_name(path: Path) -> Path:
    """A temporary name beside ``path`` (hidden, random, same suffix)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Write via ``write(tmp)`` to a temporary file beside ``path``, then move it into place.

    Raises
    ------
    OutputError
        The file could not be written (the message names it and the cause);
        nothing was written.
    """
    tmp = tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        remove_partial(tmp)
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}; nothing was written") from exc
    except BaseException:
        remove_partial(tmp)
        raise
    return path


def remove_partial(p: Path) -> None:
    """Remove a partly written file and its SQLite journal, if there."""
    for q in (p, p.with_name(p.name + "-journal")):
        try:
            q.unlink()
        except OSError:  # not there, or a read-only folder where it could not be made either
            pass


def check_targets(targets: Iterable[Path], overwrite: bool) -> None:
    """Refuse existing ``targets`` unless ``overwrite``.

    Raises
    ------
    OutputExistsError
        Naming up to three of them.
    """
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{len(existing)} output file(s) exist, e.g. {existing[:3]}; pass overwrite=True "
            f"(--overwrite) to replace them or choose another folder"
        )


_COLOUR_FILL = {"红码": "FFC7CE", "黄码": "FFEB9C", "绿码": "C6EFCE"}


def write_sheet(ws: Any, df: pd.DataFrame) -> None:
    """Header row (bold, frozen), values, column widths; 红黄绿码 cells filled in colour.

    Every cell goes through :func:`ecopatch.vector.tables.cell_value`: no formula,
    no control character, nothing longer than a cell holds.
    """
    from ecopatch.vector.tables import write_sheet as write_table_sheet

    write_table_sheet(ws, df, fills=_COLOUR_FILL, fill_columns=["红黄绿码"])
