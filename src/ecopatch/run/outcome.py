"""What a scheduled run reports: exit codes (:class:`ExitCode`), each scene's outcome, the run's result."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.errors import (
    AlignmentError,
    ConfigError,
    CRSError,
    FieldCheckError,
    InputDataError,
    LedgerLockedError,
    RasterReadError,
    VectorReadError,
)
from ecopatch.run.discovery import SceneRef
from ecopatch.run.manifest import COMPLETE_STATUSES

if TYPE_CHECKING:

    pass

__all__ = [
    "ExitCode",
    "RunResult",
    "SceneOutcome",
    "exit_code_for",
]

log = logging.getLogger("ecopatch.run")


class ExitCode(enum.IntEnum):
    """Exit codes of ``ecopatch run`` (and :attr:`RunResult.exit_code`).

    ========  ===================================================================
    code      meaning
    ========  ===================================================================
    0         OK: new scenes processed (or skipped as unusable), or a dry run
              with something to do
    1         failure: an unexpected error, a ledger or output problem
    2         usage error on the command line (click)
    3         bad configuration (:class:`~ecopatch.errors.ConfigError`)
    4         bad input: unreadable imagery or polygons, wrong CRS, missing band
    5         nothing new to process
    6         locked: another run holds the run lock (or the ledger stayed busy)
    ========  ===================================================================
    """

    OK = 0
    FAILURE = 1
    USAGE = 2
    BAD_CONFIG = 3
    BAD_INPUT = 4
    NOTHING_NEW = 5
    LOCKED = 6


def exit_code_for(exc: BaseException) -> ExitCode:
    """The :class:`ExitCode` for an exception that stopped a run or a scene.

    Examples
    --------
    >>> from ecopatch.errors import ConfigError, RasterReadError
    >>> int(exit_code_for(ConfigError("x"))), int(exit_code_for(RasterReadError("y")))
    (3, 4)
    """
    if isinstance(exc, ConfigError):
        return ExitCode.BAD_CONFIG
    if isinstance(exc, LedgerLockedError):
        return ExitCode.LOCKED
    if isinstance(exc, (InputDataError, RasterReadError, VectorReadError, CRSError, AlignmentError,
                        FieldCheckError)):
        return ExitCode.BAD_INPUT
    return ExitCode.FAILURE


@dataclass(frozen=True)
class SceneOutcome:
    """What happened to one scene.

    Attributes
    ----------
    scene : SceneRef
    baseline : SceneRef or None
    status : {"ok", "skipped", "failed", "pending"}
        ``"pending"``: a dry run would process it.
    exit_code : ExitCode
    folder : Path or None
        Its run folder (``.failed`` for a failure; None in a dry run).
    counts : mapping
        Mines, patches, ledger counts (see ``manifest.json``).
    message : str
        Why it was skipped or failed; the baseline reason in a dry run.
    references : tuple of (SceneRef, int)
        The restoration references used (or to be used), with their number
        of mines, most used first.
    """

    scene: SceneRef
    baseline: SceneRef | None
    status: str
    exit_code: ExitCode = ExitCode.OK
    folder: Path | None = None
    counts: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    references: tuple[tuple[SceneRef, int], ...] = ()


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_pipeline` did.

    Attributes
    ----------
    status : {"ok", "nothing_new", "dry_run", "failed", "bad_input", "locked", "bad_config"}
    exit_code : ExitCode
    outcomes : tuple of SceneOutcome
        One per scene processed (or that would be, in a dry run), oldest first.
    done : tuple of SceneRef
        Scenes already processed by an earlier run (and left alone).
    baseline_only : tuple of (SceneRef, str)
        Scenes with nothing to compare with, and why.
    unreadable : tuple of (str, str)
        Imagery candidates that could not be used, and why.
    runs_dir, ledger_path : Path
    ledger_counts : mapping
        ``cases`` and ``events`` in the ledger after the run (empty when it
        was not opened).
    duration_s : float
    """

    status: str
    exit_code: ExitCode
    outcomes: tuple[SceneOutcome, ...]
    done: tuple[SceneRef, ...]
    baseline_only: tuple[tuple[SceneRef, str], ...]
    unreadable: tuple[tuple[str, str], ...]
    runs_dir: Path
    ledger_path: Path
    ledger_counts: Mapping[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def processed(self) -> tuple[SceneOutcome, ...]:
        """Outcomes of scenes processed (ok or skipped)."""
        return tuple(o for o in self.outcomes if o.status in COMPLETE_STATUSES)

    def summary(self) -> str:
        """A few lines for a terminal or a cron mail."""
        lines: list[str] = []
        n = len(self.done) + len(self.baseline_only) + len(self.outcomes)
        if self.status == "nothing_new":
            lines.append(f"nothing new: {n} scene(s) in the imagery, {len(self.done)} already processed, "
                         f"{len(self.baseline_only)} baseline only; nothing was done")
        elif self.status == "dry_run":
            lines.append(f"dry run: would process {len(self.outcomes)} scene(s) "
                         f"({len(self.done)} already processed, {len(self.baseline_only)} baseline only)")
        else:
            ok = sum(o.status == "ok" for o in self.outcomes)
            sk = sum(o.status == "skipped" for o in self.outcomes)
            fl = sum(o.status == "failed" for o in self.outcomes)
            lines.append(f"run {self.status}: {ok} scene(s) processed, {sk} skipped, {fl} failed "
                         f"in {self.duration_s:.1f} s")
        for o in self.outcomes:
            base = o.baseline.label if o.baseline else "-"
            refs = ", ".join(f"{sc.date} ({n})" for sc, n in o.references)
            head = f"  {o.scene.label} vs {base}" + (f" (mines vs {refs})" if refs else "")
            if o.status == "pending":
                lines.append(f"{head} ({o.message}) -> {self.runs_dir / o.scene.folder_name}")
            elif o.status == "ok":
                c = o.counts
                led = c.get("ledger", {})
                lines.append(
                    f"{head}: {c.get('mines', 0)} mines, {c.get('patches', 0)} suspect patches "
                    f"({led.get('new', 0)} new cases, {led.get('matched', 0)} matched, {led.get('rebound', 0)} "
                    f"rebound, {led.get('unchanged', 0)} already in the ledger, "
                    f"{led.get('sky_confirmed', 0)} confirmed by imagery) -> {o.folder}"
                )
            else:
                lines.append(f"{head}: {o.status.upper()}: {o.message}" + (f" -> {o.folder}" if o.folder else ""))
        for s, why in self.baseline_only:
            lines.append(f"  baseline only: {s.label} ({why})")
        for p, why in self.unreadable:
            lines.append(f"  not a usable scene: {p}: {why}")
        if self.ledger_counts:
            lines.append(f"ledger {self.ledger_path}: {self.ledger_counts.get('cases', 0)} cases, "
                         f"{self.ledger_counts.get('events', 0)} events")
        return "\n".join(lines)

