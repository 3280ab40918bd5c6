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
:class:`~ecopatch.raster.source.ProductInfo`.  Where only thin evidence is left
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
from typing import Any, cast

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
from ecopatch.raster.fileread import grid_of
from ecopatch.raster.scene import BandRef, MaskRef, Scene
from ecopatch.raster.sensors import COMMON_BANDS, SensorProfile, get_sensor
from ecopatch.raster.source import MaskProvider, ProductInfo

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
    """Absolute calibration coefficients of one Gaofen sensor (see :mod:`ecopatch.raster.gaofen`).

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
    from ecopatch.raster import gaofen, landsat

    if haze not in ("auto", "dos", "none"):
        raise ConfigError(f"haze={haze!r}; use 'auto', 'dos' or 'none'")
    if bands is not None:
        _check_band_names(bands)
    prof = get_sensor(sensor) if sensor is not None else None
    opts = ProductOptions(prof, dict(bands) if bands else None, scale, offset, nodata)
    if isinstance(source, (list, tuple)):
        paths = [Path(p) for p in source]
        for p in paths:
            _check_exists(p)
        scene = _scene_from_band_files(paths, opts)
    else:
        path = Path(cast("str | os.PathLike[str]", source))  # not a list or tuple: one path
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
            scene = scene_from_found(found, opts, str(path))
        elif path.suffix.lower() == ".json":
            found = FoundFiles()
            try:
                _parse_stac_item(path, found, base=path.parent)
            except (ValueError, KeyError, json.JSONDecodeError) as exc:
                raise InputDataError(f"{path}: not a STAC item with local assets ({exc})") from exc
            if not found.files:
                raise InputDataError(f"{path}: the STAC item has no local raster assets")
            scene = scene_from_found(found, opts, str(path))
        elif landsat.is_mtl_file(path):
            scene = landsat.open_landsat(path.parent, opts, mtl=path)
        else:
            from ecopatch.raster.singlefile import scene_from_file

            scene = scene_from_file(path, opts)
    return _finish(scene, source, date, cloud_buffer_m, haze, cloud_mask, offset)


@dataclass(frozen=True)
class ProductOptions:
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
        ``role`` is a common band name (:data:`ecopatch.raster.sensors.COMMON_BANDS`),
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


def date_from_text(text: str) -> _dt.date | None:
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


def _date_from_old_s2_names(names: Sequence[str], found: FoundFiles) -> _dt.date | None:
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
    made_date = date_from_text(made)
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
    d = date_from_text(str(value))
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


def common_from_id(sensor: SensorProfile, band_id: str) -> str | None:
    c = sensor.common_name(band_id)
    if c is None and band_id.lower() in COMMON_BANDS:
        return band_id.lower()
    if c is None and re.fullmatch(r"B0\d", band_id):
        c = sensor.common_name(band_id.replace("B0", "B"))
    return c


@dataclass
class FoundFiles:
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


def _scan_folder(folder: Path) -> FoundFiles:
    found = FoundFiles()
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
        found.date = date_from_text(folder.name)
    if found.date is None:  # old PDGS tile names carry the production date; the orbit gives the acquisition
        found.date = _date_from_old_s2_names([Path(p).name for lst in found.files.values() for p, _ in lst],
                                             found)
    if found.date is None:  # e.g. OSCD: imgs_1/S2A_..._20161209_B02.tif
        dates = {d for d in (date_from_text(Path(p).name) for lst in found.files.values() for p, _ in lst) if d}
        if len(dates) == 1:
            found.date = dates.pop()
    return found


def _parse_s2_mtd(path: Path, found: FoundFiles) -> None:
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
            found.date = date_from_text(el.text.replace("-", "")[:8]) or date_from_text(el.text)
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
            named[norm_s2(name)] = v
    found.offsets = named


_S2_BAND_ORDER = {str(i): b for i, b in enumerate(
    ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"])}


def norm_s2(name: str) -> str:
    name = name.strip().upper()
    m = re.fullmatch(r"B(\d)", name)
    return f"B0{m.group(1)}" if m else name


def _parse_stac_item(path: Path, found: FoundFiles, base: Path) -> None:
    item = json.loads(path.read_text())
    if item.get("type") != "Feature" or "assets" not in item:
        raise ValueError("not a STAC item")
    props = item.get("properties", {})
    if props.get("datetime"):
        found.date = date_from_text(props["datetime"][:10])
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


def _baseline_offset(found: FoundFiles) -> bool:
    if found.metadata.get("boa_offset_applied"):
        return False
    pb = found.metadata.get("processing_baseline")
    try:
        return float(str(pb)) >= S2_OFFSET_BASELINE
    except (TypeError, ValueError):
        return False


_L1C_TOKEN = re.compile(r"MSIL1C|S2MSI1C|(?<![A-Z0-9])L1C(?![A-Z0-9])")
_L2A_TOKEN = re.compile(r"MSIL2A|S2MSI2A|(?<![A-Z0-9])L2A(?![A-Z0-9])")


def s2_level(found: FoundFiles, source: str, user: SensorProfile | None, text: str | None = None) -> str:
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


def _scene_from_band_files(paths: list[Path], opts: ProductOptions) -> Scene:
    from ecopatch.raster import landsat

    found = FoundFiles()
    for p in paths:
        bid = _band_id_from_name(p.stem)
        if bid is None:
            raise InputDataError(
                f"{p}: cannot tell which band this file is from its name; name files "
                "like 'B04.tif' or pass one multi-band file with bands={...}"
            )
        found.files.setdefault(bid, []).append((str(p), math.nan))
    found.date = date_from_text(" ".join(p.name for p in paths))
    if any(landsat.product_id_in(p.name) for p in paths):
        return landsat.open_landsat_files(paths, opts)
    return scene_from_found(found, opts, str(paths[0]) if paths else "")


def scene_from_found(found: FoundFiles, opts: ProductOptions, source: str) -> Scene:
    """A scene from band files identified by band ID (a folder, a list of files, a STAC item, a Landsat MTL)."""
    prof = opts.prof
    ids = set(found.files)
    s2_like = any(re.fullmatch(r"B\d\d|B8A", b) for b in ids)
    if prof is not None and found.sensor == prof.name:
        pass  # identified by the caller (a Landsat MTL, an HLS granule, a Gaofen package)
    elif found.sensor and prof is None:
        prof = get_sensor(found.sensor)
        if found.sensor.startswith("sentinel2"):
            prof = get_sensor(s2_level(found, source, None))
    elif prof is None and s2_like:
        found.evidence.insert(0, "Sentinel-2 band IDs (B02, B03, ...) in the file names")
        prof = get_sensor(s2_level(found, source, None))
    elif prof is not None and prof.name.startswith("sentinel2"):
        prof = get_sensor(s2_level(found, source, prof))
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
            c = common_from_id(prof, bid)
            if c is not None and c not in want:
                want[c] = bid
    refs: list[tuple[str, BandRef]] = []
    apply_offset = _baseline_offset(found)
    used: set[str] = set()
    for common in COMMON_BANDS:
        if common not in want:
            continue
        bid = want[common]
        cand = found.files.get(bid) or found.files.get(norm_s2(bid))
        if not cand:
            raise MissingBandError(
                f"{source}: band {bid!r} (for {common!r}) not found; it has {sorted(found.files)}"
            )
        used.add(bid if bid in found.files else norm_s2(bid))
        path, _ = _finest(cand)
        g, ds = grid_of(path)
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
        mg, _ = grid_of(mpath)
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
