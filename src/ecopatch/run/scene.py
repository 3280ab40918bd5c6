"""One scene of a scheduled run: the analyses, the outputs, the ledger transaction, the manifest.

:func:`process_scene` builds the scene's run folder under a temporary name
and moves it into place; the analyses run through
:func:`ecopatch.analyses.joint.run_jobs` (the mines against their references and
the reserves against the baseline, in one read of the imagery).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.errors import (
    EcopatchError,
    OutputError,
    describe_os_error,
)
from ecopatch.run.baseline import MineReference, choose_history, reference_counts
from ecopatch.run.context import (
    RunContext,
    clear_fractions,
    clear_share,
    heartbeat,
    ledger_counts,
    open_ref,
    provenance,
    scene_references,
)
from ecopatch.run.discovery import SceneRef
from ecopatch.run.logs import attach_log, detach_log, warnings_to_log
from ecopatch.run.manifest import (
    COMPLETE_STATUSES,
    FAILED_SUFFIX,
    MANIFEST,
    MANIFEST_VERSION,
    PARTIAL_SUFFIX,
    file_digest,
    fsync_dir,
    install_folder,
    layer_digest,
    package_versions,
    tree_digest,
    utc_now,
    write_json,
)
from ecopatch.run.outcome import ExitCode, SceneOutcome, exit_code_for

if TYPE_CHECKING:
    from ecopatch.outputs.maps import CaseChips, DrawnChips
    from ecopatch.raster.scene import Scene

__all__ = [
    "before_manifest",
    "process_scene",
]

log = logging.getLogger("ecopatch.run")

_LEDGER_UNCHANGED = "the ledger is unchanged; the next run tries this scene again"


_LEDGER_COMMITTED = ("the ledger holds this scene (its records were committed); the next run redoes its outputs "
                     "and adds nothing to the ledger")


def process_scene(ctx: RunContext, scene: SceneRef, baseline: SceneRef, why: str,
                   unusable: Collection[str] = ()) -> SceneOutcome:
    """Build the scene's run folder under a temporary name, then move it into place."""
    name = scene.folder_name
    partial = ctx.runs_dir / f".{name}{PARTIAL_SUFFIX}"
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        handler = attach_log(partial / "run.log")
    except OSError as exc:
        raise OutputError(f"{exc.filename or partial}: cannot create the run folder of scene {scene.label} "
                          f"({describe_os_error(exc)}); {_LEDGER_UNCHANGED}") from exc
    started = utc_now()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    counts: dict[str, Any] = {}
    status, code, message = "ok", ExitCode.OK, ""
    error: dict[str, str] | None = None
    references: dict[str, Any] = {}
    progress: dict[str, Any] = {"stage": "start", "committed": False}
    log.info("scene %s: encroachment baseline %s (rule %r: %s)", scene.label, baseline.label,
             ctx.config.run.baseline, why)
    try:
        try:
            with warnings_to_log():
                status, message = _compute(ctx, scene, baseline, partial, timings, counts, unusable, references,
                                           progress)
        except (KeyboardInterrupt, SystemExit):
            log.error("scene %s: interrupted; %s; the run folder was not completed", scene.label,
                      _LEDGER_COMMITTED if progress["committed"] else _LEDGER_UNCHANGED)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is recorded in the manifest
            status, code = "failed", exit_code_for(exc)
            ledger_state = _LEDGER_COMMITTED if progress["committed"] else _LEDGER_UNCHANGED
            text = str(exc) if str(exc) else type(exc).__name__
            if isinstance(exc, OSError) and not isinstance(exc, EcopatchError):
                # an OS error the writers did not name: say where the scene was and what the OS said
                text = (f"{exc.filename or partial}: {describe_os_error(exc)} (during {progress['stage']} of "
                        f"scene {scene.label})")
            message = f"{text.splitlines()[0]}; {ledger_state}"
            error = {"type": type(exc).__name__, "message": text, "stage": progress["stage"],
                     "ledger": ledger_state}
            if isinstance(exc, (EcopatchError, OSError)):
                log.error("scene %s failed: %s; %s", scene.label, text, ledger_state)
            else:
                log.exception("scene %s failed with an unexpected error; %s", scene.label, ledger_state)
        timings["total"] = round(time.monotonic() - t0, 3)
        log.info("scene %s: %s in %.1f s", scene.label, status, timings["total"])
    except BaseException:
        detach_log(handler)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    detach_log(handler)
    manifest = _manifest(ctx, scene, baseline, why, status, code, message, error, started, timings, counts, partial,
                         references)
    final = ctx.runs_dir / (name if status in COMPLETE_STATUSES else name + FAILED_SUFFIX)
    try:
        write_json(partial / MANIFEST, manifest)
        fsync_dir(partial)
        install_folder(partial, final)
    except OSError as exc:
        state = _LEDGER_COMMITTED if progress["committed"] else _LEDGER_UNCHANGED
        raise OutputError(
            f"{exc.filename or partial / MANIFEST}: cannot complete the run folder of scene {scene.label} "
            f"({describe_os_error(exc)}); {state}; the unfinished folder {partial.name} is removed by the next run"
        ) from exc
    if status in COMPLETE_STATUSES:
        failed = ctx.runs_dir / (name + FAILED_SUFFIX)
        if failed.exists():
            shutil.rmtree(failed, ignore_errors=True)
    log.info("run folder %s", final)
    return SceneOutcome(scene, baseline, status, code, final, counts, message,
                        tuple(references.get("_counts", ())))


