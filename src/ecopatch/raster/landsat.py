"""Landsat Collection 2 (TM, ETM+, OLI; Level-1 and Level-2) and HLS products.

Landsat 4-5 TM, 7 ETM+ and 8-9 OLI share a file layout but not a band map:
on TM and ETM+ band 3 is red and band 4 near-infrared, on OLI band 4 is red
and band 5 near-infrared.  The spacecraft and level therefore come from the
MTL metadata (``_MTL.txt``, ``_MTL.json`` or ``_MTL.xml``:
``SPACECRAFT_ID``, ``SENSOR_ID``, ``PROCESSING_LEVEL``) or from the product ID
in the file names (``LE07_L2SP_119038_20000317_20200917_02_T1``: ``E`` ETM+,
``07`` Landsat 7, ``L2SP`` Level-2), never from the band files alone.

* Level-2 (``L2SP``/``L2SR``): surface reflectance = DN × 2.75e-5 - 0.2
  (``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` of the MTL).
* Level-1 (``L1TP``/``L1GT``/``L1GS``): top-of-atmosphere reflectance =
  (DN × ``REFLECTANCE_MULT_BAND_n`` + ``REFLECTANCE_ADD_BAND_n``) /
  sin(``SUN_ELEVATION``), from the MTL's ``LEVEL1_RADIOMETRIC_RESCALING``
  (the scene-centre sun elevation; per-pixel angles are not used).
* The cloud mask is ``QA_PIXEL`` (:func:`ecopatch.raster.sensors.landsat_qa_flags`):
  fill, dilated cloud, cirrus (OLI only), cloud, cloud shadow and snow are
  masked; water is kept.

HLS v2.0 (``HLS.L30.T17SLU.2020209T155956.v2.0.B04.tif``): reflectance × 1e-4,
nodata -9999, cloud mask from ``Fmask`` (:func:`ecopatch.raster.sensors.hls_fmask_clear`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.errors import InputDataError
from ecopatch.raster.products import FoundFiles, ProductOptions, scene_from_found
from ecopatch.raster.sensors import get_sensor

if TYPE_CHECKING:
    from ecopatch.raster.scene import Scene
    from ecopatch.raster.singlefile import FileId

__all__ = ["LandsatId", "identify_text", "is_hls_folder", "is_landsat_folder", "open_hls", "open_landsat",
           "parse_mtl", "product_id_in"]

#: Collection product ID: sensor letter, satellite, level, path/row, dates, collection, tier.
_PRODUCT_ID = re.compile(
    r"(?<![A-Z0-9])L([COTEM])(0[1-9])_(L1TP|L1GT|L1GS|L2SP|L2SR)_(\d{6})_(\d{8})_(\d{8})_(\d{2})_(T1|T2|RT)",
    re.IGNORECASE)
#: Older scene IDs: LE71190382000077EDC00 (sensor, satellite, path/row, year + day of year) and the
#: NLAPS style L71119038_03820000317.
_SCENE_ID = re.compile(r"(?<![A-Z0-9])L([COTEM])([4-9])(\d{6})(\d{4})(\d{3})[A-Z]{3}\d{2}", re.IGNORECASE)
_NLAPS_ID = re.compile(r"(?<![A-Z0-9])L([4-9])(\d)(\d{6})_\d{3}(\d{8})", re.IGNORECASE)
_TEXT = re.compile(r"LANDSAT[ _-]?([4-9])|(?<![A-Z0-9])L([4-9])(?:ETM|TM|OLI)|(?<![A-Z])(ETM\+?|OLI|TM)(?![A-Z])",
                   re.IGNORECASE)

_INSTRUMENT = {4: "TM", 5: "TM", 7: "ETM+", 8: "OLI", 9: "OLI"}
_PROFILE_KEY = {"TM": "tm", "ETM+": "etm", "OLI": "oli"}
_UNUSED_WORDS = {"B6": "thermal", "B6_VCID_1": "thermal, low gain", "B6_VCID_2": "thermal, high gain",
                 "B8": "panchromatic", "B9": "cirrus", "B10": "thermal", "B11": "thermal",
                 "ST_B6": "surface temperature", "ST_B10": "surface temperature"}


@dataclass(frozen=True)
class LandsatId:
    """A Landsat spacecraft, instrument and level as far as they are known, and from what."""

    spacecraft: int | None
    instrument: str | None  # "TM", "ETM+", "OLI"
    level: int | None  # 1 or 2
    product_id: str
    evidence: str


def product_id_in(text: str) -> re.Match[str] | None:
    """The first Landsat Collection product ID in ``text`` (a file name), or None."""
    return _PRODUCT_ID.search(text)


def identify_text(text: str, band_ids: set[str] | frozenset[str] = frozenset()) -> LandsatId | None:
    """What a file name, tags or band IDs say about a Landsat product; None when they say nothing.

    Parameters
    ----------
    text : str
        File name and tag text.
    band_ids : set of str
        Band IDs found in band descriptions (``SR_B4``, ``ST_B6``, ``QA_PIXEL``).
    """
    m = _PRODUCT_ID.search(text)
    if m:
        num = int(m.group(2))
        lvl = 2 if m.group(3).upper().startswith("L2") else 1
        return LandsatId(num, _instrument(m.group(1), num), lvl, m.group(0),
                         f"Landsat product ID {m.group(0)} (sensor {m.group(1).upper()}, Landsat {num}, "
                         f"{m.group(3).upper()})")
    ids = {b.upper() for b in band_ids}
    level = 2 if any(b.startswith(("SR_B", "ST_B")) for b in ids) else None
    for pat in (_SCENE_ID, _NLAPS_ID):
        m = pat.search(text)
        if m:
            num = int(m.group(2)) if pat is _SCENE_ID else int(m.group(1))
            letter = m.group(1) if pat is _SCENE_ID else ""
            return LandsatId(num, _instrument(letter, num), level, m.group(0),
                             f"Landsat scene ID {m.group(0)} (Landsat {num})")
    t = _TEXT.search(text)
    sat: int | None = None
    inst = None
    if t:
        for mt in _TEXT.finditer(text):
            if mt.group(1) or mt.group(2):
                sat = int(mt.group(1) or mt.group(2))
            if mt.group(3):
                inst = mt.group(3).upper().replace("ETM", "ETM+").replace("++", "+")
        inst = inst or (_INSTRUMENT.get(sat) if sat else None)
        if sat is not None or inst is not None:
            return LandsatId(sat, inst, level, "", f"'{t.group(0)}' in the file name or tags")
    if level is not None or "QA_PIXEL" in ids:
        # band IDs alone: OLI has SR_B6 (SWIR1) and ST_B10; TM/ETM+ have ST_B6 and no SR_B6
        if "SR_B6" in ids or "ST_B10" in ids:
            return LandsatId(None, "OLI", level, "", "Landsat band IDs with SR_B6/ST_B10 (OLI numbering)")
        if "ST_B6" in ids:
            return LandsatId(None, "ETM+", level, "", "Landsat band IDs with ST_B6 (TM/ETM+ numbering)")
        return LandsatId(None, None, level, "", "Landsat band IDs (SR_B*, QA_PIXEL)")
    return None


def _instrument(letter: str, sat: int) -> str | None:
    letter = letter.upper()
    if letter == "M" or sat < 4:
        raise InputDataError(
            f"Landsat {sat} MSS products are not supported (no blue or SWIR band, 60 m): use TM (Landsat 4-5) "
            "or later")
    if letter in ("C", "O"):
        return "OLI"
    if letter == "E":
        return "ETM+"
    if letter == "T" and sat >= 8:
        raise InputDataError(f"a Landsat {sat} TIRS-only product has no reflective bands: use the OLI or OLI/TIRS "
                             "product")
    return _INSTRUMENT.get(sat)


def _profile(inst: str, level: int) -> str:
    return f"landsat_{_PROFILE_KEY[inst]}_c2l{level}"


# ---------------------------------------------------------------------------
# MTL
# ---------------------------------------------------------------------------
def is_mtl_file(path: Path) -> bool:
    """A Landsat metadata file (``*_MTL.txt``, ``*_MTL.json``, ``*_MTL.xml``)."""
    return path.is_file() and re.search(r"_MTL\.(txt|json|xml)$", path.name, re.IGNORECASE) is not None


def _find_mtl(folder: Path) -> Path | None:
    for ext in ("txt", "json", "xml"):
        hits = sorted(p for p in folder.glob(f"*_MTL.{ext}") if p.is_file())
        hits += sorted(p for p in folder.glob(f"*_MTL.{ext.upper()}") if p.is_file() and p not in hits)
        if hits:
            return hits[0]
    return None


def is_landsat_folder(folder: Path) -> bool:
    """A folder with a Landsat MTL file, or band files named with a Landsat product ID."""
    if _find_mtl(folder) is not None:
        return True
    return any(product_id_in(p.name) for p in folder.iterdir() if p.suffix.lower() in (".tif", ".tiff"))


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """Read a Landsat MTL (ODL text, JSON or XML) into ``{group: {field: value}}``.

    Values are strings without quotes.  Nested groups are flattened: every
    group under ``LANDSAT_METADATA_FILE`` is a key.

    Raises
    ------
    InputDataError
        The file cannot be read as an MTL.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read the Landsat metadata ({exc})") from exc
    out: dict[str, dict[str, str]] = {}
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            doc = json.loads(text)
            root = doc.get("LANDSAT_METADATA_FILE", doc)
            for g, fields in root.items():
                if isinstance(fields, dict):
                    out[g] = {k: str(v) for k, v in fields.items() if not isinstance(v, (dict, list))}
        elif suffix == ".xml":
            root = ET.fromstring(text)
            for g in root:
                out[g.tag] = {c.tag: (c.text or "").strip() for c in g}
        else:
            group = ""
            for line in text.splitlines():
                line = line.strip()
                if not line or line == "END" or "=" not in line:
                    continue
                k, v = (x.strip() for x in line.split("=", 1))
                if k == "GROUP":
                    group = v
                    out.setdefault(group, {})
                elif k == "END_GROUP":
                    group = ""
                else:
                    out.setdefault(group, {})[k] = v.strip('"')
    except (ValueError, ET.ParseError, AttributeError) as exc:
        raise InputDataError(f"{path}: not a readable Landsat MTL ({exc})") from exc
    if not out:
        raise InputDataError(f"{path}: no metadata groups found; is this a Landsat _MTL file?")
    return out


