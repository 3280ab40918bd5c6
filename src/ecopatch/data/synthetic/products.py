"""Writers of synthetic acquisitions as Sentinel-2 L1C, Landsat 8/9 C2 L2 and Gaofen-1 WFV products.

The edge beside :mod:`ecopatch.data.synthetic.sensors` (which renders them):
each product is written in the layout its users receive, so that
:func:`ecopatch.open_scene` identifies it as it would the real one.

* Sentinel-2 L1C: ``S2B_MSIL1C_<time>_N0510_R089_T50RQU_<time>.SAFE`` with
  ``MTD_MSIL1C.xml`` (``QUANTIFICATION_VALUE``, ``RADIO_ADD_OFFSET`` from
  baseline 04.00, no scene classification) and
  ``GRANULE/L1C_T50RQU_A<orbit>_<time>/IMG_DATA/T50RQU_<time>_B01.tif`` …
  for all 13 bands at 10/20/60 m.  No cloud mask anywhere.
* Landsat 8/9 OLI Collection 2 Level-2: a folder
  ``LC09_L2SP_119039_<date>_<date>_02_T1`` with ``SR_B1`` … ``SR_B7``,
  ``QA_PIXEL`` and the ``_MTL.txt`` (``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS``).
* Gaofen-1 WFV: one orthorectified 4-band GeoTIFF (blue, green, red, NIR;
  reflectance × 10000) named after the scene, as bureaus keep them, with no
  XML beside it.

Bands are written window by window under temporary names and moved into
place when complete (nothing half-written is left).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.data.synthetic.files import atomic, band_profile, rasters_in_place
from ecopatch.data.synthetic.metadata import cover_pct, fmt_time, s2_mtd_parts
from ecopatch.data.synthetic.sensors import (
    GF_BANDS,
    LANDSAT_BANDS,
    S2_BANDS_13,
    base_grid,
    product_grids,
    product_name,
    render_product,
    rendering_of,
)
from ecopatch.data.synthetic.tricks import cloud_geometry
from ecopatch.geo.grid import Window

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.scene import SyntheticScene

__all__ = ["layout", "sensor_of", "write_product"]

_NS_L1C = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
_CHUNK = {"sentinel2_l1c": 64, "landsat_oli_c2l2": 128, "gf1_wfv": 128}


def sensor_of(scene: SyntheticScene, key: str) -> str:
    """The sensor profile name acquisition ``key`` is written as."""
    return rendering_of(scene, key).sensor


def layout(root: Path, scene: SyntheticScene, key: str) -> tuple[Path, Path | None, dict[str, Path]]:
    """``(product, metadata file or None, {raster name: path})`` of a non-L2A acquisition under ``root``."""
    r = rendering_of(scene, key)
    name = product_name(scene, key)
    p = scene.products[key]
    if r.sensor == "sentinel2_l1c":
        safe = root / f"{name}.SAFE"
        gran = f"L1C_{p.tile_id}_A{p.absolute_orbit:06d}_{p.sensing_time:%Y%m%dT%H%M%S}"
        img = safe / "GRANULE" / gran / "IMG_DATA"
        return safe, safe / "MTD_MSIL1C.xml", {b: img / f"{p.file_stem}_{b}.tif" for b in S2_BANDS_13}
    if r.sensor == "landsat_oli_c2l2":
        folder = root / name
        bands = {b: folder / f"{name}_{b}.TIF" for b in (*LANDSAT_BANDS, "QA_PIXEL")}
        return folder, folder / f"{name}_MTL.txt", bands
    path = root / f"{name}_ortho.tif"
    return path, None, {b: path for b in GF_BANDS}


def write_product(scene: SyntheticScene, key: str, root: Path) -> None:
    """Write acquisition ``key`` (not Sentinel-2 L2A) under ``root`` in its product's layout."""
    r = rendering_of(scene, key)
    product, meta, bands = layout(root, scene, key)
    if r.sensor == "sentinel2_l1c":
        assert meta is not None  # an L1C product has its MTD_MSIL1C.xml
        with atomic(meta) as tmp:
            tmp.write_text(_mtd_l1c(scene, key, product, bands), encoding="utf-8")
        tl = bands["B02"].parents[1] / "MTD_TL.xml"
        with atomic(tl) as tmp:
            tmp.write_text(_mtd_tl_l1c(scene, key), encoding="utf-8")
        _write_rasters(scene, key, bands, per_band=True)
    elif r.sensor == "landsat_oli_c2l2":
        _write_rasters(scene, key, bands, per_band=True)
        assert meta is not None  # a Landsat product has its _MTL.txt
        with atomic(meta) as tmp:
            tmp.write_text(_mtl(scene, key, bands), encoding="utf-8")
    else:
        _write_rasters(scene, key, bands, per_band=False)


