"""Product metadata XML of the synthetic Sentinel-2 products (``MTD_MSIL2A.xml``, ``MTD_TL.xml``).

Genuine-looking metadata, as ESA writes it, for the product folders
:mod:`ecopatch.data.datasets` and :mod:`ecopatch.data.synthetic.products` write.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecopatch.geo.geodesy import transformer

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.scene import SyntheticScene

__all__ = ["cover_pct", "fmt_time", "mtd_tl_xml", "mtd_xml", "s2_mtd_parts"]


# (physical band, resolution m, min, max, central wavelength nm)
_S2_BANDS = (
    ("B1", 60, 430, 457, 442.7), ("B2", 10, 440, 538, 492.4), ("B3", 10, 537, 582, 559.8),
    ("B4", 10, 646, 684, 664.6), ("B5", 20, 694, 713, 704.1), ("B6", 20, 731, 749, 740.5),
    ("B7", 20, 769, 797, 782.8), ("B8", 10, 760, 908, 832.8), ("B8A", 20, 848, 881, 864.7),
    ("B9", 60, 932, 958, 945.1), ("B10", 60, 1337, 1412, 1373.5), ("B11", 20, 1539, 1682, 1613.7),
    ("B12", 20, 2078, 2320, 2202.4),
)
_SOLAR_IRRADIANCE = {
    "Sentinel-2A": (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32,
                    812.92, 367.15, 245.59, 85.25),
    "Sentinel-2B": (1874.30, 1959.75, 1824.93, 1512.79, 1425.78, 1291.13, 1175.57, 1041.28, 953.93,
                    817.58, 365.41, 247.08, 87.75),
}
_SCL_TEXT = ("SC_NODATA", "SC_SATURATED_DEFECTIVE", "SC_DARK_FEATURE_SHADOW", "SC_CLOUD_SHADOW",
             "SC_VEGETATION", "SC_NOT_VEGETATED", "SC_WATER", "SC_UNCLASSIFIED",
             "SC_CLOUD_MEDIUM_PROBA", "SC_CLOUD_HIGH_PROBA", "SC_THIN_CIRRUS", "SC_SNOW_ICE")


_NS_L2A = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"


def fmt_time(t: _dt.datetime) -> str:
    """A time as ESA metadata writes it (UTC, milliseconds, ``Z``)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def cover_pct(scene: SyntheticScene, date: str) -> tuple[float, float]:
    """(nodata %, cloud %) of the scene footprint, from the truth geometries."""
    fp = scene.grid.footprint()
    a = fp.area
    nod = scene.nodata[scene.nodata["date"] == date]
    nod_pct = 100 * sum(g.intersection(fp).area for g in nod.geometry) / a
    cl = scene.clouds[(scene.clouds["date"] == date) & scene.clouds["kind"].isin(
        ["cloud_high", "cloud_medium", "cirrus"])] if len(scene.clouds) else scene.clouds
    cloud_pct = 100 * sum(g.intersection(fp).area for g in cl.geometry) / a
    return nod_pct, cloud_pct


