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
   (:func:`ecopatch.trajectory.mine_status`), write the results and the
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
    decimated read (:func:`ecopatch.io.raster.read_decimated`); shares are
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

Test-only hooks
---------------
``ECOPATCH_TEST_PAUSE_IN_RUN`` (seconds) is **for tests only**: when set,
each scene pauses that long after its ledger commit and outputs, just before
``manifest.json`` is written, after touching the file named by
``ECOPATCH_TEST_PAUSE_IN_RUN_SIGNAL`` if set.  The CLI tests use it to hold
the lock and to kill a run at its most complete-looking moment.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.config import RunConfig
from ecopatch.errors import (
    AlignmentError,
    ConfigError,
    CRSError,
    EcopatchError,
    FieldCheckError,
    InputDataError,
    LedgerLockedError,
    NoOverlapError,
    NoValidPixelsError,
    OutputError,
    RasterReadError,
    RunLockedError,
    VectorReadError,
    describe_os_error,
)

if TYPE_CHECKING:
    import geopandas as gpd

    from ecopatch.io.raster import Scene
    from ecopatch.ledger import Ledger
    from ecopatch.tiling import WindowPass

__all__ = [
    "MANIFEST",
    "REFERENCE_FIELDS",
    "ExitCode",
    "LockInfo",
    "MineReference",
    "RunLock",
    "RunResult",
    "SceneOutcome",
    "SceneRef",
    "choose_baseline",
    "choose_history",
    "choose_references",
    "clear_fractions",
    "completed_runs",
    "discover_scenes",
    "exit_code_for",
    "reference_request",
    "run_pipeline",
]

log = logging.getLogger(__name__)

#: Name of the file that marks a run folder complete (written last).
MANIFEST = "manifest.json"
#: Version of the manifest layout.
MANIFEST_VERSION = 1
PAUSE_ENV = "ECOPATCH_TEST_PAUSE_IN_RUN"
PAUSE_SIGNAL_ENV = "ECOPATCH_TEST_PAUSE_IN_RUN_SIGNAL"
_PARTIAL = ".partial"
_FAILED = ".failed"
_SUPERSEDED = ".superseded-"
_COMPLETE_STATUSES = ("ok", "skipped")
_LEDGER_UNCHANGED = "the ledger is unchanged; the next run tries this scene again"
_LEDGER_COMMITTED = ("the ledger holds this scene (its records were committed); the next run redoes its outputs "
                     "and adds nothing to the ledger")
_SCENE_FILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat", ".json")
_CLEAR_PIXELS = 250_000
_VERSIONED = ("numpy", "scipy", "pandas", "shapely", "pyproj", "rasterio", "geopandas", "pyogrio",
              "scikit-image", "matplotlib", "dask", "openpyxl", "click")


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


# ---------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneRef:
    """One scene found in the imagery.

    Attributes
    ----------
    scene_id : str
        Product name (SAFE folder without ``.SAFE``, STAC item ID, file stem);
        also the ledger run ID of its run.
    date : datetime.date
        Acquisition date (UTC).
    path : Path
        What :func:`ecopatch.open_scene` opens.
    sensor : str
        Sensor profile name.
    scene : Scene or None
        The opened scene (not compared, not shown).
    """

    scene_id: str
    date: _dt.date
    path: Path
    sensor: str = ""
    scene: Scene | None = field(default=None, compare=False, repr=False)

    @property
    def folder_name(self) -> str:
        """Name of its run folder: ``<date>_<scene id>``."""
        safe = re.sub(r"[^\w.-]+", "_", self.scene_id)
        return f"{self.date.isoformat()}_{safe}"

    @property
    def label(self) -> str:
        """``<date> <scene id>``, for messages."""
        return f"{self.date.isoformat()} {self.scene_id}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description."""
        return {"id": self.scene_id, "date": self.date.isoformat(), "path": str(self.path), "sensor": self.sensor}


@dataclass(frozen=True)
class Discovery:
    """Scenes found by :func:`discover_scenes`, oldest first, and the candidates that failed."""

    scenes: tuple[SceneRef, ...]
    problems: tuple[tuple[str, str], ...] = ()


def discover_scenes(
    imagery: str | os.PathLike[str],
    patterns: Sequence[str] = ("*",),
    *,
    sensor: str | None = None,
    ignore: Collection[str | os.PathLike[str]] = (),
    open_options: Callable[[Path], Mapping[str, Any]] | None = None,
) -> Discovery:
    """Find the scenes in a folder or a local STAC catalog/collection.

    Parameters
    ----------
    imagery : path-like
        A folder (its entries are candidates) or a STAC catalog, collection
        or item JSON (its items are).
    patterns : sequence of str
        Glob patterns: names of folder entries, or STAC item IDs.  Hidden
        entries, and files that are neither rasters nor JSON, are never scenes.
    sensor : str, optional
        Sensor profile for every scene (default: guessed per scene).
    ignore : collection of path-like
        Paths never taken as candidates (the run folders, when inside the
        imagery folder).
    open_options : callable, optional
        ``open_options(path)`` -> keyword arguments of :func:`ecopatch.open_scene`
        for that scene (the ``[[inputs.products]]`` rules); overrides ``sensor``.

    Returns
    -------
    Discovery
        ``scenes`` sorted by (date, ID); ``problems`` as (path, message) for
        each candidate that could not be opened, had no date, or repeated
        another's ID.

    Raises
    ------
    InputDataError
        ``imagery`` is a JSON file that is not a usable STAC document.
    RasterReadError
        ``imagery`` does not exist.
    """
    from ecopatch.io.raster import close_datasets, open_scene

    root = Path(imagery)
    if not root.exists():
        raise RasterReadError(f"{root}: no such imagery folder or STAC file")
    keep_out = [Path(p).resolve() for p in ignore]

    def ignored(entry: Path) -> bool:  # an output folder, or a folder holding one
        e = entry.resolve()
        return any(e == k or e in k.parents for k in keep_out)
    candidates: list[tuple[Path, str | None]] = []  # (path, id from STAC)
    if root.is_file():
        for item in _stac_items(root, set()):
            iid = _stac_id(item)
            if any(fnmatch.fnmatchcase(iid or item.stem, p) for p in patterns):
                candidates.append((item, iid))
    else:
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".") or ignored(entry):
                continue
            if not any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
                continue
            if entry.is_file():
                if entry.suffix.lower() not in _SCENE_FILE_SUFFIXES:
                    log.debug("not a scene (file type): %s", entry)
                    continue
                if entry.suffix.lower() == ".json":
                    try:
                        items = _stac_items(entry, set())
                    except InputDataError as exc:
                        log.debug("not a scene: %s (%s)", entry, exc)
                        continue
                    candidates.extend((p, _stac_id(p)) for p in items)
                    continue
            candidates.append((entry, None))
    scenes: dict[str, SceneRef] = {}
    problems: list[tuple[str, str]] = []
    seen_paths: set[Path] = set()
    for path, iid in candidates:
        if path.resolve() in seen_paths:
            continue
        seen_paths.add(path.resolve())
        try:
            with _warnings_to_log():
                sc = open_scene(path, **(open_options(path) if open_options else {"sensor": sensor}))
        except (EcopatchError, OSError, ValueError) as exc:
            problems.append((str(path), f"cannot be opened as a scene: {exc}"))
            continue
        if sc.date is None:
            problems.append((str(path), "has no acquisition date in its metadata or name; put YYYYMMDD in its "
                                        "name or set the date in its metadata"))
            continue
        sid = iid or _scene_id(path)
        if sid in scenes:
            problems.append((str(path), f"repeats scene ID {sid!r} of {scenes[sid].path}; ignored"))
            continue
        scenes[sid] = SceneRef(sid, sc.date, path, sc.sensor.name, sc)
    close_datasets()  # discovery opened every band file: do not keep hundreds of handles open
    for p, msg in problems:
        log.warning("imagery: %s %s", p, msg)
    ordered = tuple(sorted(scenes.values(), key=lambda s: (s.date, s.scene_id)))
    log.info("imagery %s: %d scene(s)%s", root, len(ordered),
             f", {len(problems)} unusable candidate(s)" if problems else "")
    return Discovery(ordered, tuple(problems))


def _scene_id(path: Path) -> str:
    name = path.name
    if path.is_dir():
        return name[:-5] if name.upper().endswith(".SAFE") else name
    return path.stem


