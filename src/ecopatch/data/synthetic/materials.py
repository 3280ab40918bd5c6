"""Bands, materials and their spectra, and product metadata of the synthetic scenes."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: Sentinel-2 bands rendered at 10 m.
BANDS_10M: tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: Sentinel-2 bands rendered at 20 m (as in real L2A products).
BANDS_20M: tuple[str, ...] = ("B11", "B12")
#: All reflectance bands, in the order of the spectra in :data:`MATERIALS`.
BANDS: tuple[str, ...] = BANDS_10M + BANDS_20M
#: Every raster of a date: the bands and the scene classification (SCL, 20 m).
RASTERS: tuple[str, ...] = BANDS + ("SCL",)
#: The two acquisition keys of a scene.
DATES: tuple[str, ...] = ("before", "after")

#: Sen2Cor scene classification values used by the generator.
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
}

#: Upper-left corner of MGRS tile T50RQU (EPSG:32650), metres; scenes snap to its 60 m grid.
TILE_ORIGIN_XY: tuple[float, float] = (699960.0, 3400020.0)
SNAP_M = 60.0
RES_M = 10.0
SUPERSAMPLING = 10  # supersampling factor: 1 m fine pixels for the 10 m grid
RENDER_TILE = 256  # internal render tile, 10 m pixels (2.56 km); fixed so blocks are reproducible
SCENE_CRS = "EPSG:32650"
SUN_ZENITH_DEG = 33.0
SUN_AZIMUTH_DEG = 145.0
CLOUD_HEIGHT_M = 1000.0  # height of the clouds' bases above the ground; their shadows fall height·tan(zenith) away
N_OVERLAY = 5  # 0 clear, 1 shadow, 2 cirrus, 3 cloud medium, 4 cloud high


@dataclass(frozen=True)
class Material:
    """A ground material with its Sentinel-2 surface reflectance.

    Attributes
    ----------
    key : str
        Short English name.
    zh : str
        Chinese name.
    group : {"vegetation", "bare", "built", "water"}
        Cover group; "vegetation" counts as vegetated in the truth tables,
        "bare" and "built" as damaged / not vegetated.
    spectrum : tuple of float
        Mean surface reflectance (unitless, 0-1) in B02, B03, B04, B08, B11,
        B12 before texture; vegetation materials mix a canopy spectrum with
        a background one (see ``material_reflectance``).
    rgb : tuple of int
        Mean sRGB colour (0-255) in the drone orthomosaic.
    """

    key: str
    zh: str
    group: str
    spectrum: tuple[float, ...]
    rgb: tuple[int, int, int]


# Reflectance values follow spectral-library means (USGS splib07, ECOSTRESS)
# resampled to the Sentinel-2 bands: subtropical evergreen canopy, red soil
# (laterite) of Zhejiang, limestone/granite quarry faces, painted steel.
SPECTRA: dict[str, tuple[float, ...]] = {
    "forest_canopy": (0.025, 0.046, 0.025, 0.330, 0.150, 0.062),
    "forest_open": (0.055, 0.085, 0.095, 0.245, 0.255, 0.160),
    "shrub_canopy": (0.032, 0.065, 0.042, 0.320, 0.200, 0.090),
    "dry_grass": (0.060, 0.090, 0.110, 0.280, 0.300, 0.200),
    "crop_canopy": (0.030, 0.068, 0.036, 0.400, 0.205, 0.090),
    "wet_soil": (0.050, 0.065, 0.075, 0.120, 0.140, 0.095),
    "young_canopy": (0.038, 0.075, 0.050, 0.280, 0.210, 0.105),
    "red_soil": (0.075, 0.105, 0.170, 0.230, 0.310, 0.250),
    "rock": (0.200, 0.225, 0.245, 0.280, 0.320, 0.275),
    "concrete": (0.150, 0.165, 0.175, 0.195, 0.225, 0.205),
    "blue_roof": (0.190, 0.165, 0.105, 0.160, 0.150, 0.110),
    "asphalt": (0.055, 0.065, 0.072, 0.090, 0.110, 0.100),
    "clear_water": (0.048, 0.060, 0.032, 0.012, 0.006, 0.004),
    "turbid_water": (0.065, 0.095, 0.085, 0.045, 0.014, 0.009),
    "cloud": (0.440, 0.430, 0.430, 0.450, 0.360, 0.260),
}
SHADOW_FACTOR = np.array([0.42, 0.38, 0.34, 0.30, 0.28, 0.28])

#: Materials by id (the id is the index).  Ids are stable within a version.
MATERIALS: tuple[Material, ...] = (
    Material("forest", "常绿林", "vegetation", SPECTRA["forest_canopy"], (44, 68, 38)),
    Material("shrub_grass", "灌草地", "vegetation", SPECTRA["shrub_canopy"], (96, 122, 62)),
    Material("cropland", "耕地", "vegetation", SPECTRA["crop_canopy"], (108, 150, 62)),
    Material("young_veg", "复绿新植植被", "vegetation", SPECTRA["young_canopy"], (112, 138, 70)),
    Material("logged", "采伐迹地", "vegetation", SPECTRA["shrub_canopy"], (124, 118, 74)),
    Material("fallow", "撂荒地", "bare", SPECTRA["red_soil"], (152, 122, 86)),
    Material("bare_soil", "裸土", "bare", SPECTRA["red_soil"], (172, 112, 80)),
    Material("quarry_rock", "采场裸岩", "bare", SPECTRA["rock"], (176, 172, 164)),
    Material("concrete", "水泥地面", "built", SPECTRA["concrete"], (186, 186, 180)),
    Material("blue_roof", "彩钢瓦", "built", SPECTRA["blue_roof"], (62, 112, 176)),
    Material("asphalt", "沥青路面", "built", SPECTRA["asphalt"], (72, 72, 74)),
    Material("clear_water", "清水水面", "water", SPECTRA["clear_water"], (48, 74, 82)),
    Material("turbid_water", "浑浊水体", "water", SPECTRA["turbid_water"], (104, 114, 80)),
)
MATERIAL_INDEX = {m.key: i for i, m in enumerate(MATERIALS)}
N_MATERIALS = len(MATERIALS)
IS_VEGETATION = np.array([m.group == "vegetation" for m in MATERIALS])
IS_WATER = np.array([m.group == "water" for m in MATERIALS])

DIRECTION_MATERIAL = {  # restoration direction -> material of the restored ground
    "forest": "young_veg",
    "shrub": "shrub_grass",
    "grass": "shrub_grass",
    "cropland": "cropland",
    "natural": "young_veg",
}

# After-date radiometry relative to before: gain * rho + offset (+ haze), per band.
AFTER_GAIN = np.array([0.97, 0.98, 0.96, 1.04, 1.03, 1.02])
AFTER_OFFSET = np.array([0.006, 0.004, 0.003, -0.004, 0.002, 0.001])
AFTER_HAZE = np.array([0.012, 0.008, 0.005, 0.002, 0.0, 0.0])
# After-date phenology of the canopies (multiplies the canopy spectrum).
PHENOLOGY = {
    "forest": np.array([0.97, 0.98, 0.94, 1.03, 0.99, 0.98]),  # greener
    "shrub_grass": np.array([1.03, 1.02, 1.06, 0.97, 1.03, 1.04]),  # drier
    "cropland": np.array([1.02, 1.00, 1.08, 0.95, 1.03, 1.04]),  # ripening rice
}
#: Sensor noise, reflectance units (1 sigma), per band.
NOISE_SIGMA = (0.004, 0.004, 0.004, 0.006, 0.005, 0.005)

# ---------------------------------------------------------------------------
# Product metadata
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductMeta:
    """Sentinel-2 L2A product metadata of one synthetic acquisition.

    Attributes
    ----------
    product_id : str
        SAFE product name without ``.SAFE``.
    spacecraft : str
        "Sentinel-2A" or "Sentinel-2B".
    sensing_time : datetime.datetime
        Datatake sensing start, UTC.
    generation_time : datetime.datetime
        Product generation time, UTC.
    processing_baseline : str
        For example "03.01" or "05.10".
    quantification_value : int
        BOA_QUANTIFICATION_VALUE: reflectance = (DN + add_offset) / value.
    add_offset : int
        BOA_ADD_OFFSET in DN (0 before baseline 04.00, -1000 from it on).
    tile_id : str
        MGRS tile, "T50RQU".
    relative_orbit : int
        Relative orbit number (R089).
    absolute_orbit : int
        Absolute orbit number of the granule.
    """

    product_id: str
    spacecraft: str
    sensing_time: _dt.datetime
    generation_time: _dt.datetime
    processing_baseline: str
    quantification_value: int
    add_offset: int
    tile_id: str
    relative_orbit: int
    absolute_orbit: int

    @property
    def granule_id(self) -> str:
        """Granule folder name, e.g. ``L2A_T50RQU_A038975_20240912T023529``."""
        return f"L2A_{self.tile_id}_A{self.absolute_orbit:06d}_{self.sensing_time:%Y%m%dT%H%M%S}"

    @property
    def file_stem(self) -> str:
        """Prefix of the band file names, e.g. ``T50RQU_20240912T023529``."""
        return f"{self.tile_id}_{self.sensing_time:%Y%m%dT%H%M%S}"

    @property
    def dn_offset(self) -> int:
        """What is added to reflectance × quantification to get DN (``-add_offset``)."""
        return -self.add_offset


def product_meta(spacecraft: str, sensing: _dt.datetime, generated: _dt.datetime, baseline: str,
             abs_orbit: int) -> ProductMeta:
    """Metadata of one Sentinel-2 L2A product of the scene (ids, times, processing baseline)."""
    add = -1000 if float(baseline) >= 4.0 else 0
    pid = (
        f"S2{spacecraft[-1]}_MSIL2A_{sensing:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}"
        f"_R089_T50RQU_{generated:%Y%m%dT%H%M%S}"
    )
    return ProductMeta(pid, spacecraft, sensing, generated, baseline, 10000, add, "T50RQU", 89,
                       abs_orbit)


UTC = _dt.timezone.utc
#: The two products every scene imitates.
PRODUCTS: dict[str, ProductMeta] = {
    "before": product_meta("Sentinel-2A", _dt.datetime(2021, 9, 18, 2, 35, 51, tzinfo=UTC),
                       _dt.datetime(2021, 9, 18, 6, 33, 15, tzinfo=UTC), "03.01", 32547),
    "after": product_meta("Sentinel-2B", _dt.datetime(2024, 9, 12, 2, 35, 29, tzinfo=UTC),
                      _dt.datetime(2024, 9, 12, 6, 10, 20, tzinfo=UTC), "05.10", 38975),
}
