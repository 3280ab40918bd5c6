"""Identifying imagery products: which product, level and sensor, which band is which, and how sure.

:func:`open_product` (behind :func:`ecopatch.open_scene`) decides, for what a
user points to, the product (Sentinel-2 L1C or L2A, Landsat TM/ETM+/OLI
Collection 2 Level-1 or Level-2, HLS, Gaofen WFV/PMS, NAIP, a drone mosaic,
a stacked export), the role of every band and how its values become
reflectance.  Evidence is taken in this order:

1. the product's own metadata (``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, a
   STAC item, a Landsat MTL, a Gaofen XML, GeoTIFF tags);
2. band descriptions (``B04``, ``SR_B4``, ``"B4 NIR"``, ``"near infrared"``,
   ``近红外``) and colour interpretation (red/green/blue/alpha);
3. naming conventions (Sentinel-2 and Landsat product IDs, NAIP
   quarter-quads, Gaofen ``GF2_PMS1_..._L1A...``);
4. the band set (a Sentinel-2 band folder with B10 is Level-1C: Level-2A
   products have no B10; one with SCL is Level-2A);
5. the sensor profile's band order, when the sensor is known.

Each decision is kept as a sentence in the scene's
:class:`~ecopatch.io.raster.ProductInfo`.  Where only thin evidence is left
the scene opens with an :class:`~ecopatch.errors.AssumptionWarning` saying
what was assumed and how to say otherwise; where there is none (four
unlabelled 8-bit bands: red-green-blue-NIR as NAIP, blue-green-red-NIR as
Gaofen, or SWIR1-NIR-red-green as a Landsat composite?) an
:class:`~ecopatch.errors.InputDataError` asks for ``bands=``.  A band is never
dropped or reordered silently: bands no analysis uses are listed in
``ProductInfo.unused_bands``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ecopatch.errors import (
    AssumptionWarning,
    ConfigError,
    DegradedAnalysisWarning,
    EcopatchWarning,
    InputDataError,
    MissingBandError,
    MissingMaskWarning,
    RasterReadError,
)
from ecopatch.io.raster import BandRef, MaskRef, Scene, _dataset, _grid_of
from ecopatch.raster.ongrid import ground_unit_m
from ecopatch.raster.source import MaskProvider, ProductInfo
from ecopatch.sensors import COMMON_BANDS, SensorProfile, get_sensor

__all__ = [
    "Calibration",
    "S2_OFFSET_BASELINE",
    "open_product",
    "role_from_description",
]

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img", ".dat")
#: First Sentinel-2 processing baseline with the -1000 radiometric offset (25 Jan 2022).
S2_OFFSET_BASELINE = 4.0
#: Reflectance assumed for the darkest objects of a scene (deep water, shade) after haze removal.
DARK_OBJECT_REFLECTANCE = 0.01

#: What the Sentinel-2 bands no analysis reads are.
_S2_UNUSED_WORDS = {"B01": "coastal aerosol", "B09": "water vapour", "B10": "cirrus", "B8A": "narrow NIR"}


@dataclass(frozen=True)
class Calibration:
    """Absolute calibration coefficients of one Gaofen sensor (see :mod:`ecopatch.io.gaofen`).

    ``radiance = gain × DN + bias`` (W m⁻² sr⁻¹ µm⁻¹) per band, and
    ``esun`` (W m⁻² µm⁻¹, mean exo-atmospheric solar irradiance of each band)
    for top-of-atmosphere reflectance.
    """

    satellite: str
    sensor: str
    year: int
    gain: Mapping[str, float]
    bias: Mapping[str, float]
    esun: Mapping[str, float]
    source: str
    esun_source: str = ""


# ---------------------------------------------------------------------------
# Opening: dispatch and the common finish
# ---------------------------------------------------------------------------
def open_product(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    sensor: str | SensorProfile | None = None,
    bands: Mapping[str, int | str] | None = None,
    date: str | _dt.date | None = None,
    *,
    scale: float | None = None,
    offset: float | None = None,
    nodata: float | None = None,
    cloud_buffer_m: float | None = None,
    haze: str = "auto",
    cloud_mask: MaskRef | MaskProvider | str | os.PathLike[str] | None = None,
    dem: str | os.PathLike[str] | None = None,
    calibration: str | os.PathLike[str] | Calibration | None = None,
    pansharpen: bool = True,
    workdir: str | os.PathLike[str] | None = None,
) -> Scene:
    """Identify and open a product; the implementation of :func:`ecopatch.open_scene` (same parameters)."""
    from ecopatch.io import gaofen, landsat

    if haze not in ("auto", "dos", "none"):
        raise ConfigError(f"haze={haze!r}; use 'auto', 'dos' or 'none'")
    if bands is not None:
        _check_band_names(bands)
    prof = get_sensor(sensor) if sensor is not None else None
    opts = _Options(prof, dict(bands) if bands else None, scale, offset, nodata)
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        for p in paths:
            _check_exists(p)
        scene = _scene_from_band_files(paths, opts)
    else:
        path = Path(source)
        _check_exists(path)
        if gaofen.is_gaofen_package(path):
            scene = gaofen.open_gaofen(path, opts, dem=dem, calibration=calibration, pansharpen=pansharpen,
                                       workdir=workdir)
        elif path.is_dir() and landsat.is_hls_folder(path):
            scene = landsat.open_hls(path, opts)
        elif path.is_dir() and landsat.is_landsat_folder(path):
            scene = landsat.open_landsat(path, opts)
        elif path.is_dir():
            found = _scan_folder(path)
            if not found.files:
                raise InputDataError(
                    f"{path}: no raster band files found (looked for *.tif/*.jp2 whose names "
                    "contain a band ID such as B04, SR_B4, SCL); point to a SAFE folder, a "
                    "Landsat folder, or a multi-band file"
                )
            scene = _scene_from_found(found, opts, str(path))
        elif path.suffix.lower() == ".json":
            found = _Found()
            try:
                _parse_stac_item(path, found, base=path.parent)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                raise InputDataError(f"{path}: not a STAC item with local assets ({exc})") from exc
            if not found.files:
                raise InputDataError(f"{path}: the STAC item has no local raster assets")
            scene = _scene_from_found(found, opts, str(path))
        elif landsat.is_mtl_file(path):
            scene = landsat.open_landsat(path.parent, opts, mtl=path)
        else:
            scene = _scene_from_file(path, opts)
    return _finish(scene, source, date, cloud_buffer_m, haze, cloud_mask, offset)


@dataclass(frozen=True)
class _Options:
    """What the user said: sensor, band naming, scale, offset, nodata."""

    prof: SensorProfile | None
    bands: dict[str, int | str] | None
    scale: float | None
    offset: float | None
    nodata: float | None


def _check_band_names(bands: Mapping[str, int | str]) -> None:
    for common in bands:
        if common not in COMMON_BANDS:
            raise ConfigError(f"bands=: {common!r} is not a band name ecopatch knows; use {list(COMMON_BANDS)}")


def _finish(scene: Scene, source: Any, date: Any, cloud_buffer_m: float | None, haze: str,
            cloud_mask: Any, offset: float | None) -> Scene:
    """Date override, cloud buffer, haze removal, a plugged-in mask; then say what needs saying."""
    if date is not None:
        scene = scene.with_date(_parse_date(date, f"{source}: date"))
    if cloud_mask is not None:
        scene = scene.with_mask(cloud_mask)
    if cloud_buffer_m is None:
        cloud_buffer_m = 20.0 if scene.mask is not None and scene.mask.kind in ("scl", "qa_pixel") else 0.0
    if cloud_buffer_m < 0:
        raise ConfigError(f"cloud_buffer_m={cloud_buffer_m}: must be >= 0")
    scene = replace(scene, cloud_buffer_m=float(cloud_buffer_m))
    if (
        scene.sensor.name.startswith("sentinel2")
        and scene.date is not None
        and scene.date >= _dt.date(2022, 1, 25)
        and "processing_baseline" not in scene.metadata
        and offset is None
        and all(ref.offset == 0 for _, ref in scene.band_refs)
    ):
        warnings.warn(
            f"{source}: Sentinel-2 scene dated {scene.date} without a processing baseline; "
            "products from baseline 04.00 (25 Jan 2022) on need offset=-0.1 "
            "(BOA_ADD_OFFSET -1000). No offset applied: pass offset=-0.1 if DNs carry it.",
            EcopatchWarning,
            stacklevel=4,
        )
    toa = scene.info.quantity.startswith("top-of-atmosphere")
    if haze == "dos" or (haze == "auto" and toa and scene.sensor.reflectance):
        scene = _dark_object_subtraction(scene)
    _say(scene)
    log.info("opened %r", scene)
    return scene


def _say(scene: Scene) -> None:
    """Issue the warnings a scene deserves: assumptions, a missing mask, degraded analyses."""
    info = scene.info
    for a in info.assumptions:
        warnings.warn(f"{scene.source}: {a}", AssumptionWarning, stacklevel=5)
    if scene.mask is None and scene.sensor.reflectance and not scene.sensor.name.startswith("drone"):
        warnings.warn(
            f"{scene.source}: no cloud mask ({scene.mask_status['note']}); clouds and their shadows count as "
            "observed ground and can show as change. Pass cloud_mask= (a raster, 1 = cloud) or use a product "
            "with its mask (Sentinel-2 L2A with SCL, Landsat with QA_PIXEL)",
            MissingMaskWarning, stacklevel=5,
        )
    deg = scene.degraded()
    if deg:
        words = "; ".join(f"{d['analysis']} (no {', '.join(d['missing'])}): {d['consequence']}" for d in deg)
        warnings.warn(f"{scene.source} ({scene.sensor.name}) lacks band(s) {', '.join(scene.missing_roles)}: {words}",
                      DegradedAnalysisWarning, stacklevel=5)


def _dark_object_subtraction(scene: Scene) -> Scene:
    """Subtract each band's haze (0.1st percentile above 1 % reflectance) through the band offsets."""
    obs = scene.read_sample(max_pixels=500_000)
    refs = []
    haze = {}
    for name, ref in scene.band_refs:
        v = np.asarray(obs.bands[name], dtype=np.float64)
        v = v[np.isfinite(v)]
        h = max(0.0, float(np.percentile(v, 0.1)) - DARK_OBJECT_REFLECTANCE) if v.size else 0.0
        haze[name] = round(h, 5)
        refs.append((name, replace(ref, offset=ref.offset - h)))
    meta = dict(scene.metadata)
    meta["haze_removed"] = haze
    log.info("%s: dark-object subtraction %s", scene.source, haze)
    info = scene.info
    step = "dark-object haze subtraction (top-of-atmosphere product): " + ", ".join(
        f"{k} -{v:.4f}" for k, v in haze.items())
    return replace(scene, band_refs=tuple(refs), metadata=meta,
                   product=replace(info, processing=(*info.processing, step)))


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise RasterReadError(f"{path}: no such file or folder")


