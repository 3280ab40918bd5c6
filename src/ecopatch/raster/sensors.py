"""Per-product band names, scale/offset and cloud-mask rules, as data.

Every sensor ecopatch reads is described by a :class:`SensorProfile`: which
product band is which common band (``blue``, ``green``, ``red``, ``nir``,
``swir1`` ...), how digital numbers become reflectance
(``reflectance = DN × scale + offset``), which value is nodata, and how the
product's own quality band marks clouds.

Common band names follow the STAC ``eo`` extension: coastal, blue, green,
red, rededge1-3, nir, nir08, swir1, swir2, yellow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ecopatch.errors import ConfigError

__all__ = [
    "COMMON_BANDS",
    "SENSORS",
    "SensorProfile",
    "ANALYSIS_NEEDS",
    "SENSOR_ALIASES",
    "AnalysisNeed",
    "HLS_FMASK_UNUSABLE_BITS",
    "LANDSAT_QA_BITS",
    "LANDSAT_QA_CONFIDENCE",
    "LANDSAT_QA_UNUSABLE",
    "get_sensor",
    "hls_fmask_clear",
    "landsat_qa_clear",
    "landsat_qa_flags",
    "scl_clear",
]

#: Common band names understood everywhere in ecopatch.
COMMON_BANDS: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "yellow", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "cirrus", "swir1", "swir2",
)

#: Sentinel-2 Scene Classification (SCL) classes treated as unusable:
#: 0 no data, 1 saturated/defective, 3 cloud shadow, 8 cloud medium probability,
#: 9 cloud high probability, 10 thin cirrus, 11 snow.
SCL_UNUSABLE: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)


def scl_clear(scl: np.ndarray) -> np.ndarray:
    """True where a Sentinel-2 SCL value is usable (not cloud, shadow, cirrus, snow, nodata).

    Examples
    --------
    >>> scl_clear(np.array([4, 5, 6, 8, 9, 3, 0, 10])).tolist()
    [True, True, True, False, False, False, False, False]
    """
    return ~np.isin(scl, SCL_UNUSABLE)


#: Bits of a Landsat Collection 2 QA_PIXEL band (the same layout for TM, ETM+ and OLI; bit 2,
#: cirrus, and bits 14-15, cirrus confidence, are set by OLI only and are 0 for TM and ETM+).
LANDSAT_QA_BITS: Mapping[str, int] = MappingProxyType({
    "fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4, "snow": 5,
    "clear": 6, "water": 7,
})
#: Two-bit confidence fields of QA_PIXEL: name -> lowest bit (0 none, 1 low, 2 medium, 3 high).
LANDSAT_QA_CONFIDENCE: Mapping[str, int] = MappingProxyType({
    "cloud_confidence": 8, "cloud_shadow_confidence": 10, "snow_confidence": 12, "cirrus_confidence": 14,
})
#: QA_PIXEL flags that make a pixel unusable for ecopatch (water is a surface, not a defect).
LANDSAT_QA_UNUSABLE: tuple[str, ...] = ("fill", "dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")


def landsat_qa_flags(qa: np.ndarray) -> dict[str, np.ndarray]:
    """Decode a Landsat Collection 2 QA_PIXEL band into its flags and confidences.

    Parameters
    ----------
    qa : ndarray of int
        QA_PIXEL values (uint16) of a TM, ETM+ or OLI Level-1 or Level-2 product.

    Returns
    -------
    dict of str to ndarray
        One boolean array per flag of :data:`LANDSAT_QA_BITS` and one uint8
        array (0 none, 1 low, 2 medium, 3 high) per confidence of
        :data:`LANDSAT_QA_CONFIDENCE`.  On TM and ETM+ ``cirrus`` and
        ``cirrus_confidence`` are always 0.

    Examples
    --------
    >>> f = landsat_qa_flags(np.array([21824, 22280, 55052, 23888, 1]))
    >>> f["clear"].tolist(), f["cloud"].tolist(), f["cirrus"].tolist(), f["cloud_shadow"].tolist()
    ([True, False, False, True], [False, True, True, False], [False, False, True, False], [False, False, False, True])
    >>> f["fill"].tolist()[-1], f["cloud_confidence"].tolist()[:3]
    (True, [1, 3, 3])
    """
    q = np.asarray(qa).astype(np.uint32)
    out: dict[str, np.ndarray] = {k: (q >> b) & 1 == 1 for k, b in LANDSAT_QA_BITS.items()}
    for k, b in LANDSAT_QA_CONFIDENCE.items():
        out[k] = ((q >> b) & 0b11).astype(np.uint8)
    return out


def landsat_qa_clear(qa: np.ndarray) -> np.ndarray:
    """True where a Landsat Collection 2 QA_PIXEL value is clear of fill, cloud and shadow.

    Bits (C2 definition, TM, ETM+ and OLI alike): 0 fill, 1 dilated cloud,
    2 cirrus (OLI only; 0 on TM/ETM+), 3 cloud, 4 cloud shadow, 5 snow.  A
    pixel is usable when none of bits 0-5 is set; water (bit 7) is usable.
    See :func:`landsat_qa_flags` for every flag and confidence.

    Examples
    --------
    >>> landsat_qa_clear(np.array([21824, 1, 22280, 55052, 23888])).tolist()
    [True, False, False, False, False]
    """
    qa = np.asarray(qa).astype(np.uint32)
    return (qa & 0b111111) == 0


#: Bits of the HLS v2.0 Fmask band: 0 cirrus (reserved), 1 cloud, 2 adjacent to cloud or
#: shadow, 3 cloud shadow, 4 snow/ice, 5 water, 6-7 aerosol level; 255 is fill.
HLS_FMASK_UNUSABLE_BITS: int = 0b0001_1110


def hls_fmask_clear(fmask: np.ndarray) -> np.ndarray:
    """True where an HLS v2.0 Fmask value is clear (no cloud, adjacency, shadow, snow; not fill).

    Examples
    --------
    >>> hls_fmask_clear(np.array([0, 64, 32, 2, 4, 8, 16, 255])).tolist()
    [True, True, True, False, False, False, False, False]
    """
    f = np.asarray(fmask).astype(np.uint32)
    return ((f & HLS_FMASK_UNUSABLE_BITS) == 0) & (f != 255)


@dataclass(frozen=True)
class SensorProfile:
    """What ecopatch knows about one imaging product.

    Parameters
    ----------
    name : str
        Short key, e.g. ``"sentinel2_l2a"``.
    description : str
        Human-readable name.
    bands : mapping of str to str
        Common band name -> product band ID as it appears in file names or
        band descriptions (``{"red": "B04"}``).
    order : tuple of str
        Common band names in file band order, for single multi-band files
        that carry no band descriptions (e.g. GF-1 WFV: blue, green, red, nir).
    scale, offset : float
        ``reflectance = DN × scale + offset``; unitless reflectance 0-1.
    nodata : float or None
        DN meaning "no data" when the file does not say.
    mask : {"scl", "qa_pixel", None}
        The product's cloud/quality band, if any.
    mask_band : str or None
        Its band ID (``"SCL"``, ``"QA_PIXEL"``).
    res_m : float
        Nominal ground sampling distance, m.
    reflectance : bool
        False for drone RGB: values are relative brightness, only ratio
        indices (ExG, VARI ...) are meaningful.
    aliases : mapping of str to str
        Other band IDs of the same bands (``{"B4": "red"}``).
    level : str
        Processing level (``"L2A"``, ``"L1C"``, ``"L2SP"``, ``"L1TP"``,
        ``"L1A"``, ``"orthorectified"``; ``""`` when it does not apply).
    quantity : str
        What the values become: ``"surface reflectance"``, ``"top-of-atmosphere
        reflectance"`` or ``"relative brightness"``.
    calibration : {"profile", "metadata"}
        Where ``scale``/``offset`` come from: this profile, or the product's
        metadata (Landsat Level-1 MTL, Gaofen calibration tables): a file
        without that metadata needs ``scale=``/``offset=``.
    label_zh : str
        Chinese name for maps and reports.
    """

    name: str
    description: str
    bands: Mapping[str, str]
    order: tuple[str, ...] = ()
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    mask: str | None = None
    mask_band: str | None = None
    res_m: float = 10.0
    reflectance: bool = True
    aliases: Mapping[str, str] = field(default_factory=dict)
    level: str = ""
    quantity: str = "surface reflectance"
    calibration: str = "profile"
    label_zh: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", MappingProxyType(dict(self.bands)))
        object.__setattr__(self, "aliases", MappingProxyType(dict(self.aliases)))

    def band_id(self, common: str) -> str:
        """Product band ID of a common band name."""
        return self.bands[common]

    def common_name(self, band_id: str) -> str | None:
        """Common band name of a product band ID (case-insensitive), or None."""
        key = band_id.strip().upper()
        for common, bid in self.bands.items():
            if bid.upper() == key:
                return common
        for alias, common in self.aliases.items():
            if alias.upper() == key:
                return common
        return None


_S2_BANDS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04",
    "rededge1": "B05", "rededge2": "B06", "rededge3": "B07",
    "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir1": "B11", "swir2": "B12",
}
_S2_ALIASES = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
               "B6": "rededge2", "B7": "rededge3", "B8": "nir", "B9": "nir09"}

#: Landsat 4-5 TM and 7 ETM+: band 4 is NIR, 5 and 7 SWIR (6 is thermal, ETM+ 8 panchromatic).
_TM_BANDS = {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "swir1": "B5", "swir2": "B7"}
#: Landsat 8-9 OLI: band 1 is coastal aerosol, 5 NIR, 6 and 7 SWIR (8 panchromatic, 9 cirrus).
_OLI_BANDS = {"coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "nir": "B5", "swir1": "B6", "swir2": "B7"}
_LANDSAT_ORDER = ("blue", "green", "red", "nir", "swir1", "swir2")


def _sr(bands: Mapping[str, str]) -> dict[str, str]:
    return {k: f"SR_{v}" for k, v in bands.items()}


def _landsat(name: str, what: str, zh: str, bands: Mapping[str, str], level: int) -> SensorProfile:
    if level == 2:
        return SensorProfile(
            name, f"{what} Collection 2 Level-2 surface reflectance", _sr(bands), order=_LANDSAT_ORDER,
            scale=2.75e-5, offset=-0.2, nodata=0, mask="qa_pixel", mask_band="QA_PIXEL", res_m=30.0,
            aliases={v: k for k, v in bands.items()}, level="L2SP", quantity="surface reflectance",
            label_zh=f"{zh} C2 L2",
        )
    return SensorProfile(
        name, f"{what} Collection 2 Level-1 top-of-atmosphere reflectance (from the MTL)", dict(bands),
        order=_LANDSAT_ORDER, scale=1.0, offset=0.0, nodata=0, mask="qa_pixel", mask_band="QA_PIXEL",
        res_m=30.0, level="L1TP", quantity="top-of-atmosphere reflectance", calibration="metadata",
        label_zh=f"{zh} C2 L1",
    )


_GF_WFV = {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4"}
_GF6_WFV = {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "rededge1": "B5", "rededge2": "B6",
            "coastal": "B7", "yellow": "B8"}
_GF6_WFV_ORDER = ("blue", "green", "red", "nir", "rededge1", "rededge2", "coastal", "yellow")


def _gf(name: str, what: str, zh: str, bands: Mapping[str, str], order: tuple[str, ...], res_m: float,
        l1a: bool) -> SensorProfile:
    if l1a:
        return SensorProfile(
            name, f"{what} Level-1A digital numbers, calibrated to top-of-atmosphere reflectance",
            bands, order=order, scale=1.0, nodata=0, res_m=res_m, level="L1A",
            quantity="top-of-atmosphere reflectance", calibration="metadata", label_zh=f"{zh} L1A",
        )
    return SensorProfile(
        name, f"{what}, orthorectified, reflectance × 10000", bands, order=order, scale=1e-4, nodata=0,
        res_m=res_m, level="orthorectified", quantity="reflectance (as delivered)", label_zh=zh,
    )


SENSORS: Mapping[str, SensorProfile] = MappingProxyType({
    p.name: p
    for p in [
        SensorProfile(
            "sentinel2_l2a", "Sentinel-2 MSI Level-2A surface reflectance",
            _S2_BANDS, order=("blue", "green", "red", "nir", "swir1", "swir2"),
            scale=1e-4, offset=0.0, nodata=0, mask="scl", mask_band="SCL", res_m=10.0,
            aliases=_S2_ALIASES, level="L2A", quantity="surface reflectance", label_zh="哨兵二号 L2A",
        ),
        SensorProfile(
            "sentinel2_l1c", "Sentinel-2 MSI Level-1C top-of-atmosphere reflectance",
            _S2_BANDS, order=("blue", "green", "red", "nir", "swir1", "swir2"),
            scale=1e-4, offset=0.0, nodata=0, mask=None, res_m=10.0, aliases=_S2_ALIASES,
            level="L1C", quantity="top-of-atmosphere reflectance", label_zh="哨兵二号 L1C",
        ),
        _landsat("landsat_tm_c2l2", "Landsat 4-5 TM", "Landsat 4-5 TM", _TM_BANDS, 2),
        _landsat("landsat_etm_c2l2", "Landsat 7 ETM+", "Landsat 7 ETM+", _TM_BANDS, 2),
        _landsat("landsat_oli_c2l2", "Landsat 8-9 OLI", "Landsat 8-9 OLI", _OLI_BANDS, 2),
        _landsat("landsat_tm_c2l1", "Landsat 4-5 TM", "Landsat 4-5 TM", _TM_BANDS, 1),
        _landsat("landsat_etm_c2l1", "Landsat 7 ETM+", "Landsat 7 ETM+", _TM_BANDS, 1),
        _landsat("landsat_oli_c2l1", "Landsat 8-9 OLI", "Landsat 8-9 OLI", _OLI_BANDS, 1),
        SensorProfile(
            "hls_l30", "HLS v2.0 L30 (Landsat 8-9 OLI, harmonised) surface reflectance",
            {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "nir": "B05", "swir1": "B06",
             "swir2": "B07"}, order=_LANDSAT_ORDER, scale=1e-4, nodata=-9999, mask="fmask", mask_band="FMASK",
            res_m=30.0, level="L30", quantity="surface reflectance (nadir BRDF-adjusted)", label_zh="HLS L30",
        ),
        SensorProfile(
            "hls_s30", "HLS v2.0 S30 (Sentinel-2 MSI, harmonised) surface reflectance",
            {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05",
             "rededge2": "B06", "rededge3": "B07", "nir": "B08", "nir08": "B8A", "swir1": "B11",
             "swir2": "B12"}, order=_LANDSAT_ORDER, scale=1e-4, nodata=-9999, mask="fmask", mask_band="FMASK",
            res_m=30.0, level="S30", quantity="surface reflectance (nadir BRDF-adjusted)", label_zh="HLS S30",
        ),
        _gf("gf1_wfv", "Gaofen-1 WFV (16 m)", "高分一号 WFV", _GF_WFV, ("blue", "green", "red", "nir"), 16.0, False),
        _gf("gf6_wfv", "Gaofen-6 WFV (16 m, 8 bands)", "高分六号 WFV", _GF6_WFV, _GF6_WFV_ORDER, 16.0, False),
        _gf("gf1_pms", "Gaofen-1 PMS multispectral (8 m, or 2 m pan-sharpened)", "高分一号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 8.0, False),
        _gf("gf2_pms", "Gaofen-2 PMS multispectral (3.2 m, or 0.8 m pan-sharpened)", "高分二号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 3.2, False),
        _gf("gf6_pms", "Gaofen-6 PMS multispectral (8 m, or 2 m pan-sharpened)", "高分六号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 8.0, False),
        _gf("gf1_wfv_l1a", "Gaofen-1 WFV (16 m)", "高分一号 WFV", _GF_WFV, ("blue", "green", "red", "nir"), 16.0,
            True),
        _gf("gf6_wfv_l1a", "Gaofen-6 WFV (16 m, 8 bands)", "高分六号 WFV", _GF6_WFV, _GF6_WFV_ORDER, 16.0, True),
        _gf("gf1_pms_l1a", "Gaofen-1 PMS (2 m pan, 8 m multispectral)", "高分一号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 8.0, True),
        _gf("gf2_pms_l1a", "Gaofen-2 PMS (0.8 m pan, 3.2 m multispectral)", "高分二号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 3.2, True),
        _gf("gf6_pms_l1a", "Gaofen-6 PMS (2 m pan, 8 m multispectral)", "高分六号 PMS", _GF_WFV,
            ("blue", "green", "red", "nir"), 8.0, True),
        SensorProfile(
            "naip", "USDA NAIP aerial image, red, green, blue, near-infrared (8-bit, relative brightness)",
            {"red": "1", "green": "2", "blue": "3", "nir": "4"}, order=("red", "green", "blue", "nir"),
            scale=1 / 255, nodata=None, res_m=0.6, reflectance=False, level="orthorectified",
            quantity="relative brightness", label_zh="NAIP 航空影像",
        ),
        SensorProfile(
            "rgbn", "RGB + near-infrared image (8-bit, relative brightness)",
            {"red": "1", "green": "2", "blue": "3", "nir": "4"}, order=("red", "green", "blue", "nir"),
            scale=1 / 255, nodata=None, res_m=1.0, reflectance=False, quantity="relative brightness",
            label_zh="RGB+近红外影像",
        ),
        SensorProfile(
            "drone_rgb", "Drone RGB orthomosaic (8-bit, relative brightness)",
            {"red": "1", "green": "2", "blue": "3"},
            order=("red", "green", "blue"), scale=1 / 255, nodata=None, res_m=0.1,
            reflectance=False, aliases={"R": "red", "G": "green", "B": "blue"},
            quantity="relative brightness", label_zh="无人机正射影像",
        ),
        SensorProfile(
            "drone_ms", "Drone multispectral reflectance map (float 0-1)",
            {"blue": "blue", "green": "green", "red": "red", "rededge1": "rededge", "nir": "nir"},
            order=("blue", "green", "red", "rededge1", "nir"), scale=1.0, nodata=None, res_m=0.1,
            quantity="surface reflectance (as delivered)", label_zh="无人机多光谱",
        ),
    ]
})

#: Old and short names of the profiles.
SENSOR_ALIASES: Mapping[str, str] = MappingProxyType({
    "s2": "sentinel2_l2a", "sentinel2": "sentinel2_l2a", "s2_l2a": "sentinel2_l2a",
    "s2_l1c": "sentinel2_l1c", "landsat": "landsat_oli_c2l2", "landsat_c2l2": "landsat_oli_c2l2",
    "landsat8": "landsat_oli_c2l2", "landsat9": "landsat_oli_c2l2", "landsat7": "landsat_etm_c2l2",
    "landsat5": "landsat_tm_c2l2", "landsat4": "landsat_tm_c2l2", "hls": "hls_l30",
    "gf1": "gf1_wfv", "gf6": "gf6_wfv", "gf2": "gf2_pms", "drone": "drone_rgb", "rgb": "drone_rgb",
})


@dataclass(frozen=True)
class AnalysisNeed:
    """The band roles an analysis needs, and what happens without them."""

    analysis: str
    bands: tuple[str, ...]
    without: str


#: What each of ecopatch's analyses reads, and how it degrades when a band role is missing.
ANALYSIS_NEEDS: tuple[AnalysisNeed, ...] = (
    AnalysisNeed("vegetation cover (NDVI, FVC)", ("red", "nir"),
                 "vegetation from excess green (ExG) of red, green and blue: no FVC in the physical sense, "
                 "dark or dry vegetation is missed"),
    AnalysisNeed("water (MNDWI)", ("green", "swir1"),
                 "water from NDWI (green, NIR): shadows and dark roofs can pass for new water"),
    AnalysisNeed("bare soil vs construction (BSI)", ("blue", "red", "nir", "swir1"),
                 "bare soil and construction cannot be told apart: such patches should be reported as "
                 "untyped disturbance"),
    AnalysisNeed("new water from NIR and SWIR falls", ("nir", "swir1"),
                 "new ponds are found from NIR alone: less sensitive"),
)


def get_sensor(name: str | SensorProfile) -> SensorProfile:
    """Look up a sensor profile by name.

    Raises
    ------
    ConfigError
        Naming the valid profiles, if ``name`` is unknown.
    """
    if isinstance(name, SensorProfile):
        return name
    key = str(name).strip().lower().replace("-", "_")
    key = SENSOR_ALIASES.get(key, key)
    try:
        return SENSORS[key]
    except KeyError:
        raise ConfigError(
            f"unknown sensor {name!r}; use one of {sorted(SENSORS)}"
        ) from None