def s2_mtd_parts(scene: SyntheticScene, p: Any, paths: dict[str, Path], safe: Path, *, level: str,
                  generated: _dt.datetime, doi: str, uri: str) -> dict[str, str]:
    """The parts of a product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` that both levels share.

    ``level`` is ``"1C"`` or ``"2A"``; returns the ``Product_Info`` block (through the image display
    order), the reflectance conversion and spectral information, and the geometric info, as XML text.
    """
    stop = p.sensing_time + _dt.timedelta(seconds=3)
    doy = p.sensing_time.timetuple().tm_yday
    u = 1.0 / (1.0 - 0.01673 * math.cos(0.0172 * (doy - 4))) ** 2
    files = "\n".join(
        f"              <IMAGE_FILE>{path.relative_to(safe).with_suffix('').as_posix()}</IMAGE_FILE>"
        for path in paths.values()
    )
    irr = "\n".join(
        f'          <SOLAR_IRRADIANCE bandId="{i}" unit="W/m²/µm">{v:.2f}</SOLAR_IRRADIANCE>'
        for i, v in enumerate(_SOLAR_IRRADIANCE[p.spacecraft])
    )
    spectral = "\n".join(
        f'        <Spectral_Information bandId="{i}" physicalBand="{name}">\n'
        f"          <RESOLUTION>{res}</RESOLUTION>\n"
        f'          <Wavelength>\n            <MIN unit="nm">{lo}</MIN>\n            <MAX unit="nm">{hi}</MAX>\n'
        f'            <CENTRAL unit="nm">{c}</CENTRAL>\n          </Wavelength>\n'
        f"        </Spectral_Information>"
        for i, (name, res, lo, hi, c) in enumerate(_S2_BANDS)
    )
    lft, b, r, t = scene.grid.bounds
    lon, lat = transformer(scene.grid.crs, "EPSG:4326").transform([lft, r, r, lft, lft], [t, t, b, b, t])
    footprint = " ".join(f"{la:.9f} {lo:.9f}" for lo, la in zip(lon, lat))
    sat = p.spacecraft[-1]
    datatake = f"G{p.product_id[:3]}_{p.sensing_time:%Y%m%dT%H%M%S}_{p.absolute_orbit:06d}_N{p.processing_baseline}"
    datastrip = (f"{p.product_id[:3]}_OPER_MSI_L{level}_DS_2{sat}PS_{generated:%Y%m%dT%H%M%S}"
                 f"_S{p.sensing_time:%Y%m%dT%H%M%S}_N{p.processing_baseline}")
    granule = (f"{p.product_id[:3]}_OPER_MSI_L{level}_TL_2{sat}PS_{generated:%Y%m%dT%H%M%S}"
               f"_A{p.absolute_orbit:06d}_{p.tile_id}_N{p.processing_baseline}")
    product_info = f"""  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{fmt_time(p.sensing_time)}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{fmt_time(stop)}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{uri}</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-{level}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI{level}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{p.processing_baseline}</PROCESSING_BASELINE>
      <PRODUCT_DOI>{doi}</PRODUCT_DOI>
      <GENERATION_TIME>{generated:%Y-%m-%dT%H:%M:%S}.000000Z</GENERATION_TIME>
      <PREVIEW_IMAGE_URL>Not applicable</PREVIEW_IMAGE_URL>
      <PREVIEW_GEO_INFO>Not applicable</PREVIEW_GEO_INFO>
      <Datatake datatakeIdentifier="{datatake}">
        <SPACECRAFT_NAME>{p.spacecraft}</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{fmt_time(p.sensing_time)}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>{p.relative_orbit}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Query_Options completeSingleTile="true">
        <PRODUCT_FORMAT>SAFE_COMPACT</PRODUCT_FORMAT>
      </Query_Options>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="{datastrip}" granuleIdentifier="{granule}" imageFormat="GeoTIFF">
{files}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Image_Display_Order>
        <RED_CHANNEL>3</RED_CHANNEL>
        <GREEN_CHANNEL>2</GREEN_CHANNEL>
        <BLUE_CHANNEL>1</BLUE_CHANNEL>
      </Image_Display_Order>
"""
    radiometry = f"""      <Reflectance_Conversion>
        <U>{u:.15f}</U>
        <Solar_Irradiance_List>
{irr}
        </Solar_Irradiance_List>
      </Reflectance_Conversion>
      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
      <PHYSICAL_GAINS_LIST_NOT_APPLICABLE/>
      <REFERENCE_BAND>0</REFERENCE_BAND>
"""
    geometric = f"""  <n1:Geometric_Info>
    <Product_Footprint>
      <Product_Footprint>
        <Global_Footprint>
          <EXT_POS_LIST>{footprint}</EXT_POS_LIST>
        </Global_Footprint>
      </Product_Footprint>
      <RASTER_CS_TYPE>POINT</RASTER_CS_TYPE>
      <PIXEL_ORIGIN>1</PIXEL_ORIGIN>
    </Product_Footprint>
    <Coordinate_Reference_System>
      <GEO_TABLES version="1">EPSG</GEO_TABLES>
      <HORIZONTAL_CS_TYPE>GEOGRAPHIC</HORIZONTAL_CS_TYPE>
    </Coordinate_Reference_System>
  </n1:Geometric_Info>
"""
    return {"product_info": product_info, "radiometry": radiometry, "geometric": geometric}