def _compute(ctx: RunContext, scene: SceneRef, baseline: SceneRef, out: Path, timings: dict[str, float],
             counts: dict[str, Any], unusable: Collection[str] = (),
             references: dict[str, Any] | None = None, progress: dict[str, Any] | None = None) -> tuple[str, str]:
    """The analyses, the outputs and the ledger transaction of one scene; returns (status, reason).

    Two baselines: the reserves are compared with ``baseline`` (the
    ``[run] baseline`` rule), each mine with its own reference
    (:func:`choose_references`).  Every job is set up, then the imagery is
    read in one windowed pass for all of them (each tile decoded once), then
    each is finished.  The results are written (and the change map, when
    there is no report), then one ledger transaction records the scene,
    writes the field package and the report (with the run's change map,
    drawn with the report's figures), and commits (last, so that a failed
    output leaves the ledger as it was; a scene failing before its change
    map was written still gets one).  ``progress`` records the stage
    reached (``"stage"``) and whether the ledger committed the scene
    (``"committed"``), for the failure message.

    The scene's quick-looks (clear-sky share, change map, report, field
    chips) share one decimated read of each date (:func:`ecopatch.raster.quicklook.shared_reads`).
    """
    from ecopatch.engine.tiling import tune_malloc
    from ecopatch.raster.quicklook import shared_reads

    if ctx.config.run.tune_malloc:
        tune_malloc()
    with shared_reads(build_overviews=ctx.config.run.build_overviews):
        return _compute_scene(ctx, scene, baseline, out, timings, counts, unusable, references, progress)