# ---------------------------------------------------------------------------
# Band roles from descriptions
# ---------------------------------------------------------------------------
# first match wins: NIR and red edge before red ("infra-red", 近红外, 红边), coastal before blue
_ROLE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\bcoastal\b|\baerosol\b|\bultra[ -]?blue\b|\bdeep[ -]?blue\b|\bviolet\b|\bpurple\b|紫", "coastal"),
    (r"\bnir[ _-]?08\b|\bnir[ _-]?narrow\b|\bnarrow[ _-]?nir\b", "nir08"),
    (r"\bred[ _-]?edge[ _-]?1\b|\bre1\b|红边1", "rededge1"),
    (r"\bred[ _-]?edge[ _-]?2\b|\bre2\b|红边2", "rededge2"),
    (r"\bred[ _-]?edge[ _-]?3\b|\bre3\b|红边3", "rededge3"),
    (r"\bred[ _-]?edge\b|红边", "rededge1"),
    (r"\bswir[ _-]?1\b|\bswir[ _-]?16\b|\bswir[ _-]?1\.6|短波红外 ?1", "swir1"),
    (r"\bswir[ _-]?2\b|\bswir[ _-]?22\b|\bswir[ _-]?2\.2|短波红外 ?2", "swir2"),
    (r"\bnir\b|near[ _-]?infra[ _-]?red|\bnear[ _-]?ir\b|近红外", "nir"),
    (r"\bthermal\b|\btir\b|\blwir\b|\bst_b\d+|热红外", "thermal"),
    (r"\bpan(chromatic)?\b|全色", "pan"),
    (r"\bblue\b|蓝", "blue"),
    (r"\bgreen\b|绿", "green"),
    (r"\byellow\b|黄", "yellow"),
    (r"\bred\b|红", "red"),
    (r"\balpha\b|\bmask\b", "alpha"),
))
_ID_TOKEN = re.compile(r"(?:^|[\s_(.-])((?:SR_|ST_)?B\d{1,2}A?|QA_PIXEL|SCL|FMASK)(?=$|[\s_).:-])", re.IGNORECASE)


def role_from_description(description: str) -> tuple[str | None, str | None]:
    """The band role and the product band ID a band description names.

    Parameters
    ----------
    description : str
        A GDAL band description, e.g. ``"B04"``, ``"SR_B4"``, ``"B4 NIR"``,
        ``"Near infrared"``, ``"swir16"``, ``"近红外"``.

    Returns
    -------
    (role, band_id)
        ``role`` is a common band name (:data:`ecopatch.sensors.COMMON_BANDS`),
        ``"thermal"``, ``"pan"`` or ``"alpha"``, or None when the description
        names no role in words; ``band_id`` the product band ID it contains
        (upper case), or None.

    Examples
    --------
    >>> role_from_description("B4 NIR")
    ('nir', 'B4')
    >>> role_from_description("SR_B6")
    (None, 'SR_B6')
    >>> role_from_description("Near-infrared")
    ('nir', None)
    >>> role_from_description("红")
    ('red', None)
    """
    d = (description or "").strip()
    if not d:
        return None, None
    m = _ID_TOKEN.search(d)
    bid = m.group(1).upper() if m else None
    words = _ID_TOKEN.sub(" ", d) if m else d
    if d.lower() in COMMON_BANDS:
        return d.lower(), bid
    if bid and bid.startswith("ST_"):
        return "thermal", bid
    for pat, role in _ROLE_WORDS:
        if pat.search(words.replace("_", " ")):
            return role, bid
    return None, bid


