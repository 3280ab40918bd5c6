"""Finding the scenes of a scheduled run: a folder of imagery or a local STAC catalog.

Each candidate becomes a :class:`SceneRef` (ID, date, path); what cannot be
read as a scene is reported, never fatal (:class:`Discovery`).
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import logging
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.errors import (
    EcopatchError,
    InputDataError,
    RasterReadError,
)
from ecopatch.run.logs import warnings_to_log

if TYPE_CHECKING:

    from ecopatch.raster.scene import Scene

__all__ = [
    "Discovery",
    "SceneRef",
    "discover_scenes",
]

log = logging.getLogger("ecopatch.run")


_SCENE_FILE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat", ".json")


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
    from ecopatch.raster.fileread import close_datasets
    from ecopatch.raster.scene import open_scene

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
            with warnings_to_log():
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