def _compute_scene(ctx: RunContext, scene: SceneRef, baseline: SceneRef, out: Path, timings: dict[str, float],
                   counts: dict[str, Any], unusable: Collection[str] = (),
                   references: dict[str, Any] | None = None, progress: dict[str, Any] | None = None
                   ) -> tuple[str, str]:
    from ecopatch.analyses.joint import run_jobs
    from ecopatch.vector.layers import write_tables

    cfg = ctx.config
    references = references if references is not None else {}
    progress = progress if progress is not None else {}
    clock = _Clock(timings, progress)
    with clock("open"):
        before, after = open_ref(ctx, baseline), open_ref(ctx, scene)
    with clock("clear_fraction"):
        clear = clear_share(ctx, scene)
        counts["clear_fraction"] = round(clear, 4)
    if clear <= 0:
        return "skipped", "the scene sees none of the mines and reserves clear (outside it, or all cloud)"
    if clear < cfg.run.min_clear_fraction:
        return "skipped", (f"only {clear:.0%} of the mines and reserves are clear "
                           f"(min_clear_fraction = {cfg.run.min_clear_fraction:g})")
    with clock("references"):
        refs = scene_references(ctx, scene, unusable)
    hist_refs = choose_history(baseline, ctx.scenes, max_scenes=cfg.run.history_scenes, unusable=unusable)
    references["_history"] = {"max_scenes": cfg.run.history_scenes,
                              "rule": "the most recent usable scenes dated before the baseline",
                              "scenes": [h.as_dict() for h in hist_refs], "_refs": hist_refs}
    if hist_refs:
        log.info("scene %s: seasonal range from %d earlier scene(s): %s", scene.label, len(hist_refs),
                 ", ".join(h.label for h in hist_refs))
    groups, waiting = _group_references(ctx, refs, scene)
    _record_references(references, refs, ctx, scene, groups, waiting)
    for ref, idx in groups.values():
        log.info("scene %s: %d mine(s) measured against reference %s", scene.label, len(idx), ref.label)
    if waiting:
        log.info("scene %s: %d mine(s) not assessed, no reference before this scene: %s", scene.label,
                 len(waiting), ", ".join(f"{pid} ({why})" for pid, why in list(waiting.items())[:10]))
    notes: list[str] = []
    skipped = {"assess": "mines not assessed", "detect": "reserves not watched"}

    def _skip(job: str, exc: Exception) -> None:
        kind = job.split(":")[0]
        if kind == "assess" and len(groups) > 1:
            ref = groups[job.split(":", 1)[1]][0]
            notes.append(f"{len(groups[ref.scene_id][1])} mine(s) measured against {ref.label} not assessed: {exc}")
        else:
            notes.append(f"{skipped[kind]}: {exc}")
        log.warning("scene %s: %s", scene.label, notes[-1])

    @contextlib.contextmanager
    def _stage(name: str) -> Iterator[None]:
        heartbeat(ctx)
        with clock(name):
            yield

    mines = ctx.mines
    assert mines is not None  # read by scene_references
    if not groups and len(mines):
        notes.append("mines not assessed: no mine has a reference scene before this one")
    # every job set up, their windows read as one job (each tile decoded once), then each finished
    finished = run_jobs(
        after, assessments={sid: (open_ref(ctx, ref), mines.iloc[idx]) for sid, (ref, idx) in groups.items()},
        detection=(before, ctx.reserves), assessment=cfg.assessment.assess_options(),
        detection_options=cfg.detection.detect_options(), exclude=ctx.exclude,
        history=[open_ref(ctx, h) for h in hist_refs] or None, block=cfg.run.block, scheduler=cfg.run.scheduler,
        progress=ctx.progress, failed=_skip, stage=_stage)
    heartbeat(ctx)
    patches = finished.pop("detect", None)
    if patches is not None:  # the minimum mapping units applied, m² ("auto" resolved on the scene's grid)
        det = patches.attrs.get("detection", {})
        references["_detection"] = {k: det[k] for k in ("min_area_m2", "core_min_area_m2") if k in det}
    if patches is not None and hist_refs:
        used = dict(patches.attrs.get("detection", {}).get("history") or {})
        references["_history"] |= {"used": list(used.get("scenes", [])), "left_out": int(used.get("left_out", 0))}
    assessment = None
    if finished:
        with clock("assess"):
            assessment = _mine_table(ctx, finished, refs, scene)
    if assessment is None and patches is None:
        return "skipped", "; ".join(notes)
    heartbeat(ctx)

    # outputs that do not need the ledger first; the ledger commit is last, so that a failed
    # scene (a full disk, an unwritable chip) leaves the ledger exactly as it was
    with clock("write_results"):
        res = out / "results"
        _mkdir(res)
        tables: list[tuple[Any, Path]] = []
        for fmt in cfg.outputs.formats:
            if assessment is not None:
                tables.append((assessment, res / f"mines.{fmt}"))
            if patches is not None:
                tables.append((patches, res / f"patches.{fmt}"))
        if patches is not None and patches.attrs.get("observation"):
            from ecopatch.analyses.encroachment import observation_table

            tables.append((observation_table(patches), res / "observation.csv"))
        write_tables(tables)
    _count_results(counts, assessment, patches)
    if waiting:
        counts["mines_without_reference"] = sorted(waiting)
    shown = patches if patches is not None and len(patches) else None
    # With a report, the report draws the same change map: maps/change_map.png is drawn with its
    # figures, in parallel, and written inside the ledger transaction before the commit; a scene
    # that fails before that (too many new cases, say) still gets it, drawn on the way out.
    map_target = out / "maps" / "change_map.png"
    map_with_report = cfg.outputs.maps and cfg.outputs.report and shown is not None
    if cfg.outputs.maps:
        _mkdir(out / "maps")
    if cfg.outputs.maps and not map_with_report:
        with clock("maps"):
            _write_change_map(before, after, shown, cfg.outputs.lang, map_target)
    heartbeat(ctx)

    run_id = scene.scene_id
    assert ctx.ledger is not None
    suspects = patches
    if patches is not None and not cfg.detection.gain_cases:
        suspects = patches[patches["change_type"] != "vegetation_gain"]
    with clock("sky_tier"):
        touched, untouched = _probable_cases(ctx, suspects)
        shares = _case_clear_shares(after, touched)
        still = _cases_still_shown(ctx, after, untouched)
    # One transaction: the scene's records, then the outputs that show them (the field package
    # of the cases it opened, the report), then COMMIT.  If anything fails, nothing is kept.
    # Other writers (a field-results import) wait up to [run] ledger_timeout_s meanwhile.
    with clock("ledger"), _change_map_on_failure(map_with_report, before, after, shown, cfg.outputs.lang,
                                                 map_target):
        with ctx.ledger.transaction(f"record run {run_id}") as led:
            ares = led.record_assessment(assessment, run_id) if assessment is not None else None
            dres = (led.add_detections(suspects, run_id, max_new_cases=cfg.run.new_case_limit, clear_shares=shares)
                    if suspects is not None else None)
            log.info("ledger: %s; %s", ares or "no mine assessment", dres or "no detection")
            # probable cases this scene did not find again but still shows as they were found after
            # (its baseline already shows them); those add_detections confirmed are left as they are
            persisted = (led.confirm_from_sky(still, run_id, seen_on=after.date or scene.date)
                         if still is not None and len(still) else ())
            heartbeat(ctx)
            # cases this scene opened or reopened, as the ledger recorded them the first time
            dets = led.detections(run_id)
            new_cases = sorted(set(dets.loc[dets["outcome"].isin(["new", "rebound"]), "case_id"]))
            if cfg.outputs.fieldcheck and new_cases:
                with clock("fieldcheck"):
                    chips: CaseChips | DrawnChips | None = None
                    if cfg.outputs.chips:
                        from ecopatch.outputs.maps import case_chips

                        chips = case_chips(before, after, lang=cfg.outputs.lang)
                        if hasattr(chips, "drawn"):  # drawn ahead, several at once: the package writes the PNGs
                            known = led.cases()
                            chips = chips.drawn(known[known["case_id"].isin(new_cases)])
                    from ecopatch.fieldcheck import export_package

                    export_package(led, out / "fieldcheck", cases=new_cases, chips=chips)
            heartbeat(ctx)
            if cfg.outputs.report:
                with clock("report"):
                    from ecopatch.outputs.report import write_report

                    mine_before = {}  # each mine's card shows its own reference, not the reserves' baseline
                    for pid, r in zip(mines["patch_id"].astype(str), refs):
                        if r.scene is not None and r.scene.scene_id in groups:
                            mine_before[pid] = open_ref(ctx, r.scene)
                    write_report(out / "report", assessment=assessment, patches=patches, ledger=led, before=before,
                                 after=after, reserves=ctx.reserves, lang=cfg.outputs.lang, mine_before=mine_before,
                                 history=led.mine_history() if assessment is not None else None,
                                 extra_change_map=(out / "maps" / "change_map.png", 120) if map_with_report else None)
            progress["stage"] = "ledger commit"
        progress["committed"] = True
    # counted once committed: a failed scene's manifest must not show records the ledger does not hold
    counts["ledger"] = {
        "mine_records_added": ares.added if ares else 0, "mine_records_replaced": ares.replaced if ares else 0,
        "mine_records_unchanged": ares.unchanged if ares else 0,
        "new": dres.new if dres else 0, "matched": dres.matched if dres else 0,
        "rebound": dres.rebound if dres else 0, "unchanged": dres.unchanged if dres else 0,
        "sky_confirmed": (dres.sky_confirmed if dres else 0) + len(persisted),
        "sky_confirmed_still_shown": len(persisted),
    }
    counts["fieldcheck_cases"] = len(new_cases)
    heartbeat(ctx)
    before_manifest()
    return "ok", "; ".join(notes)