def mtd_xml(scene: SyntheticScene, date: str, paths: dict[str, Path], safe: Path) -> str:
    """``MTD_MSIL2A.xml`` of the scene's product of ``date``."""
    p = scene.products[date]
    parts = s2_mtd_parts(scene, p, paths, safe, level="2A", generated=p.generation_time,
                          doi="https://doi.org/10.5270/S2_-znk9xsj", uri=f"{p.product_id}.SAFE")
    offsets = ""
    if float(p.processing_baseline) >= 4.0:
        rows = "\n".join(f'        <BOA_ADD_OFFSET band_id="{i}">{p.add_offset}</BOA_ADD_OFFSET>'
                         for i in range(13))
        offsets = f"\n      <BOA_ADD_OFFSET_VALUES_LIST>\n{rows}\n      </BOA_ADD_OFFSET_VALUES_LIST>"
    scl = "\n".join(
        f"        <Scene_Classification_ID>\n          <SCENE_CLASSIFICATION_TEXT>{t}</SCENE_CLASSIFICATION_TEXT>\n"
        f"          <SCENE_CLASSIFICATION_INDEX>{i}</SCENE_CLASSIFICATION_INDEX>\n"
        f"        </Scene_Classification_ID>"
        for i, t in enumerate(_SCL_TEXT)
    )
    nod_pct, cloud_pct = cover_pct(scene, date)
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Synthetic product written by ecopatch.data.datasets (shrunk SAFE layout; bands are GeoTIFF, not JPEG2000). -->
<n1:Level-2A_User_Product xmlns:n1="{_NS_L2A}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
xsi:schemaLocation="{_NS_L2A}">
{parts['product_info']}      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">{p.quantification_value}</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>{offsets}
{parts['radiometry']}      <Scene_Classification_List>
{scl}
      </Scene_Classification_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
{parts['geometric']}  <n1:Quality_Indicators_Info>
    <Cloud_Coverage_Assessment>{cloud_pct:.6f}</Cloud_Coverage_Assessment>
    <Image_Content_QI>
      <NODATA_PIXEL_PERCENTAGE>{nod_pct:.6f}</NODATA_PIXEL_PERCENTAGE>
      <CLOUDY_PIXEL_OVER_LAND_PERCENTAGE>{cloud_pct:.6f}</CLOUDY_PIXEL_OVER_LAND_PERCENTAGE>
    </Image_Content_QI>
  </n1:Quality_Indicators_Info>
</n1:Level-2A_User_Product>
"""


def mtd_tl_xml(scene: SyntheticScene, date: str) -> str:
    """``MTD_TL.xml`` (the granule's metadata: geocoding, sun and view angles) of ``date``."""
    p = scene.products[date]
    g10, g20 = scene.grid, scene.grid20
    tile_id = (f"{p.product_id[:3]}_OPER_MSI_L2A_TL_2{p.spacecraft[-1]}PS_{p.generation_time:%Y%m%dT%H%M%S}"
               f"_A{p.absolute_orbit:06d}_{p.tile_id}_N{p.processing_baseline}")
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<!-- Synthetic tile metadata written by ecopatch.data.datasets (the grid is a window of tile {p.tile_id}). -->
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd">
  <n1:General_Info>
    <TILE_ID>{tile_id}</TILE_ID>
    <SENSING_TIME>{fmt_time(p.sensing_time)}</SENSING_TIME>
  </n1:General_Info>
  <n1:Geometric_Info>
    <Tile_Geocoding>
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone 50N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:32650</HORIZONTAL_CS_CODE>
      <Size resolution="10">
        <NROWS>{g10.height}</NROWS>
        <NCOLS>{g10.width}</NCOLS>
      </Size>
      <Size resolution="20">
        <NROWS>{g20.height}</NROWS>
        <NCOLS>{g20.width}</NCOLS>
      </Size>
      <Geoposition resolution="10">
        <ULX>{g10.transform.c:.0f}</ULX>
        <ULY>{g10.transform.f:.0f}</ULY>
        <XDIM>10</XDIM>
        <YDIM>-10</YDIM>
      </Geoposition>
      <Geoposition resolution="20">
        <ULX>{g20.transform.c:.0f}</ULX>
        <ULY>{g20.transform.f:.0f}</ULY>
        <XDIM>20</XDIM>
        <YDIM>-20</YDIM>
      </Geoposition>
    </Tile_Geocoding>
    <Tile_Angles>
      <Mean_Sun_Angle>
        <ZENITH_ANGLE unit="deg">33.0</ZENITH_ANGLE>
        <AZIMUTH_ANGLE unit="deg">145.0</AZIMUTH_ANGLE>
      </Mean_Sun_Angle>
    </Tile_Angles>
  </n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""
