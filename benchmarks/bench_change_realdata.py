"""Change detection on real imagery with default settings, against labels and unsupervised baselines.

What a user gets: every date opened with ``ecopatch.open_scene`` and its
defaults, then ``ecopatch.detect_changes(before, after)`` with no tuning.
Data are read in place from ``../shared/data`` (or ``$ECOPATCH_SHARED_DATA``,
or ``--data``); nothing is copied.  The acceptance of issue 18 is measured
here (its targets are printed next to the figures):

* **OSCD, ten cities** (``oscd_china/beihai`` and the nine of
  ``oscd_cities/``; Sentinel-2 L1C, dense *urban*-change labels
  ``cm/<city>-cm_georef.tif``, 2 = change).  Each ``imgs_N`` folder opened
  as it is (the date from ``dates.txt`` when the reader finds none or
  another).  The ``construction`` + ``bare_soil`` patches are rasterised onto
  the label grid (pixel-centre rule) and scored per city and macro-averaged
  (F1, precision, recall); also the share of the scene flagged as any
  disturbance (every type but ``vegetation_gain``), patch counts, runtime.
* **Baselines**, computed in the same run on the same label-grid pixels
  without the labels (``benchmarks/baselines.py``): z-scored CVA + Otsu;
  PCA-k-means (Celik 2009); IR-MAD (Nielsen 2007) with Otsu on
  sqrt(chi-square) and with the chi-square law at ``--alpha``.  Bands: the
  10 m and 20 m bands (B02-B08, B8A, B11, B12), warped bilinearly onto the
  label grid (Abu Dhabi's second date is on another grid).  IR-MAD's
  behaviour (iterations, convergence, effective sample size of its
  weights, median chi-square against the law's) is printed per scene, with
  a variant using a robust no-change spread (``IR-MAD-r``, not in the
  paper, not counted as a baseline).
* **Reliability of ``confidence``**: patches binned by confidence, per bin
  the number of patches and the share whose labelled pixels are at least
  half labelled change (construction + bare-soil patches on OSCD; all
  patches on Taizhou, judged on the labelled sample pixels they hold).
* **Landsat Taizhou** (Landsat-7 ETM+ uint8 DN, sampled labels): opened as a
  user must, bands named, ``scale=1/255``, ``haze="dos"``; Cohen's kappa of
  any change (every patch type) on the labelled pixels, and the baselines'.
* **Slovenia** (eo-learn S2 L1C, 13 bands, 2015-07-11 ... 09-09): flagged
  share for consecutive pairs and first -> last (target <= 1 %), with the
  s2cloudless cloud share of each date for reading the figures; and the S2
  L2A tile of ``s2l2a_landsatc2l2_formats`` compared with itself (target:
  nothing flagged).
* **Maps** (``--maps DIR``): per city a PNG with before and after true
  colour and the patches by type with the labels' outlines over them.

Run from the repository root (about 5-10 minutes on 2 shared cores)::

    python benchmarks/bench_change_realdata.py > bench.md
    python benchmarks/bench_change_realdata.py --only oscd --cities bercy,paris --json rows.json
    python benchmarks/bench_change_realdata.py --only taizhou --no-maps

Markdown goes to stdout, progress to stderr.  Deterministic apart from the
timings.  Results and their reading: ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _realdata as R  # noqa: E402

#: Targets of issue 18's acceptance.
TARGET_MACRO_F1 = 0.35
TARGET_BEATS = 8
TARGET_MAX_DISTURBANCE = 0.10
TARGET_TAIZHOU_KAPPA = 0.90
TARGET_SLOVENIA = 0.01
#: A baseline flagging less than the first or more than the second share of the scene is marked †.
DEGENERATE = (0.001, 0.5)


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{nd}f}"


def _pct(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{100 * x:.{nd}f} %"


def _zero_nan(x: float) -> float:
    return 0.0 if not math.isfinite(x) else x


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=HERE.parent, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" (src/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------
def oscd_summary(cities: list[dict[str, Any]]) -> dict[str, Any]:
    """Macro averages and the acceptance counts over the OSCD cities run."""
    eco = [c["rows"][0] for c in cities]
    by = {c["city"]: {r["method"]: r for r in c["rows"]} for c in cities}
    beats, best = {}, {}
    for c in cities:
        base = [r for r in c["rows"] if r["method"] in R.BASELINES]
        if base:
            b = max(base, key=lambda r: _zero_nan(r["f1"]))
            best[c["city"]] = (b["method"], b["f1"])
            beats[c["city"]] = _zero_nan(c["rows"][0]["f1"]) > _zero_nan(b["f1"])
    macro = {k: sum(_zero_nan(r[k]) for r in eco) / len(eco) for k in ("f1", "precision", "recall")}
    methods = [m for m in (*R.BASELINES, *R.VARIANTS) if all(m in by[c] for c in by)]
    macro_base = {m: {k: sum(_zero_nan(by[c][m][k]) for c in by) / len(by) for k in ("f1", "precision", "recall")}
                  for m in methods}
    dist = {c["city"]: c["ecopatch"]["flagged_disturbance"] for c in cities}
    return {"n_cities": len(cities), "macro": macro, "macro_baselines": macro_base, "best_baseline": best,
            "beats": beats, "n_beats": sum(beats.values()), "flagged_disturbance": dist,
            "max_flagged_disturbance": max(dist.values()) if dist else float("nan"),
            "n_over_10pct": sum(v > TARGET_MAX_DISTURBANCE for v in dist.values())}


def md_oscd(cities: list[dict[str, Any]], summ: dict[str, Any]) -> str:
    """Per-city table with the macro row."""
    base = [m for m in R.BASELINES if m in summ["macro_baselines"]]
    head = ["city", "dates", "labelled change", "ecopatch F1", "P", "R", "c+b patches / all",
            "disturbance flagged", *[f"{m} F1" for m in base], "best baseline", "beats it", "detect s (CPU s)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for c in cities:
        e = c["rows"][0]
        by = {r["method"]: r for r in c["rows"]}
        bb = summ["best_baseline"].get(c["city"])
        lines.append("| " + " | ".join([
            c["city"], f"{c['dates'][0]} → {c['dates'][1]}", _pct(c["label_change_share"], 2),
            _f(e["f1"]), _f(e["precision"]), _f(e["recall"]),
            f"{c['ecopatch']['n_scored_patches']} / {c['ecopatch']['n_patches']}",
            _pct(c["ecopatch"]["flagged_disturbance"]),
            *[_f(by[m]["f1"]) + _dagger(by[m]) if m in by else "—" for m in base],
            f"{bb[0]} {_f(bb[1])}" if bb else "—",
            ("yes" if summ["beats"][c["city"]] else "no") if c["city"] in summ["beats"] else "—",
            f"{c['ecopatch']['seconds_detect']:.1f} ({c['ecopatch']['cpu_seconds_detect']:.1f})",
        ]) + " |")
    m = summ["macro"]
    lines.append("| " + " | ".join([
        f"**macro ({summ['n_cities']})**", "", "", f"**{_f(m['f1'])}**", _f(m["precision"]), _f(m["recall"]), "",
        f"max {_pct(summ['max_flagged_disturbance'])}",
        *[_f(summ["macro_baselines"][b]["f1"]) for b in base], "",
        f"**{summ['n_beats']} / {len(summ['beats'])}**" if summ["beats"] else "—", "",
    ]) + " |")
    return "\n".join(lines)


def _dagger(row: dict[str, Any]) -> str:
    """A mark for a threshold that flags almost nothing or most of the scene."""
    return " †" if not (DEGENERATE[0] <= row["flagged_scene"] <= DEGENERATE[1]) else ""


def md_rows(rows: list[dict[str, Any]]) -> str:
    """Every scored row: method, types, precision, recall, F1, kappa, flagged shares, patches, seconds."""
    head = ["data", "scene", "method", "types", "patches", "flagged (scored px)", "flagged (scene)", "precision",
            "recall", "F1", "IoU", "OA", "kappa", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["dataset"], r["scene"], r["method"], r["types"],
            "" if r.get("n_patches") is None else str(r["n_patches"]), _pct(r["flagged"]),
            _pct(r["flagged_scene"]), _f(r["precision"]), _f(r["recall"]), _f(r["f1"]), _f(r["iou"]),
            _f(r["overall_accuracy"]), _f(r["kappa"]), _f(r.get("seconds"), 1),
        ]) + " |")
    return "\n".join(lines)


def md_irmad(results: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> str:
    """IR-MAD's behaviour per scene, published and robust-spread variants."""
    head = ["scene", "bands", "iterations", "converged", "ESS share", "w > 0.5", "median χ² / law", "ρ min–max",
            "flagged Otsu", "flagged χ²", "F1 Otsu", "F1 χ²", "IR-MAD-r: iterations", "ESS share", "median χ² / law",
            "F1 Otsu", "F1 χ²", "seconds (pub., r)"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, diag, rows in results:
        p = diag.get("published")
        if not p:
            continue
        by = {r["method"]: r for r in rows}
        r = diag.get("robust", {})
        lines.append("| " + " | ".join([
            name, str(p["n_bands"]), str(p["n_iter"]), "yes" if p["converged"] else "**no**", _f(p["ess_share"]),
            _pct(p["w_gt_half"]), _f(p["chi2_median_ratio"], 2), f"{p['rho_min']:.3f}–{p['rho_max']:.4f}",
            _pct(by["IR-MAD Otsu"]["flagged_scene"]), _pct(by["IR-MAD chi2"]["flagged_scene"]),
            _f(by["IR-MAD Otsu"]["f1"]), _f(by["IR-MAD chi2"]["f1"]),
            (f"{r['n_iter']}" + ("" if r["converged"] else " (not converged)")) if r else "—",
            _f(r.get("ess_share")), _f(r.get("chi2_median_ratio"), 2),
            _f(by["IR-MAD-r Otsu"]["f1"]) if "IR-MAD-r Otsu" in by else "—",
            _f(by["IR-MAD-r chi2"]["f1"]) if "IR-MAD-r chi2" in by else "—",
            f"{p['seconds']:.1f}, {r['seconds']:.1f}" if r else f"{p['seconds']:.1f}",
        ]) + " |")
    return "\n".join(lines)


def md_reliability(tables: list[tuple[str, dict[str, Any]]]) -> str:
    """Reliability tables side by side (same bins)."""
    tables = [(n, t) for n, t in tables if t is not None]
    notes = []
    for name, t in tables:
        if t["status"] == "missing":
            notes.append(f"{name}: the patches have no `confidence` column; nothing to bin.")
        elif t["status"] == "constant":
            notes.append(f"{name}: every patch has the same confidence; one bin holds them all.")
        elif t["status"] == "empty":
            notes.append(f"{name}: no patch holds a labelled pixel.")
    use = [(n, t) for n, t in tables if t["rows"]]
    if not use:
        return "\n".join(notes) or "no patches"
    head = ["confidence"]
    for name, _ in use:
        head += [f"{name}: patches", "mean conf.", "labelled change ≥ 50 %"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for k, row0 in enumerate(use[0][1]["rows"]):
        last = k == len(use[0][1]["rows"]) - 1
        cells = [f"[{row0['lo']:.1f}, {row0['hi']:.1f}" + ("]" if last else ")")]
        for _, t in use:
            r = t["rows"][k]
            cells += [str(r["n"]), _f(r["mean_conf"]), _pct(r["hit_rate"]) if r["n"] else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**all**"]
    for _, t in use:
        cells += [str(t["n"]), "", f"{_pct(t['hit_rate'])} (ECE {_f(t['ece'])}, Brier {_f(t['brier'])})"]
    lines.append("| " + " | ".join(cells) + " |")
    for name, t in use:
        extra = []
        if t["n_unlabelled"]:
            extra.append(f"{t['n_unlabelled']} patches hold no labelled pixel and are left out")
        if t["n_nan"]:
            extra.append(f"{t['n_nan']} have a NaN confidence (left out)")
        if t["n_outside"]:
            extra.append(f"{t['n_outside']} have a confidence outside [0, 1] (clipped into the end bins)")
        if extra:
            notes.append(f"{name}: " + "; ".join(extra) + ".")
    return "\n".join(lines) + ("\n\n" + "\n".join(f"* {n}" for n in notes) if notes else "")


def md_taizhou(tz: dict[str, Any]) -> str:
    """Taizhou rows: kappa first (the acceptance's figure)."""
    head = ["method", "types", "kappa", "F1", "precision", "recall", "OA", "flagged (labelled px)", "patches"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in tz["rows"]:
        lines.append("| " + " | ".join([
            r["method"], r["types"], _f(r["kappa"]), _f(r["f1"]), _f(r["precision"]), _f(r["recall"]),
            _f(r["overall_accuracy"]), _pct(r["flagged"]), "" if r.get("n_patches") is None else str(r["n_patches"]),
        ]) + " |")
    e = tz["ecopatch"]
    lines.append("")
    lines.append(f"ecopatch patches by type: {e['types']}; detect {e['seconds_detect']:.1f} s "
                 f"({e['cpu_seconds_detect']:.1f} CPU s); disturbance flagged on {_pct(e['flagged_disturbance'])} "
                 f"of the scene, any type on {_pct(e['flagged_any'])}.")
    return "\n".join(lines)


def md_flags(rows: list[dict[str, Any]]) -> str:
    """Slovenia pairs and the S2 L2A self-comparison."""
    head = ["data", "pair", "cloud before / after (s2cloudless)", "patches", "flagged (any type)",
            "flagged (disturbance)", "patches by type", "seconds"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cl = (f"{_pct(r['cloud_before'], 0)} / {_pct(r['cloud_after'], 0)}" if "cloud_before" in r else "—")
        lines.append("| " + " | ".join([
            r["dataset"], r["scene"], cl, str(r["n_patches"]), _pct(r["flagged_any"], 2),
            _pct(r["flagged_disturbance"], 2), ", ".join(f"{k} {v}" for k, v in r["types"].items()) or "—",
            _f(r["seconds"], 2),
        ]) + " |")
    return "\n".join(lines)


def md_acceptance(summ: dict[str, Any] | None, tz: dict[str, Any] | None, flags: list[dict[str, Any]]) -> str:
    """The acceptance targets next to what was measured."""
    lines = ["| target | measured | met |", "| --- | --- | --- |"]

    def add(target: str, measured: str, ok: bool | None) -> None:
        lines.append(f"| {target} | {measured} | {'—' if ok is None else ('yes' if ok else '**no**')} |")

    if summ:
        n = summ["n_cities"]
        add(f"OSCD macro F1 ≥ {TARGET_MACRO_F1} (construction + bare soil)", f"{_f(summ['macro']['f1'])} over {n}",
            summ["macro"]["f1"] >= TARGET_MACRO_F1 if n == 10 else None)
        if summ["beats"]:
            add(f"above the best baseline in ≥ {TARGET_BEATS} of 10 cities",
                f"{summ['n_beats']} of {len(summ['beats'])}", summ["n_beats"] >= TARGET_BEATS if n == 10 else None)
        add("no city with > 10 % flagged as disturbance",
            f"max {_pct(summ['max_flagged_disturbance'])}; {summ['n_over_10pct']} cities above",
            summ["n_over_10pct"] == 0 if n == 10 else None)
    if tz:
        k = tz["rows"][0]["kappa"]
        add(f"Taizhou kappa ≥ {TARGET_TAIZHOU_KAPPA} (any change)", _f(k), k >= TARGET_TAIZHOU_KAPPA)
    slo = [r for r in flags if r["dataset"] == "Slovenia"]
    if slo:
        worst = max(slo, key=lambda r: r["flagged_disturbance"])
        add("Slovenia summer pairs flag ≤ 1 % (suspect patches: every type but vegetation gain)",
            f"max {_pct(worst['flagged_disturbance'], 2)} ({worst['scene']})",
            worst["flagged_disturbance"] <= TARGET_SLOVENIA)
        worst_any = max(slo, key=lambda r: r["flagged_any"])
        add("  the same, counting vegetation gain too (regrowth after mowing: not a suspect patch)",
            f"max {_pct(worst_any['flagged_any'], 2)} ({worst_any['scene']})", None)
    self_ = [r for r in flags if r["dataset"] == "S2 L2A self"]
    if self_:
        r = self_[0]
        add("S2 L2A tile against itself flags nothing", f"{r['n_patches']} patches, {_pct(r['flagged_any'], 2)}",
            r["n_patches"] == 0)
    return "\n".join(lines)


def _jsonable(x: Any) -> Any:
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="shared data folder (default $ECOPATCH_SHARED_DATA or ../shared/data)")
    ap.add_argument("--only", choices=["oscd", "taizhou", "slovenia"],
                    help="one data set only (slovenia includes the S2 L2A self-comparison)")
    ap.add_argument("--cities", help=f"comma-separated OSCD cities (default all ten: {','.join(R.OSCD_CITIES)})")
    ap.add_argument("--maps", default=str(Path(tempfile.gettempdir()) / "ecopatch-change-maps"),
                    help="folder for the change maps (default %(default)s)")
    ap.add_argument("--no-maps", action="store_true", help="draw no maps")
    ap.add_argument("--no-baselines", action="store_true", help="ecopatch only")
    ap.add_argument("--no-irmad-variant", action="store_true", help="skip IR-MAD with the robust spread")
    ap.add_argument("--json", help="also write every row and table to this JSON file")
    args = ap.parse_args(argv)

    root = R.shared_data_dir(args.data)
    if not root.is_dir():
        print(f"no real data at {root}; set ECOPATCH_SHARED_DATA or pass --data", file=sys.stderr)
        return 2
    cities = list(R.OSCD_CITIES)
    if args.cities:
        cities = [c.strip() for c in args.cities.split(",") if c.strip()]
        bad = sorted(set(cities) - set(R.OSCD_CITIES))
        if bad:
            ap.error(f"--cities: unknown {', '.join(bad)}; choose from {', '.join(R.OSCD_CITIES)}")
    maps = None if args.no_maps else Path(args.maps)
    kw = {"baselines": not args.no_baselines, "variant": not args.no_irmad_variant}

    import ecopatch

    t0 = time.perf_counter()
    load0 = os.getloadavg()
    oscd: list[dict[str, Any]] = []
    tz = None
    flags: list[dict[str, Any]] = []
    if args.only in (None, "oscd"):
        for c in cities:
            _log(f"OSCD {c} ...")
            t = time.perf_counter()
            oscd.append(R.run_oscd_city(root, c, maps_dir=maps, **kw))
            _log(f"  {time.perf_counter() - t:.0f} s")
    if args.only in (None, "taizhou"):
        _log("Taizhou ...")
        tz = R.run_taizhou(root, maps_dir=maps, **kw)
    if args.only in (None, "slovenia"):
        _log("Slovenia and the S2 L2A self-comparison ...")
        flags = R.run_slovenia(root) + [R.run_s2_self(root)]
    total = time.perf_counter() - t0

    out = [f"ecopatch {ecopatch.__version__} at {_git()}; Python {platform.python_version()}, "
           f"{os.cpu_count()} CPUs; {_dt.datetime.now().isoformat(timespec='minutes')}; data {root}; "
           f"{total:.0f} s in all (load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
           ""]
    summ = oscd_summary(oscd) if oscd else None
    out += ["## Acceptance (issue 18), default settings", "", md_acceptance(summ, tz, flags), ""]
    if oscd:
        out += ["## OSCD: construction + bare-soil patches against the urban-change labels", "",
                md_oscd(oscd, summ), "",
                f"Baselines counted for 'best baseline': {', '.join(R.BASELINES)} (IR-MAD chi-square at "
                f"alpha = {R.IRMAD_ALPHA}). † the baseline's threshold flags less than "
                f"{_pct(DEGENERATE[0])} or more than {_pct(DEGENERATE[1], 0)} of the scene (Otsu's histogram "
                f"stretched by a few saturated pixels, or IR-MAD's chi-square law after its weights shrank): "
                f"a degenerate bar, see 'Every row'. 'disturbance flagged': share of the scene covered by "
                f"patches of any type but vegetation_gain. Times: wall-clock of detect_changes (process CPU "
                f"time).", ""]
        if summ["macro_baselines"]:
            out += ["Macro averages of every method (F1 / precision / recall; the last "
                    f"{len(R.VARIANTS)} are variants, not counted: {', '.join(R.VARIANTS)}):", ""]
            out += [f"* {m}: {_f(v['f1'])} / {_f(v['precision'])} / {_f(v['recall'])}"
                    for m, v in summ["macro_baselines"].items()]
            out += [""]
    rel = []
    if oscd:
        rel.append(("OSCD c+b", R.merge_reliability([c["reliability"] for c in oscd])))
    if tz:
        rel.append(("Taizhou all", tz["reliability"]))
    if rel:
        out += ["## Reliability of `confidence`", "",
                "Patches binned by confidence; a patch counts as labelled change when at least half of its "
                "labelled pixels are (OSCD: construction + bare-soil patches, all their pixels; Taizhou: all "
                "patches, the sample pixels they hold). A calibrated confidence has the last column equal to "
                "the mean confidence.", "", md_reliability(rel), ""]
        samples = {c["city"]: c["reliability"]["samples"] for c in oscd if "samples" in c["reliability"]}
        if tz and "samples" in tz["reliability"]:
            samples["taizhou"] = tz["reliability"]["samples"]
        if len(samples) >= 3:
            fit = R.fit_confidence(samples)
            from ecopatch.analyses.encroachment import CONFIDENCE_COEF

            out += ["### Refitting the confidence", "",
                    f"Logistic regression of 'labelled change ≥ 50 %' on the patch's mean change statistic "
                    f"(capped at 30) and log10(pixels), each scene weighted equally, on the patches above: "
                    f"coefficients (intercept, z, log10 px) = ({', '.join(f'{v:.3f}' for v in fit['coef'])}); "
                    f"the library uses {CONFIDENCE_COEF}. Each scene scored by coefficients fitted without it "
                    f"(leave-one-scene-out): ECE {_f(fit['loo']['ece'])}, Brier {_f(fit['loo']['brier'])}.", "",
                    md_reliability([("leave-one-scene-out", fit["loo"])]), ""]
        if len(oscd) > 1:
            out += ["Per city (construction + bare-soil patches): " + "; ".join(
                f"{c['city']} {c['reliability']['n']} patches, mean conf. "
                f"{_f(_mean_conf(c['reliability']))}, labelled change {_pct(c['reliability']['hit_rate'])}"
                for c in oscd), ""]
    if tz:
        out += ["## Landsat Taizhou (labelled samples; opened with bands named, scale=1/255, haze='dos')", "",
                md_taizhou(tz), ""]
    if flags:
        out += ["## No-change checks: Slovenia summer 2015 and an S2 L2A tile against itself", "",
                md_flags(flags), "",
                "Cloud shares are eo-learn's s2cloudless layer (`cloudmask_clm_68dates.tif`), read for this "
                "table only; ecopatch opens the L1C files without a mask.", ""]
    if oscd or tz:
        irm = [(c["city"], c["irmad"], c["rows"]) for c in oscd]
        if tz:
            irm.append(("taizhou", tz["irmad"], tz["rows"]))
        if any(d for _, d, _ in irm):
            out += ["## IR-MAD behaviour per scene", "",
                    "Published weighting (weights = P(χ² > Z), σ² = weighted variance = 2(1 − ρ)) and IR-MAD-r "
                    "(robust spread in the reweighting; not in the paper, not counted as a baseline). ESS share: "
                    "effective sample size of the final weights over the pixel count (near 0 = the weights "
                    "collapsed onto a few pixels). Median χ² / law: about 1 when the unchanged majority follows "
                    "the chi-square law. Ridge 1e-3 of the mean variance; at most 30 iterations, converged when no "
                    "canonical correlation moves by 1e-4.", "", md_irmad(irm), ""]
        rows = [r for c in oscd for r in c["rows"]] + (tz["rows"] if tz else [])
        out += ["## Every row", "", md_rows(rows), ""]
    notes = [n for c in oscd for n in c["notes"]] + (tz["notes"] if tz else [])
    scenes = [(c["city"], c["ecopatch"]["warnings"]) for c in oscd] + \
        ([("taizhou", tz["ecopatch"]["warnings"])] if tz else []) + [(r["scene"], r["warnings"]) for r in flags]
    count: dict[str, int] = {}
    other: list[str] = []
    for name, ws in scenes:
        for w in ws:
            cat, msg = w.split(": ", 1) if ": " in w else (w, "")
            count[cat] = count.get(cat, 0) + 1
            if cat != "MissingMaskWarning":
                other.append(f"{name}: {cat}: {msg[:240]}{'…' if len(msg) > 240 else ''}")
    out += ["## Notes", ""]
    out += [f"* {n}" for n in notes]
    if count:
        out += ["* Warnings while opening and detecting (count over scenes): "
                + ", ".join(f"{k} × {v}" for k, v in sorted(count.items()))
                + ". MissingMaskWarning: every L1C / DN input has no cloud mask."]
        out += [f"  * {o}" for o in other]
    maps_written = [c["map"] for c in oscd if c["map"]] + ([tz["map"]] if tz and tz["map"] else [])
    if maps_written:
        out += [f"* Maps: {len(maps_written)} PNG in {maps}"]
    print("\n".join(out))
    if args.json:
        payload = {"meta": {"ecopatch": ecopatch.__version__, "commit": _git(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "seconds": total, "data": str(root),
                            "when": _dt.datetime.now().isoformat(timespec="seconds")},
                   "rows": [r for c in oscd for r in c["rows"]] + (tz["rows"] if tz else []) + flags,
                   "oscd": [{k: v for k, v in c.items() if k != "patches"} for c in oscd],
                   "oscd_summary": summ,
                   "taizhou": {k: v for k, v in tz.items() if k != "patches"} if tz else None,
                   "no_change": flags,
                   "reliability": dict(rel)}
        Path(args.json).write_text(json.dumps(_jsonable(payload), indent=1, ensure_ascii=False))
    return 0


def _mean_conf(t: dict[str, Any]) -> float:
    rows = [r for r in t["rows"] if r["n"]]
    n = sum(r["n"] for r in rows)
    return sum(r["mean_conf"] * r["n"] for r in rows) / n if n else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