# ---------------------------------------------------------------------------
# Folders of band files (Sentinel-2 SAFE, OSCD, exports) and STAC items
# ---------------------------------------------------------------------------
_DATE_PATTERNS = (
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})(\d{2})(\d{2})T\d{6}"),
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})-(\d{2})-(\d{2})(?!\d)"),
    re.compile(r"(?<!\d)(20\d{2}|19\d{2})(\d{2})(\d{2})(?!\d)"),
)


def _date_from_text(text: str) -> _dt.date | None:
    for pat in _DATE_PATTERNS:
        for m in pat.finditer(text):
            try:
                return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
    return None


#: Old-format (before December 2016) Sentinel-2 tile file names: ``S2A_OPER_MSI_L1C_TL_<centre>_
#: <production time>_A<absolute orbit>_T<tile>_B<band>``.  The time in them is when the file was
#: made, often months after the acquisition (OSCD's Águas Claras: made 2016-12-27, acquired 2015-09-16).
_OLD_S2_NAME = re.compile(r"^(S2[AB])_OPER_MSI_L1C_TL_\w{4}_(\d{8})T\d{6}_A(\d{6})_T\w{5}", re.IGNORECASE)
#: Start of absolute orbit 1 of each satellite (launch, UTC) and the orbit period: 143 orbits in the
#: 10-day repeat cycle (ESA, Sentinel-2 User Handbook, "Orbit").
_S2_ORBIT_EPOCH = {"S2A": _dt.datetime(2015, 6, 23, 1, 52)}
_S2_ORBIT_S = 10 * 86400 / 143


def _date_from_old_s2_names(names: Sequence[str], found: _Found) -> _dt.date | None:
    """The acquisition date of old-format Sentinel-2 tile files, from their absolute orbit number.

    Each orbit passes the day side about half an orbit after its ascending node, so the date of the
    overpass is the epoch plus (orbit - 1) periods plus about half a period.  Returns None when the
    names are not of that format, disagree, or name a satellite whose orbits are not known here.
    """
    hits = {(m.group(1).upper(), m.group(2), int(m.group(3))) for m in map(_OLD_S2_NAME.match, names) if m}
    if len(hits) != 1:
        return None
    sat, made, orbit = hits.pop()
    epoch = _S2_ORBIT_EPOCH.get(sat)
    if epoch is None:
        return None
    acquired = (epoch + _dt.timedelta(seconds=(orbit - 0.5) * _S2_ORBIT_S)).date()
    made_date = _date_from_text(made)
    if made_date is not None and acquired > made_date:
        return None  # a file cannot be made before its acquisition: not what this rule assumes
    found.evidence.append(f"acquisition date {acquired} from the absolute orbit A{orbit:06d} of the old-format "
                          f"file names (the {made_date} in them is the production date)")
    return acquired


_BAND_TOKEN = re.compile(
    r"(?:^|[_\-.\s])(SR_B\d+|B\d{1,2}A?|SCL|QA_PIXEL|blue|green|red|nir|swir1|swir2|rededge\d?)"
    r"(?=$|[_\-.\s])",
    re.IGNORECASE,
)
_RES_TOKEN = re.compile(r"_(\d+)m(?=$|[_.])")


def _parse_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    d = _date_from_text(str(value))
    if d is None:
        raise ConfigError(f"{what}: cannot read {value!r} as a date; use YYYY-MM-DD")
    return d


def _band_id_from_name(stem: str) -> str | None:
    hits = _BAND_TOKEN.findall(stem)
    if not hits:
        return None
    tok = hits[-1].upper()
    if re.fullmatch(r"B\d", tok):
        tok = f"B0{tok[1]}"
    return tok


def _common_from_id(sensor: SensorProfile, band_id: str) -> str | None:
    c = sensor.common_name(band_id)
    if c is None and band_id.lower() in COMMON_BANDS:
        return band_id.lower()
    if c is None and re.fullmatch(r"B0\d", band_id):
        c = sensor.common_name(band_id.replace("B0", "B"))
    return c


@dataclass
class _Found:
    """What a folder, a STAC item or an MTL said: band files, calibration, and the evidence."""

    files: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # band id -> [(path, res)]
    metadata: dict[str, Any] = field(default_factory=dict)
    date: _dt.date | None = None
    sensor: str | None = None
    offsets: dict[str, float] = field(default_factory=dict)  # band id -> additive DN offset
    scales: dict[str, float] = field(default_factory=dict)  # band id -> reflectance per DN
    add: dict[str, float] = field(default_factory=dict)  # band id -> reflectance offset
    evidence: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)  # product, platform, instrument, level
    unused: list[str] = field(default_factory=list)
    mask_note: str = ""
    processing: list[str] = field(default_factory=list)


def _scan_folder(folder: Path) -> _Found:
    found = _Found()
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES and "QI_DATA" not in p.parts
    )
    for p in files:
        bid = _band_id_from_name(p.stem)
        if bid is None:
            continue
        m = _RES_TOKEN.search(p.stem)
        res = float(m.group(1)) if m else math.nan
        found.files.setdefault(bid, []).append((str(p), res))
    for mtd in sorted(folder.rglob("MTD_MSIL2A.xml")) + sorted(folder.rglob("MTD_MSIL1C.xml")):
        _parse_s2_mtd(mtd, found)
        break
    for item in sorted(folder.glob("*.json")):
        try:
            _parse_stac_item(item, found, base=folder)
        except (ValueError, KeyError, json.JSONDecodeError):
            continue
    if found.date is None:
        found.date = _date_from_text(folder.name)
    if found.date is None:  # old PDGS tile names carry the production date; the orbit gives the acquisition
        found.date = _date_from_old_s2_names([Path(p).name for lst in found.files.values() for p, _ in lst],
                                             found)
    if found.date is None:  # e.g. OSCD: imgs_1/S2A_..._20161209_B02.tif
        dates = {d for d in (_date_from_text(Path(p).name) for lst in found.files.values() for p, _ in lst) if d}
        if len(dates) == 1:
            found.date = dates.pop()
    return found