def _write_change_map(before: Scene, after: Scene, shown: Any, lang: str, target: Path) -> None:
    """``maps/change_map.png``: the change map at 120 dpi."""
    from ecopatch.outputs.maps import change_map

    fig = change_map(before, after, shown, lang=lang)
    try:
        fig.savefig(target, dpi=120)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the change map ({describe_os_error(exc)})") from exc


@contextlib.contextmanager
def _change_map_on_failure(deferred: bool, before: Scene, after: Scene, shown: Any, lang: str,
                           target: Path) -> Iterator[None]:
    """A change map left to the report is drawn after all if the block fails before writing it.

    The failed scene's folder keeps its results and map, to judge the changes by (the
    ``max_new_cases`` guard says so); a failure to draw it is logged, the block's error raised.
    """
    try:
        yield
    except Exception:
        if deferred and not target.exists():
            try:
                _write_change_map(before, after, shown, lang, target)
            except Exception as exc:  # the scene's own error is the one to report
                log.warning("the change map of the failed scene could not be drawn: %s", exc)
        raise


def _probable_cases(ctx: RunContext, suspects: Any) -> tuple[Any, Any]:
    """The ledger's probable cases, split into those this scene's suspect patches touch and the others.

    The first may be confirmed by being found again (:func:`_case_clear_shares`), the others by
    the scene alone (:func:`_cases_still_shown`).  Both None without a ledger.
    """
    import numpy as np
    import shapely

    if ctx.ledger is None:
        return None, None
    cases = ctx.ledger.cases()
    cases = cases[cases["sky_tier"] == "probable"]
    if suspects is None or not len(suspects) or not len(cases):
        return cases.iloc[:0], cases
    found = shapely.make_valid(suspects.geometry.to_crs(cases.crs).to_numpy())
    hit = np.zeros(len(cases), dtype=bool)
    hit[shapely.STRtree(found).query(cases.geometry.to_numpy(), predicate="intersects")[0]] = True
    return cases[hit], cases[~hit]


