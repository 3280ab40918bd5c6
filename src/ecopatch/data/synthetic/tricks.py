"""The world's tricks for synthetic scenes: seasons, brightness, haze, other dates (truth included).

Real scene pairs change in ways that are not encroachments, and a change
detector that never met them is "kinder than the world".  This module
teaches :func:`ecopatch.data.synthetic.make_scene` those ways, each as an option
with its truth recorded:

* **cropland with a season** (``seasonal_cropland=``): cropland parcels
  follow a crop calendar (:data:`CROP_CALENDARS`: single rice with a winter
  fallow, or rice and winter rape), so that one date shows them green and
  another flooded, harvested or ploughed bare; for a series of dates
  (``history=``) they come back green the next season.  Truth:
  :attr:`SyntheticScene.pseudo_changes` rows of kind ``seasonal_cropland``
  with the state of each field at every acquisition.
* **existing bare and built surfaces whose brightness changes**
  (``brightness_changes=``): quarry faces, clay pits, construction sites and
  roofs that are there at both dates, same cover, but brighter or darker
  (fresh cut rock, wet soil, repainted or weathered roofs).  Truth: rows of
  kind ``brightness_change`` (cover unchanged, the gain in red).
* **a haze difference** (``haze=``, :class:`Haze`): a path reflectance added
  at one date, falling off with wavelength (Ångström law, strongest in
  blue), uniform, as a gradient across the scene or in patches.
* **other dates** (``dates=``, ``history=``): the before/after dates moved
  (a winter after date) and extra acquisitions of the same ground, each
  with its own radiometry and noise.
* **other sensors** (``sensors=``, rendered by
  :mod:`ecopatch.data.synthetic.sensors`): a date as Landsat 8/9 Collection 2
  Level-2, Gaofen-1 WFV or Sentinel-2 Level-1C (top of atmosphere, no mask).

Everything is drawn from its own random stream after the plain scene is
built, so the plain scene's truth and pixels do not move when tricks are
added; with every option at its default, :func:`make_scene` returns the
plain scene byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import Point, box

from ecopatch.data.synthetic.geometry import Occupancy, polygons_of, random_blob, random_quad, scale_to_ground_area
from ecopatch.data.synthetic.materials import (
    AFTER_HAZE,
    CLOUD_HEIGHT_M,
    DATES,
    MATERIAL_INDEX,
    MATERIALS,
    N_MATERIALS,
    PRODUCTS,
    SUN_AZIMUTH_DEG,
    SUN_ZENITH_DEG,
    UTC,
    product_meta,
)
from ecopatch.data.synthetic.noise import hash_key, hash_u01
from ecopatch.data.synthetic.render import material_reflectance
from ecopatch.errors import ConfigError
from ecopatch.geo.geodesy import geodesic_area_m2
from ecopatch.vocabulary import ZONE_STRICTNESS, canonical_zone

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd
    import pandas as pd

    from ecopatch.data.synthetic.build import Builder
    from ecopatch.data.synthetic.materials import ProductMeta
    from ecopatch.data.synthetic.scene import SyntheticScene
    from ecopatch.data.synthetic.world import World


__all__ = [
    "BRIGHTNESS_SURFACES",
    "CROP_CALENDARS",
    "CROP_STATES",
    "SENSOR_NAMES",
    "WAVELENGTH_NM",
    "Haze",
    "Rendering",
    "Tricks",
    "acquisition_table",
    "build",
    "crop_state",
    "empty_pseudo_changes",
    "haze_offsets",
    "pseudo_change_columns",
    "wanted",
]

#: Products an acquisition can be written as (ecopatch.raster.sensors profile names).
SENSOR_NAMES: tuple[str, ...] = ("sentinel2_l2a", "sentinel2_l1c", "landsat_oli_c2l2", "gf1_wfv")

#: Central wavelength (nm) of the Sentinel-2A MSI bands (ESA spectral response functions).
WAVELENGTH_NM: dict[str, float] = {
    "B01": 442.7, "B02": 492.4, "B03": 559.8, "B04": 664.6, "B05": 704.1, "B06": 740.5, "B07": 782.8,
    "B08": 832.8, "B8A": 864.7, "B09": 945.1, "B10": 1373.5, "B11": 1613.7, "B12": 2202.4,
}
_B6 = ("B02", "B03", "B04", "B08", "B11", "B12")

#: What a cropland parcel looks like in each state of its calendar: material, cover group, 中文.
CROP_STATES: dict[str, tuple[str, str, str]] = {
    "green": ("cropland", "vegetation", "作物生长"),
    "flooded": ("turbid_water", "water", "泡田插秧"),
    "harvested": ("fallow", "bare", "收割留茬"),
    "ploughed": ("bare_soil", "bare", "翻耕裸土"),
}
#: Crop calendars of the Yangtze delta as (first day of year, state) segments; each field is
#: shifted by up to ±12 days.  Single rice: fields ploughed over winter, flooded for transplanting
#: in June, green July–October, harvested late October.  Rice and winter rape: the rape is green
#: from late November to early May, then harvested before the rice.
CROP_CALENDARS: dict[str, tuple[tuple[int, str], ...]] = {
    "rice": ((1, "ploughed"), (152, "flooded"), (170, "green"), (288, "harvested"), (315, "ploughed")),
    "rice_rape": ((1, "green"), (128, "harvested"), (152, "flooded"), (170, "green"), (288, "harvested"),
                  (303, "ploughed"), (330, "green")),
}
_CALENDAR_SHARE = {"rice": 0.7, "rice_rape": 0.3}
_PARCEL = ((80.0, 40.0), 18.0, 17)  # field size (m), lattice angle (deg), noise stream: the renderer's parcels
_SHIFT_DAYS = 12

#: Existing surfaces whose brightness changes: kind -> (中文, material, area range m², shape,
#: spectral weight of the change per band B02 … B12).  Wet or dry soil changes most in SWIR.
BRIGHTNESS_SURFACES: dict[str, tuple[str, str, tuple[float, float], str, tuple[float, ...]]] = {
    "quarry": ("采石场", "quarry_rock", (3000.0, 15000.0), "blob", (1.0, 1.0, 1.0, 1.0, 1.05, 1.05)),
    "clay_pit": ("高岭土矿坑", "quarry_rock", (2000.0, 10000.0), "blob", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "construction_site": ("施工场地", "bare_soil", (1500.0, 8000.0), "quad", (0.8, 0.85, 0.9, 1.0, 1.25, 1.3)),
    "steel_roof": ("彩钢瓦屋顶", "blue_roof", (400.0, 2500.0), "quad", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "concrete_roof": ("水泥屋顶", "concrete", (400.0, 2500.0), "quad", (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
}
#: Brightness factors (in red) a surface can take at the after date.
_GAINS = (0.6, 0.7, 0.8, 1.3, 1.45, 1.6)
_MAX_ID = 50  # material ids are uint8 and multiplied by 5 overlay classes when clouds are drawn

_STREAM = 0x7121C5  # random stream of the tricks (the plain scene uses the seed itself)


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Haze:
    """A haze difference: path reflectance added at one acquisition.

    ``ρ' = ρ (1 - p_b f) + p_b f`` with ``p_b = blue (λ_b / λ_B02)^-angstrom``
    and ``f`` the spatial pattern (mean about 1): strongest in blue, weakest
    in SWIR, as aerosol scattering is.

    Parameters
    ----------
    blue : float
        Path reflectance added in B02 where ``f`` = 1 (unitless; 0.02 light
        haze, 0.05 heavy).  Real Sentinel-2 L1C pairs of the same season
        differ by about 0.02 in the blue of dark water (OSCD Beihai).
    date : str
        Acquisition key ("before", "after" or an extra date's ISO date).
    angstrom : float
        Ångström exponent of the spectral fall-off (about 1.3 for continental
        aerosol; 4 would be pure Rayleigh scattering).
    pattern : {"uniform", "gradient", "patchy"}
        ``f``: 1 everywhere; rising linearly from 0.25 to 1.75 across the
        scene; or smooth patches of about ``scale_m`` (0 to 2.5).
    scale_m : float
        Size of the patches, metres (``pattern="patchy"``).
    """

    blue: float = 0.03
    date: str = "after"
    angstrom: float = 1.3
    pattern: str = "uniform"
    scale_m: float = 4000.0

    def __post_init__(self) -> None:
        if not (0.0 <= float(self.blue) <= 0.3):
            raise ConfigError(f"Haze(blue={self.blue}): give a path reflectance between 0 and 0.3")
        if self.pattern not in ("uniform", "gradient", "patchy"):
            raise ConfigError(f"Haze(pattern={self.pattern!r}): use 'uniform', 'gradient' or 'patchy'")
        if not (0.0 <= float(self.angstrom) <= 4.5):
            raise ConfigError(f"Haze(angstrom={self.angstrom}): use an exponent between 0 and 4.5")
        if float(self.scale_m) <= 0:
            raise ConfigError(f"Haze(scale_m={self.scale_m}): must be positive")


@dataclass(frozen=True)
class Rendering:
    """The product an acquisition is written as.

    Parameters
    ----------
    sensor : str
        One of :data:`SENSOR_NAMES`.
    crs : str, optional
        Product CRS.  Defaults: Sentinel-2 the scene's (EPSG:32650, MGRS
        T50RQU); Landsat EPSG:32651 (USGS grids WRS-2 path 119 in UTM 51N,
        as the Landsat Taizhou scene of ``../shared/data`` is); Gaofen
        EPSG:4490 (CGCS2000 geographic, as bureaus keep orthoimages).
    res : float, optional
        Pixel size in CRS units (Landsat 30 m, Gaofen 16 m, or 0.00015° in a
        geographic CRS).  Sentinel-2 keeps its native 10/20/60 m.
    """

    sensor: str = "sentinel2_l2a"
    crs: str | None = None
    res: float | None = None

    def __post_init__(self) -> None:
        if self.sensor not in SENSOR_NAMES:
            raise ConfigError(
                f"unknown sensor {self.sensor!r} for a synthetic product; use one of {list(SENSOR_NAMES)}")
        if self.sensor.startswith("sentinel2") and (self.crs is not None or self.res is not None):
            raise ConfigError(f"{self.sensor} is rendered on the scene's own grid: no crs= or res=")
        if self.res is not None and float(self.res) <= 0:
            raise ConfigError(f"Rendering(res={self.res}): must be positive")


@dataclass(frozen=True)
class _Wanted:
    """The validated trick options of one :func:`make_scene` call."""

    dates: dict[str, _dt.date]
    history: tuple[_dt.date, ...]
    seasonal_cropland: float
    brightness_changes: int
    haze: tuple[Haze, ...]
    sensors: dict[str, Rendering]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record (for ``truth/scene.json``)."""
        return {
            "dates": {k: v.isoformat() for k, v in self.dates.items()},
            "history": [d.isoformat() for d in self.history],
            "seasonal_cropland": self.seasonal_cropland,
            "brightness_changes": self.brightness_changes,
            "haze": [vars(h) for h in self.haze],
            "sensors": {k: {"sensor": r.sensor, "crs": r.crs, "res": r.res} for k, r in self.sensors.items()},
        }


