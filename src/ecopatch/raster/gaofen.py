"""Gaofen GF-1/GF-6 WFV and GF-1/GF-2/GF-6 PMS Level-1A packages, as bureaus receive them.

A CRESDA Level-1A delivery is a ``.tar.gz`` (or the folder it unpacks to)
named like ``GF2_PMS1_E113.5_N23.0_20160324_L1A0001474917`` holding, per
image, a GeoTIFF without map georeferencing, its rational polynomial
coefficients (``.rpb``), its metadata (``.xml``) and quick-looks (``.jpg``):
``...-MSS1.tiff`` (multispectral) and ``...-PAN1.tiff`` (panchromatic) for
PMS (GF-6: ``-MUX``/``-PAN``), one ``...tiff`` for WFV.  Opening one:

1. **Identification** from the XML (``SatelliteID``, ``SensorID``,
   ``ProductLevel``, ``CenterTime``, ``SolarZenith``), the file name as a
   fallback.
2. **Absolute calibration**: radiance L = gain × DN + bias with the CRESDA
   coefficients of the acquisition year (:func:`load_calibration`; the
   shipped table cites a source for each set, and users pass their own for
   years it lacks), then top-of-atmosphere reflectance
   ρ = π L d² / (ESUN cos θs), d the Earth-Sun distance (AU) on the
   acquisition date and θs the solar zenith of the XML.
3. **Orthorectification** through the RPCs with GDAL's RPC transformer, as a
   warped VRT (nothing is resampled until a window is read): onto the UTM
   zone of the scene centre at the image's ground sampling distance, with
   heights from a DEM when one is given (``RPC_DEM``), otherwise at the
   constant height of the RPC's height offset, with a warning (relief
   displacement then grows with terrain height and view angle).
4. **Pan-sharpening** of PMS (default): GDAL's weighted Brovey
   (``VRTPansharpenedDataset``) onto the panchromatic grid (GF-2 0.8 m,
   GF-1/GF-6 2 m), the weights fitted by non-negative least squares of the
   panchromatic DN on the multispectral DN over a sample, so that the
   synthetic pan matches the real one (the gains of the two cameras are
   absorbed in the weights and the sharpened bands keep multispectral DN).

The VRTs are written beside the package (or in ``workdir``); a ``.tar.gz``
is unpacked there first.  Nothing in the package is modified.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
import shutil
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ecopatch.errors import ConfigError, InputDataError, OutputError, RasterReadError
from ecopatch.raster.fileread import grid_of, open_dataset
from ecopatch.raster.products import Calibration, ProductOptions
from ecopatch.raster.scene import BandRef, Scene
from ecopatch.raster.sensors import get_sensor
from ecopatch.raster.singlefile import sample_values
from ecopatch.raster.source import ProductInfo

if TYPE_CHECKING:
    from ecopatch.raster.singlefile import FileId

__all__ = ["calibration_for", "earth_sun_distance_au", "is_gaofen_package", "load_calibration", "open_gaofen"]

log = logging.getLogger(__name__)

_PACKAGE = re.compile(r"^(GF[1-7])[A-D]?_([A-Z]{3}\d?)_.*?(\d{8})_(L\d[A-Z])(\d+)", re.IGNORECASE)
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
#: Nominal ground sampling distance (m) of the panchromatic and multispectral images.
_GSD = {("GF1", "PMS"): (2.0, 8.0), ("GF2", "PMS"): (0.8, 3.2), ("GF6", "PMS"): (2.0, 8.0),
        ("GF1", "WFV"): (None, 16.0), ("GF6", "WFV"): (None, 16.0)}
_BAND_IDS = {4: ("B1", "B2", "B3", "B4"), 8: ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8")}


# ---------------------------------------------------------------------------
# What is a Gaofen package
# ---------------------------------------------------------------------------
def _archive(path: Path) -> bool:
    n = path.name.lower()
    return path.is_file() and n.endswith(_ARCHIVE_SUFFIXES)


def is_gaofen_package(path: Path) -> bool:
    """A Gaofen L1A ``.tar.gz``, its unpacked folder, or a Gaofen image with its ``.xml`` beside it."""
    if _archive(path):
        return bool(_PACKAGE.match(path.name))
    if path.is_dir():
        return any(_PACKAGE.match(p.name) and p.suffix.lower() in (".tif", ".tiff") and p.with_suffix(".xml").exists()
                   for p in path.iterdir())
    return is_gaofen_l1a_file(path)


def is_gaofen_l1a_file(path: Path) -> bool:
    """A Gaofen image named as CRESDA names them with its metadata ``.xml`` beside it."""
    return (path.is_file() and path.suffix.lower() in (".tif", ".tiff") and bool(_PACKAGE.match(path.name))
            and path.with_suffix(".xml").exists())


# ---------------------------------------------------------------------------
# Calibration table
# ---------------------------------------------------------------------------
def load_calibration(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The calibration table: the shipped one, or a user's JSON file of the same layout.

    The layout (see ``ecopatch/data/gaofen_calibration.json``)::

        {"sources": {"mine": "where the numbers come from"},
         "coefficients": [
            {"satellite": "GF2", "sensor": "PMS1", "year": 2021, "source": "mine",
             "bands": {"PAN": [gain, bias], "B1": [gain, bias], ...},
             "esun": {"B1": 1990.0, ...}}        # optional, W m-2 um-1
         ]}

    Raises
    ------
    ConfigError
        The file cannot be read or lacks ``coefficients``.
    """
    try:
        if path is None:
            text = resources.files("ecopatch").joinpath("data/gaofen_calibration.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"calibration table {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("coefficients"), list):
        raise ConfigError(f"calibration table {path}: no \"coefficients\" list "
                          "(see ecopatch.raster.gaofen.load_calibration)")
    for i, c in enumerate(doc["coefficients"]):
        for k in ("satellite", "sensor", "year", "bands"):
            if k not in c:
                raise ConfigError(f"calibration table {path}: coefficients[{i}] lacks {k!r}")
    return doc


def calibration_for(satellite: str, sensor: str, year: int, roles: Mapping[str, str],
                    table: Mapping[str, Any] | None = None, *, table_name: str = "shipped") -> tuple[Calibration, str]:
    """The coefficients of ``satellite``/``sensor`` for ``year``, and a note when another year's were used.

    Parameters
    ----------
    satellite, sensor : str
        ``"GF2"``, ``"PMS1"`` (as in the XML).
    year : int
        Acquisition year.
    roles : mapping of str to str
        Band ID -> role (``{"B1": "blue", ...}``), to look up ESUN by role.
    table : mapping, optional
        A table from :func:`load_calibration` (default the shipped one).

    Returns
    -------
    (Calibration, str)
        The note is empty when the year's own coefficients exist.

    Raises
    ------
    InputDataError
        No coefficients at all for that sensor.
    """
    doc = dict(table) if table is not None else load_calibration()
    sat = satellite.upper().replace("-", "")
    sen = sensor.upper()
    rows = [c for c in doc["coefficients"] if str(c["satellite"]).upper().replace("-", "") == sat
            and str(c["sensor"]).upper() == sen]
    if not rows:
        known = sorted({f"{c['satellite']} {c['sensor']}" for c in doc["coefficients"]})
        raise InputDataError(
            f"no calibration coefficients for {satellite} {sensor} in the {table_name} table (it has {known}); "
            "pass calibration= with a table holding this sensor's coefficients (CRESDA publishes them yearly)")
    exact = [c for c in rows if int(c["year"]) == year]
    note = ""
    if exact:
        row = exact[0]
    else:
        earlier = [c for c in rows if int(c["year"]) < year]
        row = max(earlier, key=lambda c: int(c["year"])) if earlier else min(rows, key=lambda c: int(c["year"]))
        note = (f"no {satellite} {sensor} calibration coefficients for {year} in the {table_name} table: used "
                f"{row['year']}'s; CRESDA publishes each year's, pass calibration= with them")
    esun_table = (doc.get("esun") or {}).get("values") or load_calibration().get("esun", {}).get("values", {})
    esun: dict[str, float] = {}
    for bid, role in roles.items():
        own = (row.get("esun") or {}).get(bid)
        if own is not None:
            esun[bid] = float(own)
        elif role in esun_table:
            esun[bid] = float(esun_table[role])
    sources = doc.get("sources", {})
    src = str(row.get("source", ""))
    cal = Calibration(
        satellite=sat, sensor=sen, year=int(row["year"]),
        gain={k: float(v[0]) for k, v in row["bands"].items()},
        bias={k: float(v[1]) for k, v in row["bands"].items()},
        esun=esun, source=f"{src}: {sources.get(src, src)}" if src else table_name,
        esun_source="own table" if row.get("esun") else "nearest equivalent bands of WorldView-2 / Sentinel-2A "
        "(see the table's esun.sources)",
    )
    return cal, note


def earth_sun_distance_au(date: _dt.date) -> float:
    """Earth-Sun distance (astronomical units) on ``date``, to about 1e-4 AU.

    Examples
    --------
    >>> round(earth_sun_distance_au(_dt.date(2020, 1, 3)), 4), round(earth_sun_distance_au(_dt.date(2020, 7, 4)), 4)
    (0.9833, 1.0167)
    """
    doy = date.timetuple().tm_yday
    return 1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))