def _case_clear_shares(after: Scene, touched: Any) -> dict[str, float]:
    """Share (0-1) of each probable case the new suspect patches touch that ``after`` sees clear.

    A case found again confirms from the sky (影像确认) only when the new
    scene saw it clear (:meth:`ecopatch.Ledger.add_detections`); measured on
    a decimated read of the scene's mask (:func:`clear_fractions`).
    ``touched``: those cases (:func:`_probable_cases`).
    """
    from ecopatch.ledger.store import DEFAULT_CONFIRM_CLEAR

    if touched is None or not len(touched):
        return {}
    shares = clear_fractions(after, touched)
    out = {str(cid): float(v) for cid, v in zip(touched["case_id"], shares)}
    log.info("sky tier: %d probable case(s) touched by this scene's patches, %d seen >= %.0f %% clear", len(out),
             sum(v >= DEFAULT_CONFIRM_CLEAR for v in out.values()), 100 * DEFAULT_CONFIRM_CLEAR)
    return out


def _cases_still_shown(ctx: RunContext, after: Scene, untouched: Any) -> Any:
    """Probable cases that this scene's patches do not touch, but that it still shows as found after.

    A run whose baseline already shows a change cannot find it again (``baseline = "previous"``);
    :func:`ecopatch.analyses.sky_tier.persisting` confirms such a case from the scene alone when its cover
    now lies more than halfway from what its latest detection found before to what it found after,
    over at least ``DEFAULT_CONFIRM_CLEAR`` of its area seen clear.  None when there is nothing to
    check.  ``untouched``: the probable cases this scene's patches do not touch
    (:func:`_probable_cases`; those it touches are add_detections' to confirm).
    """
    from ecopatch.analyses.sky_tier import cover_over, persisting
    from ecopatch.ledger.store import DEFAULT_CONFIRM_CLEAR

    if ctx.ledger is None or after.date is None or untouched is None:
        return None
    if "red" not in after.bands or "nir" not in after.bands:
        log.info("sky tier: %s has no red and NIR bands: probable cases are confirmed only by detection",
                 after.source)
        return None
    cases = untouched[untouched["found_on"] < after.date]
    if not len(cases):
        return None
    dets = ctx.ledger.detections()
    keys = ["class_before", "class_after"] + [f"{k}_{w}" for w in ("before", "after")
                                               for k in ("veg", "bare", "built", "water")]
    latest: dict[str, tuple[str, dict]] = {}  # case -> (date_after, attrs) of its latest detection
    for cid, d_after, attrs in zip(dets["case_id"], dets["date_after"], dets["attrs"]):
        if cid is not None and (cid not in latest or str(d_after or "") >= latest[cid][0]):
            latest[cid] = (str(d_after or ""), attrs or {})
    cases = cases.assign(**{k: [latest.get(c, ("", {}))[1].get(k) for c in cases["case_id"]] for k in keys})
    cases = cases[cases[keys[2:]].notna().all(axis=1)]  # detections recorded before ledger schema 3 lack them
    if not len(cases):
        return None
    with warnings_to_log():
        cover = cover_over(after, cases)
    out = persisting(cases, cover, after.date, min_clear_share=DEFAULT_CONFIRM_CLEAR)
    log.info("sky tier: %d probable case(s) not found again checked in the scene itself, %d still show their "
             "new ground", len(cases), len(out))
    return out