def _as_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{what}: cannot read {value!r} as a date; use 'YYYY-MM-DD'") from None


def wanted(opts: Mapping[str, Any]) -> _Wanted | None:
    """Validate the trick keywords of :func:`make_scene`; None when none asks for anything.

    Raises
    ------
    ConfigError
        Naming the keyword, the value and what is accepted.
    """
    dates: dict[str, _dt.date] = {}
    for k, v in dict(opts.get("dates") or {}).items():
        if k not in DATES:
            raise ConfigError(f"dates={{{k!r}: ...}}: only 'before' and 'after' can be moved")
        dates[k] = _as_date(v, f"dates[{k!r}]")
    before = dates.get("before", PRODUCTS["before"].sensing_time.date())
    after = dates.get("after", PRODUCTS["after"].sensing_time.date())
    if not before < after:
        raise ConfigError(f"dates: the before date ({before}) must come before the after date ({after})")
    history = tuple(sorted(_as_date(v, "history") for v in (opts.get("history") or ())))
    if len(set(history)) != len(history) or {before, after} & set(history):
        raise ConfigError(f"history={[d.isoformat() for d in history]}: dates must differ from each other and "
                          f"from the before ({before}) and after ({after}) dates")
    keys = ["before", "after", *(d.isoformat() for d in history)]
    share = float(opts.get("seasonal_cropland") or 0.0)
    if not 0.0 <= share <= 1.0:
        raise ConfigError(f"seasonal_cropland={share}: give the share of cropland parcels (0-1) with a season")
    n_bright = opts.get("brightness_changes") or 0
    if isinstance(n_bright, bool) or int(n_bright) != n_bright or int(n_bright) < 0:
        raise ConfigError(f"brightness_changes={n_bright!r}: give a number of surfaces (≥ 0)")
    raw_haze = opts.get("haze")
    if raw_haze is None or (isinstance(raw_haze, (int, float)) and float(raw_haze) == 0.0):
        hazes: tuple[Haze, ...] = ()
    elif isinstance(raw_haze, (int, float)):
        hazes = (Haze(blue=float(raw_haze)),)
    elif isinstance(raw_haze, Haze):
        hazes = (raw_haze,)
    else:
        hazes = tuple(raw_haze)
        if not all(isinstance(h, Haze) for h in hazes):
            raise ConfigError("haze=: give a float (B02 path reflectance at the after date), a Haze or Hazes")
    for h in hazes:
        if h.date not in keys:
            raise ConfigError(f"Haze(date={h.date!r}): no such acquisition; use one of {keys}")
    sensors: dict[str, Rendering] = {}
    for k, v in dict(opts.get("sensors") or {}).items():
        if k not in keys:
            raise ConfigError(f"sensors={{{k!r}: ...}}: no such acquisition; use one of {keys}")
        r = v if isinstance(v, Rendering) else Rendering(str(v)) if isinstance(v, str) else None
        if r is None:
            raise ConfigError(f"sensors[{k!r}]: give a sensor name ({list(SENSOR_NAMES)}) or a Rendering")
        if r != Rendering():
            sensors[k] = r
    w = _Wanted(dates, history, share, int(n_bright), hazes, sensors)
    if not dates and not history and share == 0 and not n_bright and not hazes and not sensors:
        return None
    return w