def _field(mtl: dict[str, dict[str, str]], group: str, key: str) -> str | None:
    return mtl.get(group, {}).get(key)


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------
def open_landsat(folder: Path, opts: ProductOptions, *, mtl: Path | None = None) -> Scene:
    """A Landsat Collection 2 product folder (Level-1 or Level-2, any of TM, ETM+, OLI)."""
    mtl = mtl or _find_mtl(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if mtl is None:
        return open_landsat_files([p for p in files if p.suffix.lower() in (".tif", ".tiff")], opts,
                                  source=str(folder))
    meta = parse_mtl(mtl)
    pc = meta.get("PRODUCT_CONTENTS", {})
    ia = meta.get("IMAGE_ATTRIBUTES", {})
    if not pc or not ia:
        coll = _field(meta, "METADATA_FILE_INFO", "COLLECTION_NUMBER") or \
            _field(meta, "PRODUCT_METADATA", "COLLECTION_NUMBER")
        raise InputDataError(
            f"{mtl}: not a Collection 2 MTL (no PRODUCT_CONTENTS / IMAGE_ATTRIBUTES groups"
            + (f"; collection {coll}" if coll else "") + "); Collection 1 was retired by USGS in 2022: "
            "download the Collection 2 product"
        )
    spacecraft = ia.get("SPACECRAFT_ID", "")
    sensor_id = ia.get("SENSOR_ID", "")
    level_s = pc.get("PROCESSING_LEVEL", "")
    m = re.search(r"(\d)", spacecraft)
    if not m or not level_s:
        raise InputDataError(f"{mtl}: SPACECRAFT_ID ({spacecraft!r}) or PROCESSING_LEVEL ({level_s!r}) missing")
    sat = int(m.group(1))
    letter = {"OLI_TIRS": "C", "OLI": "O", "TIRS": "T", "ETM": "E", "TM": "T", "MSS": "M"}.get(sensor_id.upper(), "")
    inst = _instrument(letter, sat) if letter else _INSTRUMENT.get(sat)
    if inst is None:
        raise InputDataError(f"{mtl}: unknown Landsat sensor {sensor_id!r} on {spacecraft}")
    level = 2 if level_s.upper().startswith("L2") else 1
    found = FoundFiles()
    found.evidence.append(
        f"MTL {mtl.name}: SPACECRAFT_ID = {spacecraft}, SENSOR_ID = {sensor_id}, PROCESSING_LEVEL = {level_s}")
    date = ia.get("DATE_ACQUIRED")
    if date:
        found.date = _dt.date.fromisoformat(date[:10])
    coll = pc.get("COLLECTION_NUMBER", "")
    if coll and int(coll) != 2:
        raise InputDataError(f"{mtl}: collection {coll}; only Collection 2 products are read")
    product = pc.get("LANDSAT_PRODUCT_ID", mtl.name.replace("_MTL", "").rsplit(".", 1)[0])
    found.metadata["product"] = product
    found.metadata["landsat_product_id"] = product
    found.info.update(platform=spacecraft, instrument=inst, level=level_s)
    prof = get_sensor(_profile(inst, level))
    by_name = {p.name.upper(): p for p in files}
    # band files from the MTL's own list
    for key, fname in pc.items():
        if not key.startswith("FILE_NAME_BAND_") and key != "FILE_NAME_QUALITY_L1_PIXEL":
            continue
        p = by_name.get(fname.upper())
        if p is None:
            continue
        if key == "FILE_NAME_QUALITY_L1_PIXEL":
            found.files["QA_PIXEL"] = [(str(p), math.nan)]
            continue
        tag = key.removeprefix("FILE_NAME_BAND_")
        bid = tag if tag.startswith("ST_") else (f"SR_B{tag}" if level == 2 else f"B{tag}")
        if prof.common_name(bid) is None:
            found.unused.append(f"{bid} ({_UNUSED_WORDS.get(bid, 'not a reflective band used here')})")
            continue
        found.files[bid] = [(str(p), math.nan)]
    if level == 2:
        grp = meta.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", {})
        for bid in list(found.files):
            n = bid.removeprefix("SR_B")
            if f"REFLECTANCE_MULT_BAND_{n}" in grp:
                found.scales[bid] = float(grp[f"REFLECTANCE_MULT_BAND_{n}"])
                found.add[bid] = float(grp[f"REFLECTANCE_ADD_BAND_{n}"])
        found.evidence.append("surface reflectance scale/offset from LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")
    else:
        grp = meta.get("LEVEL1_RADIOMETRIC_RESCALING", {})
        se = ia.get("SUN_ELEVATION")
        if se is None or not grp:
            raise InputDataError(f"{mtl}: a Level-1 MTL without SUN_ELEVATION or LEVEL1_RADIOMETRIC_RESCALING: "
                                 "cannot compute top-of-atmosphere reflectance")
        sin_e = math.sin(math.radians(float(se)))
        for bid in list(found.files):
            if bid == "QA_PIXEL":
                continue
            n = bid.removeprefix("B")
            if f"REFLECTANCE_MULT_BAND_{n}" not in grp:
                raise InputDataError(f"{mtl}: no REFLECTANCE_MULT_BAND_{n} in LEVEL1_RADIOMETRIC_RESCALING")
            found.scales[bid] = float(grp[f"REFLECTANCE_MULT_BAND_{n}"]) / sin_e
            found.add[bid] = float(grp[f"REFLECTANCE_ADD_BAND_{n}"]) / sin_e
        found.processing.append(
            f"top-of-atmosphere reflectance = (DN × REFLECTANCE_MULT + REFLECTANCE_ADD) / sin({float(se):.4f}°) "
            "(scene-centre sun elevation)")
    found.mask_note = "" if "QA_PIXEL" in found.files else \
        f"{prof.description} folder without its QA_PIXEL file ({product}_QA_PIXEL.TIF): no cloud mask"
    return _landsat_scene(found, opts, prof, str(folder))


def _landsat_scene(found: FoundFiles, opts: ProductOptions, prof: Any, source: str) -> Scene:
    """Build the scene, honouring (but checking) a sensor= the user gave."""
    user = opts.prof
    if user is not None and user.name != prof.name:
        if user.name.startswith("landsat") and user.bands != prof.bands:
            found.assumptions.append(
                f"sensor={user.name!r} was given, but the product is {prof.description} "
                f"({found.evidence[0]}): its band map differs ({user.name}: red={user.bands.get('red')}, "
                f"nir={user.bands.get('nir')}; product: red={prof.bands.get('red')}, nir={prof.bands.get('nir')}); "
                f"read with {user.name} as asked")
        prof = user
    found.sensor = prof.name
    return scene_from_found(found, ProductOptions(prof, opts.bands, opts.scale, opts.offset, opts.nodata), source)


def open_landsat_files(paths: list[Path], opts: ProductOptions, *, source: str | None = None) -> Scene:
    """Landsat band files (named with their product ID) without an MTL beside them."""
    if not paths:
        raise InputDataError(f"{source}: no Landsat band files found")
    folder = paths[0].parent
    mtl = _find_mtl(folder)
    if mtl is not None and source is None:
        chosen = {p.resolve() for p in paths}
        scene = open_landsat(folder, opts, mtl=mtl)
        keep = tuple((n, r) for n, r in scene.band_refs if Path(r.path).resolve() in chosen)
        if not keep:
            raise InputDataError(f"{paths[0]}: none of the files is a reflective band of {scene.sensor.name}")
        from dataclasses import replace

        return replace(scene, band_refs=keep, source=str(paths[0]))
    m = product_id_in(paths[0].name)
    assert m is not None
    lid = identify_text(paths[0].name)
    assert lid is not None and lid.instrument is not None and lid.level is not None
    if lid.level == 1:
        raise InputDataError(
            f"{folder}: Landsat Level-1 band files ({m.group(0)}) without their _MTL.txt: top-of-atmosphere "
            "reflectance needs the MTL's REFLECTANCE_MULT/ADD and SUN_ELEVATION; put the MTL beside the bands, "
            "or pass scale= and offset="
        )
    prof = get_sensor(_profile(lid.instrument, lid.level))
    found = FoundFiles()
    found.evidence.append(lid.evidence + " in the file names (no MTL)")
    found.info.update(platform=f"LANDSAT_{lid.spacecraft}", instrument=lid.instrument, level=m.group(3).upper())
    found.date = _dt.date(int(m.group(5)[:4]), int(m.group(5)[4:6]), int(m.group(5)[6:]))
    for p in paths:
        tok = re.search(r"_(SR_B\d+|ST_B\d+|QA_PIXEL|B\d+)\.TIF+$", p.name, re.IGNORECASE)
        if tok is None:
            continue
        bid = tok.group(1).upper()
        if bid != "QA_PIXEL" and prof.common_name(bid) is None:
            found.unused.append(f"{bid} ({_UNUSED_WORDS.get(bid, 'not used')})")
            continue
        found.files[bid] = [(str(p), math.nan)]
    found.evidence.append("Level-2 scale/offset of Collection 2 (2.75e-5, -0.2): no MTL to read them from")
    return _landsat_scene(found, opts, prof, source or str(paths[0]))


def fill_file_id(fid: FileId, lid: LandsatId, ids: set[str], integer: bool, dtype: str, count: int,
                 roles: list[tuple[str | None, str | None]]) -> None:
    """Identify a single stacked Landsat file (a GEE export, a benchmark stack) for :mod:`.products`."""
    inst = lid.instrument
    level = lid.level
    fid.evidence.append(lid.evidence)
    if inst is None:
        inst = "OLI"
        fid.assumptions.append(
            "Landsat band IDs without a spacecraft: assumed Landsat 8-9 OLI numbering (SR_B4 red, SR_B5 NIR); "
            "for TM or ETM+ (SR_B3 red, SR_B4 NIR) pass sensor='landsat_etm_c2l2'")
    if lid.spacecraft is None and inst in ("TM", "ETM+") and lid.instrument is not None:
        fid.evidence.append("TM and ETM+ share one band map")
    if level is None:
        level = 1
    fid.prof = get_sensor(_profile(inst, level))
    fid.platform = f"LANDSAT_{lid.spacecraft}" if lid.spacecraft else ""
    fid.instrument = inst
    sat = f"Landsat {lid.spacecraft}" if lid.spacecraft else "Landsat"
    named = any(r for r, _ in roles)
    if level == 2:
        fid.product = f"{sat} {inst} Collection 2 Level-2 surface reflectance (stacked file)"
        fid.level = "L2SP"
        if not ids and not named:
            fid.assumptions.append(f"bands are not described: assumed the Level-2 order of {fid.prof.name} "
                                   "(blue, green, red, NIR, SWIR1, SWIR2)")
        return
    fid.product = f"{sat} {inst} digital numbers ({dtype}, no MTL)"
    fid.level = "L1 (DN)"
    fid.quantity = "as scaled by the user"
    fid.needs_scale = (
        f"{sat} {inst} digital numbers ({dtype}) without the MTL file that calibrates them: pass scale= and "
        "offset= (from the MTL, REFLECTANCE_MULT_BAND_n and REFLECTANCE_ADD_BAND_n divided by sin(SUN_ELEVATION)), "
        "or scale=1/255 for relative brightness of 8-bit DN; or open the Landsat folder with its _MTL.txt")
    if not named and not ids:
        fid.assumptions.append(f"bands are not described: assumed the {inst} order (blue, green, red, NIR, SWIR1, "
                               "SWIR2)")


# ---------------------------------------------------------------------------
# HLS
# ---------------------------------------------------------------------------
_HLS = re.compile(r"^HLS\.([LS])30\.(T\w{5})\.(\d{4})(\d{3})T(\d{6})\.v(\d+\.\d+)\.(\w+)\.tiff?$", re.IGNORECASE)


def is_hls_folder(folder: Path) -> bool:
    """A folder of HLS v2.0 band files (``HLS.L30.*.B04.tif``)."""
    return any(_HLS.match(p.name) for p in folder.iterdir())


def open_hls(folder: Path, opts: ProductOptions) -> Scene:
    """An HLS L30 or S30 granule folder."""
    files = sorted(p for p in folder.iterdir() if _HLS.match(p.name))
    kinds = {_HLS.match(p.name).group(1).upper() for p in files}  # type: ignore[union-attr]
    if len(kinds) != 1:
        raise InputDataError(f"{folder}: holds both HLS L30 and S30 files; give one granule per folder")
    kind = kinds.pop()
    prof = get_sensor("hls_l30" if kind == "L" else "hls_s30")
    found = FoundFiles()
    first = _HLS.match(files[0].name)
    assert first is not None
    year, doy = int(first.group(3)), int(first.group(4))
    found.date = _dt.date(year, 1, 1) + _dt.timedelta(days=doy - 1)
    found.evidence.append(f"HLS file names (HLS.{kind}30.{first.group(2)}.{year}{doy:03d}, v{first.group(6)})")
    found.info.update(platform="Landsat 8-9" if kind == "L" else "Sentinel-2", instrument="OLI" if kind == "L" else
                      "MSI", level=f"HLS {kind}30 v{first.group(6)}")
    for p in files:
        band = _HLS.match(p.name).group(7).upper()  # type: ignore[union-attr]
        if band == "FMASK":
            found.files["FMASK"] = [(str(p), math.nan)]
        elif prof.common_name(band) is not None:
            found.files[band] = [(str(p), math.nan)]
        else:
            found.unused.append(band)
    found.mask_note = "" if "FMASK" in found.files else "HLS granule without its Fmask file: no cloud mask"
    return _landsat_scene(found, opts, prof, str(folder))