def _group_references(ctx: RunContext, refs: Sequence[MineReference], scene: SceneRef
                      ) -> tuple[dict[str, tuple[SceneRef, list[int]]], dict[str, str]]:
    """Mines by reference scene (only references before ``scene``), and the mines waiting for one."""
    assert ctx.mines is not None
    groups: dict[str, tuple[SceneRef, list[int]]] = {}
    waiting: dict[str, str] = {}
    for i, (pid, r) in enumerate(zip(ctx.mines["patch_id"].astype(str), refs)):
        if r.scene is None:
            waiting[pid] = r.why
        elif r.scene.date >= scene.date:
            waiting[pid] = f"its reference {r.scene.label} is not before this scene ({r.why})"
        else:
            groups.setdefault(r.scene.scene_id, (r.scene, []))[1].append(i)
    return dict(sorted(groups.items(), key=lambda kv: (kv[1][0].date, kv[0]))), waiting


def _record_references(out: dict[str, Any], refs: Sequence[MineReference], ctx: RunContext, scene: SceneRef,
                       groups: Mapping[str, tuple[SceneRef, list[int]]], waiting: Mapping[str, str]) -> None:
    """The references of a scene's run, for its manifest (and the outcome's summary)."""
    assert ctx.mines is not None
    ids = list(ctx.mines["patch_id"].astype(str))
    out["scenes"] = [ref.as_dict() | {"mines": len(idx)} for ref, idx in groups.values()]
    out["mines"] = {pid: {"id": r.scene.scene_id if r.scene else None,
                          "date": r.scene.date.isoformat() if r.scene else None, "rule": r.rule, "why": r.why}
                    for pid, r in zip(ids, refs)}
    out["not_assessed"] = dict(waiting)
    out["_scenes"] = {sid: ref for sid, (ref, _) in groups.items()}
    out["_counts"] = reference_counts(refs, scene)