# ---------------------------------------------------------------------------
# Acquisitions
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Acquisition:
    """One date of the scene: what ground it shows, how it is lit and which product it is written as.

    Attributes
    ----------
    key : str
        "before", "after", or the ISO date of an extra date.
    product : ProductMeta
        Its Sentinel-2 product metadata (names of the L2A/L1C product).
    ground : {"before", "after"}
        Which truth state of mines and encroachments it shows.
    clouds : bool
        Whether the scene's clouds (:attr:`SyntheticScene.clouds`) are in it.
    rendering : Rendering
        The product it is written as.
    haze : tuple of Haze
        Haze added at this date.
    gain, offset : tuple of float
        Radiometric difference of an extra date (per band B02 … B12), applied
        to surface reflectance as ``gain · ρ + offset``; the plain before and
        after dates keep theirs (see :mod:`ecopatch.data.synthetic`).
    haze_amp : float
        Amplitude (0-1) of an extra date's smooth residual haze, in units of
        the after date's.
    aerosol : float
        Aerosol load of the date in top-of-atmosphere renderings (1 = the
        standard atmosphere of :mod:`ecopatch.data.synthetic.sensors`).
    noise_stream : int
        Stream of the sensor noise of its Sentinel-2 L2A rendering.
    """

    key: str
    product: ProductMeta
    ground: str
    clouds: bool
    rendering: Rendering
    haze: tuple[Haze, ...] = ()
    gain: tuple[float, ...] = (1.0,) * 6
    offset: tuple[float, ...] = (0.0,) * 6
    haze_amp: float = 0.0
    aerosol: float = 1.0
    noise_stream: int = 0

    @property
    def date(self) -> _dt.date:
        """Acquisition date (UTC)."""
        return self.product.sensing_time.date()