def _write_rasters(scene: SyntheticScene, key: str, paths: dict[str, Path], *, per_band: bool) -> None:
    """Render the product window by window into temporary files; move them into place at the end."""
    import rasterio

    r = rendering_of(scene, key)
    grids = product_grids(scene, key)
    base = base_grid(scene, key)
    files: dict[Path, list[str]] = {}
    for b, p in paths.items():
        files.setdefault(p, []).append(b)
    with rasters_in_place(files) as (tmps, dsts):
        for p, names in files.items():
            tmps[p].parent.mkdir(parents=True, exist_ok=True)
            prof = band_profile(grids[names[0]], "uint16")
            prof["count"] = len(names)
            if names == ["QA_PIXEL"]:
                prof["nodata"] = None  # 1 is fill in QA_PIXEL, and a value like any other
            dst = rasterio.open(tmps[p], "w", **prof)
            dsts[p] = dst
            if per_band:
                dst.set_band_description(1, names[0])
        for win in base.chunks(_CHUNK[r.sensor]):
            arrays = render_product(scene, key, window=win)
            for p, names in files.items():
                for i, b in enumerate(names, start=1):
                    target = _target(win, base, grids[b])
                    if target is not None:
                        dsts[p].write(arrays[b], i, window=target.to_rasterio())


def _target(win: Any, base: Any, grid: Any) -> Window | None:
    """The window of ``grid`` the pixels of ``win`` (on ``base``) cover, clipped to ``grid``."""
    f = int(round(base.res[0] / grid.res[0]))
    w = Window(row_off=win.row_off * f, col_off=win.col_off * f, height=win.height * f, width=win.width * f)
    return w.intersection(grid.window)


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------
def _cloud_pct(scene: SyntheticScene, key: str) -> float:
    return cover_pct(scene, key)[1] if scene.acquisitions.set_index("key").loc[key, "clouds"] else 0.0


def _mtd_l1c(scene: SyntheticScene, key: str, safe: Path, paths: dict[str, Path]) -> str:
    p = scene.products[key]
    name = safe.name.removesuffix(".SAFE")
    generated = _dt.datetime.strptime(name.rsplit("_", 1)[1], "%Y%m%dT%H%M%S")
    parts = s2_mtd_parts(scene, p, paths, safe, level="1C", generated=generated,
                          doi="https://doi.org/10.5270/S2_-742ikth", uri=safe.name)
    offsets = ""
    if float(p.processing_baseline) >= 4.0:
        rows = "\n".join(f'        <RADIO_ADD_OFFSET band_id="{i}">{p.add_offset}</RADIO_ADD_OFFSET>'
                         for i in range(13))
        offsets = f"\n      <Radiometric_Offset_List>\n{rows}\n      </Radiometric_Offset_List>"
    cloud_pct = _cloud_pct(scene, key)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Synthetic product written by ecopatch.data.datasets (shrunk SAFE layout; bands are GeoTIFF, not JPEG2000). -->