def _mine_table(ctx: RunContext, finished: Mapping[str, Any], refs: Sequence[MineReference],
                scene: SceneRef) -> Any:
    """The mines table of a scene: each reference group's rows in the mines' order, with its reference.

    Statuses and alerts are then seen against each mine's history in the ledger.
    """
    import geopandas as gpd
    import pandas as pd

    from ecopatch.analyses.trajectory import mine_status

    assert ctx.mines is not None and ctx.ledger is not None
    parts = [finished[k] for k in finished]
    crs = parts[0].crs
    table = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry=parts[0].geometry.name, crs=crs)
    order = {pid: i for i, pid in enumerate(ctx.mines["patch_id"].astype(str))}
    table = table.iloc[sorted(range(len(table)), key=lambda i: order[str(table["patch_id"].iloc[i])])]
    table = table.reset_index(drop=True)
    by_pid = dict(zip(ctx.mines["patch_id"].astype(str), refs))
    table["reference_scene"] = [by_pid[str(p)].scene.scene_id for p in table["patch_id"]]
    rule_col = [f"{by_pid[str(p)].rule}: {by_pid[str(p)].why}" for p in table["patch_id"]]
    pos = list(table.columns).index("reference_scene") + 1
    table.insert(pos, "reference_rule", rule_col)
    history = ctx.ledger.mine_history()
    _warn_reference_changes(table, history, scene)
    table = mine_status(table, history, ctx.config.assessment.status_rules())
    by_status = table["status"].value_counts().to_dict()
    log.info("scene %s: mines by status %s; alerts: %s", scene.label, by_status,
             {k: int(table["alerts"].str.contains(k).sum()) for k in ("degradation", "rebound", "behind_plan")})
    return table


def _warn_reference_changes(table: Any, history: Any, scene: SceneRef) -> None:
    """Warn when a mine's reference differs from the one its earlier history rows were measured against."""
    if history is None or not len(history):
        return
    earlier = history[[d is not None and d < scene.date for d in history["date_after"]]]
    if not len(earlier):
        return
    last = earlier.groupby(earlier["patch_id"].astype(str)).tail(1)
    previous = dict(zip(last["patch_id"].astype(str), last["reference_scene"]))
    for pid, ref in zip(table["patch_id"].astype(str), table["reference_scene"]):
        before = previous.get(pid)
        if isinstance(before, str) and before and before != ref:
            log.warning("mine %s: measured against %s from this scene on; its earlier history rows were measured "
                        "against %s (new imagery, or the mines' reference field or [assessment] reference changed). "
                        "Run with --force to measure every date against the new reference.", pid, ref, before)


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir()
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({describe_os_error(exc)})") from exc


def _count_results(counts: dict[str, Any], assessment: Any, patches: Any) -> None:
    if assessment is not None:
        counts["mines"] = len(assessment)
        by_status = assessment["status"].value_counts().sort_index()
        counts["mines_by_status"] = {str(k): int(v) for k, v in by_status.items()}
        counts["damaged_m2"] = round(float(assessment["damaged_m2"].sum()), 1)
        counts["restored_m2"] = round(float(assessment["restored_m2"].sum()), 1)
    if patches is not None:
        counts["patches"] = len(patches)
        counts["patches_by_type"] = {str(k): int(v)
                                     for k, v in patches["change_type"].value_counts().sort_index().items()}
        counts["patch_area_m2"] = round(float(patches["area_m2"].sum()), 1)