_S2A_REF = PRODUCTS["before"]
_S2B_REF = PRODUCTS["after"]


def _product_for(day: _dt.date) -> ProductMeta:
    """Sentinel-2 product metadata of an acquisition of tile T50RQU, relative orbit 89, on ``day``."""
    days_a = (day - _S2A_REF.sensing_time.date()).days
    if days_a % 10 < 5:
        ref, craft = _S2A_REF, "Sentinel-2A"
    else:
        ref, craft = _S2B_REF, "Sentinel-2B"
    t = ref.sensing_time.time()
    sensing = _dt.datetime.combine(day, t, tzinfo=UTC)
    generated = sensing + (ref.generation_time - ref.sensing_time)
    if day < _dt.date(2022, 1, 25):
        baseline = "03.01"
    elif day < _dt.date(2022, 12, 6):
        baseline = "04.00"
    elif day < _dt.date(2023, 12, 13):
        baseline = "05.09"
    else:
        baseline = "05.10"
    orbit = ref.absolute_orbit + round((sensing - ref.sensing_time).total_seconds() / 86400.0 * 14.3)
    return product_meta(craft, sensing, generated, baseline, int(orbit))


def _acquisitions(w: _Wanted, seed: int) -> dict[str, Acquisition]:
    out: dict[str, Acquisition] = {}
    after_day = w.dates.get("after", PRODUCTS["after"].sensing_time.date())
    for k in DATES:
        prod = _product_for(w.dates[k]) if k in w.dates else PRODUCTS[k]
        out[k] = Acquisition(k, prod, ground=k, clouds=k == "after", rendering=w.sensors.get(k, Rendering()),
                             aerosol=0.85 if k == "before" else 1.15, noise_stream=0 if k == "before" else 1)
    for i, day in enumerate(w.history):
        k = day.isoformat()
        rng = np.random.default_rng([seed, _STREAM, day.toordinal()])
        gain = tuple(float(v) for v in 1.0 + rng.uniform(-0.025, 0.025) + rng.normal(0.0, 0.006, 6))
        offset = tuple(float(v) for v in rng.uniform(-0.004, 0.004) + rng.normal(0.0, 0.001, 6))
        out[k] = Acquisition(k, _product_for(day), ground="before" if day < after_day else "after", clouds=False,
                             rendering=w.sensors.get(k, Rendering()), gain=gain, offset=offset,
                             haze_amp=float(rng.uniform(0.0, 1.0)), aerosol=float(rng.uniform(0.7, 1.4)),
                             noise_stream=2 + i)
    for h in w.haze:
        a = out[h.date]
        out[h.date] = replace(a, haze=(*a.haze, h))
    return out