<n1:Level-1C_User_Product xmlns:n1="{_NS_L1C}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="{_NS_L1C}">
{parts['product_info']}      <QUANTIFICATION_VALUE unit="none">{p.quantification_value}</QUANTIFICATION_VALUE>{offsets}
{parts['radiometry']}    </Product_Image_Characteristics>
  </n1:General_Info>
{parts['geometric']}  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud_pct:.6f}</Cloud_Coverage_Assessment>
    <Technical_Quality_Assessment>
      <DEGRADED_ANC_DATA_PERCENTAGE>0.0</DEGRADED_ANC_DATA_PERCENTAGE>
      <DEGRADED_MSI_DATA_PERCENTAGE>0</DEGRADED_MSI_DATA_PERCENTAGE>
    </Technical_Quality_Assessment>
    <Quality_Control_Checks>
      <Quality_Inspections>
        <quality_check checkType="FORMAT_CORRECTNESS">PASSED</quality_check>
      </Quality_Inspections>
    </Quality_Control_Checks>
  </n1:Quality_Indicators_Info>
</n1:Level-1C_User_Product>
"""


def _mtd_tl_l1c(scene: SyntheticScene, key: str) -> str:
    p = scene.products[key]
    grids = product_grids(scene, key)
    sizes = "\n".join(
        f'      <Size resolution="{res}">\n        <NROWS>{grids[b].height}</NROWS>\n'
        f"        <NCOLS>{grids[b].width}</NCOLS>\n      </Size>"
        for res, b in ((10, "B02"), (20, "B05"), (60, "B01")))
    geo = "\n".join(
        f'      <Geoposition resolution="{res}">\n        <ULX>{grids[b].transform.c:.0f}</ULX>\n'
        f"        <ULY>{grids[b].transform.f:.0f}</ULY>\n        <XDIM>{res}</XDIM>\n        <YDIM>-{res}</YDIM>\n"
        f"      </Geoposition>"
        for res, b in ((10, "B02"), (20, "B05"), (60, "B01")))
    g = cloud_geometry()
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Synthetic tile metadata written by ecopatch.data.datasets (the grid is a window of tile {p.tile_id}). -->
<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd">
  <n1:General_Info>
    <SENSING_TIME>{fmt_time(p.sensing_time)}</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding>
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone 50N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:32650</HORIZONTAL_CS_CODE>
{sizes}
{geo}
    </Tile_Geocoding>
    <Tile_Angles>
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">{g["sun_zenith_deg"]}</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">{g["sun_azimuth_deg"]}</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
</n1:Level-1C_Tile_ID>
"""