def _parse_s2_mtd(path: Path, found: _Found) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputDataError(f"{path}: product metadata is not valid XML ({exc})") from exc
    level = "L2A" if "L2A" in path.name else "L1C"
    found.sensor = "sentinel2_l2a" if level == "L2A" else "sentinel2_l1c"
    found.evidence.append(f"product metadata {path.name}: Sentinel-2 MSI Level-{level[1:]}")
    band_ids = {}
    for el in root.iter():
        tag = el.tag.split("}")[-1]
        if tag == "PRODUCT_START_TIME" and el.text:
            found.date = _date_from_text(el.text.replace("-", "")[:8]) or _date_from_text(el.text)
        elif tag == "PROCESSING_BASELINE" and el.text:
            found.metadata["processing_baseline"] = el.text.strip()
        elif tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
            found.metadata["quantification"] = float(el.text)
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            found.offsets[el.attrib.get("band_id", "")] = float(el.text)
        elif tag == "Spectral_Information" and "bandId" in el.attrib:
            band_ids[el.attrib["bandId"]] = el.attrib.get("physicalBand", "")
        elif tag == "SPACECRAFT_NAME" and el.text:
            found.info["platform"] = el.text.strip()
    # offsets are given per numeric band id (0 = B01, ...); map to names
    named = {}
    for k, v in found.offsets.items():
        name = band_ids.get(k) or _S2_BAND_ORDER.get(k)
        if name:
            named[_norm_s2(name)] = v
    found.offsets = named