def acquisition_table(scene: SyntheticScene) -> pd.DataFrame:
    """One row per acquisition: key, date, ground, clouds, sensor, crs, product ID, haze in B02."""
    import pandas as pd

    tricks = scene.tricks
    rows = []
    for k, p in scene.products.items():
        a = tricks.acquisitions[k] if tricks is not None else Acquisition(
            k, p, ground=k, clouds=k == "after", rendering=Rendering())
        rows.append({
            "key": k, "date": p.sensing_time.date(), "ground": a.ground, "clouds": a.clouds,
            "sensor": a.rendering.sensor, "crs": a.rendering.crs, "s2_product_id": p.product_id,
            "haze_b02": float(sum(h.blue for h in a.haze)),
            "haze_pattern": ",".join(h.pattern for h in a.haze) or None,
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------
# Crop calendar
# ---------------------------------------------------------------------------
def crop_state(calendar: str, day: _dt.date, shift_days: int = 0) -> str:
    """State of a field of ``calendar`` on ``day`` (shifted by ``shift_days``): a key of :data:`CROP_STATES`.

    Examples
    --------
    >>> import datetime as dt
    >>> crop_state("rice", dt.date(2024, 9, 12)), crop_state("rice", dt.date(2024, 12, 10))
    ('green', 'ploughed')
    >>> crop_state("rice", dt.date(2025, 6, 10)), crop_state("rice_rape", dt.date(2025, 3, 1))
    ('flooded', 'green')
    """
    segments = CROP_CALENDARS[calendar]
    doy = (day.timetuple().tm_yday - 1 - shift_days) % 365 + 1
    state = segments[-1][1]
    for start, s in segments:
        if doy >= start:
            state = s
    return state


# ---------------------------------------------------------------------------
# Haze and radiometry
# ---------------------------------------------------------------------------
def haze_offsets(h: Haze, bands: Sequence[str] = _B6) -> np.ndarray:
    """Path reflectance ``p_b`` of :class:`Haze` ``h`` in each band (where its pattern is 1).

    Examples
    --------
    >>> np.round(haze_offsets(Haze(blue=0.04)), 4).tolist()
    [0.04, 0.0339, 0.0271, 0.0202, 0.0085, 0.0057]
    """
    lam = np.array([WAVELENGTH_NM[b] for b in bands])
    return float(h.blue) * (lam / WAVELENGTH_NM["B02"]) ** (-float(h.angstrom))


def _haze_field(h: Haze, world: World, xs: np.ndarray, ys: np.ndarray, index: int) -> np.ndarray:
    """The pattern ``f`` of ``h`` on the separable grid ``ys`` × ``xs`` (EPSG:32650 metres)."""
    if h.pattern == "uniform":
        return np.ones((ys.size, xs.size))
    left, bottom, right, top = world.bounds
    if h.pattern == "gradient":
        rng = np.random.default_rng([world.seed, _STREAM, 77, index])
        ang = rng.uniform(0.0, 2 * math.pi)
        ux, uy = math.cos(ang), math.sin(ang)
        cx, cy = (left + right) / 2, (bottom + top) / 2
        half = abs(ux) * (right - left) / 2 + abs(uy) * (top - bottom) / 2
        t = ((xs[None, :] - cx) * ux + (ys[:, None] - cy) * uy) / max(half, 1.0)
        return 1.0 + 0.75 * np.clip(t, -1.0, 1.0)
    return np.clip(1.0 + 1.5 * world.noise.grid(xs, ys, float(h.scale_m), 3, 600 + index), 0.0, 2.5)


# ---------------------------------------------------------------------------
# The tricks of one scene
# ---------------------------------------------------------------------------
@dataclass
class _Field:
    pid: str
    geom: Any
    calendar: str
    shift_days: int
    states: dict[str, str]


@dataclass
class _Surface:
    pid: str
    kind: str
    geom: Any
    material: int  # base material id
    vid: int  # its trick id (a material id past MATERIALS)
    gain: float  # after / before brightness in red


@dataclass
class Tricks:
    """Everything :func:`make_scene` was asked to add, and its truth.

    Attributes
    ----------
    wanted : _Wanted
        The options (:meth:`_Wanted.as_dict` records them).
    acquisitions : dict of str to Acquisition
        Every date of the scene.
    fields : list
        Seasonal cropland fields (vector truth, EPSG:32650).
    surfaces : list
        Surfaces whose brightness changes.
    virtual : dict of int to (int, dict)
        Trick material id -> (material id of :data:`MATERIALS`, per ground
        state the gain per band B02 … B12).
    pseudo_changes : GeoDataFrame
        Truth of the pseudo-changes (see :func:`pseudo_change_columns`).
    """

    wanted: _Wanted
    acquisitions: dict[str, Acquisition]
    fields: list[_Field] = field(default_factory=list)
    surfaces: list[_Surface] = field(default_factory=list)
    virtual: dict[int, tuple[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    pseudo_changes: Any = None
    _shapes: dict[str, tuple[Any, list[tuple[Any, int]]]] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_shapes"] = {}
        return state

    # -- hooks called by ecopatch.data.synthetic ---------------------------------
    def state(self, key: str) -> tuple[str, bool]:
        """``(ground, clouds)`` of acquisition ``key``."""
        a = self.acquisitions[key]
        return a.ground, a.clouds

    def base_of(self, mat: int) -> int:
        """Material of :data:`MATERIALS` a trick material id is made of."""
        return self.virtual[mat][0]

    def reflectance(self, world: World, mat: int, date: str, xs: np.ndarray, ys: np.ndarray,
                    cache: dict[str, np.ndarray]) -> np.ndarray:
        """Surface reflectance (6, rows, cols) of a trick material at ground state ``date``."""
        base, gains = self.virtual[mat]
        r = material_reflectance(world, base, date, xs, ys, cache)
        return np.minimum(r * gains[date][:, None, None], 0.9)

    def shapes(self, key: str, bx: Any) -> list[tuple[Any, int]]:
        """Trick surfaces of acquisition ``key`` intersecting the box ``bx``, in paint order."""
        if key not in self._shapes:
            items = [(f.geom, MATERIAL_INDEX[CROP_STATES[f.states[key]][0]]) for f in self.fields
                     if f.states[key] != "green"]
            items += [(s.geom, s.vid) for s in self.surfaces]
            self._shapes[key] = (shapely.STRtree([g for g, _ in items]) if items else None, items)
        tree, items = self._shapes[key]
        if tree is None:
            return []
        return [items[i] for i in np.sort(tree.query(bx, predicate="intersects"))]

    def surface_radiometry(self, world: World, key: str, rho: np.ndarray, xs: np.ndarray,
                           ys: np.ndarray) -> np.ndarray:
        """Radiometry of an extra date, then the haze of ``key``, on surface reflectance (6, rows, cols)."""
        a = self.acquisitions[key]
        if key not in DATES:
            haze = 0.5 + 0.5 * world.noise.grid(xs, ys, 8000.0, 2, 21)
            rho = (np.asarray(a.gain)[:, None, None] * rho + np.asarray(a.offset)[:, None, None]
                   + a.haze_amp * AFTER_HAZE[:, None, None] * haze[None])
        return apply_haze(a, world, rho, xs, ys, _B6)

    def noise_stream(self, key: str) -> int:
        """Noise stream of the Sentinel-2 L2A rendering of ``key``."""
        return self.acquisitions[key].noise_stream


def apply_haze(a: Acquisition, world: World, rho: np.ndarray, xs: np.ndarray, ys: np.ndarray,
               bands: Sequence[str]) -> np.ndarray:
    """Add the haze of acquisition ``a`` to reflectance ``rho`` (bands × rows × cols) of ``bands``."""
    for i, h in enumerate(a.haze):
        p = haze_offsets(h, bands)[:, None, None]
        f = _haze_field(h, world, xs, ys, i)[None]
        rho = rho * (1.0 - p * f) + p * f
    return rho


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------
def build(world: World, builder: Builder, w: _Wanted) -> Tricks:
    """Place the tricks of ``w`` in a built world and record their truth (called by :func:`make_scene`)."""
    acqs = _acquisitions(w, world.seed)
    tricks = Tricks(w, acqs)
    world.products = {k: a.product for k, a in acqs.items()}
    rng = np.random.default_rng([world.seed, _STREAM])
    if w.brightness_changes:
        _place_surfaces(world, builder, tricks, rng, w.brightness_changes)
    if w.seasonal_cropland > 0:
        _place_fields(world, tricks, w.seasonal_cropland)
    tricks.pseudo_changes = _pseudo_change_truth(world, builder, tricks)
    return tricks


def _obstacles(world: World) -> list[Any]:
    geoms = [g for g, _ in world.objects] + [g for g, _ in world.lines]
    return geoms + [m.geom for m in world.mines] + [c.geom for c in world.changes]


def _place_surfaces(world: World, builder: Builder, tricks: Tricks, rng: np.random.Generator, n: int) -> None:
    kinds = list(BRIGHTNESS_SURFACES)
    reserves = builder.reserves
    n_in = int(round(0.6 * n)) if reserves else 0
    occ = Occupancy()
    for g, _ in world.objects + world.lines:
        occ.add(g)
    near = Occupancy()  # mines and encroachments: keep a wider gap
    for m in world.mines:
        near.add(m.geom)
    for c in world.changes:
        near.add(c.geom)
    placed = Occupancy()
    cloud = getattr(builder, "cloud_union", None)
    vids: dict[tuple[str, float], int] = {}
    for k in range(n):
        kind = kinds[k % len(kinds)]
        zh, mat_key, (a0, a1), shape, weights = BRIGHTNESS_SURFACES[kind]
        area = float(np.exp(rng.uniform(math.log(a0), math.log(a1))))
        gain = float(_GAINS[int(rng.integers(0, len(_GAINS)))])
        inside = k < n_in
        geom = None
        for attempt in range(600):
            if inside and attempt < 450:
                rv = reserves[k % len(reserves)]
                zones = rv["zones"]
                # mostly in the outer zones (people farm, quarry and build there), sometimes in the core
                zg = zones[-1][1] if (rng.uniform() < 0.75 and len(zones) > 1) else rv["outer"]
                cx, cy = builder._random_point(zg)
            else:
                cx, cy = builder._random_point(margin=100.0)
                if inside is False and attempt < 400 and any(
                        rv["halo"].contains(Point(cx, cy)) for rv in reserves):
                    continue
            rad = math.sqrt(area / math.pi)
            if shape == "blob":
                g = random_blob(rng, cx, cy, rad, roughness=0.3, vertex_m=max(3.0, rad / 8),
                          elong=rng.uniform(1.0, 1.6), angle=rng.uniform(0, math.pi))
            else:
                side = math.sqrt(area * rng.uniform(1.0, 2.0))
                g = random_quad(rng, cx, cy, side, area / side, rng.uniform(0, math.pi), jitter=0.02)
            if not g.is_valid:
                g = polygons_of(shapely.make_valid(g))
            g = scale_to_ground_area(g, area)
            if not builder._inside(g, 60.0):
                continue
            if not occ.clear_of(g, 8.0) or not near.clear_of(g, 40.0) or not placed.clear_of(g, 40.0):
                continue
            if cloud is not None and attempt < 300 and cloud.intersects(g.buffer(30.0)):
                continue  # keep brightness changes visible on the cloudy after date where there is room
            geom = g
            break
        if geom is None:
            raise ConfigError(
                f"could not fit brightness-changing surface {k + 1} of {n} ({kind}, {area:.0f} m²) in the scene; "
                "ask for fewer (brightness_changes=) or a bigger shape")
        placed.add(geom)
        cls = (kind, gain)
        if cls not in vids:
            vid = N_MATERIALS + len(vids)
            if vid > _MAX_ID:
                raise ConfigError("too many kinds of brightness change for one scene")  # pragma: no cover
            vids[cls] = vid
            wv = np.asarray(weights)
            g_after = np.maximum(1.0 + (gain - 1.0) * wv / wv[2], 0.2)
            tricks.virtual[vid] = (MATERIAL_INDEX[mat_key], {"before": np.ones(6), "after": g_after})
        tricks.surfaces.append(_Surface(f"BRT-{k + 1:03d}", kind, geom, MATERIAL_INDEX[mat_key], vids[cls], gain))


def _place_fields(world: World, tricks: Tricks, share: float) -> None:
    (fw, fh), angle, stream = _PARCEL
    crop = [g for ti, tj in world.tiles_for(world.bounds) for g, m in world.tile_layers(ti, tj)
            if m == MATERIAL_INDEX["cropland"]]
    if not crop:
        return
    crop_arr = np.asarray(crop, dtype=object)
    crop_tree = shapely.STRtree(crop_arr)
    # the renderer's parcel lattice: cells of fw × fh metres in a frame rotated by ``angle``
    t = math.radians(angle)
    left, bottom, right, top = world.bounds
    cx = np.array([left, right, right, left])
    cy = np.array([top, top, bottom, bottom])
    u = cx * math.cos(t) + cy * math.sin(t)
    v = -cx * math.sin(t) + cy * math.cos(t)
    iu = np.arange(math.floor(u.min() / fw), math.floor(u.max() / fw) + 1)
    iv = np.arange(math.floor(v.min() / fh), math.floor(v.max() / fh) + 1)
    ii, jj = (a.ravel() for a in np.meshgrid(iu, iv))
    k_sel = hash_key(world.seed, _STREAM + 1)
    k_cal = hash_key(world.seed, _STREAM + 2)
    k_shift = hash_key(world.seed, _STREAM + 3)
    pick = hash_u01(k_sel, ii, jj) < share
    ii, jj = ii[pick], jj[pick]
    corners_u = np.stack([ii, ii + 1, ii + 1, ii], axis=1) * fw
    corners_v = np.stack([jj, jj, jj + 1, jj + 1], axis=1) * fh
    xs = corners_u * math.cos(t) - corners_v * math.sin(t)
    ys = corners_u * math.sin(t) + corners_v * math.cos(t)
    cells = np.asarray(shapely.polygons(np.stack([xs, ys], axis=2)))
    inside = shapely.intersects(cells, box(*world.bounds))
    cells, ii, jj = cells[inside], ii[inside], jj[inside]
    # cell ∩ cropland, from the cropland pieces (clipped to the render tiles) each cell touches
    ci, pi = crop_tree.query(cells, predicate="intersects")
    pieces = shapely.intersection(cells[ci], crop_arr[pi])
    keep = np.unique(ci)
    parts = np.empty(keep.size, dtype=object)
    for n_, c in enumerate(keep):
        lo, hi = np.searchsorted(ci, c), np.searchsorted(ci, c, side="right")
        parts[n_] = pieces[lo] if hi - lo == 1 else shapely.union_all(pieces[lo:hi])
    cells, ii, jj = cells[keep], ii[keep], jj[keep]
    # roads, buildings, ponds, mines, encroachments and trick surfaces stay what they are
    geoms = _obstacles(world) + [s.geom for s in tricks.surfaces]
    tree = shapely.STRtree(geoms) if geoms else None
    cal_names = list(CROP_CALENDARS)
    cal_cum = np.cumsum([_CALENDAR_SHARE[c] for c in cal_names])
    cal_u = hash_u01(k_cal, ii, jj)
    shift = np.floor(hash_u01(k_shift, ii, jj) * (2 * _SHIFT_DAYS + 1)).astype(int) - _SHIFT_DAYS
    n = 0
    scene_box = box(*world.bounds)
    for p, cu, sh in zip(parts, cal_u, shift):
        g = polygons_of(shapely.intersection(p, scene_box))
        if g.is_empty:
            continue
        if tree is not None:
            idx = tree.query(g, predicate="intersects")
            if idx.size:
                g = polygons_of(g.difference(shapely.union_all([geoms[i] for i in idx])))
        g = polygons_of(shapely.make_valid(g)) if not g.is_valid else g
        if g.is_empty or g.area < 100.0:
            continue
        cal = cal_names[int(np.searchsorted(cal_cum, cu * cal_cum[-1], side="right"))]
        states = {k: crop_state(cal, a.date, int(sh)) for k, a in tricks.acquisitions.items()}
        n += 1
        tricks.fields.append(_Field(f"SEAS-{n:04d}", g, cal, int(sh), states))


# ---------------------------------------------------------------------------
# Truth
# ---------------------------------------------------------------------------
def pseudo_change_columns(keys: Sequence[str] = DATES) -> list[str]:
    """Columns of :attr:`SyntheticScene.pseudo_changes` (before the geometry, EPSG:32650).

    ``pc_id`` (SEAS-0001, BRT-001), ``kind`` ("seasonal_cropland" or
    "brightness_change"), ``surface`` (crop calendar, or the kind of surface:
    quarry, clay_pit, construction_site, steel_roof, concrete_roof),
    ``surface_zh``, ``shift_days`` (how many days a field runs behind its
    calendar, -12 … 12; 0 for surfaces), ``material_before``, ``material_after``,
    ``cover_before``, ``cover_after`` (vegetation, bare, built, water),
    ``changed`` (the imagery differs between before and after),
    ``gain_b04`` (after / before brightness in red; 1 for fields),
    ``area_m2`` (true ground area), ``reserve_name``, ``zone`` (strictest
    canonical zone touched, or "outside"), ``zones``, then one
    ``state_<key>`` per acquisition (fields: a key of :data:`CROP_STATES`;
    surfaces: "as_before", "brighter" or "darker").
    """
    return ["pc_id", "kind", "surface", "surface_zh", "shift_days", "material_before", "material_after", "cover_before",
            "cover_after", "changed", "gain_b04", "area_m2", "reserve_name", "zone", "zones",
            *(f"state_{k}" for k in keys)]


def empty_pseudo_changes(crs: Any) -> gpd.GeoDataFrame:
    """An empty pseudo-change table (plain scenes)."""
    import geopandas as gpd

    return gpd.GeoDataFrame({c: [] for c in pseudo_change_columns()}, geometry=[], crs=crs)


def _zone_of(g: Any, reserves: list[dict[str, Any]]) -> tuple[str | None, str, str]:
    name, zone, zones = None, "outside", "outside"
    for rv in reserves:
        if not rv["outer"].intersects(g):
            continue
        named = [canonical_zone(zn) for zn, zg in rv["zones"] if g.intersection(zg).area > 0.01]
        touched = [z for z in named if z]
        if not touched:
            continue
        touched.sort(key=ZONE_STRICTNESS.index)
        name, zone = rv["name"], touched[0]
        zones = ",".join(dict.fromkeys(touched)) + ("" if rv["outer"].contains(g) else ",outside")
        break
    return name, zone, zones


def _pseudo_change_truth(world: World, builder: Builder, tricks: Tricks) -> gpd.GeoDataFrame:
    import geopandas as gpd

    keys = list(tricks.acquisitions)
    rows = []
    for f in tricks.fields:
        sb, sa = f.states["before"], f.states["after"]
        name, zone, zones = _zone_of(f.geom, builder.reserves)
        rows.append({
            "pc_id": f.pid, "kind": "seasonal_cropland", "surface": f.calendar,
            "surface_zh": "单季稻" if f.calendar == "rice" else "稻-油菜轮作", "shift_days": f.shift_days,
            "material_before": CROP_STATES[sb][0], "material_after": CROP_STATES[sa][0],
            "cover_before": CROP_STATES[sb][1], "cover_after": CROP_STATES[sa][1], "changed": sb != sa,
            "gain_b04": 1.0, "area_m2": 0.0, "reserve_name": name, "zone": zone, "zones": zones,
            **{f"state_{k}": f.states[k] for k in keys}, "geometry": f.geom,
        })
    for s in tricks.surfaces:
        mat = MATERIALS[s.material]
        name, zone, zones = _zone_of(s.geom, builder.reserves)
        look = "brighter" if s.gain > 1 else "darker"
        rows.append({
            "pc_id": s.pid, "kind": "brightness_change", "surface": s.kind,
            "surface_zh": BRIGHTNESS_SURFACES[s.kind][0], "shift_days": 0,
            "material_before": mat.key, "material_after": mat.key,
            "cover_before": mat.group, "cover_after": mat.group, "changed": True, "gain_b04": s.gain,
            "area_m2": 0.0, "reserve_name": name, "zone": zone, "zones": zones,
            **{f"state_{k}": ("as_before" if tricks.acquisitions[k].ground == "before" else look) for k in keys},
            "geometry": s.geom,
        })
    if not rows:
        return gpd.GeoDataFrame({c: [] for c in pseudo_change_columns(keys)}, geometry=[], crs=world.grid.crs)
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=world.grid.crs)
    out["area_m2"] = geodesic_area_m2(out.geometry.values, world.grid.crs)
    return out


def cloud_geometry() -> dict[str, float]:
    """Sun and cloud geometry of the scenes: shadows fall ``height · tan(zenith)`` away from the sun.

    Returns
    -------
    dict
        ``sun_zenith_deg``, ``sun_azimuth_deg`` (clockwise from north),
        ``cloud_height_m``, and ``shadow_dx_m``, ``shadow_dy_m``: the offset
        (EPSG:32650 metres, x east, y north) from a cloud to its shadow.

    Examples
    --------
    >>> g = cloud_geometry()
    >>> round(g["shadow_dx_m"], 1), round(g["shadow_dy_m"], 1)
    (-372.5, 532.0)
    """
    off = CLOUD_HEIGHT_M * math.tan(math.radians(SUN_ZENITH_DEG))
    az = math.radians(SUN_AZIMUTH_DEG + 180.0)
    return {"sun_zenith_deg": SUN_ZENITH_DEG, "sun_azimuth_deg": SUN_AZIMUTH_DEG,
            "cloud_height_m": CLOUD_HEIGHT_M, "shadow_dx_m": off * math.sin(az), "shadow_dy_m": off * math.cos(az)}

