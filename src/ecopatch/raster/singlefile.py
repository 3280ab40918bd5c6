"""One raster file as a scene: which product it is, which band is which, and how DN become reflectance.

:func:`ecopatch.open_scene` given a single file (a Gaofen orthoimage, NAIP, a
drone mosaic, a stacked export, one Landsat or HLS band stack) comes here
from :func:`ecopatch.raster.products.open_product`: tags, band descriptions,
colour interpretation, the file name and the values decide.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecopatch.errors import (
    InputDataError,
    MissingBandError,
)
from ecopatch.raster.blocks import sample_file
from ecopatch.raster.fileread import grid_of, open_dataset
from ecopatch.raster.ongrid import ground_unit_m
from ecopatch.raster.products import (
    S2_OFFSET_BASELINE,
    FoundFiles,
    ProductOptions,
    common_from_id,
    date_from_text,
    norm_s2,
    role_from_description,
    s2_level,
)
from ecopatch.raster.scene import BandRef, MaskRef, Scene
from ecopatch.raster.sensors import COMMON_BANDS, SensorProfile, get_sensor
from ecopatch.raster.source import ProductInfo

__all__ = ["FileId", "sample_values", "scene_from_file"]

log = logging.getLogger(__name__)


_NAIP_NAME = re.compile(r"^m_\d{7}_(ne|nw|se|sw)_\d{1,2}_\d{1,3}_(\d{8})", re.IGNORECASE)
_GF_NAME = re.compile(r"(?<![A-Z0-9])GF([1-7])[A-D]?[_-]?(WFV\d?|PMS\d?|PMI|MUX|WFI)?", re.IGNORECASE)


@dataclass
class FileId:
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


def scene_from_file(path: Path, opts: ProductOptions) -> Scene:
    """The scene of one raster file, identified from its tags, band descriptions, name and values."""
    from ecopatch.raster import gaofen, landsat

    spath = str(path)
    if gaofen.is_gaofen_l1a_file(path):
        return gaofen.open_gaofen(path, opts)
    grid, ds = grid_of(spath)
    tags = {k.upper(): v for k, v in ds.tags().items()}
    descriptions = [d or "" for d in ds.descriptions]
    colorinterp = [ci.name for ci in ds.colorinterp]
    count = ds.count
    dtype = ds.dtypes[0]
    res_m = grid.res[0] * ground_unit_m(grid)
    roles = [role_from_description(d) for d in descriptions]

    fid = FileId()
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
            idx: int | None
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
                if fid.prof is not None and bid and common_from_id(fid.prof, bid) not in (None, role):
                    fid.assumptions.append(
                        f"band {i} is described {descriptions[i - 1]!r}: read as {role} from its words, though "
                        f"{bid} is {common_from_id(fid.prof, bid)} in {fid.prof.name}")
            elif bid and fid.prof is not None:
                c = common_from_id(fid.prof, bid)
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
            found_date = date_from_text(tags[key].replace(":", "-", 2)) or date_from_text(tags[key])
            if found_date:
                break
    if found_date is None:
        found_date = date_from_text(path.name)

    refs = []
    scaled_float = False
    # float files are reflectance already, unless the values say otherwise
    floats = (_float_scales(spath, sorted({mapping[c] for c in COMMON_BANDS if c in mapping}), prof)
              if dtype in ("float32", "float64") and prof.name not in ("drone_ms",) and opts.scale is None
              else {})
    for common in COMMON_BANDS:
        if common not in mapping:
            continue
        i = mapping[common]
        bid = roles[i - 1][1] or descriptions[i - 1] or str(i)
        sc, off = prof.scale, prof.offset
        if prof.name.startswith("sentinel2"):
            dn_off = tags.get(f"BOA_ADD_OFFSET_{norm_s2(bid)}") or tags.get("BOA_ADD_OFFSET") \
                or tags.get("RADIO_ADD_OFFSET")
            if dn_off is not None:
                off = float(dn_off) * sc
            elif pb is not None:
                try:
                    off = -1000 * sc if float(pb) >= S2_OFFSET_BASELINE else 0.0
                except ValueError:
                    pass
        if i in floats:
            sc, off = floats[i]
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
                   res_m: float, fid: FileId) -> None:
    """Fill ``fid`` with the product a single file is, from its tags, descriptions, colours and name."""
    from ecopatch.raster import landsat

    name = path.name
    upper_desc = [d.upper().strip() for d in descriptions]
    ids = {bid for _, bid in roles if bid}
    tag_text = " ".join(f"{k}={v}" for k, v in tags.items())
    words = " ".join([name, tag_text]).upper()
    integer = np.issubdtype(np.dtype(dtype), np.integer)

    # Sentinel-2: its own band IDs (zero-padded, B8A, B11/B12, SCL, QA60) or its name in the tags
    s2_ids = {d for d in upper_desc if re.fullmatch(r"B0[1-9]|B8A|B1[0-2]", d)}
    unpadded = {norm_s2(d) for d in upper_desc if re.fullmatch(r"B[1-9]|B1[0-2]|B8A", d)}
    if {"SCL", "QA60"} & set(upper_desc) and unpadded:
        s2_ids |= unpadded
    if s2_ids or "SPACECRAFT_NAME" in tags or re.search(r"SENTINEL-?2|(?<![A-Z0-9])S2[AB]?_", words):
        found = FoundFiles(files={d: [] for d in s2_ids | unpadded})
        why = f"Sentinel-2 band IDs in the band descriptions ({', '.join(sorted(s2_ids))})" if s2_ids \
            else "Sentinel-2 named in the file name or tags"
        found.evidence.append(why)
        lvl_tags = " ".join(str(tags.get(k, "")) for k in ("PROCESSING_LEVEL", "PRODUCT_TYPE")).upper()
        if "1C" in lvl_tags or "2A" in lvl_tags:
            level = "sentinel2_l1c" if "1C" in lvl_tags else "sentinel2_l2a"
            found.sensor = level
            found.evidence.append(f"level from the tags ({lvl_tags.strip()})")
        level = s2_level(found, name, None, text=f"{name} {tag_text}") if not found.sensor else found.sensor
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
        found = FoundFiles(files={d: [] for d in unpadded})
        level = s2_level(found, name, None, text=f"{name} {tag_text}")
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
        from ecopatch.raster import gaofen

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


def _float_scales(path: str, indexes: list[int], prof: SensorProfile) -> dict[int, tuple[float, float]]:
    """Float bands: reflectance as is, unless a sample shows ×10000 values.

    The sample is a few blocks of the file, all ``indexes`` in one read
    (:func:`~ecopatch.raster.blocks.sample_file`): a pixel-interleaved
    file's blocks are decoded once for all bands.
    """
    as_is = {i: (1.0, 0.0) for i in indexes}
    if not indexes:
        return as_is
    try:
        sample = sample_file(path, indexes)
    except Exception:  # noqa: BLE001 - sampling is advisory only
        return as_is
    out = {}
    for i, values in zip(indexes, sample):
        finite = values[np.isfinite(values)]
        scaled = finite.size and np.nanpercentile(finite, 50) > 5
        out[i] = (prof.scale if prof.scale != 1 else 1e-4, 0.0) if scaled else (1.0, 0.0)
    return out


def _index_by_description(descriptions: list[str], name: str) -> int | None:
    for i, d in enumerate(descriptions, start=1):
        if d.strip().upper() == name.strip().upper():
            return i
    return None


def sample_values(path: str, index: int = 1) -> np.ndarray:
    """Values of one band from a few of its blocks (:func:`sample_blocks`), for checks on the value range.

    No data and non-finite values are left out; empty when the file cannot be read.
    """
    try:
        a = sample_file(path, [index])[0]
        nd = open_dataset(path).nodatavals[index - 1]
    except Exception:  # noqa: BLE001 - advisory only
        return np.zeros(0)
    a = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a.ravel()
    return a[a != nd] if nd is not None else a