def _solar_zenith(when: _dt.datetime, lat: float, lon: float) -> float:
    """Solar zenith angle (degrees) at a UTC time and place (NOAA's low-accuracy formulas, ~0.5°)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g) - 0.006758 * math.cos(2 * g)
            + 0.000907 * math.sin(2 * g) - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    eqt = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g) - 0.014615 * math.cos(2 * g)
                    - 0.040849 * math.sin(2 * g))
    tst = hour * 60 + eqt + 4 * lon
    ha = math.radians(tst / 4 - 180)
    la = math.radians(lat)
    cosz = math.sin(la) * math.sin(decl) + math.cos(la) * math.cos(decl) * math.cos(ha)
    return math.degrees(math.acos(max(-1.0, min(1.0, cosz))))


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------
def _read_xml(path: Path) -> dict[str, str]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputDataError(f"{path}: Gaofen metadata is not readable XML ({exc})") from exc
    return {el.tag.split("}")[-1]: (el.text or "").strip() for el in root.iter() if len(el) == 0}


def _when(meta: Mapping[str, str]) -> _dt.datetime | None:
    for k in ("CenterTime", "StartTime", "ImagingTime", "ReceiveTime"):
        v = meta.get(k, "")
        m = re.match(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", v)
        if m:
            y, mo, d, h, mi, s = (int(x) for x in m.groups())
            return _dt.datetime(y, mo, d, h, mi, s)
    return None


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------
def open_gaofen(path: Path, opts: ProductOptions, *, dem: str | os.PathLike[str] | None = None,
                calibration: str | os.PathLike[str] | Calibration | None = None, pansharpen: bool = True,
                workdir: str | os.PathLike[str] | None = None) -> Scene:
    """Open a Gaofen L1A package (``.tar.gz``, folder, or one image with its ``.xml``) as a :class:`Scene`."""
    folder = _unpacked(path, workdir) if _archive(path) else (path if path.is_dir() else path.parent)
    out_dir = Path(workdir) if workdir is not None else folder
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff") and _PACKAGE.match(p.name)
                    and p.with_suffix(".xml").exists())
    if path.is_file() and not _archive(path):
        stem = re.sub(r"-(MSS|MUX|PAN)\d?$", "", path.stem, flags=re.IGNORECASE)
        images = [p for p in images if p.stem.startswith(stem)]
    pan = [p for p in images if re.search(r"-PAN\d?$", p.stem, re.IGNORECASE)]
    ms = [p for p in images if p not in pan]
    if not ms:
        raise InputDataError(f"{path}: no Gaofen multispectral image (…-MSS1.tiff, …-MUX.tiff or a WFV .tiff "
                             "with its .xml) found")
    if len(ms) > 1:
        raise InputDataError(f"{path}: several multispectral images ({[p.name for p in ms]}); open one with its "
                             "path (…-MSS1.tiff)")
    ms_path = ms[0]
    meta = _read_xml(ms_path.with_suffix(".xml"))
    m = _PACKAGE.match(ms_path.name)
    assert m is not None
    sat = (meta.get("SatelliteID") or m.group(1)).upper().replace("-", "")
    sensor = (meta.get("SensorID") or m.group(2)).upper()
    level = meta.get("ProductLevel") or m.group(4).upper()
    family = "PMS" if sensor.startswith("PMS") else "WFV" if sensor.startswith("WFV") else sensor
    evidence = [f"metadata {ms_path.with_suffix('.xml').name}: SatelliteID = {sat}, SensorID = {sensor}, "
                f"ProductLevel = {level}"]
    assumptions: list[str] = []
    processing: list[str] = []
    when = _when(meta)
    date = when.date() if when else _dt.date(int(m.group(3)[:4]), int(m.group(3)[4:6]), int(m.group(3)[6:]))
    key = {"GF1": "gf1", "GF2": "gf2", "GF6": "gf6"}.get(sat)
    if key is None or family not in ("PMS", "WFV") or (key == "gf2" and family == "WFV"):
        raise InputDataError(f"{ms_path}: {sat} {sensor} is not a Gaofen sensor ecopatch reads "
                             "(GF-1/GF-6 WFV, GF-1/GF-2/GF-6 PMS)")
    prof = opts.prof or get_sensor(f"{key}_{family.lower()}_l1a")

    ds = open_dataset(str(ms_path))
    count = ds.count
    ids = _BAND_IDS.get(count)
    if ids is None or count < len(prof.order):
        raise InputDataError(f"{ms_path}: {count} bands, but {sat} {family} multispectral images have "
                             f"{len(prof.order)}")
    roles = {bid: prof.order[i] for i, bid in enumerate(ids[:len(prof.order)])}

    # -- calibration -------------------------------------------------------
    if isinstance(calibration, Calibration):
        cal, note = calibration, ""
    else:
        table = load_calibration(calibration) if calibration is not None else None
        cal, note = calibration_for(sat, sensor, date.year, roles, table,
                                    table_name=str(calibration) if calibration is not None else "shipped")
    if note:
        assumptions.append(note)
    missing = [b for b in roles if b not in cal.gain or b not in cal.esun]
    if missing and opts.scale is None:
        raise InputDataError(f"{ms_path}: the calibration table has no gain or ESUN for band(s) {missing} of "
                             f"{sat} {sensor}; add them to your table (calibration=)")
    zen = meta.get("SolarZenith")
    lat, lon = _centre(meta)
    if zen not in (None, ""):
        theta = float(zen)
        evidence.append(f"solar zenith {theta:.2f}° from the XML")
    elif when is not None and lat is not None:
        theta = _solar_zenith(when - _dt.timedelta(hours=8), lat, lon)  # CRESDA times are Beijing time
        assumptions.append(f"no SolarZenith in the XML: computed {theta:.2f}° from CenterTime (taken as Beijing "
                           "time, UTC+8) and the scene centre")
    else:
        raise InputDataError(f"{ms_path.with_suffix('.xml')}: neither SolarZenith nor CenterTime and corner "
                             "coordinates: cannot compute top-of-atmosphere reflectance; pass scale= and offset=")
    d = earth_sun_distance_au(date)
    k = {b: math.pi * d * d / (cal.esun[b] * math.cos(math.radians(theta))) for b in roles if b in cal.esun}
    processing.append(
        f"absolute calibration {cal.satellite} {cal.sensor} {cal.year} (L = gain × DN + bias; {cal.source}); "
        f"TOA reflectance = π L d² / (ESUN cos θs), d = {d:.5f} AU, θs = {theta:.2f}°, ESUN from {cal.esun_source}")

    # -- orthorectification and pan-sharpening --------------------------------
    dem_path = str(Path(dem).resolve()) if dem is not None else None
    if dem_path is not None and not Path(dem_path).exists():
        raise RasterReadError(f"{dem_path}: no such DEM file")
    ms_grid_src = _rpcs_of(ms_path)
    height = float(ms_grid_src.height_off)
    if dem_path is None:
        assumptions.append(
            f"no DEM: orthorectified at the constant height {height:.0f} m (the RPC height offset); terrain "
            "higher or lower is displaced in proportion to its height difference and the view angle. Pass dem= "
            "(--dem) with an elevation model")
    gsd_pan, gsd_ms = _GSD[(sat, family)]
    gsd_xml = meta.get("ImageGSD")
    try:
        if gsd_xml:
            gsd_ms = float(gsd_xml)
    except ValueError:
        pass
    crs = _utm_of(lon, lat, ms_grid_src)
    ms_vrt = _ortho_vrt(ms_path, out_dir, crs, gsd_ms, dem_path, height)
    processing.append(f"orthorectified through its RPCs onto {crs} at {gsd_ms:g} m "
                      + (f"with the DEM {dem_path}" if dem_path else f"at a constant {height:.0f} m"))
    src_path = ms_vrt
    if family == "PMS" and pan and pansharpen:
        pan_path = pan[0]
        pan_gsd = gsd_pan or gsd_ms / 4
        pan_vrt = _ortho_vrt(pan_path, out_dir, crs, pan_gsd, dem_path, float(_rpcs_of(pan_path).height_off))
        weights = _brovey_weights(ms_vrt, pan_vrt, count)
        src_path = _pansharpen_vrt(ms_vrt, pan_vrt, out_dir, count, weights, ms_path.stem)
        processing.append(
            f"pan-sharpened to {pan_gsd:g} m (GDAL weighted Brovey, weights {', '.join(f'{w:.3f}' for w in weights)} "
            f"fitted by NNLS of {pan_path.name} on the multispectral bands)")
        evidence.append(f"panchromatic image {pan_path.name}")
    elif family == "PMS" and pansharpen:
        assumptions.append("no -PAN image in the package: not pan-sharpened (multispectral resolution)")

    grid, vds = grid_of(str(src_path))
    refs = []
    for i, bid in enumerate(ids, start=1):
        role = roles.get(bid)
        if role is None:
            continue
        sc = cal.gain[bid] * k[bid] if bid in k else 1.0
        off = cal.bias[bid] * k[bid] if bid in k else 0.0
        refs.append((role, BandRef(
            path=str(src_path), index=i, grid=grid,
            scale=float(opts.scale if opts.scale is not None else sc),
            offset=float(opts.offset if opts.offset is not None else off),
            nodata=opts.nodata if opts.nodata is not None else 0, dtype=vds.dtypes[i - 1], band_id=bid,
        )))
    refs.sort(key=lambda r: list(prof.order).index(r[0]) if r[0] in prof.order else 99)
    info = ProductInfo(
        product=f"{sat} {sensor} Level-1A ({prof.description})", platform=sat, instrument=sensor, level=level,
        quantity="top-of-atmosphere reflectance" if opts.scale is None else "as scaled by the user",
        evidence=tuple(evidence), assumptions=tuple(assumptions), processing=tuple(processing),
        mask_note=f"{sat} {family} L1A packages carry no per-pixel cloud mask (cloud cover "
                  f"{meta.get('CloudPercent', '?')} % in the XML)",
    )
    meta_out = {"gaofen_xml": {k2: v for k2, v in meta.items() if v}, "calibration_year": cal.year,
                "source_package": str(path)}
    return Scene(prof, tuple(refs), grid, date, None, str(path), meta_out, product=info)


def _centre(meta: Mapping[str, str]) -> tuple[float | None, float]:
    try:
        lats = [float(meta[k]) for k in meta if k.endswith("Latitude") and meta[k]]
        lons = [float(meta[k]) for k in meta if k.endswith("Longitude") and meta[k]]
    except ValueError:
        return None, 0.0
    if not lats or not lons:
        return None, 0.0
    return sum(lats) / len(lats), sum(lons) / len(lons)


def _rpcs_of(path: Path) -> Any:
    ds = open_dataset(str(path))
    if not ds.rpcs:
        raise InputDataError(
            f"{path}: no rational polynomial coefficients (the .rpb beside it is missing or unreadable): "
            "cannot orthorectify; keep the package's .rpb files with the images")
    return ds.rpcs


def _utm_of(lon: float, lat: float | None, rpcs: Any) -> str:
    if lat is None:
        lat, lon = float(rpcs.lat_off), float(rpcs.long_off)
    zone = int((lon + 180) // 6) + 1
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def _unpacked(archive: Path, workdir: str | os.PathLike[str] | None) -> Path:
    """Unpack a package once (atomically: into a temporary folder, then renamed); reuse it after."""
    name = archive.name
    for suf in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    base = Path(workdir) if workdir is not None else archive.parent
    target = base / name
    if target.is_dir():
        return target
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=base))
    except OSError as exc:
        raise OutputError(f"{base}: cannot unpack {archive.name} there ({exc}); pass workdir= (--workdir) with a "
                          "writable folder") from exc
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                dest = (tmp / member.name).resolve()
                if not str(dest).startswith(str(tmp.resolve())) or member.issym() or member.islnk():
                    raise InputDataError(f"{archive}: member {member.name!r} would be written outside the package "
                                         "folder; refusing to unpack it")
            tf.extractall(tmp)  # noqa: S202 - members checked above
        inner = [p for p in tmp.iterdir()]
        src = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp
        os.replace(src, target)
    except (tarfile.TarError, OSError) as exc:
        raise RasterReadError(f"{archive}: cannot unpack ({exc}); the archive is probably truncated: re-download "
                              "it") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("unpacked %s into %s", archive, target)
    return target


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc}); pass workdir= (--workdir) with a writable folder") from exc


def _ortho_vrt(image: Path, out_dir: Path, crs: str, res_m: float, dem: str | None, height: float) -> Path:
    """A warped VRT of ``image`` through its RPCs onto ``crs`` at ``res_m`` (written once, reused).

    GDAL serialises the RPC transformer of a warped VRT only when it chose
    the output grid itself, so the VRT is made with GDAL's grid and then set
    to ours (a north-up grid at ``res_m`` covering the same footprint,
    computed through the same RPCs): its size, geotransform and the
    transformer's destination geotransform.
    """
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import calculate_default_transform

    tag = "dem" if dem else f"h{height:.0f}"
    out = out_dir / f"{image.stem}.ortho-{crs.replace(':', '')}-{res_m:g}m-{tag}.vrt"
    if out.exists() and out.stat().st_mtime >= image.stat().st_mtime:
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}.vrt")
    # rasterio upper-cases the values of transformer options (a DEM path would not be found), so the DEM
    # goes into the serialised transformer below; the grid is computed at the RPC height offset and padded
    height_opts = {} if dem else {"RPC_HEIGHT": height}
    with rasterio.open(image) as src:
        if not src.rpcs:
            raise InputDataError(f"{image}: no RPCs (.rpb) to orthorectify with")
        t, width, h = calculate_default_transform(
            None, crs, src.width, src.height, rpcs=src.rpcs, resolution=res_m, RPC_HEIGHT=height)
        if dem:
            pad = 16
            t = t * t.translation(-pad, -pad)
            width, h = width + 2 * pad, h + 2 * pad
        with WarpedVRT(src, crs=crs, resampling=Resampling.cubic, src_nodata=0, nodata=0, **height_opts) as vrt:
            try:
                rasterio.shutil.copy(vrt, str(tmp), driver="VRT")
                text = tmp.read_text(encoding="utf-8")
            finally:
                tmp.unlink(missing_ok=True)
    if "RPCTransformer" not in text:
        raise InputDataError(f"{image}: GDAL did not build an RPC transformer for it; check its .rpb")
    if dem:
        dem_xml = (f"<DEMPath>{_xml_escape(dem)}</DEMPath><DEMInterpolation>bilinear</DEMInterpolation>"
                   f"<DEMMissingValue>{height!r}</DEMMissingValue>")
        text, n = re.subn(r"(<HeightOffset>[^<]*</HeightOffset>)", r"\1" + dem_xml.replace("\\", "\\\\"), text,
                          count=1)
        if n != 1:
            raise InputDataError(f"{image}: cannot add the DEM to GDAL's RPC transformer (no HeightOffset)")
    gt = f"{t.c!r}, {t.a!r}, 0, {t.f!r}, 0, {t.e!r}"
    inv = f"{-t.c / t.a!r},{1 / t.a!r},0,{-t.f / t.e!r},0,{1 / t.e!r}"
    text = re.sub(r'rasterXSize="\d+"', f'rasterXSize="{width}"', text, count=1)
    text = re.sub(r'rasterYSize="\d+"', f'rasterYSize="{h}"', text, count=1)
    text = re.sub(r"<GeoTransform>[^<]*</GeoTransform>", f"<GeoTransform>{gt}</GeoTransform>", text, count=1)
    text = re.sub(r"<DstGeoTransform>[^<]*</DstGeoTransform>",
                  f"<DstGeoTransform>{gt.replace(' ', '')}</DstGeoTransform>", text, count=1)
    text = re.sub(r"<DstInvGeoTransform>[^<]*</DstInvGeoTransform>", f"<DstInvGeoTransform>{inv}</DstInvGeoTransform>",
                  text, count=1)
    text = re.sub(r"<BlockXSize>\d+</BlockXSize>", f"<BlockXSize>{min(width, 512)}</BlockXSize>", text)
    text = re.sub(r"<BlockYSize>\d+</BlockYSize>", f"<BlockYSize>{min(h, 128)}</BlockYSize>", text)
    text = re.sub(r'<SourceDataset relativeToVRT="[01]">[^<]*</SourceDataset>',
                  f'<SourceDataset relativeToVRT="0">{_xml_escape(str(image.resolve()))}</SourceDataset>', text)
    _write_atomic(out, text)
    return out


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _brovey_weights(ms_vrt: Path, pan_vrt: Path, count: int, max_px: int = 250_000) -> list[float]:
    """NNLS weights w with pan ≈ Σ w_i MS_i, fitted on the multispectral grid over a sample."""
    import rasterio
    from rasterio.enums import Resampling
    from scipy.optimize import nnls

    with rasterio.open(ms_vrt) as ms, rasterio.open(pan_vrt) as pan:
        f = max(1, int(math.ceil(math.sqrt(ms.width * ms.height / max_px))))
        shape = (max(1, ms.height // f), max(1, ms.width // f))
        a = ms.read(out_shape=(count, *shape), resampling=Resampling.average).astype(np.float64)
        win = rasterio.windows.from_bounds(*ms.bounds, transform=pan.transform)
        p = pan.read(1, window=win, out_shape=shape, resampling=Resampling.average, boundless=True,
                     fill_value=0).astype(np.float64)
    ok = (p > 0) & np.all(a > 0, axis=0)
    if ok.sum() < 10:
        log.warning("pan-sharpening: too few valid pixels to fit the weights; using equal weights")
        return [1.0 / count] * count
    w, _ = nnls(a[:, ok].T, p[ok])
    if not np.any(w > 0):
        return [1.0 / count] * count
    return [float(x) for x in w]


def _pansharpen_vrt(ms_vrt: Path, pan_vrt: Path, out_dir: Path, count: int, weights: list[float], stem: str) -> Path:
    out = out_dir / f"{stem}.pansharpened.vrt"
    bands = "".join(
        f'    <SpectralBand dstBand="{i}"><SourceFilename relativeToVRT="0">{_xml_escape(str(ms_vrt.resolve()))}'
        f"</SourceFilename><SourceBand>{i}</SourceBand></SpectralBand>\n" for i in range(1, count + 1))
    text = (
        '<VRTDataset subClass="VRTPansharpenedDataset">\n'
        "  <PansharpeningOptions>\n"
        "    <Algorithm>WeightedBrovey</Algorithm>\n"
        f"    <AlgorithmOptions><Weights>{','.join(f'{w:.10g}' for w in weights)}</Weights></AlgorithmOptions>\n"
        "    <Resampling>Cubic</Resampling>\n"
        "    <NumThreads>1</NumThreads>\n"
        "    <NoData>0</NoData>\n"
        "    <SpatialExtentAdjustment>Intersection</SpatialExtentAdjustment>\n"
        f'    <PanchroBand><SourceFilename relativeToVRT="0">{_xml_escape(str(pan_vrt.resolve()))}</SourceFilename>'
        "<SourceBand>1</SourceBand></PanchroBand>\n"
        f"{bands}"
        "  </PansharpeningOptions>\n"
        "</VRTDataset>\n"
    )
    _write_atomic(out, text)
    return out


# ---------------------------------------------------------------------------
# Orthorectified single files (the usual bureau delivery)
# ---------------------------------------------------------------------------
def fill_file_id(fid: FileId, path: Path, sat: str, sensor: str, count: int, dtype: str) -> None:
    """Identify an orthorectified Gaofen GeoTIFF (no XML beside it) for :mod:`.products`."""
    family = "pms" if sensor.startswith(("PMS", "MUX")) else "wfv"
    key = f"gf{sat}_{family}"
    if key not in ("gf1_wfv", "gf6_wfv", "gf1_pms", "gf2_pms", "gf6_pms"):
        key = "gf2_pms" if sat == "2" else "gf1_wfv"
    if key == "gf6_wfv" and count == 4:
        key = "gf1_wfv"
    fid.prof = get_sensor(key)
    fid.platform = f"GF{sat}"
    fid.instrument = sensor or family.upper()
    fid.positional = True
    fid.evidence.append(f"file name {path.name}: Gaofen-{sat} {sensor or family.upper()}; band order of Gaofen "
                        f"deliveries ({', '.join(fid.prof.order[:count])})")
    v = sample_values(str(path), 1)
    if np.issubdtype(np.dtype(dtype), np.integer) and v.size and float(np.percentile(v, 99.9)) <= 1023:
        fid.needs_scale = (
            f"values of band 1 stay below 1024 (99.9th percentile {float(np.percentile(v, 99.9)):.0f}): these look "
            "like 10-bit digital numbers, not reflectance × 10000; open the L1A package (with its .xml and .rpb) to "
            "have them calibrated, or pass scale= and offset= (CRESDA gain × π d² / (ESUN cos θs))")
        return
    fid.assumptions.append(
        f"Gaofen-{sat} orthoimage without its XML: assumed reflectance × 10000 (the usual delivery of processed "
        "products); if the values are digital numbers, open the L1A package or pass scale= and offset=")
