"""One scheduled run (天上看 → 网上管): find new imagery, assess, detect, update the ledger, write a dated record.

The guts of ``ecopatch run CONFIG.toml``, minus the argument parsing: cron or
a systemd timer starts it whenever new imagery may have arrived, and
:func:`run_pipeline` does the whole sky-watch job unattended.

What a run does
---------------
1. **Discover scenes** in ``[inputs] imagery``: the entries of a folder that
   match ``scene_pattern`` (Sentinel-2 ``.SAFE`` folders, STAC item JSONs,
   Landsat folders, folders of band files, GeoTIFFs), or the items of a local
   STAC catalog/collection JSON (followed through ``child`` and ``item``
   links; ``scene_pattern`` then matches item IDs).  Each is opened lazily
   with :func:`ecopatch.open_scene`; its date comes from its metadata or
   name.  A candidate that cannot be opened or has no date is skipped with a
   warning (and the run exits with the bad-input code).
2. **Take the run lock** (below), then remove what a killed run left behind.
3. **Decide what is new**: a scene is processed when no *complete* run
   folder records it (a folder in ``[outputs] dir`` whose ``manifest.json``
   has status ``ok`` or ``skipped`` for that scene ID).  ``force=True``
   processes every scene again.  Nothing new: the run stops and says so.
4. **Per new scene, oldest first**: choose its encroachment baseline and
   each mine's restoration reference (below), open the scenes, assess every
   mine against its reference and detect changes in the reserves against
   the baseline in one windowed pass (each tile decoded once for all the
   jobs), see each mine's status against its history in the ledger
   (:func:`ecopatch.analyses.trajectory.mine_status`), write the results and the
   change map, then *in one ledger transaction*
   (:meth:`ecopatch.Ledger.transaction`) record both, write the field
   package of the cases this scene opened or reopened and the report (so
   they show the cases as recorded), and commit; then ``manifest.json``
   last, and move the folder into place.  A scene whose detections would
   open more than ``[run] max_new_cases`` new cases fails
   (:class:`~ecopatch.errors.TooManyCasesError`) and records nothing.

The ledger run ID of a scene is its scene ID (the product name, e.g.
``S2B_MSIL2A_20240912T023529_N0510_R089_T50RQU_20240912T061020``), so running
a scene again (``force=True``) adds nothing to the ledger: every detection is
already there and is counted as unchanged, and each mine keeps one history
row for the date (replaced, with the old row kept as superseded, only when
the figures changed, e.g. after a change of parameters or reference).

Two baselines
-------------
Encroachment and restoration ask different questions, so they are measured
against different scenes.

**Encroachment** (new disturbance in the reserves) compares each new scene
``S`` with one earlier scene, chosen by ``[run] baseline``:

``"season"`` (default)
    The same time of year in an earlier year, so that ploughed fields,
    leaf-off forest and dry grass are not new disturbance: of the usable
    scenes of earlier calendar years within ``[run] season_window_days``
    (default 45) of ``S`` in the calendar, the nearest of the most recent
    such year.  When there is none, the previous scene (as ``"previous"``).
    The manifest and the run log say which was taken and why.
``"previous"``
    The most recent scene dated strictly before ``S`` that is usable: not a
    scene whose own run was skipped (it did not see the mines and reserves)
    or failed.
``"best"``
    Of the usable scenes dated before ``S`` (and at most
    ``max_baseline_age_days`` older, when set), the one clear (not cloud, not
    no-data) over the largest share of the mines and reserves, measured on a
    decimated read (:func:`ecopatch.raster.source.read_decimated`); shares are
    compared to the nearest percent, and the most recent of equals wins.
``"fixed"``
    The scene dated ``reference_date`` (the first by ID if several; the most
    recent scene before that date if none is on it).  Only scenes after it
    are processed.

**Seasonal range.**  Besides the baseline, up to ``[run] history_scenes``
(default 4; 0 turns it off) usable scenes dated *before the baseline* (the
most recent) go to the detection as ``history=``: each pixel's cover over
them and the baseline is its own seasonal range (ploughed and green
cropland, leaf-off and leaf-on forest), and change inside it is not
reported (:func:`ecopatch.detect_changes`).  Scenes between the baseline
and ``S`` are not taken: they may already show the encroachment ``S`` is
compared for.  The manifest's ``history`` names the scenes and which the
detection used (:func:`choose_history`).

**Restoration** is measured from the state before restoration began
(一矿一策), never from the previous scene: each mine has a fixed
*reference* (:func:`choose_references`), from its own field
(``[assessment] reference_field``: 修复前影像日期 = a date or scene ID, or
治理开始年份 = the year restoration began, whose reference is the latest clear
scene before it), else ``[assessment] reference``: ``"earliest"`` (default:
the earliest usable scene that sees the mine clear), a date or a scene ID.
A mine whose reference is not before ``S`` is not assessed in ``S``.  The
mines table says which reference each mine was measured against
(``reference_scene``, ``date_before``, ``reference_rule``).

The earliest scene (or, with ``"fixed"``, every scene up to the reference)
has nothing to compare with: it serves as a baseline only and gets no run
folder.  Baselines and references depend only on the imagery, the mines and
the recorded runs, so the same inputs give the same pairs.

A scene clear over less than ``[run] min_clear_fraction`` of the mines and
reserves, or that sees none of them, or whose every pixel there is cloud,
is recorded as ``skipped`` (a complete run folder with the reason and no
ledger change), so it is not retried.

Run folders, atomicity, what a killed run leaves
------------------------------------------------
Each scene's folder is built as ``<dir>/.<date>_<scene id>.partial/`` and
renamed to ``<dir>/<date>_<scene id>/`` (one ``os.rename``) only when
complete, with ``manifest.json`` written (and fsynced) just before.  It holds
``results/`` (``mines.*``, ``patches.*`` in the configured formats,
``observation.csv``), ``maps/change_map.png``, ``fieldcheck/`` (the field
package), ``report/`` (``report.html``, ``report.xlsx``, figures),
``run.log`` and ``manifest.json`` (inputs with SHA-256 checksums, parameters,
package versions, counts, timings, exit status).  A scene that fails gets
``<date>_<scene id>.failed/`` (with its log and a manifest saying why)
instead, and is tried again by the next run.

- Killed, or failed (a full disk, a read-only folder, the file-size limit,
  an unwritable chip), before the ledger commit: the ledger is exactly as
  before (SQLite rolls the hot journal back on the next open); a
  ``.partial`` folder is left (or a ``.failed`` one, with the error).  Every
  output but ``manifest.json`` is written before the commit.
- Killed, or failed writing ``manifest.json``, after the commit: the ledger
  holds the scene's records, but no complete folder exists, so the next run
  processes the scene again; the ledger counts everything as unchanged and
  the folder is written.
- A failure's message names the file and says which of the two it was
  (``the ledger is unchanged`` / ``the ledger holds this scene``).
- While the transaction is open other ledger writers wait (up to their
  timeout): the field package and the report are drawn inside it.
- Either way the next run removes leftover ``.partial`` folders (with a
  warning) and never takes one as complete.  ``--force`` replaces a complete
  folder by renaming the old one aside, moving the new one in, then deleting
  the old one.

Locking
-------
One run at a time per ledger: a lock file ``<ledger>.lock`` beside the
ledger, created with ``O_CREAT | O_EXCL``, holds the PID, host, start time
and a random token, and its modification time is refreshed as a heartbeat.
A second run is refused with :class:`~ecopatch.errors.RunLockedError`
naming the holder.  A lock is *stale*, and is recovered with a warning,
when its process is gone (same host: PID not running, a zombie, or a newer
process reusing the PID) or, for a lock taken on another host, when its
heartbeat is older than ``[run] lock_max_age_hours``.  The lock is released
in a ``finally`` block, and only by its owner.

Logging
-------
Progress goes to the ``ecopatch`` logger (the application chooses the
handlers and level; ``ecopatch run`` logs at INFO).  While a scene is
processed the same records also go to its ``run.log``, and Python warnings
are logged rather than printed.

Each scene calls :func:`ecopatch.run.scene.before_manifest` after its ledger
commit and outputs, just before ``manifest.json`` is written.  It does
nothing: the CLI tests replace it (from a script of their own,
``tests/pausing.py``) to hold the lock and to kill a run at its most
complete-looking moment.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecopatch.errors import (
    ConfigError,
    OutputError,
    describe_os_error,
)
from ecopatch.run.baseline import MineReference, choose_baseline, reference_counts, reference_scene
from ecopatch.run.config import RunConfig
from ecopatch.run.context import (
    RunContext,
    check_reference,
    clear_share,
    heartbeat,
    ledger_counts,
    open_ledger,
    read_layers,
    scene_references,
)
from ecopatch.run.discovery import SceneRef, discover_scenes
from ecopatch.run.lock import RunLock
from ecopatch.run.manifest import RunRecord, clean_leftovers, completed_runs
from ecopatch.run.outcome import ExitCode, RunResult, SceneOutcome
from ecopatch.run.scene import process_scene

if TYPE_CHECKING:

    pass

__all__ = [
    "reference_counts",
    "run_pipeline",
]

log = logging.getLogger("ecopatch.run")


def run_pipeline(
    config: RunConfig,
    *,
    force: bool = False,
    dry_run: bool = False,
    scenes: Sequence[str] = (),
    progress: bool | None = None,
) -> RunResult:
    """Run the scheduled job once: process every new scene (see the module docstring).

    Parameters
    ----------
    config : RunConfig
        From :func:`ecopatch.run.config.load_config`.
    force : bool
        Process scenes again even when a complete run folder records them
        (the ledger counts their records as unchanged; their folders are
        replaced).
    dry_run : bool
        Only list what would be processed, with the baselines; writes nothing
        and takes no lock.
    scenes : sequence of str
        Restrict to these scenes: scene IDs, glob patterns of IDs, or dates
        (YYYY-MM-DD).
    progress : bool, optional
        Progress bars of the windowed analyses (default: on a terminal only).

    Returns
    -------
    RunResult
        ``exit_code`` 0 when scenes were processed (or a dry run found
        work), 5 when there was nothing new, 4 when a scene or imagery
        candidate was bad input, 6 when a scene met a busy ledger, 1 on any
        other scene failure.

    Raises
    ------
    ConfigError
        ``scenes`` matches nothing; no scene for ``reference_date``.
    RunLockedError
        Another run holds the run lock of this ledger.
    InputDataError, VectorReadError, CRSError
        The mines, reserves or exclusion layer cannot be used.
    RasterReadError
        The imagery folder is missing.
    LedgerError
        The ledger is not an ecopatch ledger, or fails its integrity check.

    Notes
    -----
    Each scene's ``run.log`` receives the records the ``ecopatch`` logger
    lets through: the level stays the application's choice.  Set it to INFO
    (``logging.getLogger("ecopatch").setLevel(logging.INFO)``, as
    ``ecopatch run`` does) for a complete log.
    """
    t0 = time.monotonic()
    cfg = config
    runs_dir = cfg.outputs.dir
    ctx = RunContext(cfg, runs_dir, progress, force)
    disc = discover_scenes(cfg.inputs.imagery, cfg.inputs.scene_pattern, sensor=cfg.inputs.sensor,
                           open_options=cfg.inputs.open_options,
                           ignore=(runs_dir, cfg.outputs.ledger))
    ctx.scenes = disc.scenes
    if not disc.scenes:
        log.warning("no scene found in %s (scene_pattern %s): check [inputs] imagery and scene_pattern",
                    cfg.inputs.imagery, list(cfg.inputs.scene_pattern))
    wanted = _select(disc.scenes, scenes)
    if disc.scenes:
        check_reference(cfg, disc.scenes)
    reference = (reference_scene(disc.scenes, cfg.run.reference_date)
                 if cfg.run.baseline == "fixed" and cfg.run.reference_date and disc.scenes else None)

    def result(status: str, code: ExitCode, outcomes: Sequence[SceneOutcome], plan: _Plan) -> RunResult:
        counts = ledger_counts(ctx.ledger) if ctx.ledger is not None else {}
        return RunResult(status, code, tuple(outcomes), tuple(plan.done), tuple(plan.baseline_only),
                         disc.problems, runs_dir, cfg.outputs.ledger, counts, time.monotonic() - t0)

    if dry_run:
        holder = RunLock.read(_lock_path(cfg))
        if holder is not None:
            log.warning("a run holds the lock now (%s): this listing may be out of date", holder.describe())
        plan = _plan(ctx, disc.scenes, wanted, completed_runs(runs_dir), reference)
        listed: list[SceneOutcome] = []
        for s, b, why in plan.pairs:
            refs = scene_references(ctx, s, plan.unusable)
            listed.append(SceneOutcome(s, b, "pending", message=f"{why}; {_references_text(refs, s)}",
                                       references=reference_counts(refs, s)))
        return result("dry_run", ExitCode.OK if listed else ExitCode.NOTHING_NEW, listed, plan)

    for folder in (cfg.outputs.ledger.parent, runs_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the folder ({describe_os_error(exc)}); nothing was "
                              "done and the ledger is unchanged") from exc
    lock = RunLock(_lock_path(cfg), max_age_s=cfg.run.lock_max_age_hours * 3600,
                   command=f"ecopatch run {cfg.path or ''}".strip())
    lock.acquire()
    ctx.lock = lock
    try:
        clean_leftovers(runs_dir)
        plan = _plan(ctx, disc.scenes, wanted, completed_runs(runs_dir), reference)
        if not plan.pairs:
            log.info("nothing new: %d scene(s), %d already processed", len(disc.scenes), len(plan.done))
            return result("nothing_new", ExitCode.BAD_INPUT if disc.problems else ExitCode.NOTHING_NEW, [], plan)
        read_layers(ctx)
        open_ledger(ctx)
        outcomes: list[SceneOutcome] = []
        unusable = set(plan.unusable)
        for s, _, _ in plan.pairs:
            # again: an earlier scene of this run may have been skipped or failed
            base, why = _baseline(ctx, s, disc.scenes, reference, unusable)
            if base is None:
                plan.baseline_only.append((s, why))
                continue
            heartbeat(ctx)
            out = process_scene(ctx, s, base, why, unusable)
            outcomes.append(out)
            if out.status != "ok":
                unusable.add(s.scene_id)
        if not outcomes:
            return result("nothing_new", ExitCode.BAD_INPUT if disc.problems else ExitCode.NOTHING_NEW, [], plan)
        status, code = _overall(outcomes, bool(disc.problems))
        return result(status, code, outcomes, plan)
    finally:
        lock.release()


@dataclass
class _Plan:
    """Scenes to process with their baselines, scenes already done, scenes without a baseline."""

    pairs: list[tuple[SceneRef, SceneRef, str]]
    done: list[SceneRef]
    baseline_only: list[tuple[SceneRef, str]]
    unusable: set[str]


def _plan(ctx: RunContext, scenes: Sequence[SceneRef], wanted: Sequence[SceneRef],
          records: Mapping[str, RunRecord], reference: SceneRef | None) -> _Plan:
    unusable = {sid for sid, r in records.items() if r.status != "ok"}
    plan = _Plan([], [], [], unusable)
    for s in wanted:
        if s.scene_id in records and not ctx.force:
            plan.done.append(s)
            continue
        if ctx.config.run.baseline == "best" and any(e.date < s.date for e in scenes):
            read_layers(ctx)
        base, why = _baseline(ctx, s, scenes, reference, unusable)
        if base is None:
            plan.baseline_only.append((s, why))
        else:
            plan.pairs.append((s, base, why))
    return plan


def _lock_path(cfg: RunConfig) -> Path:
    return cfg.outputs.ledger.with_name(cfg.outputs.ledger.name + ".lock")


def _select(scenes: Sequence[SceneRef], wanted: Sequence[str]) -> tuple[SceneRef, ...]:
    if not wanted:
        return tuple(scenes)
    out = [s for s in scenes if any(w == s.date.isoformat() or fnmatch.fnmatchcase(s.scene_id, w) for w in wanted)]
    if not out:
        ids = ", ".join(s.label for s in scenes[:10]) or "none"
        raise ConfigError(f"--scene {' '.join(wanted)}: matches no scene in the imagery (scenes: {ids})")
    return tuple(out)


def _baseline(ctx: RunContext, scene: SceneRef, scenes: Sequence[SceneRef], reference: SceneRef | None,
              unusable: Collection[str]) -> tuple[SceneRef | None, str]:
    r = ctx.config.run
    return choose_baseline(scene, scenes, rule=r.baseline, reference=reference, unusable=unusable,
                           clear_fraction=lambda s: clear_share(ctx, s), max_age_days=r.max_baseline_age_days,
                           window_days=r.season_window_days)


def _references_text(refs: Sequence[MineReference], scene: SceneRef) -> str:
    counts = reference_counts(refs, scene)
    waiting = sum(1 for r in refs if r.scene is None or r.scene.date >= scene.date)
    parts = [f"{n} mine(s) against {sc.label}" for sc, n in counts]
    if waiting:
        parts.append(f"{waiting} mine(s) without a reference before this scene")
    return "restoration: " + ("; ".join(parts) if parts else "no mine")


def _overall(outcomes: Sequence[SceneOutcome], bad_candidates: bool) -> tuple[str, ExitCode]:
    codes = {o.exit_code for o in outcomes if o.status == "failed"}
    if ExitCode.FAILURE in codes:
        return "failed", ExitCode.FAILURE
    if ExitCode.BAD_CONFIG in codes:
        return "bad_config", ExitCode.BAD_CONFIG
    if ExitCode.LOCKED in codes:
        return "locked", ExitCode.LOCKED
    if ExitCode.BAD_INPUT in codes or bad_candidates:
        return "bad_input", ExitCode.BAD_INPUT
    return "ok", ExitCode.OK