def _mtl(scene: SyntheticScene, key: str, bands: dict[str, Path]) -> str:
    """A Landsat Collection 2 Level-2 MTL (ODL text) for the written files."""
    from ecopatch.geo.geodesy import transformer

    p = scene.products[key]
    name = product_name(scene, key)
    craft = "LANDSAT_9" if name.startswith("LC09") else "LANDSAT_8"
    grid = product_grids(scene, key)["SR_B1"]
    g = cloud_geometry()
    left, bottom, right, top = grid.bounds
    lon, lat = transformer(grid.crs, "EPSG:4326").transform([left, right, left, right], [top, top, bottom, bottom])
    epsg = grid.crs.to_epsg() or 0
    proj = (f'    MAP_PROJECTION = "UTM"\n    DATUM = "WGS84"\n    ELLIPSOID = "WGS84"\n    UTM_ZONE = {epsg - 32600}\n'
            if 32601 <= epsg <= 32660 else f'    MAP_PROJECTION = "{grid.crs.name}"\n')
    corners = "".join(
        f"    CORNER_{c}_LAT_PRODUCT = {la:.5f}\n    CORNER_{c}_LON_PRODUCT = {lo:.5f}\n"
        for c, lo, la in zip(("UL", "UR", "LL", "LR"), lon, lat))
    files = "".join(f'    FILE_NAME_BAND_{b.removeprefix("SR_B")} = "{bands[b].name}"\n' for b in LANDSAT_BANDS)
    refl = "".join(f"    REFLECTANCE_MULT_BAND_{b.removeprefix('SR_B')} = 2.75e-05\n" for b in LANDSAT_BANDS)
    refl += "".join(f"    REFLECTANCE_ADD_BAND_{b.removeprefix('SR_B')} = -0.2\n" for b in LANDSAT_BANDS)
    done = _dt.date.fromisoformat(f"{name.split('_')[4][:4]}-{name.split('_')[4][4:6]}-{name.split('_')[4][6:]}")
    cloud = _cloud_pct(scene, key)
    return (
        "GROUP = LANDSAT_METADATA_FILE\n"
        "  GROUP = PRODUCT_CONTENTS\n"
        '    ORIGIN = "Synthetic product written by ecopatch.data.datasets (not USGS data)"\n'
        f'    LANDSAT_PRODUCT_ID = "{name}"\n'
        '    PROCESSING_LEVEL = "L2SP"\n'
        "    COLLECTION_NUMBER = 02\n"
        '    COLLECTION_CATEGORY = "T1"\n'
        '    OUTPUT_FORMAT = "GEOTIFF"\n'
        f"{files}"
        f'    FILE_NAME_QUALITY_L1_PIXEL = "{bands["QA_PIXEL"].name}"\n'
        f'    FILE_NAME_METADATA_ODL = "{name}_MTL.txt"\n'
        "  END_GROUP = PRODUCT_CONTENTS\n"
        "  GROUP = IMAGE_ATTRIBUTES\n"
        f'    SPACECRAFT_ID = "{craft}"\n'
        '    SENSOR_ID = "OLI_TIRS"\n'
        "    WRS_TYPE = 2\n    WRS_PATH = 119\n    WRS_ROW = 39\n"
        f"    DATE_ACQUIRED = {p.sensing_time:%Y-%m-%d}\n"
        f'    SCENE_CENTER_TIME = "{p.sensing_time:%H:%M:%S}.0000000Z"\n'
        f"    CLOUD_COVER = {cloud:.2f}\n    CLOUD_COVER_LAND = {cloud:.2f}\n"
        f"    SUN_AZIMUTH = {g['sun_azimuth_deg']:.8f}\n"
        f"    SUN_ELEVATION = {90.0 - g['sun_zenith_deg']:.8f}\n"
        "  END_GROUP = IMAGE_ATTRIBUTES\n"
        "  GROUP = PROJECTION_ATTRIBUTES\n"
        f"{proj}"
        f"    GRID_CELL_SIZE_REFLECTIVE = {grid.res[0]:.2f}\n"
        f"    REFLECTIVE_LINES = {grid.height}\n    REFLECTIVE_SAMPLES = {grid.width}\n"
        '    ORIENTATION = "NORTH_UP"\n'
        f"{corners}"
        f"    CORNER_UL_PROJECTION_X_PRODUCT = {left:.3f}\n    CORNER_UL_PROJECTION_Y_PRODUCT = {top:.3f}\n"
        f"    CORNER_LR_PROJECTION_X_PRODUCT = {right:.3f}\n    CORNER_LR_PROJECTION_Y_PRODUCT = {bottom:.3f}\n"
        "  END_GROUP = PROJECTION_ATTRIBUTES\n"
        "  GROUP = LEVEL2_PROCESSING_RECORD\n"
        f'    LANDSAT_PRODUCT_ID = "{name}"\n'
        '    PROCESSING_LEVEL = "L2SP"\n'
        f"    DATE_PRODUCT_GENERATED = {done:%Y-%m-%d}T05:12:44Z\n"
        '    ALGORITHM_SOURCE_SURFACE_REFLECTANCE = "LaSRC_1.6.0"\n'
        "  END_GROUP = LEVEL2_PROCESSING_RECORD\n"
        "  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n"
        f"{refl}"
        "  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n"
        "END_GROUP = LANDSAT_METADATA_FILE\n"
        "END\n"
    )