class _Clock:
    """``with clock("stage"):`` adds the stage's wall time (s) to ``timings`` and notes the stage reached."""

    def __init__(self, timings: dict[str, float], progress: dict[str, Any] | None = None) -> None:
        self.timings = timings
        self.progress = progress if progress is not None else {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.monotonic()
        self.progress["stage"] = stage
        log.info("%s ...", stage)
        try:
            yield
        finally:
            self.timings[stage] = round(self.timings.get(stage, 0.0) + time.monotonic() - t, 3)


def before_manifest() -> None:
    """Called after a scene's ledger commit and outputs, just before its ``manifest.json``: does nothing.

    A seam, not a hook: the library never changes it.  The CLI tests replace
    it in a child process of their own (``tests/pausing.py``) to hold a run there.
    """


def _manifest(ctx: RunContext, scene: SceneRef, baseline: SceneRef, why: str, status: str, code: ExitCode,
              message: str, error: Mapping[str, str] | None, started: str, timings: Mapping[str, float],
              counts: Mapping[str, Any], folder: Path, references: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from ecopatch import __version__

    cfg = ctx.config

    def safe(make: Callable[[], dict[str, Any]], path: Path) -> dict[str, Any]:
        try:
            return make()
        except OSError as exc:  # a file that vanished or cannot be read: say so, do not fail the record
            return {"path": str(path), "error": f"cannot checksum: {exc}"}

    inputs: dict[str, Any] = {}
    config_path, exclude = cfg.path, cfg.detection.exclude
    if config_path is not None:
        inputs["config"] = safe(functools.partial(file_digest, config_path), config_path)
    inputs["scene"] = scene.as_dict() | safe(lambda: _scene_digest(ctx, scene), scene.path)
    inputs["baseline"] = baseline.as_dict() | safe(lambda: _scene_digest(ctx, baseline), baseline.path)
    # what each scene was read as: product, level, bands, scale/offset, cloud mask, and on what evidence
    inputs["scene"]["provenance"] = provenance(ctx, scene)
    inputs["baseline"]["provenance"] = provenance(ctx, baseline)
    refs = dict(references or {})
    ref_scenes = refs.pop("_scenes", {})
    refs.pop("_counts", None)
    history = dict(refs.pop("_history", {"max_scenes": cfg.run.history_scenes, "scenes": []}))
    detection = dict(refs.pop("_detection", {}))
    for h in history.pop("_refs", ()):  # the scenes that gave each pixel its seasonal range
        inputs[f"history {h.scene_id}"] = h.as_dict() | safe(functools.partial(_scene_digest, ctx, h), h.path)
    for sid, ref in ref_scenes.items():  # each mine's restoration reference, when not the baseline
        if sid != baseline.scene_id:
            inputs[f"reference {sid}"] = ref.as_dict() | safe(functools.partial(_scene_digest, ctx, ref), ref.path)
            inputs[f"reference {sid}"]["provenance"] = provenance(ctx, ref)
    inputs["mines"] = safe(lambda: layer_digest(cfg.inputs.mines), cfg.inputs.mines)
    inputs["reserves"] = safe(lambda: layer_digest(cfg.inputs.reserves), cfg.inputs.reserves)
    if exclude is not None:
        inputs["exclude"] = safe(functools.partial(layer_digest, exclude), exclude)
    return {
        "manifest_version": MANIFEST_VERSION,
        "tool": f"ecopatch {__version__}",
        "status": status,
        "exit_code": int(code),
        "message": message,
        "error": dict(error) if error else None,
        "run_id": scene.scene_id,
        "scene": scene.as_dict(),
        "baseline": baseline.as_dict() | {"rule": cfg.run.baseline, "why": why, "job": "encroachment"},
        "references": refs,
        "history": history,
        "detection": detection,
        "force": ctx.force,
        "started_at": started,
        "finished_at": utc_now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "inputs": inputs,
        "parameters": cfg.to_dict(),
        "versions": package_versions(),
        "counts": dict(counts),
        "ledger": {"path": str(cfg.outputs.ledger), **(ledger_counts(ctx.ledger) if ctx.ledger else {})},
        "timings_s": dict(timings),
        "outputs": [file_digest(p, relative_to=folder) for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.name != MANIFEST],
    }


def _scene_digest(ctx: RunContext, ref: SceneRef) -> dict[str, Any]:
    if ref.scene_id in ctx.digest_cache:
        return ctx.digest_cache[ref.scene_id]
    p = ref.path
    if p.is_dir():
        d = tree_digest([f for f in p.rglob("*") if f.is_file()], p)
    else:
        files = [p]
        sc = ref.scene
        if sc is not None:
            files += [Path(b.path) for _, b in sc.band_refs]
            if sc.mask is not None:
                files.append(Path(sc.mask.path))
        d = tree_digest([f for f in files if f.is_file()], p.parent)
    ctx.digest_cache[ref.scene_id] = d
    return d

