"""GDAL VRT mosaics read as their sources: the parser of ``SimpleSource`` bands (gdalbuildvrt's usual output).

A VRT that only pastes whole-pixel copies of local files is read from those
files directly (:mod:`ecopatch.raster.fileread`), so their tiles go through
the tile cache like single files'; anything else is left to GDAL.
"""

from __future__ import annotations

import math
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecopatch.geo.grid import Window

__all__ = ["VRTSources", "vrt_simple_sources"]


@dataclass(frozen=True)
class VRTSources:
    """The whole-pixel sources of one band of a VRT (see :func:`vrt_simple_sources`)."""

    background: float  # what GDAL gives where no source covers: the band's nodata, else 0
    parts: tuple[tuple[str, int, int, int, Window], ...]  # (path, band, src row, src col, dst window)


_vrt_cache: dict[tuple, VRTSources | None] = {}
_vrt_lock = threading.Lock()


def vrt_simple_sources(path: str, ds: Any, index: int, opener: Callable[[str], Any]) -> VRTSources | None:
    """The sources of band ``index`` of a VRT if it only pastes whole-pixel copies of local files.

    That is: ``SimpleSource`` elements (opaque copies, later ones on top)
    whose source and destination rectangles are whole pixels of the same
    size, from bands of the VRT band's own data type, with nothing else in
    the band (no other source types, masks, colour tables, functions).
    Anything else returns None and is read through GDAL.  ``opener(path)``
    gives the open dataset of a source file (the caller's handle cache).
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size, index)
    with _vrt_lock:
        if key in _vrt_cache:
            return _vrt_cache[key]
    try:
        found = _parse_vrt_band(path, ds, index, opener)
    except Exception:  # noqa: BLE001 - anything unexpected: let GDAL read it
        found = None
    with _vrt_lock:
        _vrt_cache[key] = found
    return found


_VRT_BAND_TAGS = {"NoDataValue", "Description", "ColorInterp", "Metadata", "SimpleSource", "Histograms"}


def _parse_vrt_band(path: str, ds: Any, index: int, opener: Callable[[str], Any]) -> VRTSources | None:
    root = ET.parse(path).getroot()
    if root.tag != "VRTDataset" or root.get("subClass") or root.find("MaskBand") is not None:
        return None
    band = next((b for b in root.findall("VRTRasterBand") if int(b.get("band", "0")) == index), None)
    if band is None or band.get("subClass") or any(c.tag not in _VRT_BAND_TAGS for c in band):
        return None
    dtype = ds.dtypes[index - 1]
    parts = []
    for src in band.findall("SimpleSource"):
        if any(c.tag not in ("SourceFilename", "SourceBand", "SourceProperties", "SrcRect", "DstRect") for c in src):
            return None
        fn = src.find("SourceFilename")
        sb = src.findtext("SourceBand", "1").strip()
        sr, dr = src.find("SrcRect"), src.find("DstRect")
        if fn is None or sr is None or dr is None or not sb.isdigit() or src.get("resampling"):
            return None
        name = (fn.text or "").strip()
        if fn.get("relativeToVRT") == "1":
            name = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if name.startswith("/vsi") or not os.path.isfile(name):
            return None
        s = [float(sr.get(k, "nan")) for k in ("yOff", "xOff", "ySize", "xSize")]
        d = [float(dr.get(k, "nan")) for k in ("yOff", "xOff", "ySize", "xSize")]
        if not all(math.isfinite(v) and v == int(v) for v in s + d) or s[2:] != d[2:]:
            return None
        sds = opener(name)
        b = int(sb)
        if not 1 <= b <= sds.count or sds.dtypes[b - 1] != dtype:
            return None
        if s[0] < 0 or s[1] < 0 or s[0] + s[2] > sds.height or s[1] + s[3] > sds.width:
            return None
        parts.append((name, b, int(s[0]), int(s[1]), Window(row_off=int(d[0]), col_off=int(d[1]),
                                                            height=int(d[2]), width=int(d[3]))))
    nd = ds.nodatavals[index - 1]
    return VRTSources(0.0 if nd is None else float(nd), tuple(parts))
