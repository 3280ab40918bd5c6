"""Run folders and their manifests: what completed runs recorded, checksums, atomic installs.

A run folder is complete when its ``manifest.json`` (:data:`MANIFEST`) is
there: it is written last, and the folder is built under a temporary name
then moved into place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:

    pass

__all__ = [
    "COMPLETE_STATUSES",
    "FAILED_SUFFIX",
    "MANIFEST",
    "MANIFEST_VERSION",
    "PARTIAL_SUFFIX",
    "RunRecord",
    "clean_leftovers",
    "completed_runs",
    "file_digest",
    "fsync_dir",
    "install_folder",
    "layer_digest",
    "package_versions",
    "tree_digest",
    "utc_now",
    "write_json",
]

log = logging.getLogger("ecopatch.run")


#: Name of the file that marks a run folder complete (written last).
MANIFEST = "manifest.json"


#: Version of the manifest layout.
MANIFEST_VERSION = 1


PARTIAL_SUFFIX = ".partial"


FAILED_SUFFIX = ".failed"


_SUPERSEDED = ".superseded-"


COMPLETE_STATUSES = ("ok", "skipped")


_VERSIONED = ("numpy", "scipy", "pandas", "shapely", "pyproj", "rasterio", "geopandas", "pyogrio",
              "scikit-image", "matplotlib", "dask", "openpyxl", "click")


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
        if not d.is_dir() or d.name.startswith(".") or d.name.endswith(FAILED_SUFFIX) or ".orphan-" in d.name:
            continue
        try:
            m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(m, dict) or m.get("manifest_version") != MANIFEST_VERSION:
            continue
        sid = (m.get("scene") or {}).get("id")
        if sid and m.get("status") in COMPLETE_STATUSES:
            out[str(sid)] = RunRecord(str(sid), str(m["status"]), d, m)
    return out


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


def file_digest(path: Path, *, relative_to: Path | None = None) -> dict[str, Any]:
    """Path, size and SHA-256 of a file (the path relative to ``relative_to`` when given)."""
    shown = path.relative_to(relative_to).as_posix() if relative_to else str(path)
    return {"path": shown, "bytes": path.stat().st_size, "sha256": _sha256(path)}


def tree_digest(files: Sequence[Path], root: Path | None) -> dict[str, Any]:
    """One SHA-256 over (relative path, file SHA-256) of several files, with their count and size."""
    h = hashlib.sha256()
    total = 0
    for p in sorted(set(files)):
        rel = p.relative_to(root).as_posix() if root and p.is_relative_to(root) else str(p)
        h.update(f"{rel}\0{_sha256(p)}\n".encode())
        total += p.stat().st_size
    return {"sha256": h.hexdigest(), "files": len(set(files)), "bytes": total}


def layer_digest(path: Path) -> dict[str, Any]:
    """Checksums of a vector layer: its file, or every file of a folder (a Shapefile's parts)."""
    if path.is_dir():
        return {"path": str(path)} | tree_digest([f for f in path.rglob("*") if f.is_file()], path)
    if path.suffix.lower() == ".shp":  # the sidecar files carry attributes, index, CRS, encoding
        parts = [f for f in path.parent.glob(path.stem + ".*") if f.is_file()]
        return {"path": str(path)} | tree_digest(parts, path.parent)
    return file_digest(path)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (a temporary file, fsynced, then renamed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk (after a rename into it), where the OS allows."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def install_folder(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` to ``dst``, replacing an earlier folder there."""
    old = None
    if dst.exists():
        if (dst / MANIFEST).exists() or dst.name.endswith(FAILED_SUFFIX):
            old = dst.with_name(f".{dst.name}{_SUPERSEDED}{uuid.uuid4().hex[:8]}")
        else:  # not a run folder of ours: keep it, out of the way
            old = dst.with_name(f"{dst.name}.orphan-{_dt.datetime.now():%Y%m%dT%H%M%S}")
            log.warning("%s exists and is not a run folder: moved to %s", dst, old)
        os.rename(dst, old)
    os.rename(src, dst)
    fsync_dir(dst.parent)
    if old is not None and _SUPERSEDED in old.name:
        shutil.rmtree(old, ignore_errors=True)


def clean_leftovers(runs_dir: Path) -> None:
    """Remove what killed runs left: ``.partial`` folders and superseded folders (called under the lock)."""
    for d in sorted(runs_dir.iterdir()):
        if not d.name.startswith("."):
            continue
        if d.name.endswith(PARTIAL_SUFFIX) and d.is_dir():
            log.warning("removing %s, left by a run that was killed or crashed before completing it", d)
            shutil.rmtree(d, ignore_errors=True)
        elif _SUPERSEDED in d.name and d.is_dir():
            log.info("removing %s (replaced by a newer run)", d)
            shutil.rmtree(d, ignore_errors=True)


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the second (``2026-12-05T11:21:16Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