def _stac_id(path: Path) -> str | None:
    try:
        v = json.loads(path.read_text(encoding="utf-8")).get("id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(v) if v else None


def _stac_items(path: Path, seen: set[Path]) -> list[Path]:
    """Item JSON files reachable from a STAC catalog/collection/item (local links only)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{path}: cannot read as JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputDataError(f"{path}: not a STAC document (not a JSON object)")
    kind = doc.get("type")
    if kind == "Feature":
        return [path]
    if kind == "FeatureCollection":
        raise InputDataError(
            f"{path}: a STAC ItemCollection; save its items as files with a catalog.json linking them "
            "(e.g. with pystac), and point [inputs] imagery to the catalog"
        )
    if kind not in ("Catalog", "Collection"):
        raise InputDataError(f"{path}: not a STAC catalog, collection or item (type={kind!r})")
    out: list[Path] = []
    for link in doc.get("links", []) or []:
        rel, href = link.get("rel"), str(link.get("href", ""))
        if rel not in ("item", "child") or not href:
            continue
        if href.startswith(("http://", "https://", "s3://", "gs://")):
            log.warning("STAC %s: remote link %s ignored (only local catalogs are read)", path, href)
            continue
        href = href.removeprefix("file://")
        target = Path(href) if os.path.isabs(href) else (path.parent / href)
        target = target.resolve()
        if target in seen:
            continue
        seen.add(target)
        if not target.exists():
            log.warning("STAC %s: linked %s does not exist", path, target)
            continue
        if rel == "item":
            out.append(target)
        else:
            out.extend(_stac_items(target, seen))
    return out


# ---------------------------------------------------------------------------
# Recorded runs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """A complete run folder: its scene, status and manifest."""

    scene_id: str
    status: str
    folder: Path
    manifest: Mapping[str, Any]


def completed_runs(runs_dir: str | os.PathLike[str]) -> dict[str, RunRecord]:
    """Complete run folders in ``runs_dir``, by scene ID.

    A folder counts when its name is not hidden and does not end in
    ``.failed``, and its ``manifest.json`` reads as a manifest with status
    ``ok`` or ``skipped``.  ``.partial`` folders never count.

    Parameters
    ----------
    runs_dir : path-like
        ``[outputs] dir``.

    Returns
    -------
    dict of str to RunRecord
    """
    out: dict[str, RunRecord] = {}
    root = Path(runs_dir)
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or d.name.endswith(_FAILED) or ".orphan-" in d.name:
            continue
        try:
            m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(m, dict) or m.get("manifest_version") != MANIFEST_VERSION:
            continue
        sid = (m.get("scene") or {}).get("id")
        if sid and m.get("status") in _COMPLETE_STATUSES:
            out[str(sid)] = RunRecord(str(sid), str(m["status"]), d, m)
    return out


# ---------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------
def choose_baseline(
    scene: SceneRef,
    scenes: Sequence[SceneRef],
    *,
    rule: str = "season",
    reference: SceneRef | None = None,
    unusable: Collection[str] = (),
    clear_fraction: Callable[[SceneRef], float] | None = None,
    max_age_days: int = 0,
    window_days: int = 45,
) -> tuple[SceneRef | None, str]:
    """Choose the encroachment baseline ("before" scene) of ``scene`` (the module docstring gives the rule).

    Parameters
    ----------
    scene : SceneRef
        The new scene.
    scenes : sequence of SceneRef
        Every scene found.
    rule : {"season", "previous", "best", "fixed"}
    reference : SceneRef, optional
        The fixed baseline (``rule="fixed"``), see :func:`reference_scene`.
    unusable : collection of str
        IDs of scenes that cannot serve (their own run was skipped or failed).
    clear_fraction : callable, optional
        ``clear_fraction(scene_ref) -> float`` in [0, 1] over the area of
        interest; needed by ``"best"``.
    max_age_days : int
        ``"best"``: ignore scenes more than this many days older (0: no limit).
    window_days : int
        ``"season"``: how far apart in the calendar (days, across years) an
        earlier year's scene may be.

    Returns
    -------
    (SceneRef or None, str)
        The baseline (None when there is none) and why, in words.

    Examples
    --------
    >>> import datetime as dt
    >>> from pathlib import Path
    >>> a, b, c = (SceneRef(n, dt.date(2024, m, 1), Path(n)) for n, m in (("a", 3), ("b", 6), ("c", 9)))
    >>> choose_baseline(c, [a, b, c], rule="previous")[0].scene_id
    'b'
    >>> choose_baseline(c, [a, b, c], rule="previous", unusable={"b"})[0].scene_id
    'a'
    >>> choose_baseline(a, [a, b, c])
    (None, 'no earlier scene')
    >>> d = SceneRef("d", dt.date(2023, 8, 20), Path("d"))
    >>> pick, why = choose_baseline(c, [d, a, b, c])  # "season": last year's scene of the same time of year
    >>> pick.scene_id, why.split(":")[0]
    ('d', 'same season')
    """
    if rule == "fixed":
        if reference is None:
            raise ConfigError('baseline "fixed" needs the reference scene ([run] reference_date)')
        if scene.date <= reference.date:
            return None, f"not after the reference scene {reference.label}"
        return reference, f"fixed reference scene (reference_date {reference.date})"
    earlier = [s for s in scenes if s.date < scene.date]
    if not earlier:
        return None, "no earlier scene"
    usable = [s for s in earlier if s.scene_id not in unusable]
    if not usable:
        return None, "every earlier scene was skipped or failed"
    if rule == "previous":
        pick = max(usable, key=lambda s: (s.date, s.scene_id))
        return pick, "most recent usable earlier scene"
    if rule == "season":
        return _same_season(scene, usable, window_days)
    if rule == "best":
        if clear_fraction is None:
            raise ConfigError('baseline "best" needs a clear_fraction function')
        if max_age_days:
            usable = [s for s in usable if (scene.date - s.date).days <= max_age_days]
            if not usable:
                return None, f"no usable earlier scene within {max_age_days} days"
        scored = [(round(clear_fraction(s), 2), s.date, s.scene_id, s) for s in usable]
        scored = [t for t in scored if t[0] > 0]
        if not scored:
            return None, "no earlier scene sees the mines and reserves clear of cloud"
        best = max(scored, key=lambda t: t[:3])
        return best[3], f"clearest earlier scene ({best[0]:.0%} of the mines and reserves clear)"
    raise ConfigError(f"baseline rule {rule!r}; use 'previous', 'best' or 'fixed'")


def reference_scene(scenes: Sequence[SceneRef], date: _dt.date) -> SceneRef:
    """The fixed baseline: the scene dated ``date`` (first by ID), else the latest before it.

    Raises
    ------
    ConfigError
        No scene is dated on or before ``date``.
    """
    on = sorted((s for s in scenes if s.date == date), key=lambda s: s.scene_id)
    if on:
        return on[0]
    before = [s for s in scenes if s.date < date]
    if not before:
        dates = ", ".join(sorted({s.date.isoformat() for s in scenes})[:10]) or "none"
        raise ConfigError(
            f"[run] reference_date = {date}: no scene dated on or before it in the imagery (scene dates: {dates}); "
            "set reference_date to one of them"
        )
    pick = max(before, key=lambda s: (s.date, s.scene_id))
    log.warning("no scene dated %s: using the most recent one before it, %s, as the fixed baseline", date,
                pick.label)
    return pick


def season_gap_days(a: _dt.date, b: _dt.date) -> int:
    """Days between two dates' places in the calendar, whatever their years (0-183).

    Examples
    --------
    >>> import datetime as dt
    >>> season_gap_days(dt.date(2021, 9, 18), dt.date(2024, 9, 12)), season_gap_days(dt.date(2023, 12, 20),
    ...                                                                              dt.date(2024, 1, 10))
    (6, 21)
    """
    def shifted(d: _dt.date, year: int) -> _dt.date:
        return d.replace(year=year, day=28) if (d.month, d.day) == (2, 29) else d.replace(year=year)

    return min(abs((shifted(a, y) - b).days) for y in (b.year - 1, b.year, b.year + 1))


def _same_season(scene: SceneRef, usable: Sequence[SceneRef], window_days: int) -> tuple[SceneRef, str]:
    """The ``"season"`` rule: the earlier-year scene nearest in the calendar, else the previous scene."""
    older = [s for s in usable if s.date.year < scene.date.year]
    gaps = [(season_gap_days(s.date, scene.date), -s.date.toordinal(), s.scene_id, s) for s in older]
    inside = [g for g in gaps if g[0] <= window_days]
    if inside:
        # the most recent earlier year with a scene in the window, then the nearest in the calendar there:
        # the window already matches the season, and a more recent year has less change piled up
        year = max(t[3].date.year for t in inside)
        gap, _, _, pick = min((t for t in inside if t[3].date.year == year), key=lambda t: t[:3])
        return pick, (f"same season: {pick.date} is {gap} day(s) from {scene.date} in the calendar (window "
                      f"±{window_days} d; {len(inside)} earlier-year scene(s) in it: the nearest of the most "
                      "recent year taken)")
    prev = max(usable, key=lambda s: (s.date, s.scene_id))
    if gaps:
        gap, _, _, near = min(gaps, key=lambda t: t[:3])
        seen = f"the nearest, {near.date}, is {gap} days away in the calendar"
    else:
        seen = "there is no scene of an earlier year"
    return prev, (f"previous scene: no earlier-year scene within ±{window_days} days of {scene.date:%m-%d} ({seen}); "
                  "most recent usable earlier scene")


def choose_history(
    baseline: SceneRef,
    scenes: Sequence[SceneRef],
    *,
    max_scenes: int = 4,
    unusable: Collection[str] = (),
) -> tuple[SceneRef, ...]:
    """The earlier scenes that give each pixel its own seasonal range (``history=`` of the detection).

    Parameters
    ----------
    baseline : SceneRef
        The encroachment baseline of the new scene (:func:`choose_baseline`).
    scenes : sequence of SceneRef
        Every scene found.
    max_scenes : int
        At most this many (``[run] history_scenes``); 0: none.
    unusable : collection of str
        IDs of scenes whose own run was skipped or failed (not taken).

    Returns
    -------
    tuple of SceneRef
        The most recent ``max_scenes`` usable scenes dated strictly before
        the baseline, oldest first.

    Notes
    -----
    Only scenes before the baseline serve: the range describes the ground
    as it was up to the baseline, its seasons and crop rotation.  A scene
    between the baseline and the new scene may already show the
    encroachment the new scene is compared for, and would hide it.

    Examples
    --------
    >>> import datetime as dt
    >>> from pathlib import Path
    >>> s = [SceneRef(n, dt.date(2023, m, 1), Path(n)) for n, m in (("a", 3), ("b", 6), ("c", 9), ("d", 12))]
    >>> [h.scene_id for h in choose_history(s[2], s, max_scenes=4)]
    ['a', 'b']
    >>> [h.scene_id for h in choose_history(s[3], s, max_scenes=2, unusable={"b"})]
    ['a', 'c']
    """
    if max_scenes <= 0:
        return ()
    earlier = [s for s in scenes if s.date < baseline.date and s.scene_id not in unusable
               and s.scene_id != baseline.scene_id]
    recent = sorted(earlier, key=lambda s: (s.date, s.scene_id), reverse=True)[:max_scenes]
    return tuple(sorted(recent, key=lambda s: (s.date, s.scene_id)))


# ---------------------------------------------------------------------------
# Restoration references (one per mine)
# ---------------------------------------------------------------------------
#: Fields searched (in order) for a mine's own reference with ``[assessment] reference_field = "auto"``:
#: a date or scene ID (修复前影像日期 ...) or a year (治理开始年份 ...).
REFERENCE_FIELDS: tuple[str, ...] = (
    "修复前影像日期", "修复前影像", "基准影像日期", "基准影像", "参考影像日期", "治理开始年份", "修复开始年份",
    "治理开始时间", "reference_date", "reference_scene", "reference_year", "restoration_start_year",
)


@dataclass(frozen=True)
class MineReference:
    """The reference of one mine: the scene its restoration is measured against.

    Attributes
    ----------
    scene : SceneRef or None
        None when no scene can serve.
    rule : str
        Where the request came from, e.g. ``"field 修复前影像日期 = 2021-09-18"``,
        ``"config reference = earliest"``.
    why : str
        Why this scene, in words.
    """

    scene: SceneRef | None
    rule: str
    why: str


def reference_request(value: Any) -> tuple[str, Any] | None:
    """What a reference value asks for: ``("earliest", None)``, ``("date", d)``, ``("year", y)`` or ``("scene", id)``.

    Dates may be dates or strings (``2021-09-18``, ``2021/9/18``, ``2021年9月18日``);
    a whole number 1900-2200 (or ``"2022年"``) is a year (restoration began
    that year); other text is a scene ID.  Empty values give None (use the
    default).

    Examples
    --------
    >>> reference_request("2021-09-18"), reference_request(2022.0), reference_request("2022年")
    (('date', datetime.date(2021, 9, 18)), ('year', 2022), ('year', 2022))
    >>> reference_request("S2A_MSIL2A_20210918T023551"), reference_request(""), reference_request("earliest")
    (('scene', 'S2A_MSIL2A_20210918T023551'), None, ('earliest', None))
    """
    import math

    from ecopatch.fieldcheck import parse_date

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, _dt.date):  # also datetime and pandas.Timestamp (NaT: no value)
        try:
            return ("date", parse_date(value))
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and 1900 <= value <= 2200:
            return ("year", int(value))
        return ("scene", str(value))
    text = str(value).strip()
    if not text:
        return None
    if text.lower() == "earliest":
        return ("earliest", None)
    y = text.removesuffix("年")
    if y.isdigit() and len(y) == 4 and 1900 <= int(y) <= 2200:
        return ("year", int(y))
    try:
        return ("date", parse_date(text))
    except ValueError:
        return ("scene", text)


def choose_references(
    requests: Sequence[tuple[str, Any] | None],
    scenes: Sequence[SceneRef],
    *,
    rules: Sequence[str] | None = None,
    default: tuple[str, Any] = ("earliest", None),
    default_rule: str = "config reference = earliest",
    unusable: Collection[str] = (),
    clear: Callable[[SceneRef], Sequence[float]] | None = None,
    min_clear: float = 0.70,
) -> list[MineReference]:
    """The reference scene of each mine (一矿一策: measured from the state before restoration began).

    Parameters
    ----------
    requests : sequence of (kind, value) or None
        Per mine, from :func:`reference_request` of its own field; None:
        ``default``.
    scenes : sequence of SceneRef
        Every scene found.
    rules : sequence of str, optional
        Per mine, where its request came from (e.g. ``"field 治理开始年份 = 2022"``).
    default : (kind, value)
        The configuration's reference (``[assessment] reference``).
    default_rule : str
        Where ``default`` came from, for the table.
    unusable : collection of str
        IDs of scenes whose own run was skipped or failed: never chosen by
        the ``"earliest"`` and year rules.
    clear : callable, optional
        ``clear(scene) -> per-mine shares (0-1)`` of each mine seen clear in
        ``scene`` (:func:`clear_fractions`); the earliest and year rules then
        pass over scenes that see a mine less than ``min_clear`` clear.
    min_clear : float
        See ``clear`` (the assessment's ``min_valid_fraction``).

    Returns
    -------
    list of MineReference
        One per request, in order.

    Notes
    -----
    - ``("scene", id)``: that scene.
    - ``("date", d)``: the scene dated ``d`` (first by ID), else the latest
      before ``d``.
    - ``("year", y)``: the latest usable scene dated before 1 January of
      ``y`` (restoration began in ``y``) that sees the mine clear.
    - ``("earliest", None)``: the earliest usable scene that sees the mine
      clear.

    When no scene sees a mine clear enough, the clearest one is taken
    (earliest on a tie; for a year, the latest).  A request no scene can
    meet (a scene ID not in the imagery, a date or year before every scene)
    falls back to ``default``, and ``why`` says so.  The choice depends only
    on the imagery, the mines and the runs that were skipped, so every run
    measures a mine against the same reference.
    """
    by_id = {s.scene_id: s for s in scenes}
    ordered = sorted(scenes, key=lambda s: (s.date, s.scene_id))
    usable = [s for s in ordered if s.scene_id not in unusable]
    cache: dict[str, Sequence[float]] = {}

    def share(s: SceneRef, i: int) -> float:
        if clear is None:
            return 1.0
        if s.scene_id not in cache:
            cache[s.scene_id] = clear(s)
        return float(cache[s.scene_id][i])

    def first_clear(cands: Sequence[SceneRef], i: int, pick: str, scope: str) -> tuple[SceneRef, str]:
        for s in cands:
            v = share(s, i)
            if v >= min_clear:
                return s, (f"{pick} that sees the mine clear ({v:.0%} observed)" if clear else pick)
        best = max(cands, key=lambda s: (round(share(s, i), 2), -cands.index(s)))
        return best, (f"no {scope} sees {min_clear:.0%} of the mine clear: the clearest, {best.date} "
                      f"({share(best, i):.0%} observed)")

    def resolve(req: tuple[str, Any], i: int) -> tuple[SceneRef | None, str]:
        kind, value = req
        if kind == "scene":
            hit = by_id.get(str(value))
            return (hit, f"scene {value}") if hit else (None, f"no scene {value!r} in the imagery")
        if kind == "date":
            on = sorted((s for s in ordered if s.date == value), key=lambda s: s.scene_id)
            if on:
                return on[0], f"the scene of {value}"
            before = [s for s in ordered if s.date < value]
            if before:
                pick = before[-1]
                return pick, f"the latest scene before {value} ({pick.date}; none on that date)"
            return None, f"no scene on or before {value}"
        if kind == "year":
            cands = [s for s in usable if s.date < _dt.date(int(value), 1, 1)][::-1]
            if not cands:
                return None, f"no usable scene before {value}"
            return first_clear(cands, i, f"the latest usable scene before {value}", f"usable scene before {value}")
        if not usable:
            return None, "no usable scene"
        return first_clear(usable, i, "the earliest usable scene", "usable scene")

    out: list[MineReference] = []
    for i, req in enumerate(requests):
        rule = (rules[i] if rules is not None and req is not None else None) or default_rule
        pick, why = resolve(req or default, i)
        if pick is None and req is not None:
            fallback, why2 = resolve(default, i)
            pick, why = fallback, f"{why}; {default_rule}: {why2}"
            rule = f"{rule} (fallback: {default_rule})"
        out.append(MineReference(pick, rule, why))
    return out


# ---------------------------------------------------------------------------
# The run lock
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LockInfo:
    """Who holds a run lock: process ID, host, start time (UTC) and a random token."""

    pid: int
    host: str
    started_at: str
    started_epoch: float
    token: str
    command: str = ""

    def describe(self) -> str:
        """``PID 1234 on host "x", started 2024-09-12T03:00:00Z``."""
        return f"PID {self.pid} on host {self.host!r}, started {self.started_at}"


class RunLock:
    """One scheduled run at a time per ledger: an exclusive lock file beside it.

    Parameters
    ----------
    path : path-like
        The lock file (``<ledger>.lock``).
    max_age_s : float
        A lock taken on another host whose heartbeat (file modification time)
        is older than this is stale.
    command : str
        What holds it, written into the file for people reading it.

    Notes
    -----
    See the module docstring, "Locking".  Use as a context manager, or call
    :meth:`acquire` and :meth:`release` (in ``finally``).
    """

    def __init__(self, path: str | os.PathLike[str], *, max_age_s: float = 24 * 3600.0, command: str = "") -> None:
        self.path = Path(path)
        self.max_age_s = float(max_age_s)
        self.command = command
        self.info: LockInfo | None = None

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, held={self.info is not None})"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @staticmethod
    def read(path: str | os.PathLike[str]) -> LockInfo | None:
        """The holder recorded in a lock file (None if it is missing or unreadable)."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return LockInfo(int(d["pid"]), str(d["host"]), str(d["started_at"]), float(d["started_epoch"]),
                            str(d["token"]), str(d.get("command", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def acquire(self) -> RunLock:
        """Take the lock, recovering a stale one.

        Raises
        ------
        RunLockedError
            Another live run holds it (the message names its PID, host and
            start time).
        OutputError
            The lock file cannot be created (read-only folder).
        """
        from ecopatch.errors import OutputError

        if self.info is not None:
            return self
        for _ in range(5):
            now = time.time()
            info = LockInfo(os.getpid(), socket.gethostname(),
                            _dt.datetime.fromtimestamp(now, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            now, uuid.uuid4().hex, self.command)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._recover_or_refuse()
                continue
            except OSError as exc:
                raise OutputError(f"cannot create the run lock {self.path}: {exc.strerror}; is the ledger's "
                                  "folder writable?") from exc
            try:
                os.write(fd, json.dumps(info.__dict__, ensure_ascii=False).encode("utf-8"))
                os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                raise OutputError(f"cannot write the run lock {self.path}: {exc.strerror}") from exc
            os.close(fd)
            self.info = info
            log.info("run lock %s taken (%s)", self.path, info.describe())
            return self
        raise RunLockedError(f"could not take the run lock {self.path}: other runs keep taking it; try again later")

    def _recover_or_refuse(self) -> None:
        try:
            raw = self.path.read_bytes()
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return  # released meanwhile: try again
        holder = self.read(self.path)
        why = self._stale_reason(holder, mtime)
        if why is None:
            who = holder.describe() if holder else "a run that is just starting"
            age = max(0.0, time.time() - (holder.started_epoch if holder else mtime))
            raise RunLockedError(
                f"another ecopatch run holds the lock {self.path}: {who} ({_duration(age)} ago). Only one run per "
                "ledger at a time: wait for it to finish. If that process is gone (e.g. the machine was "
                "restarted), the lock is recovered automatically; delete the file only if you are sure."
            )
        log.warning("recovering stale run lock %s (%s): %s", self.path,
                    holder.describe() if holder else "unreadable", why)
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another run recovered it first
        if aside.read_bytes() != raw:  # a fresh lock replaced the stale one meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        with contextlib.suppress(OSError):
            aside.unlink()

    def _stale_reason(self, holder: LockInfo | None, mtime: float) -> str | None:
        age = time.time() - mtime
        if holder is None:
            return f"the lock file is unreadable and {_duration(age)} old" if age > 60 else None
        if holder.host == socket.gethostname():
            if not _pid_alive(holder.pid, holder.started_epoch):
                return f"process {holder.pid} is no longer running on this host"
            return None
        if age > self.max_age_s:
            return (f"no heartbeat from host {holder.host!r} for {_duration(age)} "
                    f"(lock_max_age_hours = {self.max_age_s / 3600:g})")
        return None

    def refresh(self) -> None:
        """Heartbeat: touch the lock file (a long run stays visibly alive)."""
        if self.info is None:
            return
        try:
            os.utime(self.path)
        except FileNotFoundError:
            log.warning("run lock %s disappeared while this run held it", self.path)

    def release(self) -> None:
        """Remove the lock file, if it is still ours."""
        if self.info is None:
            return
        holder = self.read(self.path)
        if holder is not None and holder.token == self.info.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            log.info("run lock %s released", self.path)
        else:
            log.warning("run lock %s is no longer ours (%s); left as it is", self.path,
                        holder.describe() if holder else "missing")
        self.info = None


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _pid_alive(pid: int, since_epoch: float) -> bool:
    """Whether ``pid`` runs on this host and is the process that took a lock at ``since_epoch``."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    except OSError:  # pragma: no cover - e.g. Windows
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields_ = stat.read_text().rsplit(")", 1)[1].split()
        if fields_[0] in ("Z", "X"):  # zombie: dead, not yet reaped
            return False
        btime = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        started = btime + int(fields_[19]) / os.sysconf("SC_CLK_TCK")
        if started > since_epoch + 5:  # the PID now belongs to a newer process
            return False
    except (OSError, IndexError, ValueError, StopIteration):
        pass  # no /proc: trust kill(pid, 0)
    return True


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
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
        return tuple(o for o in self.outcomes if o.status in _COMPLETE_STATUSES)

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


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
@dataclass
class _Context:
    """State of one invocation (not shared, not global)."""

    config: RunConfig
    runs_dir: Path
    progress: bool | None
    force: bool
    mines: gpd.GeoDataFrame | None = None
    reserves: gpd.GeoDataFrame | None = None
    exclude: gpd.GeoDataFrame | None = None
    aoi: Any = None  # GeoSeries of mines and reserves, EPSG:4490
    ledger: Ledger | None = None
    lock: RunLock | None = None
    clear_cache: dict[str, float] = field(default_factory=dict)
    digest_cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenes: Sequence[SceneRef] = ()
    mine_clear_cache: dict[str, Any] = field(default_factory=dict)  # scene ID -> per-mine clear shares


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
        From :func:`ecopatch.config.load_config`.
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
    ctx = _Context(cfg, runs_dir, progress, force)
    disc = discover_scenes(cfg.inputs.imagery, cfg.inputs.scene_pattern, sensor=cfg.inputs.sensor,
                           open_options=cfg.inputs.open_options,
                           ignore=(runs_dir, cfg.outputs.ledger))
    ctx.scenes = disc.scenes
    if not disc.scenes:
        log.warning("no scene found in %s (scene_pattern %s): check [inputs] imagery and scene_pattern",
                    cfg.inputs.imagery, list(cfg.inputs.scene_pattern))
    wanted = _select(disc.scenes, scenes)
    if disc.scenes:
        _check_reference(cfg, disc.scenes)
    reference = (reference_scene(disc.scenes, cfg.run.reference_date)
                 if cfg.run.baseline == "fixed" and cfg.run.reference_date and disc.scenes else None)

    def result(status: str, code: ExitCode, outcomes: Sequence[SceneOutcome], plan: _Plan) -> RunResult:
        counts = _ledger_counts(ctx.ledger) if ctx.ledger is not None else {}
        return RunResult(status, code, tuple(outcomes), tuple(plan.done), tuple(plan.baseline_only),
                         disc.problems, runs_dir, cfg.outputs.ledger, counts, time.monotonic() - t0)

    if dry_run:
        holder = RunLock.read(_lock_path(cfg))
        if holder is not None:
            log.warning("a run holds the lock now (%s): this listing may be out of date", holder.describe())
        plan = _plan(ctx, disc.scenes, wanted, completed_runs(runs_dir), reference)
        outcomes = []
        for s, b, why in plan.pairs:
            refs = _scene_references(ctx, s, plan.unusable)
            outcomes.append(SceneOutcome(s, b, "pending", message=f"{why}; {_references_text(refs, s)}",
                                         references=_reference_counts(refs, s)))
        return result("dry_run", ExitCode.OK if outcomes else ExitCode.NOTHING_NEW, outcomes, plan)

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
        _clean_leftovers(runs_dir)
        plan = _plan(ctx, disc.scenes, wanted, completed_runs(runs_dir), reference)
        if not plan.pairs:
            log.info("nothing new: %d scene(s), %d already processed", len(disc.scenes), len(plan.done))
            return result("nothing_new", ExitCode.BAD_INPUT if disc.problems else ExitCode.NOTHING_NEW, [], plan)
        _read_layers(ctx)
        _open_ledger(ctx)
        outcomes: list[SceneOutcome] = []
        unusable = set(plan.unusable)
        for s, _, _ in plan.pairs:
            # again: an earlier scene of this run may have been skipped or failed
            base, why = _baseline(ctx, s, disc.scenes, reference, unusable)
            if base is None:
                plan.baseline_only.append((s, why))
                continue
            _heartbeat(ctx)
            out = _process_scene(ctx, s, base, why, unusable)
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


def _plan(ctx: _Context, scenes: Sequence[SceneRef], wanted: Sequence[SceneRef],
          records: Mapping[str, RunRecord], reference: SceneRef | None) -> _Plan:
    unusable = {sid for sid, r in records.items() if r.status != "ok"}
    plan = _Plan([], [], [], unusable)
    for s in wanted:
        if s.scene_id in records and not ctx.force:
            plan.done.append(s)
            continue
        if ctx.config.run.baseline == "best" and any(e.date < s.date for e in scenes):
            _read_layers(ctx)
        base, why = _baseline(ctx, s, scenes, reference, unusable)
        if base is None:
            plan.baseline_only.append((s, why))
        else:
            plan.pairs.append((s, base, why))
    return plan


def _heartbeat(ctx: _Context) -> None:
    if ctx.lock is not None:
        ctx.lock.refresh()


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


def _baseline(ctx: _Context, scene: SceneRef, scenes: Sequence[SceneRef], reference: SceneRef | None,
              unusable: Collection[str]) -> tuple[SceneRef | None, str]:
    r = ctx.config.run
    return choose_baseline(scene, scenes, rule=r.baseline, reference=reference, unusable=unusable,
                           clear_fraction=lambda s: _clear(ctx, s), max_age_days=r.max_baseline_age_days,
                           window_days=r.season_window_days)


def _reference_field(ctx: _Context) -> str | None:
    """The mines layer's field holding per-mine references (None: the configuration's for all)."""
    name = ctx.config.assessment.reference_field
    assert ctx.mines is not None
    if name is None:
        return None
    if name != "auto":
        if name not in ctx.mines.columns:
            fields_ = [c for c in ctx.mines.columns if c != ctx.mines.geometry.name]
            raise InputDataError(f"{ctx.config.inputs.mines}: no field {name!r} for [assessment] reference_field; "
                                 f"the fields are {fields_}")
        return name
    return next((f for f in REFERENCE_FIELDS if f in ctx.mines.columns), None)


def _scene_references(ctx: _Context, scene: SceneRef | None, unusable: Collection[str]) -> list[MineReference]:
    """Each mine's reference (aligned with ``ctx.mines``), as :func:`choose_references` gives it."""
    _read_layers(ctx)
    assert ctx.mines is not None
    a = ctx.config.assessment
    ref = a.reference
    default = ("earliest", None) if ref == "earliest" else (("date", ref) if isinstance(ref, _dt.date)
                                                           else ("scene", str(ref)))
    default_rule = f"config reference = {ref.isoformat() if isinstance(ref, _dt.date) else ref}"
    fld = _reference_field(ctx)
    requests: list[tuple[str, Any] | None] = [None] * len(ctx.mines)
    rules: list[str] = [default_rule] * len(ctx.mines)
    if fld is not None:
        for i, v in enumerate(ctx.mines[fld]):
            req = requests[i] = reference_request(v)
            if req is not None:
                shown = req[1].isoformat() if req[0] == "date" else req[1]
                rules[i] = f"field {fld} = {shown}"
    _check_reference(ctx.config, ctx.scenes)
    return choose_references(requests, ctx.scenes, rules=rules, default=default, default_rule=default_rule,
                             unusable=unusable, clear=lambda s: _mine_clear(ctx, s),
                             min_clear=a.min_valid_fraction)


def _check_reference(cfg: RunConfig, scenes: Sequence[SceneRef]) -> None:
    """``[assessment] reference`` naming a scene must name one of the imagery."""
    ref = cfg.assessment.reference
    if isinstance(ref, str) and ref != "earliest" and not any(s.scene_id == ref for s in scenes):
        ids = ", ".join(s.scene_id for s in scenes[:5]) or "none"
        raise ConfigError(f"[assessment] reference = {ref!r}: no such scene in the imagery (scenes: {ids}); "
                          'use "earliest", a date (YYYY-MM-DD) or one of the scene IDs')


def _reference_counts(refs: Sequence[MineReference], scene: SceneRef) -> tuple[tuple[SceneRef, int], ...]:
    """(reference scene, number of mines) for the references before ``scene``, most used first."""
    counts: dict[str, list[Any]] = {}
    for r in refs:
        if r.scene is not None and r.scene.date < scene.date:
            counts.setdefault(r.scene.scene_id, [r.scene, 0])[1] += 1
    return tuple((sc, n) for sc, n in sorted(counts.values(), key=lambda t: (-t[1], t[0].date)))


def _references_text(refs: Sequence[MineReference], scene: SceneRef) -> str:
    counts = _reference_counts(refs, scene)
    waiting = sum(1 for r in refs if r.scene is None or r.scene.date >= scene.date)
    parts = [f"{n} mine(s) against {sc.label}" for sc, n in counts]
    if waiting:
        parts.append(f"{waiting} mine(s) without a reference before this scene")
    return "restoration: " + ("; ".join(parts) if parts else "no mine")


def _mine_clear(ctx: _Context, ref: SceneRef) -> Any:
    """Per mine (``ctx.mines`` order), the share seen clear in ``ref`` (decimated read; cached)."""
    if ref.scene_id not in ctx.mine_clear_cache:
        _read_layers(ctx)
        assert ctx.mines is not None
        values = clear_fractions(_open(ctx, ref), ctx.mines)
        ctx.mine_clear_cache[ref.scene_id] = values
        log.info("mines seen clear in %s: %d of %d at >= %.0f %%", ref.label,
                 int((values >= ctx.config.assessment.min_valid_fraction).sum()), len(values),
                 100 * ctx.config.assessment.min_valid_fraction)
    return ctx.mine_clear_cache[ref.scene_id]


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


def _read_layers(ctx: _Context) -> None:
    """Mines, reserves, exclusion layer, and the area of interest for clear fractions."""
    import geopandas as gpd
    import pandas as pd

    from ecopatch.io.vector import read_patches

    if ctx.mines is not None:
        return
    i = ctx.config.inputs
    d = ctx.config.detection
    with _warnings_to_log():
        ctx.mines = read_patches(i.mines, id_field=i.mines_id_field, layer=i.mines_layer, encoding=i.encoding)
        ctx.reserves = read_patches(i.reserves, layer=i.reserves_layer, encoding=i.encoding)
        if d.exclude is not None:
            ctx.exclude = read_patches(d.exclude, layer=d.exclude_layer, encoding=i.encoding)
    ctx.aoi = gpd.GeoSeries(pd.concat([ctx.mines.geometry.to_crs(4490), ctx.reserves.geometry.to_crs(4490)],
                                      ignore_index=True), crs=4490)
    log.info("layers: %d mines (%s), %d reserve zones (%s)", len(ctx.mines), i.mines, len(ctx.reserves), i.reserves)


def _open_ledger(ctx: _Context) -> None:
    from ecopatch.errors import LedgerIntegrityError
    from ecopatch.ledger import Ledger

    o = ctx.config.outputs
    if not o.ledger.exists():
        log.warning("ledger %s does not exist: creating a new, empty ledger", o.ledger)
    ctx.ledger = Ledger(o.ledger, id_prefix=o.id_prefix, timeout_s=ctx.config.run.ledger_timeout_s)
    report = ctx.ledger.check()
    if not report.ok:
        raise LedgerIntegrityError(f"{report}\nthe ledger fails its integrity check; nothing was processed. "
                                   "Restore it from a backup or repair it before the next run.")


def _clear(ctx: _Context, ref: SceneRef) -> float:
    """Share (0-1) of the mines and reserves seen clear in ``ref`` (decimated read; cached)."""
    if ref.scene_id in ctx.clear_cache:
        return ctx.clear_cache[ref.scene_id]
    _read_layers(ctx)
    value = clear_fraction(_open(ctx, ref), ctx.aoi)
    ctx.clear_cache[ref.scene_id] = value
    log.info("clear share of the mines and reserves in %s: %.1f %%", ref.label, 100 * value)
    return value


def clear_fraction(scene: Scene, aoi: gpd.GeoSeries, *, max_pixels: int = _CLEAR_PIXELS) -> float:
    """Share of the area of interest that ``scene`` sees clear (not cloud, not no-data).

    Parameters
    ----------
    scene : Scene
    aoi : geopandas.GeoSeries
        Polygons (any CRS); overlaps count once.
    max_pixels : int
        Pixels of the decimated read.

    Returns
    -------
    float
        In [0, 1]; parts of the area outside the scene count as not seen.
    """
    import numpy as np
    import shapely
    from rasterio.features import geometry_mask

    from ecopatch.io.raster import read_decimated

    geoms = aoi.to_crs(scene.grid.crs)
    union = shapely.union_all(shapely.make_valid(geoms.geometry.to_numpy()))
    if union.is_empty or union.area <= 0:
        return 0.0
    try:
        with _warnings_to_log():
            obs = read_decimated(scene, aoi_bounds=tuple(union.bounds), max_pixels=max_pixels)
    except (NoOverlapError, NoValidPixelsError):
        return 0.0
    inside = geometry_mask([union], out_shape=obs.valid.shape, transform=obs.grid.transform, invert=True)
    a = obs.grid.transform
    clear_area = float(np.count_nonzero(inside & obs.valid)) * abs(a.a * a.e)
    return float(min(1.0, max(0.0, clear_area / union.area)))


def clear_fractions(scene: Scene, polygons: gpd.GeoDataFrame | gpd.GeoSeries, *,
                    max_pixels: int = _CLEAR_PIXELS) -> Any:
    """Per polygon, the share that ``scene`` sees clear (not cloud, not no-data), from one decimated read.

    Parameters
    ----------
    scene : Scene
    polygons : geopandas.GeoDataFrame or GeoSeries
        Mines (any CRS).
    max_pixels : int
        Pixels of the decimated read over the polygons' extent.

    Returns
    -------
    ndarray of float, shape (n,)
        In [0, 1]: the share of the polygon inside the scene times the share
        of its pixels (centres inside; every pixel it touches when it covers
        no centre) that are clear.  0 for a polygon outside the scene.
    """
    import numpy as np
    import shapely

    from ecopatch.geodesy import geometries_in
    from ecopatch.io.raster import read_decimated
    from ecopatch.zonal import outline_pixels

    geoms = shapely.make_valid(geometries_in(polygons, scene.grid.crs, what="mines layer"))
    out = np.zeros(len(geoms))
    ok = ~shapely.is_empty(geoms) & (shapely.area(geoms) > 0)
    if not ok.any():
        return out
    union_bounds = shapely.total_bounds(geoms[ok])
    try:
        with _warnings_to_log():
            obs = read_decimated(scene, aoi_bounds=tuple(union_bounds), max_pixels=max_pixels)
    except (NoOverlapError, NoValidPixelsError):
        return out
    g = obs.grid
    footprint = g.footprint()
    for i in np.flatnonzero(ok):
        got = outline_pixels(g, geoms[i], footprint)
        if got is not None:
            win, m, inside = got
            out[i] = inside * float(np.count_nonzero(m & obs.valid[win.slices])) / m.sum()
    return out


def _open(ctx: _Context, ref: SceneRef) -> Scene:
    from ecopatch.io.raster import open_scene

    if ref.scene is not None:
        return ref.scene
    with _warnings_to_log():
        return open_scene(ref.path, **ctx.config.inputs.open_options(ref.path))


def _provenance(ctx: _Context, ref: SceneRef) -> dict[str, Any]:
    """:meth:`Scene.provenance` of a scene for its manifest; the reason instead when it cannot be opened."""
    try:
        return _open(ctx, ref).provenance()
    except (EcopatchError, OSError, ValueError) as exc:
        return {"error": f"cannot describe the scene: {exc}"}


def _ledger_counts(ledger: Ledger) -> dict[str, int]:
    try:
        return {"cases": len(ledger.cases()), "events": len(ledger.events()),
                "detections": len(ledger.detections()), "mine_records": len(ledger.mine_history())}
    except EcopatchError as exc:  # pragma: no cover - reporting only
        log.warning("cannot count the ledger: %s", exc)
        return {}


# ---------------------------------------------------------------------------
# One scene
# ---------------------------------------------------------------------------
def _process_scene(ctx: _Context, scene: SceneRef, baseline: SceneRef, why: str,
                   unusable: Collection[str] = ()) -> SceneOutcome:
    """Build the scene's run folder under a temporary name, then move it into place."""
    name = scene.folder_name
    partial = ctx.runs_dir / f".{name}{_PARTIAL}"
    try:
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        handler = _attach_log(partial / "run.log")
    except OSError as exc:
        raise OutputError(f"{exc.filename or partial}: cannot create the run folder of scene {scene.label} "
                          f"({describe_os_error(exc)}); {_LEDGER_UNCHANGED}") from exc
    started = _utc_now()
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
            with _warnings_to_log():
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
        _detach_log(handler)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _detach_log(handler)
    manifest = _manifest(ctx, scene, baseline, why, status, code, message, error, started, timings, counts, partial,
                         references)
    final = ctx.runs_dir / (name if status in _COMPLETE_STATUSES else name + _FAILED)
    try:
        _write_json(partial / MANIFEST, manifest)
        _fsync_dir(partial)
        _install(partial, final)
    except OSError as exc:
        state = _LEDGER_COMMITTED if progress["committed"] else _LEDGER_UNCHANGED
        raise OutputError(
            f"{exc.filename or partial / MANIFEST}: cannot complete the run folder of scene {scene.label} "
            f"({describe_os_error(exc)}); {state}; the unfinished folder {partial.name} is removed by the next run"
        ) from exc
    if status in _COMPLETE_STATUSES:
        failed = ctx.runs_dir / (name + _FAILED)
        if failed.exists():
            shutil.rmtree(failed, ignore_errors=True)
    log.info("run folder %s", final)
    return SceneOutcome(scene, baseline, status, code, final, counts, message,
                        tuple(references.get("_counts", ())))


def _compute(ctx: _Context, scene: SceneRef, baseline: SceneRef, out: Path, timings: dict[str, float],
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
    chips) share one decimated read of each date (:func:`ecopatch.io.quicklook.shared_reads`).
    """
    from ecopatch.io.quicklook import shared_reads
    from ecopatch.tiling import tune_malloc

    if ctx.config.run.tune_malloc:
        tune_malloc()
    with shared_reads(build_overviews=ctx.config.run.build_overviews):
        return _compute_scene(ctx, scene, baseline, out, timings, counts, unusable, references, progress)


def _compute_scene(ctx: _Context, scene: SceneRef, baseline: SceneRef, out: Path, timings: dict[str, float],
                   counts: dict[str, Any], unusable: Collection[str] = (),
                   references: dict[str, Any] | None = None, progress: dict[str, Any] | None = None
                   ) -> tuple[str, str]:
    from ecopatch.encroachment import detection_pass
    from ecopatch.io.vector import write_tables
    from ecopatch.restoration import assessment_pass, shared_scene_estimates
    from ecopatch.tiling import run_passes

    cfg = ctx.config
    references = references if references is not None else {}
    progress = progress if progress is not None else {}
    clock = _Clock(timings, progress)
    with clock("open"):
        before, after = _open(ctx, baseline), _open(ctx, scene)
    with clock("clear_fraction"):
        clear = _clear(ctx, scene)
        counts["clear_fraction"] = round(clear, 4)
    if clear <= 0:
        return "skipped", "the scene sees none of the mines and reserves clear (outside it, or all cloud)"
    if clear < cfg.run.min_clear_fraction:
        return "skipped", (f"only {clear:.0%} of the mines and reserves are clear "
                           f"(min_clear_fraction = {cfg.run.min_clear_fraction:g})")
    with clock("references"):
        refs = _scene_references(ctx, scene, unusable)
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
    passes: dict[str, WindowPass] = {}
    skipped = {"assess": "mines not assessed", "detect": "reserves not watched"}

    def _skip(job: str, exc: Exception) -> None:
        kind = job.split(":")[0]
        if kind == "assess" and len(groups) > 1:
            ref = groups[job.split(":", 1)[1]][0]
            notes.append(f"{len(groups[ref.scene_id][1])} mine(s) measured against {ref.label} not assessed: {exc}")
        else:
            notes.append(f"{skipped[kind]}: {exc}")
        log.warning("scene %s: %s", scene.label, notes[-1])

    if not groups and len(ctx.mines or ()):
        notes.append("mines not assessed: no mine has a reference scene before this one")
    with shared_scene_estimates():  # each scene's end-members sampled once for every job that reads it
        with clock("assess"):
            a = cfg.assessment
            for sid, (ref, idx) in groups.items():
                try:
                    passes[f"assess:{sid}"] = assessment_pass(
                        ctx.mines.iloc[idx], _open(ctx, ref), after, direction_field=a.direction_field,
                        rules=a.status_rules(), edge=a.edge, block=cfg.run.block,
                        target_year_field=a.target_year_field, target_rate_field=a.target_rate_field)
                except (NoOverlapError, NoValidPixelsError) as exc:
                    _skip(f"assess:{sid}", exc)
        with clock("detect"):
            try:
                d = cfg.detection
                passes["detect"] = detection_pass(
                    before, after, ctx.reserves, min_area_m2=d.min_area_m2, margin_m=d.margin_m, exclude=ctx.exclude,
                    zone_field=d.zone_field, name_field=d.name_field, params=d.change_params(), normalize=d.normalize,
                    clouds=d.clouds, max_flagged_share=d.max_flagged_share, include_gain=d.include_gain,
                    simplify_m=d.simplify_m, block=cfg.run.block,
                    history=[_open(ctx, h) for h in hist_refs] or None)
            except (NoOverlapError, NoValidPixelsError) as exc:
                _skip("detect", exc)
    _heartbeat(ctx)
    results: dict[str, Any] = {}
    if passes:
        with clock("windows"):
            # detection first: it reads whole blocks, the assessment the cells around the mines
            jobs = sorted(passes, key=lambda job: job != "detect")
            results = dict(zip(jobs, run_passes([passes[j] for j in jobs], scheduler=cfg.run.scheduler,
                                                progress=ctx.progress)))
    _heartbeat(ctx)
    finished: dict[str, Any] = {}
    for job in sorted(passes, key=lambda job: job == "detect"):
        with clock(job.split(":")[0]):
            try:
                finished[job] = passes[job].finish(results.pop(job))
            except (NoOverlapError, NoValidPixelsError) as exc:
                _skip(job, exc)
    patches = finished.pop("detect", None)
    if patches is not None and hist_refs:
        used = dict(patches.attrs.get("detection", {}).get("history") or {})
        references["_history"] |= {"used": list(used.get("scenes", [])), "left_out": int(used.get("left_out", 0))}
    assessment = None
    if finished:
        with clock("assess"):
            assessment = _mine_table(ctx, finished, refs, scene)
    if assessment is None and patches is None:
        return "skipped", "; ".join(notes)
    _heartbeat(ctx)

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
            from ecopatch.encroachment import observation_table

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
    _heartbeat(ctx)

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
            persisted = (led.confirm_from_sky(still, run_id, seen_on=after.date)
                         if still is not None and len(still) else ())
            _heartbeat(ctx)
            # cases this scene opened or reopened, as the ledger recorded them the first time
            dets = led.detections(run_id)
            new_cases = sorted(set(dets.loc[dets["outcome"].isin(["new", "rebound"]), "case_id"]))
            if cfg.outputs.fieldcheck and new_cases:
                with clock("fieldcheck"):
                    chips = None
                    if cfg.outputs.chips:
                        from ecopatch.outputs.maps import case_chips

                        chips = case_chips(before, after, lang=cfg.outputs.lang)
                        if hasattr(chips, "drawn"):  # drawn ahead, several at once: the package writes the PNGs
                            known = led.cases()
                            chips = chips.drawn(known[known["case_id"].isin(new_cases)])
                    led.export_fieldcheck(out / "fieldcheck", cases=new_cases, chips=chips)
            _heartbeat(ctx)
            if cfg.outputs.report:
                with clock("report"):
                    from ecopatch.outputs.report import write_report

                    mine_before = {}  # each mine's card shows its own reference, not the reserves' baseline
                    for pid, r in zip(ctx.mines["patch_id"].astype(str), refs):
                        if r.scene is not None and r.scene.scene_id in groups:
                            mine_before[pid] = _open(ctx, r.scene)
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
    _heartbeat(ctx)
    _test_pause()
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


def _probable_cases(ctx: _Context, suspects: Any) -> tuple[Any, Any]:
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


def _cases_still_shown(ctx: _Context, after: Scene, untouched: Any) -> Any:
    """Probable cases that this scene's patches do not touch, but that it still shows as found after.

    A run whose baseline already shows a change cannot find it again (``baseline = "previous"``);
    :func:`ecopatch.sky_tier.persisting` confirms such a case from the scene alone when its cover
    now lies more than halfway from what its latest detection found before to what it found after,
    over at least ``DEFAULT_CONFIRM_CLEAR`` of its area seen clear.  None when there is nothing to
    check.  ``untouched``: the probable cases this scene's patches do not touch
    (:func:`_probable_cases`; those it touches are add_detections' to confirm).
    """
    from ecopatch.ledger.store import DEFAULT_CONFIRM_CLEAR
    from ecopatch.sky_tier import cover_over, persisting

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
    with _warnings_to_log():
        cover = cover_over(after, cases)
    out = persisting(cases, cover, after.date, min_clear_share=DEFAULT_CONFIRM_CLEAR)
    log.info("sky tier: %d probable case(s) not found again checked in the scene itself, %d still show their "
             "new ground", len(cases), len(out))
    return out


def _group_references(ctx: _Context, refs: Sequence[MineReference], scene: SceneRef
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


def _record_references(out: dict[str, Any], refs: Sequence[MineReference], ctx: _Context, scene: SceneRef,
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
    out["_counts"] = _reference_counts(refs, scene)


def _mine_table(ctx: _Context, finished: Mapping[str, Any], refs: Sequence[MineReference],
                scene: SceneRef) -> Any:
    """The mines table of a scene: each reference group's rows in the mines' order, with its reference.

    Statuses and alerts are then seen against each mine's history in the ledger.
    """
    import geopandas as gpd
    import pandas as pd

    from ecopatch.trajectory import mine_status

    assert ctx.mines is not None and ctx.ledger is not None
    parts = [finished[k] for k in finished]
    crs = parts[0].crs
    table = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry=parts[0].geometry.name, crs=crs)
    order = {pid: i for i, pid in enumerate(ctx.mines["patch_id"].astype(str))}
    table = table.iloc[sorted(range(len(table)), key=lambda i: order[str(table["patch_id"].iloc[i])])]
    table = table.reset_index(drop=True)
    by_pid = dict(zip(ctx.mines["patch_id"].astype(str), refs))
    table["reference_scene"] = [by_pid[str(p)].scene.scene_id for p in table["patch_id"]]  # type: ignore[union-attr]
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


def _test_pause() -> None:
    pause = os.environ.get(PAUSE_ENV)
    if not pause:
        return
    signal_file = os.environ.get(PAUSE_SIGNAL_ENV)
    if signal_file:
        Path(signal_file).write_text(str(os.getpid()))
    log.warning("%s set: pausing %s s before the manifest (test hook)", PAUSE_ENV, pause)
    time.sleep(float(pause))


# ---------------------------------------------------------------------------
# Manifest, checksums, folders
# ---------------------------------------------------------------------------
def _manifest(ctx: _Context, scene: SceneRef, baseline: SceneRef, why: str, status: str, code: ExitCode,
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
    if cfg.path is not None:
        inputs["config"] = safe(lambda: _file_digest(cfg.path), cfg.path)
    inputs["scene"] = scene.as_dict() | safe(lambda: _scene_digest(ctx, scene), scene.path)
    inputs["baseline"] = baseline.as_dict() | safe(lambda: _scene_digest(ctx, baseline), baseline.path)
    # what each scene was read as: product, level, bands, scale/offset, cloud mask, and on what evidence
    inputs["scene"]["provenance"] = _provenance(ctx, scene)
    inputs["baseline"]["provenance"] = _provenance(ctx, baseline)
    refs = dict(references or {})
    ref_scenes = refs.pop("_scenes", {})
    refs.pop("_counts", None)
    history = dict(refs.pop("_history", {"max_scenes": cfg.run.history_scenes, "scenes": []}))
    for h in history.pop("_refs", ()):  # the scenes that gave each pixel its seasonal range
        inputs[f"history {h.scene_id}"] = h.as_dict() | safe(lambda r=h: _scene_digest(ctx, r), h.path)
    for sid, ref in ref_scenes.items():  # each mine's restoration reference, when not the baseline
        if sid != baseline.scene_id:
            inputs[f"reference {sid}"] = ref.as_dict() | safe(lambda r=ref: _scene_digest(ctx, r), ref.path)
            inputs[f"reference {sid}"]["provenance"] = _provenance(ctx, ref)
    inputs["mines"] = safe(lambda: _layer_digest(cfg.inputs.mines), cfg.inputs.mines)
    inputs["reserves"] = safe(lambda: _layer_digest(cfg.inputs.reserves), cfg.inputs.reserves)
    if cfg.detection.exclude is not None:
        inputs["exclude"] = safe(lambda: _layer_digest(cfg.detection.exclude), cfg.detection.exclude)
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
        "force": ctx.force,
        "started_at": started,
        "finished_at": _utc_now(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "inputs": inputs,
        "parameters": cfg.to_dict(),
        "versions": package_versions(),
        "counts": dict(counts),
        "ledger": {"path": str(cfg.outputs.ledger), **(_ledger_counts(ctx.ledger) if ctx.ledger else {})},
        "timings_s": dict(timings),
        "outputs": [_file_digest(p, relative_to=folder) for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.name != MANIFEST],
    }


def package_versions() -> dict[str, str]:
    """Versions of Python, ecopatch, GDAL, PROJ and the main packages, for manifests."""
    from importlib import metadata

    from ecopatch import __version__

    out = {"python": sys.version.split()[0], "ecopatch": __version__}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    with contextlib.suppress(Exception):
        import rasterio

        out["gdal"] = str(rasterio.__gdal_version__)
    with contextlib.suppress(Exception):
        import pyproj

        out["proj"] = str(pyproj.proj_version_str)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_digest(path: Path, *, relative_to: Path | None = None) -> dict[str, Any]:
    shown = path.relative_to(relative_to).as_posix() if relative_to else str(path)
    return {"path": shown, "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _tree_digest(files: Sequence[Path], root: Path | None) -> dict[str, Any]:
    """One SHA-256 over (relative path, file SHA-256) of several files, with their count and size."""
    h = hashlib.sha256()
    total = 0
    for p in sorted(set(files)):
        rel = p.relative_to(root).as_posix() if root and p.is_relative_to(root) else str(p)
        h.update(f"{rel}\0{_sha256(p)}\n".encode())
        total += p.stat().st_size
    return {"sha256": h.hexdigest(), "files": len(set(files)), "bytes": total}


def _scene_digest(ctx: _Context, ref: SceneRef) -> dict[str, Any]:
    if ref.scene_id in ctx.digest_cache:
        return ctx.digest_cache[ref.scene_id]
    p = ref.path
    if p.is_dir():
        d = _tree_digest([f for f in p.rglob("*") if f.is_file()], p)
    else:
        files = [p]
        sc = ref.scene
        if sc is not None:
            files += [Path(b.path) for _, b in sc.band_refs]
            if sc.mask is not None:
                files.append(Path(sc.mask.path))
        d = _tree_digest([f for f in files if f.is_file()], p.parent)
    ctx.digest_cache[ref.scene_id] = d
    return d


def _layer_digest(path: Path) -> dict[str, Any]:
    if path.is_dir():
        return {"path": str(path)} | _tree_digest([f for f in path.rglob("*") if f.is_file()], path)
    if path.suffix.lower() == ".shp":  # the sidecar files carry attributes, index, CRS, encoding
        parts = [f for f in path.parent.glob(path.stem + ".*") if f.is_file()]
        return {"path": str(path)} | _tree_digest(parts, path.parent)
    return _file_digest(path)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _install(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing an earlier folder there."""
    old = None
    if dst.exists():
        if (dst / MANIFEST).exists() or dst.name.endswith(_FAILED):
            old = dst.with_name(f".{dst.name}{_SUPERSEDED}{uuid.uuid4().hex[:8]}")
        else:  # not a run folder of ours: keep it, out of the way
            old = dst.with_name(f"{dst.name}.orphan-{_dt.datetime.now():%Y%m%dT%H%M%S}")
            log.warning("%s exists and is not a run folder: moved to %s", dst, old)
        os.rename(dst, old)
    os.rename(src, dst)
    _fsync_dir(dst.parent)
    if old is not None and _SUPERSEDED in old.name:
        shutil.rmtree(old, ignore_errors=True)


def _clean_leftovers(runs_dir: Path) -> None:
    """Remove what killed runs left: ``.partial`` folders and superseded folders (called under the lock)."""
    for d in sorted(runs_dir.iterdir()):
        if not d.name.startswith("."):
            continue
        if d.name.endswith(_PARTIAL) and d.is_dir():
            log.warning("removing %s, left by a run that was killed or crashed before completing it", d)
            shutil.rmtree(d, ignore_errors=True)
        elif _SUPERSEDED in d.name and d.is_dir():
            log.info("removing %s (replaced by a newer run)", d)
            shutil.rmtree(d, ignore_errors=True)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# Logging helpers
# ---------------------------------------------------------------------------
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _attach_log(path: Path) -> logging.Handler:
    """Also send the ``ecopatch`` logger's records to ``path`` until :func:`_detach_log`."""
    from ecopatch.sanitize import SafeLogFormatter

    handler = logging.FileHandler(path, encoding="utf-8", delay=False)
    handler.setFormatter(SafeLogFormatter(_LOG_FORMAT))
    logging.getLogger("ecopatch").addHandler(handler)
    return handler


def _detach_log(handler: logging.Handler) -> None:
    logging.getLogger("ecopatch").removeHandler(handler)
    handler.close()


@contextlib.contextmanager
def _warnings_to_log() -> Iterator[None]:
    """Log Python warnings (at WARNING) instead of printing them, inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
            log.warning("%s: %s", category.__name__, message)

        warnings.showwarning = show
        yield

