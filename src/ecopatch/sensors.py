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

from .errors import ConfigError

__all__ = [
    "COMMON_BANDS",
    "SENSORS",
    "SensorProfile",
    "get_sensor",
    "landsat_qa_clear",
    "scl_clear",
]

#: Common band names understood everywhere in ecopatch.
COMMON_BANDS: tuple[str, ...] = (
    "coastal", "blue", "green", "red", "yellow", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "swir1", "swir2",
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


def landsat_qa_clear(qa: np.ndarray) -> np.ndarray:
    """True where a Landsat Collection 2 QA_PIXEL value is clear of fill, cloud and shadow.

    Bits (C2 definition): 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud, 4 cloud
    shadow, 5 snow.  A pixel is usable when none of bits 0-5 is set.

    Examples
    --------
    >>> landsat_qa_clear(np.array([21824, 1, 22280, 55052, 23888])).tolist()
    [True, False, False, False, False]
    """
    qa = np.asarray(qa).astype(np.uint32)
    return (qa & 0b111111) == 0


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
    "nir": "B08", "nir08": "B8A", "swir1": "B11", "swir2": "B12",
}
_S2_ALIASES = {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "rededge1",
               "B6": "rededge2", "B7": "rededge3", "B8": "nir"}

_LANDSAT_BANDS = {
    "coastal": "SR_B1", "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4",
    "nir": "SR_B5", "swir1": "SR_B6", "swir2": "SR_B7",
}

SENSORS: Mapping[str, SensorProfile] = MappingProxyType({
    p.name: p
    for p in [
        SensorProfile(
            "sentinel2_l2a", "Sentinel-2 MSI Level-2A surface reflectance",
            _S2_BANDS, order=("blue", "green", "red", "nir", "swir1", "swir2"),
            scale=1e-4, offset=0.0, nodata=0, mask="scl", mask_band="SCL", res_m=10.0,
            aliases=_S2_ALIASES,
        ),
        SensorProfile(
            "sentinel2_l1c", "Sentinel-2 MSI Level-1C top-of-atmosphere reflectance",
            _S2_BANDS, order=("blue", "green", "red", "nir", "swir1", "swir2"),
            scale=1e-4, offset=0.0, nodata=0, mask=None, res_m=10.0, aliases=_S2_ALIASES,
        ),
        SensorProfile(
            "landsat_c2l2", "Landsat 8/9 OLI Collection 2 Level-2 surface reflectance",
            _LANDSAT_BANDS, order=("blue", "green", "red", "nir", "swir1", "swir2"),
            scale=2.75e-5, offset=-0.2, nodata=0, mask="qa_pixel", mask_band="QA_PIXEL",
            res_m=30.0,
            aliases={"B2": "blue", "B3": "green", "B4": "red", "B5": "nir", "B6": "swir1",
                     "B7": "swir2"},
        ),
        SensorProfile(
            "gf1_wfv", "Gaofen-1 WFV (16 m), orthorectified, reflectance × 10000",
            {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4"},
            order=("blue", "green", "red", "nir"), scale=1e-4, nodata=0, res_m=16.0,
        ),
        SensorProfile(
            "gf6_wfv", "Gaofen-6 WFV (16 m, 8 bands), orthorectified, reflectance × 10000",
            {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4", "rededge1": "B5",
             "rededge2": "B6", "coastal": "B7", "yellow": "B8"},
            order=("blue", "green", "red", "nir", "rededge1", "rededge2", "coastal", "yellow"),
            scale=1e-4, nodata=0, res_m=16.0,
        ),
        SensorProfile(
            "gf2_pms", "Gaofen-2 PMS multispectral (3.2 m, or 0.8 m pan-sharpened), reflectance × 10000",
            {"blue": "B1", "green": "B2", "red": "B3", "nir": "B4"},
            order=("blue", "green", "red", "nir"), scale=1e-4, nodata=0, res_m=3.2,
        ),
        SensorProfile(
            "drone_rgb", "Drone RGB orthomosaic (8-bit, relative brightness)",
            {"red": "1", "green": "2", "blue": "3"},
            order=("red", "green", "blue"), scale=1 / 255, nodata=None, res_m=0.1,
            reflectance=False, aliases={"R": "red", "G": "green", "B": "blue"},
        ),
        SensorProfile(
            "drone_ms", "Drone multispectral reflectance map (float 0-1)",
            {"blue": "blue", "green": "green", "red": "red", "rededge1": "rededge", "nir": "nir"},
            order=("blue", "green", "red", "rededge1", "nir"), scale=1.0, nodata=None, res_m=0.1,
        ),
    ]
})


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
    aliases = {
        "s2": "sentinel2_l2a", "sentinel2": "sentinel2_l2a", "s2_l2a": "sentinel2_l2a",
        "s2_l1c": "sentinel2_l1c", "landsat": "landsat_c2l2", "landsat8": "landsat_c2l2",
        "landsat9": "landsat_c2l2", "gf1": "gf1_wfv", "gf6": "gf6_wfv", "gf2": "gf2_pms",
        "drone": "drone_rgb", "rgb": "drone_rgb",
    }
    key = aliases.get(key, key)
    try:
        return SENSORS[key]
    except KeyError:
        raise ConfigError(
            f"unknown sensor {name!r}; use one of {sorted(SENSORS)}"
        ) from None