_S2_BAND_ORDER = {str(i): b for i, b in enumerate(
    ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"])}


def _norm_s2(name: str) -> str:
    name = name.strip().upper()
    m = re.fullmatch(r"B(\d)", name)
    return f"B0{m.group(1)}" if m else name


def _parse_stac_item(path: Path, found: _Found, base: Path) -> None:
    item = json.loads(path.read_text())
    if item.get("type") != "Feature" or "assets" not in item:
        raise ValueError("not a STAC item")
    props = item.get("properties", {})
    if props.get("datetime"):
        found.date = _date_from_text(props["datetime"][:10])
    platform = str(props.get("platform", "")).lower()
    pid = str(item.get("id", ""))
    ptype = str(props.get("s2:product_type", "") or props.get("processing:level", "")).upper()
    if "sentinel-2" in platform or pid.startswith("S2"):
        l1c = "L1C" in pid.upper() or ptype in ("S2MSI1C", "L1C")
        found.sensor = "sentinel2_l1c" if l1c else "sentinel2_l2a"
        why = f"s2:product_type {ptype}" if ptype else f"item ID {pid}"
        if not l1c and not ("L2A" in pid.upper() or ptype in ("S2MSI2A", "L2A")):
            found.assumptions.append(
                f"STAC item {path.name} names no processing level: assumed Level-2A; pass sensor='sentinel2_l1c' "
                "if the values are top-of-atmosphere")
        else:
            found.evidence.append(f"STAC item {path.name}: platform {platform or '?'}, {why}")
        if platform:
            found.info["platform"] = platform
    elif "landsat" in platform:
        found.sensor = "landsat_oli_c2l2"
        found.evidence.append(f"STAC item {path.name}: platform {platform}")
    if "s2:processing_baseline" in props:
        found.metadata["processing_baseline"] = str(props["s2:processing_baseline"])
    if props.get("earthsearch:boa_offset_applied") is True:
        found.metadata["boa_offset_applied"] = True
    for key, asset in item["assets"].items():
        href = str(asset.get("href", ""))
        if href.startswith(("http://", "https://", "s3://")):
            local = base / Path(href).name
            if not local.exists():
                continue
            href = str(local)
        elif not os.path.isabs(href):
            href = str((path.parent / href).resolve())
        if not Path(href).exists() or Path(href).suffix.lower() not in RASTER_SUFFIXES:
            continue
        bid = _band_id_from_name(Path(key).stem) or _band_id_from_name(Path(href).stem)
        if bid is None:
            for b in asset.get("eo:bands", []) or []:
                if b.get("common_name"):
                    bid = b["common_name"]
        if bid is None:
            continue
        res = asset.get("gsd") or math.nan
        lst = found.files.setdefault(bid, [])
        if all(p != href for p, _ in lst):
            lst.append((href, float(res)))
        if "raster:bands" in asset:
            rb = asset["raster:bands"][0]
            if "offset" in rb and rb.get("scale"):
                found.add[bid] = float(rb["offset"])
                found.scales[bid] = float(rb["scale"])


def _baseline_offset(found: _Found) -> bool:
    if found.metadata.get("boa_offset_applied"):
        return False
    pb = found.metadata.get("processing_baseline")
    try:
        return float(str(pb)) >= S2_OFFSET_BASELINE
    except (TypeError, ValueError):
        return False


_L1C_TOKEN = re.compile(r"MSIL1C|S2MSI1C|(?<![A-Z0-9])L1C(?![A-Z0-9])")
_L2A_TOKEN = re.compile(r"MSIL2A|S2MSI2A|(?<![A-Z0-9])L2A(?![A-Z0-9])")


def _s2_level(found: _Found, source: str, user: SensorProfile | None, text: str | None = None) -> str:
    """``"sentinel2_l1c"`` or ``"sentinel2_l2a"``, recording why (or what was assumed) in ``found``.

    ``text`` is what to look for level tokens in (default: the names of the
    source, its folder and its band files).
    """
    if text is None:
        names = [source] + [p for lst in found.files.values() for p, _ in lst]
        text = " ".join(Path(n).name.upper() for n in names) + " " + str(Path(source).parent).upper()
    text = text.upper()
    ids = set(found.files)
    hint = None
    if found.sensor in ("sentinel2_l1c", "sentinel2_l2a"):
        hint = found.sensor  # evidence already recorded by the MTD / STAC parser
    elif _L1C_TOKEN.search(text) and not _L2A_TOKEN.search(text):
        hint = "sentinel2_l1c"
        tok = _L1C_TOKEN.search(text).group(0)  # type: ignore[union-attr]
        found.evidence.append(f"level L1C from the file names ({tok!r})")
    elif _L2A_TOKEN.search(text) and not _L1C_TOKEN.search(text):
        hint = "sentinel2_l2a"
        tok = _L2A_TOKEN.search(text).group(0)  # type: ignore[union-attr]
        found.evidence.append(f"level L2A from the file names ({tok!r})")
    elif "SCL" in ids or ids & {"AOT", "WVP", "TCI"}:
        hint = "sentinel2_l2a"
        found.evidence.append("level L2A: the scene classification band (SCL) is present, which only L2A has")
    elif "B10" in ids:
        hint = "sentinel2_l1c"
        found.evidence.append("level L1C: band B10 (cirrus) is present, and Level-2A products have no B10")
    if user is not None and user.name.startswith("sentinel2"):
        if hint is not None and hint != user.name:
            found.assumptions.append(
                f"sensor={user.name!r} was given, but the product looks like {hint} ({found.evidence[-1]}); "
                f"read as {user.name} as asked")
        found.evidence.append(f"sensor={user.name!r} given")
        return user.name
    if hint is None:
        found.assumptions.append(
            "Sentinel-2 processing level not stated by metadata, file names or band set: assumed Level-2A "
            "(surface reflectance); pass sensor='sentinel2_l1c' if the values are top-of-atmosphere")
        return "sentinel2_l2a"
    return hint


def _scene_from_band_files(paths: list[Path], opts: _Options) -> Scene:
    from ecopatch.io import landsat

    found = _Found()
    for p in paths:
        bid = _band_id_from_name(p.stem)
        if bid is None:
            raise InputDataError(
                f"{p}: cannot tell which band this file is from its name; name files "
                "like 'B04.tif' or pass one multi-band file with bands={...}"
            )
        found.files.setdefault(bid, []).append((str(p), math.nan))
    found.date = _date_from_text(" ".join(p.name for p in paths))
    if any(landsat.product_id_in(p.name) for p in paths):
        return landsat.open_landsat_files(paths, opts)
    return _scene_from_found(found, opts, str(paths[0]) if paths else "")


def _scene_from_found(found: _Found, opts: _Options, source: str) -> Scene:
    """A scene from band files identified by band ID (a folder, a list of files, a STAC item, a Landsat MTL)."""
    prof = opts.prof
    ids = set(found.files)
    s2_like = any(re.fullmatch(r"B\d\d|B8A", b) for b in ids)
    if prof is not None and found.sensor == prof.name:
        pass  # identified by the caller (a Landsat MTL, an HLS granule, a Gaofen package)
    elif found.sensor and prof is None:
        prof = get_sensor(found.sensor)
        if found.sensor.startswith("sentinel2"):
            prof = get_sensor(_s2_level(found, source, None))
    elif prof is None and s2_like:
        found.evidence.insert(0, "Sentinel-2 band IDs (B02, B03, ...) in the file names")
        prof = get_sensor(_s2_level(found, source, None))
    elif prof is not None and prof.name.startswith("sentinel2"):
        prof = get_sensor(_s2_level(found, source, prof))
    elif prof is not None:
        found.evidence.append(f"sensor={prof.name!r} given")
    elif any(b.startswith("SR_B") for b in ids) or "QA_PIXEL" in ids:
        prof = get_sensor("landsat_oli_c2l2")
        found.assumptions.append(
            "Landsat Level-2 band files without an MTL or product ID: assumed Landsat 8-9 OLI (SR_B4 red, "
            "SR_B5 NIR); for Landsat 4-5 TM or 7 ETM+ (SR_B3 red, SR_B4 NIR) pass sensor='landsat_etm_c2l2'")
    else:
        raise InputDataError(
            f"{source}: cannot tell which sensor made these files ({sorted(found.files)}); "
            "pass sensor= (e.g. 'sentinel2_l2a', 'landsat_oli_c2l2')"
        )
    if prof.calibration == "metadata" and not found.scales and opts.scale is None:
        raise InputDataError(
            f"{source}: {prof.description} needs calibration from the product's metadata, and none was found; "
            "open the product folder with its metadata file, or pass scale= and offset="
        )
    want: dict[str, str] = {}
    if opts.bands:
        for common, bid in opts.bands.items():
            want[common] = str(bid).upper() if not isinstance(bid, int) else str(bid)
        found.evidence.append("band roles from bands= given")
    else:
        for bid in sorted(found.files):
            c = _common_from_id(prof, bid)
            if c is not None and c not in want:
                want[c] = bid
    refs: list[tuple[str, BandRef]] = []
    apply_offset = _baseline_offset(found)
    used: set[str] = set()
    for common in COMMON_BANDS:
        if common not in want:
            continue
        bid = want[common]
        cand = found.files.get(bid) or found.files.get(_norm_s2(bid))
        if not cand:
            raise MissingBandError(
                f"{source}: band {bid!r} (for {common!r}) not found; it has {sorted(found.files)}"
            )
        used.add(bid if bid in found.files else _norm_s2(bid))
        path, _ = _finest(cand)
        g, ds = _grid_of(path)
        dn_off = found.offsets.get(bid, -1000.0 if apply_offset and prof.name.startswith("sentinel2") else 0.0)
        if not apply_offset and prof.name.startswith("sentinel2"):
            dn_off = 0.0
        sc = found.scales.get(bid, prof.scale)
        q = found.metadata.get("quantification")
        if q and prof.name.startswith("sentinel2"):
            sc = 1.0 / float(q)
        off = found.add.get(bid, prof.offset + dn_off * sc)
        refs.append((common, BandRef(
            path=path, index=1, grid=g,
            scale=float(opts.scale if opts.scale is not None else sc),
            offset=float(opts.offset if opts.offset is not None else off),
            nodata=opts.nodata if opts.nodata is not None else (ds.nodata if ds.nodata is not None else prof.nodata),
            dtype=ds.dtypes[0], band_id=bid,
        )))
    if not refs:
        raise MissingBandError(
            f"{source}: none of the files is a band of {prof.name} ({sorted(found.files)}); "
            "pass bands={'red': 'B04', ...}"
        )
    odd = [(c, r) for c, r in refs if r.grid.crs != refs[0][1].grid.crs]
    if odd:
        c0, r0 = refs[0]
        raise InputDataError(
            f"{source}: its band files are in different CRSs ({r0.band_id or c0}: {r0.grid.crs}, "
            + ", ".join(f"{r.band_id or c}: {r.grid.crs}" for c, r in odd[:4])
            + "); bands of one product must share a grid. The product was assembled from different tiles or "
            "reprojected band by band: download it again, or warp every band to one CRS (gdalwarp -t_srs)"
        )
    grid = min((r.grid for _, r in refs), key=lambda g: g.res[0] * g.res[1])
    mask = None
    mask_note = found.mask_note
    if prof.mask_band and prof.mask_band in found.files:
        mpath, _ = _finest(found.files[prof.mask_band])
        mg, _ = _grid_of(mpath)
        mask = MaskRef(mpath, 1, mg, prof.mask or "")
        used.add(prof.mask_band)
    elif prof.mask_band and not mask_note:
        mask_note = (f"{prof.description} product without its {prof.mask_band} band: no cloud mask "
                     f"(put the {prof.mask_band} file beside the bands)")
    elif not prof.mask_band and not mask_note:
        mask_note = f"{prof.description}: the product carries no per-pixel cloud mask"
    unused = list(found.unused)
    for bid in sorted(found.files):
        if bid not in used and bid not in ("TCI", "AOT", "WVP"):
            unused.append(f"{bid} ({_S2_UNUSED_WORDS[bid]})" if bid in _S2_UNUSED_WORDS and
                          prof.name.startswith("sentinel2") else bid)
    meta = dict(found.metadata)
    meta["band_offsets_dn"] = {k: v for k, v in found.offsets.items()}
    info = ProductInfo(
        product=found.info.get("product") or prof.description,
        platform=found.info.get("platform", ""),
        instrument=found.info.get("instrument", "MSI" if prof.name.startswith("sentinel2") else ""),
        level=found.info.get("level") or prof.level,
        quantity=found.info.get("quantity") or prof.quantity,
        evidence=tuple(found.evidence), assumptions=tuple(found.assumptions), unused_bands=tuple(unused),
        mask_note="" if mask is not None else mask_note, processing=tuple(found.processing),
    )
    return Scene(prof, tuple(refs), grid, found.date, mask, source, meta, product=info)


def _finest(cands: list[tuple[str, float]]) -> tuple[str, float]:
    def key(c: tuple[str, float]) -> float:
        return c[1] if not math.isnan(c[1]) else 1e9

    return sorted(cands, key=key)[0]


# ---------------------------------------------------------------------------
# One multi-band file
# ---------------------------------------------------------------------------
_NAIP_NAME = re.compile(r"^m_\d{7}_(ne|nw|se|sw)_\d{1,2}_\d{1,3}_(\d{8})", re.IGNORECASE)
_GF_NAME = re.compile(r"(?<![A-Z0-9])GF([1-7])[A-D]?[_-]?(WFV\d?|PMS\d?|PMI|MUX|WFI)?", re.IGNORECASE)


@dataclass
class _FileId:
    """How a single file was identified."""

    prof: SensorProfile | None = None
    product: str = ""
    platform: str = ""
    instrument: str = ""
    level: str = ""
    quantity: str = ""
    evidence: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    positional: bool = False  # band roles from the profile's band order
    needs_scale: str = ""  # why values cannot become reflectance without scale=


def _scene_from_file(path: Path, opts: _Options) -> Scene:
    from ecopatch.io import gaofen, landsat

    spath = str(path)
    if gaofen.is_gaofen_l1a_file(path):
        return gaofen.open_gaofen(path, opts)
    grid, ds = _grid_of(spath)
    tags = {k.upper(): v for k, v in ds.tags().items()}
    descriptions = [d or "" for d in ds.descriptions]
    colorinterp = [ci.name for ci in ds.colorinterp]
    count = ds.count
    dtype = ds.dtypes[0]
    res_m = grid.res[0] * ground_unit_m(grid)
    roles = [role_from_description(d) for d in descriptions]

    fid = _FileId()
    if opts.prof is not None:
        fid.prof = opts.prof
        fid.evidence.append(f"sensor={opts.prof.name!r} given")
    else:
        _identify_file(path, tags, descriptions, roles, colorinterp, count, dtype, res_m, fid)
        if fid.prof is None and landsat.product_id_in(path.name) is None and not opts.bands:
            raise InputDataError(_unknown_file_message(path, count, dtype, descriptions, colorinterp, res_m))

    # --- band numbers for each common name -----------------------------------
    mapping: dict[str, int] = {}
    mask: MaskRef | None = None
    unused: list[str] = []
    if opts.bands:
        for common, b in opts.bands.items():
            if isinstance(b, int) or (isinstance(b, str) and b.isdigit()):
                idx = int(b)
            else:
                idx = _index_by_description(descriptions, str(b))
                if idx is None:
                    raise MissingBandError(f"{path}: no band described as {b!r} (descriptions: {descriptions})")
            if not 1 <= idx <= count:
                raise MissingBandError(
                    f"{path}: bands={{{common!r}: {idx}}} but the file has {count} band(s)"
                )
            mapping[common] = idx
        fid.evidence.append("band roles from bands= given")
        fid.assumptions = [a for a in fid.assumptions if not a.startswith("band ")]
    else:
        words = 0
        for i, (role, bid) in enumerate(roles, start=1):
            c = None
            if role in COMMON_BANDS:
                c = role
                words += 1
                if fid.prof is not None and bid and _common_from_id(fid.prof, bid) not in (None, role):
                    fid.assumptions.append(
                        f"band {i} is described {descriptions[i - 1]!r}: read as {role} from its words, though "
                        f"{bid} is {_common_from_id(fid.prof, bid)} in {fid.prof.name}")
            elif bid and fid.prof is not None:
                c = _common_from_id(fid.prof, bid)
            if c and c not in mapping:
                mapping[c] = i
            elif bid == "SCL" and fid.prof is not None and fid.prof.mask == "scl":
                mask = MaskRef(spath, i, grid, "scl")
            elif bid == "QA_PIXEL" and fid.prof is not None and fid.prof.mask == "qa_pixel":
                mask = MaskRef(spath, i, grid, "qa_pixel")
            elif bid == "FMASK" and fid.prof is not None and fid.prof.mask == "fmask":
                mask = MaskRef(spath, i, grid, "fmask")
            elif role == "alpha" or colorinterp[i - 1] == "alpha":
                continue
            else:
                unused.append(f"band {i}" + (f" ({descriptions[i - 1]})" if descriptions[i - 1] else ""))
        if mapping:
            fid.evidence.append("band roles from band descriptions" + (" (words)" if words else ""))
        elif fid.prof is not None and colorinterp[:3] == ["red", "green", "blue"] and \
                fid.prof.name in ("drone_rgb", "rgbn"):
            mapping = {"red": 1, "green": 2, "blue": 3}
            unused = []
            if fid.prof.name == "rgbn" and count >= 4:
                mapping["nir"] = 4
            for i in range(len(mapping) + 1, count + 1):
                if colorinterp[i - 1] != "alpha":
                    unused.append(f"band {i}")
        elif fid.prof is not None:
            order = fid.prof.order
            if count < len(order) and not (fid.prof.name == "drone_rgb" and count >= 3):
                raise MissingBandError(
                    f"{path}: {count} band(s) without descriptions, but {fid.prof.name} has "
                    f"{len(order)} ({list(order)}); name them with bands={{'red': 3, 'nir': 4}}"
                )
            n = min(count, len(order))
            for i in range(n):
                mapping[order[i]] = i + 1
            unused = [f"band {i}" for i in range(n + 1, count + 1) if colorinterp[i - 1] != "alpha"]
            what = ", ".join(f"{i + 1} {order[i]}" for i in range(n))
            if fid.positional:
                fid.evidence.append(f"band order of {fid.prof.name} ({what})")
            elif opts.prof is not None:
                fid.evidence.append(f"band order of the {fid.prof.name} profile ({what})")
            else:
                fid.assumptions.append(
                    f"bands are not described: assumed the {fid.prof.name} order ({what}); pass bands={{...}} "
                    "to say otherwise")
            if unused:
                fid.assumptions.append(
                    f"{count} bands but {fid.prof.name} has {len(order)}: {', '.join(unused)} not used; pass "
                    "bands={...} if one of them is needed")
    for i, ci in enumerate(colorinterp, start=1):
        if ci == "alpha" and i not in mapping.values():
            mask = MaskRef(spath, i, grid, "alpha")
            fid.evidence.append(f"band {i} is an alpha band: used as the validity mask")

    prof = fid.prof
    if prof is None:
        # bands= named the roles of a file no profile describes
        if opts.scale is None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise InputDataError(
                f"{path}: bands= says which band is which, but not how these {dtype} values become "
                "reflectance: pass sensor= (e.g. 'gf1_wfv' for reflectance × 10000), or scale= and "
                "offset= (e.g. scale=1/255 for 8-bit DN)"
            ) from None
        prof = SensorProfile(
            "generic", "bands described by the user", {k: str(v) for k, v in mapping.items()},
            scale=float(opts.scale) if opts.scale is not None else 1.0, offset=float(opts.offset or 0.0),
            quantity="as scaled by the user" if opts.scale is not None else "as stored (float)",
        )
        fid.product = fid.product or f"{count}-band {dtype} image, bands named by the user"
    if fid.needs_scale and opts.scale is None:
        raise InputDataError(f"{path}: {fid.needs_scale}")

    # --- scale and offset --------------------------------------------------
    pb = tags.get("PROCESSING_BASELINE")
    meta: dict[str, Any] = {"tags": dict(ds.tags())}
    if pb:
        meta["processing_baseline"] = pb
    found_date = None
    for key in ("ACQUISITION_DATE", "DATE_ACQUIRED", "SENSING_TIME", "PRODUCT_START_TIME", "DATETIME",
                "ACQUISITION", "TIFFTAG_DATETIME"):
        if key in tags:
            found_date = _date_from_text(tags[key].replace(":", "-", 2)) or _date_from_text(tags[key])
            if found_date:
                break
    if found_date is None:
        found_date = _date_from_text(path.name)

    refs = []
    scaled_float = False
    for common in COMMON_BANDS:
        if common not in mapping:
            continue
        i = mapping[common]
        bid = roles[i - 1][1] or descriptions[i - 1] or str(i)
        sc, off = prof.scale, prof.offset
        if prof.name.startswith("sentinel2"):
            dn_off = tags.get(f"BOA_ADD_OFFSET_{_norm_s2(bid)}") or tags.get("BOA_ADD_OFFSET") \
                or tags.get("RADIO_ADD_OFFSET")
            if dn_off is not None:
                off = float(dn_off) * sc
            elif pb is not None:
                try:
                    off = -1000 * sc if float(pb) >= S2_OFFSET_BASELINE else 0.0
                except ValueError:
                    pass
        if dtype in ("float32", "float64") and prof.name not in ("drone_ms",) and opts.scale is None:
            # float files are reflectance already, unless the values say otherwise
            sc, off = _float_scale(ds, i, prof)
            scaled_float = True
        nd = ds.nodatavals[i - 1]
        refs.append((common, BandRef(
            path=spath, index=i, grid=grid,
            scale=float(opts.scale if opts.scale is not None else sc),
            offset=float(opts.offset if opts.offset is not None else off),
            nodata=opts.nodata if opts.nodata is not None else (nd if nd is not None else prof.nodata),
            dtype=ds.dtypes[i - 1], band_id=bid,
        )))
    if not refs:
        raise MissingBandError(f"{path}: no usable band found; pass bands={{'red': 3, 'nir': 4}}")
    if scaled_float:
        k = refs[0][1].scale
        fid.evidence.append("float values used as reflectance" if k == 1.0 else
                            f"float values look like reflectance × {1 / k:g}: scaled by {k:g}")
    if opts.scale is not None or opts.offset is not None:
        fid.evidence.append(f"scale/offset given: {opts.scale} / {opts.offset}")
    mask_note = ""
    if mask is None and prof.name.startswith("drone"):
        mask_note = "a drone mosaic, flown below the clouds: no cloud mask needed" + (
            "; a black (0, 0, 0) collar counts as no data" if prof.name == "drone_rgb" else "")
    elif mask is None:
        mask_note = (f"{prof.description}: a single image file without a cloud band"
                     if prof.mask is None else
                     f"{prof.description}: its {prof.mask_band} band is not in this file")
    info = ProductInfo(
        product=fid.product or prof.description, platform=fid.platform, instrument=fid.instrument,
        level=fid.level or prof.level, quantity=fid.quantity or prof.quantity,
        evidence=tuple(dict.fromkeys(fid.evidence)), assumptions=tuple(dict.fromkeys(fid.assumptions)),
        unused_bands=tuple(unused), mask_note=mask_note,
    )
    return Scene(prof, tuple(refs), grid, found_date, mask, spath, meta, product=info)


def _identify_file(path: Path, tags: Mapping[str, str], descriptions: list[str],
                   roles: list[tuple[str | None, str | None]], colorinterp: list[str], count: int, dtype: str,
                   res_m: float, fid: _FileId) -> None:
    """Fill ``fid`` with the product a single file is, from its tags, descriptions, colours and name."""
    from ecopatch.io import landsat

    name = path.name
    upper_desc = [d.upper().strip() for d in descriptions]
    ids = {bid for _, bid in roles if bid}
    tag_text = " ".join(f"{k}={v}" for k, v in tags.items())
    words = " ".join([name, tag_text]).upper()
    integer = np.issubdtype(np.dtype(dtype), np.integer)

    # Sentinel-2: its own band IDs (zero-padded, B8A, B11/B12, SCL, QA60) or its name in the tags
    s2_ids = {d for d in upper_desc if re.fullmatch(r"B0[1-9]|B8A|B1[0-2]", d)}
    unpadded = {_norm_s2(d) for d in upper_desc if re.fullmatch(r"B[1-9]|B1[0-2]|B8A", d)}
    if {"SCL", "QA60"} & set(upper_desc) and unpadded:
        s2_ids |= unpadded
    if s2_ids or "SPACECRAFT_NAME" in tags or re.search(r"SENTINEL-?2|(?<![A-Z0-9])S2[AB]?_", words):
        found = _Found(files={d: [] for d in s2_ids | unpadded})
        why = f"Sentinel-2 band IDs in the band descriptions ({', '.join(sorted(s2_ids))})" if s2_ids \
            else "Sentinel-2 named in the file name or tags"
        found.evidence.append(why)
        lvl_tags = " ".join(str(tags.get(k, "")) for k in ("PROCESSING_LEVEL", "PRODUCT_TYPE")).upper()
        if "1C" in lvl_tags or "2A" in lvl_tags:
            level = "sentinel2_l1c" if "1C" in lvl_tags else "sentinel2_l2a"
            found.sensor = level
            found.evidence.append(f"level from the tags ({lvl_tags.strip()})")
        level = _s2_level(found, name, None, text=f"{name} {tag_text}") if not found.sensor else found.sensor
        fid.prof = get_sensor(level)
        fid.evidence += found.evidence
        fid.assumptions += found.assumptions
        fid.instrument = "MSI"
        if not s2_ids and not any(r in COMMON_BANDS for r, _ in roles):
            fid.assumptions.append(f"bands are not described: assumed the {level} order")
        return

    # Landsat: SR_/ST_/QA_PIXEL descriptions, a product or scene ID, or "Landsat N" in the tags
    lid = landsat.identify_text(name + " " + tag_text, ids)
    if lid is not None:
        landsat.fill_file_id(fid, lid, ids, integer, dtype, count, roles)
        return

    # B1 ... B12 without a prefix and nothing else: Sentinel-2 numbering (as Earth Engine exports name
    # its bands), said as an assumption because Landsat Level-1 exports use B1 ... B7 too
    if unpadded and not any(r in COMMON_BANDS for r, _ in roles):
        found = _Found(files={d: [] for d in unpadded})
        level = _s2_level(found, name, None, text=f"{name} {tag_text}")
        fid.prof = get_sensor(level)
        fid.instrument = "MSI"
        fid.evidence += found.evidence
        fid.assumptions += found.assumptions
        fid.assumptions.append(
            f"band descriptions {', '.join(sorted(unpadded))} without a product name: assumed Sentinel-2 numbering "
            "(B4 red, B8 NIR); for Landsat (TM/ETM+: B3 red, B4 NIR; OLI: B4 red, B5 NIR) pass sensor= "
            "(e.g. 'landsat_etm_c2l1' with scale=)")
        return

    # Gaofen by name (an orthorectified product; L1A packages are handled before)
    m = _GF_NAME.search(name)
    if m and (m.group(2) or count in (4, 8)):
        from ecopatch.io import gaofen

        gaofen.fill_file_id(fid, path, m.group(1), (m.group(2) or "").upper(), count, dtype)
        return

    # NAIP quarter-quads: m_<quad>_<quarter>_<zone>_<res>_<date>
    if _NAIP_NAME.match(name) and integer:
        fid.prof = get_sensor("naip")
        fid.product = "USDA NAIP aerial image (8-bit, relative brightness)"
        fid.platform = "aircraft (USDA NAIP)"
        fid.evidence.append(f"file name {path.stem} follows the NAIP quarter-quad naming (m_<quad>_<qq>_...)")
        if count >= 4:
            fid.positional = True
        else:
            fid.prof = get_sensor("drone_rgb")
            fid.assumptions.append("3-band NAIP: assumed natural colour (red, green, blue); older colour-infrared "
                                   "NAIP is NIR, red, green: pass bands={'nir': 1, 'red': 2, 'green': 3}")
        return

    named_roles = [r for r, _ in roles if r in COMMON_BANDS]
    # colour interpretation: RGB (YCbCr JPEG tiles read as RGB too)
    if colorinterp[:3] == ["red", "green", "blue"] and integer and not named_roles:
        rest = colorinterp[3:]
        extra = [i for i, c in enumerate(rest, start=4) if c != "alpha"]
        if not extra:
            fid.prof = get_sensor("drone_rgb")
            fid.product = "RGB image (8-bit, relative brightness)" if res_m > 2 else fid.prof.description
            fid.evidence.append(f"colour interpretation red, green, blue; pixel {res_m:.3g} m")
            return
        fid.prof = get_sensor("rgbn")
        fid.evidence.append("colour interpretation red, green, blue for bands 1-3")
        fid.assumptions.append(
            f"band 4 has colour interpretation {rest[0]!r}: assumed near-infrared (RGB+NIR); pass "
            "bands={'red': 1, 'green': 2, 'blue': 3} if it is not NIR")
        return

    if named_roles:
        if not integer:
            fid.prof = get_sensor("drone_ms") if set(named_roles) <= set(get_sensor("drone_ms").bands) else None
            if fid.prof is None:
                fid.prof = SensorProfile("generic", "bands named by their descriptions (float)",
                                         {r: r for r in named_roles}, scale=1.0,
                                         quantity="as stored (float)")
            fid.evidence.append("band roles in the band descriptions; float values")
            return
        if dtype == "uint8" and {"red", "green", "blue"} <= set(named_roles) <= {"red", "green", "blue", "nir"}:
            fid.prof = get_sensor("rgbn" if "nir" in named_roles else "drone_rgb")
            fid.evidence.append(f"band descriptions {', '.join(d for d in descriptions if d)}; 8-bit values read as "
                                "relative brightness (DN / 255)")
            return
        fid.product = f"{count}-band {dtype} image, bands named by their descriptions"
        fid.needs_scale = (
            f"the band descriptions say which band is which ({', '.join(d for d in descriptions if d)}), but not "
            f"how these {dtype} values become reflectance: pass scale= and offset= (e.g. scale=1/255 for 8-bit "
            "DN as relative brightness), or sensor= if it is a known product")
        fid.prof = SensorProfile("generic", "bands named by their descriptions", {r: r for r in named_roles},
                                 scale=1.0, quantity="as scaled by the user")
        return

    if dtype == "uint8" and count == 3:
        fid.prof = get_sensor("drone_rgb")
        fid.assumptions.append(
            f"3 unlabelled 8-bit bands (pixel {res_m:.3g} m): assumed red, green, blue (relative brightness); "
            "pass bands={...} and scale= if they are not")
        return
    # nothing to go on: the caller raises _unknown_file_message


def _unknown_file_message(path: Path, count: int, dtype: str, descriptions: list[str], colorinterp: list[str],
                          res_m: float) -> str:
    four = (
        " Four 8-bit bands are read in very different orders: red, green, blue, NIR (NAIP, many aerial "
        "cameras), blue, green, red, NIR (Gaofen, Planet), SWIR1, NIR, red, green (Landsat false-colour "
        "composites)."
    ) if count == 4 else ""
    return (
        f"{path}: cannot tell which sensor made this {count}-band {dtype} file or which band is which "
        f"(no band descriptions, colour interpretation {colorinterp}, pixel {res_m:.3g} m, no known product "
        f"name).{four} Name the bands, e.g. bands={{'red': 3, 'green': 2, 'blue': 1, 'nir': 4}} with scale=1/255 "
        "for 8-bit values (CLI: --before-bands red=3,green=2,blue=1,nir=4 --scale 0.00392), or pass sensor= "
        "(e.g. 'naip', 'gf2_pms', 'sentinel2_l2a')"
    )


def _float_scale(ds: Any, index: int, prof: SensorProfile) -> tuple[float, float]:
    """Float bands: reflectance as is, unless a sample shows ×10000 values."""
    try:
        sample = ds.read(index, out_shape=(min(ds.height, 64), min(ds.width, 64)))
    except Exception:  # noqa: BLE001 - sampling is advisory only
        return 1.0, 0.0
    finite = sample[np.isfinite(sample)]
    if finite.size and np.nanpercentile(finite, 50) > 5:
        return prof.scale if prof.scale != 1 else 1e-4, 0.0
    return 1.0, 0.0


def _index_by_description(descriptions: list[str], name: str) -> int | None:
    for i, d in enumerate(descriptions, start=1):
        if d.strip().upper() == name.strip().upper():
            return i
    return None


def _sample_values(path: str, index: int = 1, size: int = 256) -> np.ndarray:
    """An overview-sized read of one band, for checks on the value range."""
    ds = _dataset(path)
    try:
        a = ds.read(index, out_shape=(min(ds.height, size), min(ds.width, size)))
    except Exception:  # noqa: BLE001 - advisory only
        return np.zeros(0)
    a = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a.ravel()
    nd = ds.nodatavals[index - 1]
    return a[a != nd] if nd is not None else a
