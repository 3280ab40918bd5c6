"""Synthetic acquisitions rendered as other products: Sentinel-2 L1C, Landsat 8/9 C2 L2, Gaofen-1 WFV.

The ground of a synthetic scene (:mod:`ecopatch.data.synthetic`) is known as six
Sentinel-2 bands of surface reflectance.  Other products need more:

* **Spectra in 13 bands.**  :func:`extend13` fills B01, the red edge
  (B05-B07), B8A, B09 and B10 from the six: the red edge follows a sigmoid
  for vegetation and a straight line for soil and water, weighted by NDVI.
* **Top of atmosphere** (Sentinel-2 L1C): ``ρ_TOA = T_b ρ + a R_b`` with the
  path reflectance ``R_b`` and two-way transmittance ``T_b`` of a hazy
  standard atmosphere, fitted to real L1C over forest (eo-learn Slovenia:
  B02 about +0.045 over the surface, B09 about a third of B8A from water
  vapour, B10 about 0.001 over land) and scaled by each date's aerosol load
  ``a``.  No surface correction, no scene classification.
* **Clouds in every band**: thick low clouds bright and flat in VNIR, bright
  in SWIR, low in B10 (1375 nm: water vapour above absorbs what they
  reflect) and dimmed in B09; thin cirrus a veil adding about 0.06 in VNIR
  and more in B10 than the thick cloud; shadows darker in NIR than in blue
  (skylight).  Cloud shadows lie ``height · tan(zenith)`` away from their
  clouds, opposite the sun (:func:`ecopatch.data.synthetic.tricks.cloud_geometry`).
* **Other grids**: Landsat at 30 m in UTM 51N on the USGS lattice (corners
  on 15 m), Gaofen at 16 m (or 0.00015° in CGCS2000 geographic): each
  product pixel is the mean of a k × k lattice of samples of the 10 m
  ground, so pixels straddle 10 m pixels as real ones do.  Pixels outside
  the scene are fill.
* **Sensor differences**: Landsat OLI bands differ slightly from MSI's
  (chosen factors within 2.5 %, the order of the HLS bandpass adjustment);
  Gaofen-1 WFV carries a chosen calibration difference of a few per cent,
  the four VNIR bands only, and no cloud mask.

Everything is a pure function of the scene; rendering any window gives the
same pixels as rendering the whole product.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine
from numpy.typing import ArrayLike

from ecopatch.data.synthetic.materials import AFTER_GAIN, AFTER_HAZE, AFTER_OFFSET, BANDS_10M, RENDER_TILE, SPECTRA
from ecopatch.data.synthetic.render import nodata_mask, surface_tile
from ecopatch.data.synthetic.tricks import SENSOR_NAMES, WAVELENGTH_NM, Acquisition, Rendering, apply_haze
from ecopatch.errors import ConfigError, InputDataError
from ecopatch.geo.geodesy import as_crs
from ecopatch.geo.grid import Grid, Window

if TYPE_CHECKING:  # pragma: no cover
    from ecopatch.data.synthetic.scene import SyntheticScene

__all__ = [
    "GF_BANDS",
    "base_grid",
    "L1C_BANDS",
    "LANDSAT_BANDS",
    "S2_BANDS_13",
    "extend13",
    "landsat_qa_value",
    "product_grids",
    "product_name",
    "render_product",
    "rendering_of",
]

#: The 13 Sentinel-2 MSI bands, in product order.
S2_BANDS_13: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
                                 "B11", "B12")
#: Native resolution (m) of each Sentinel-2 band.
S2_RES_M: dict[str, int] = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                            "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
#: Bands of a Level-1C product (13, no SCL).
L1C_BANDS: tuple[str, ...] = S2_BANDS_13
#: Landsat 8/9 OLI Collection 2 Level-2 surface reflectance bands and the Sentinel-2 band each is drawn from.
LANDSAT_BANDS: dict[str, str] = {"SR_B1": "B01", "SR_B2": "B02", "SR_B3": "B03", "SR_B4": "B04", "SR_B5": "B8A",
                                 "SR_B6": "B11", "SR_B7": "B12"}
#: Gaofen-1 WFV bands (blue, green, red, NIR) and the Sentinel-2 band each is drawn from.
GF_BANDS: dict[str, str] = {"B1": "B02", "B2": "B03", "B3": "B04", "B4": "B08"}

_I = {b: i for i, b in enumerate(S2_BANDS_13)}
_I6 = [_I[b] for b in ("B02", "B03", "B04", "B08", "B11", "B12")]
_LAM = np.array([WAVELENGTH_NM[b] for b in S2_BANDS_13])
_LAM6 = _LAM[_I6]

# Hazy standard atmosphere (Hangzhou, late summer), per band B01 … B12: path reflectance and
# two-way transmittance.  Fitted so that a synthetic forest reads like real L1C forest.
_PATH = np.array([0.078, 0.050, 0.030, 0.018, 0.014, 0.012, 0.010, 0.008, 0.007, 0.003, 0.0, 0.002, 0.001])
_TRANS = np.array([0.80, 0.85, 0.90, 0.92, 0.92, 0.93, 0.94, 0.93, 0.94, 0.30, 0.003, 0.93, 0.88])
# Top-of-atmosphere reflectance of a thick low (1 km) water cloud, and of a cirrus veil (alpha = 1).
_CLOUD_TOA = np.array([0.50, 0.48, 0.47, 0.47, 0.47, 0.48, 0.48, 0.48, 0.48, 0.28, 0.035, 0.33, 0.21])
_CIRRUS_TOA = np.array([0.24, 0.23, 0.22, 0.22, 0.22, 0.22, 0.22, 0.22, 0.22, 0.21, 0.20, 0.15, 0.10])
_SHADOW13 = np.array([0.45, 0.42, 0.38, 0.34, 0.33, 0.32, 0.31, 0.30, 0.30, 0.30, 0.30, 0.28, 0.28])
_L1C_SIGMA = np.array([0.002, 0.003, 0.003, 0.003, 0.003, 0.003, 0.003, 0.004, 0.003, 0.002, 0.0005, 0.003,
                       0.003])
# Landsat OLI against MSI: reflectance factor and offset per SR_B1 … SR_B7 (chosen, ≤ 2.5 %).
_LANDSAT_GAIN = np.array([0.985, 0.978, 1.005, 0.977, 0.998, 0.999, 1.003])
_LANDSAT_OFFSET = np.array([-0.001, -0.002, -0.001, 0.001, 0.0, -0.001, -0.001])
_LANDSAT_SIGMA = 0.004
# Gaofen-1 WFV: a calibration difference of a few per cent (chosen) and a noisier 10-bit camera.
_GF_GAIN = np.array([1.05, 1.03, 0.96, 0.94])
_GF_OFFSET = np.array([0.004, 0.002, 0.0, -0.003])
_GF_SIGMA = 0.007
_AUX = ("f_cloud_high", "f_cloud_medium", "f_cirrus", "f_shadow", "veg", "water", "valid")
_K = len(S2_BANDS_13)
_STREAMS = {"sentinel2_l1c": 10_000, "landsat_oli_c2l2": 20_000, "gf1_wfv": 30_000}
_L8_START = _dt.date(2013, 4, 11)
_L9_START = _dt.date(2022, 2, 10)
_GF1_START = _dt.date(2013, 5, 1)


# ---------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------
def extend13(rho6: np.ndarray) -> np.ndarray:
    """Thirteen Sentinel-2 bands from the six the generator knows (B02, B03, B04, B08, B11, B12).

    Parameters
    ----------
    rho6 : ndarray, shape (6, ...)
        Reflectance (unitless) in B02, B03, B04, B08, B11, B12; may be a
        fraction-weighted part of a pixel (the result scales with it).

    Returns
    -------
    ndarray, shape (13, ...)
        Reflectance in B01 … B12 (:data:`S2_BANDS_13` order).  B09 and B10
        are surface values: the atmosphere takes them away at the top.

    Examples
    --------
    >>> forest = np.array([0.03, 0.05, 0.03, 0.32, 0.17, 0.08])
    >>> np.round(extend13(forest), 3).tolist()
    [0.026, 0.03, 0.05, 0.03, 0.074, 0.256, 0.32, 0.32, 0.339, 0.332, 0.255, 0.17, 0.08]
    """
    rho6 = np.asarray(rho6, dtype=np.float64)
    b2, b3, b4, b8, b11, b12 = rho6
    nd = (b8 - b4) / np.maximum(np.abs(b8 + b4), 1e-9)
    v = np.clip((nd - 0.2) / 0.5, 0.0, 1.0)  # how much like green vegetation

    def edge(lam: float, w_veg: float) -> np.ndarray:
        lin = (lam - WAVELENGTH_NM["B04"]) / (WAVELENGTH_NM["B08"] - WAVELENGTH_NM["B04"])
        w = v * w_veg + (1 - v) * lin
        return b4 + w * (b8 - b4)

    b8a = b8 * (1.02 + 0.04 * v)
    out = np.empty((13, *rho6.shape[1:]))
    out[_I["B01"]] = b2 * (0.9 - 0.05 * v)
    out[_I["B02"]], out[_I["B03"]], out[_I["B04"]] = b2, b3, b4
    out[_I["B05"]] = edge(WAVELENGTH_NM["B05"], 0.15)
    out[_I["B06"]] = edge(WAVELENGTH_NM["B06"], 0.78)
    out[_I["B07"]] = edge(WAVELENGTH_NM["B07"], 1.0)
    out[_I["B08"]], out[_I["B8A"]] = b8, b8a
    out[_I["B09"]] = b8a * 0.98
    out[_I["B10"]] = 0.5 * (b8a + b11)
    out[_I["B11"]], out[_I["B12"]] = b11, b12
    return out


def _interp13(vals6: ArrayLike) -> np.ndarray:
    """Per-band factors of the six bands spread to 13 by wavelength."""
    return np.interp(_LAM, _LAM6, np.asarray(vals6, dtype=np.float64))


# ---------------------------------------------------------------------------
# Acquisitions and grids
# ---------------------------------------------------------------------------
def _acquisition(scene: SyntheticScene, key: str) -> Acquisition:
    scene._check_key(key)
    if scene.tricks is not None:
        return scene.tricks.acquisitions[key]
    return Acquisition(key, scene.products[key], ground=key, clouds=key == "after", rendering=Rendering(),
                       aerosol=0.85 if key == "before" else 1.15, noise_stream=0 if key == "before" else 1)


def rendering_of(scene: SyntheticScene, key: str, sensor: str | Rendering | None = None) -> Rendering:
    """The product ``key`` is written as (``sensor`` overrides it), with its defaults filled in."""
    if sensor is None:
        r = _acquisition(scene, key).rendering
    elif isinstance(sensor, Rendering):
        r = sensor
    elif isinstance(sensor, str):
        if sensor not in SENSOR_NAMES:
            raise ConfigError(f"unknown sensor {sensor!r} for a synthetic product; use one of {list(SENSOR_NAMES)}")
        r = Rendering(sensor)
    else:
        raise ConfigError(f"sensor={sensor!r}: give a sensor name ({list(SENSOR_NAMES)}) or a Rendering")
    if r.sensor == "landsat_oli_c2l2":
        return Rendering(r.sensor, r.crs or "EPSG:32651", r.res or 30.0)
    if r.sensor == "gf1_wfv":
        from pyproj import CRS

        crs = r.crs or "EPSG:4490"
        return Rendering(r.sensor, crs, r.res or (0.00015 if CRS(crs).is_geographic else 16.0))
    return r


def _grid60(scene: SyntheticScene) -> Grid:
    g = scene.grid
    t = g.transform
    return Grid(((g.height + 5) // 6, (g.width + 5) // 6), Affine(6 * t.a, 0.0, t.c, 0.0, 6 * t.e, t.f), g.crs)


def _foreign_grid(scene: SyntheticScene, r: Rendering) -> Grid:
    """A grid in ``r.crs`` at ``r.res`` covering the scene; Landsat corners on the USGS 15 m lattice."""
    fp = scene.grid.footprint_in(r.crs)
    left, bottom, right, top = fp.bounds
    res = float(r.res)  # type: ignore[arg-type]
    shift = 15.0 if r.sensor == "landsat_oli_c2l2" else 0.0
    x0 = math.floor((left - shift) / res) * res + shift
    y1 = math.ceil((top - shift) / res) * res + shift
    cols = int(math.ceil((right - x0) / res))
    rows = int(math.ceil((y1 - bottom) / res))
    return Grid((rows, cols), Affine(res, 0.0, x0, 0.0, -res, y1), as_crs(r.crs))


def product_grids(scene: SyntheticScene, key: str, sensor: str | Rendering | None = None) -> dict[str, Grid]:
    """Grid of every raster of acquisition ``key`` as written (band or mask name -> Grid).

    Sentinel-2 products share the scene's 10/20/60 m grids (EPSG:32650);
    Landsat (SR_B1 … SR_B7, QA_PIXEL) and Gaofen (B1 … B4, one 4-band file)
    have one grid each in their own CRS.
    """
    r = rendering_of(scene, key, sensor)
    if r.sensor == "sentinel2_l2a":
        return {b: scene.band_grid(b) for b in ("B02", "B03", "B04", "B08", "B11", "B12", "SCL")}
    if r.sensor == "sentinel2_l1c":
        by = {10: scene.grid, 20: scene.grid20, 60: _grid60(scene)}
        return {b: by[S2_RES_M[b]] for b in S2_BANDS_13}
    g = _foreign_grid(scene, r)
    if r.sensor == "landsat_oli_c2l2":
        return {**{b: g for b in LANDSAT_BANDS}, "QA_PIXEL": g}
    return {b: g for b in GF_BANDS}


def base_grid(scene: SyntheticScene, key: str, sensor: str | Rendering | None = None) -> Grid:
    """The coarsest grid of the product of ``key``: the grid :func:`render_product` windows are on."""
    return _base_grid(scene, rendering_of(scene, key, sensor))


def _base_grid(scene: SyntheticScene, r: Rendering) -> Grid:
    if r.sensor == "sentinel2_l2a":
        return scene.grid20
    if r.sensor == "sentinel2_l1c":
        return _grid60(scene)
    return _foreign_grid(scene, r)


def product_name(scene: SyntheticScene, key: str, sensor: str | Rendering | None = None) -> str:
    """Name of the product of ``key`` as a user receives it (SAFE name, Landsat product ID, Gaofen scene)."""
    r = rendering_of(scene, key, sensor)
    p = _acquisition(scene, key).product
    day = p.sensing_time.date()
    if r.sensor == "sentinel2_l2a":
        return p.product_id
    if r.sensor == "sentinel2_l1c":
        gen = p.sensing_time + _dt.timedelta(hours=1, minutes=12, seconds=(p.absolute_orbit * 37) % 3600)
        return p.product_id.replace("MSIL2A", "MSIL1C").rsplit("_", 1)[0] + f"_{gen:%Y%m%dT%H%M%S}"
    if r.sensor == "landsat_oli_c2l2":
        if day < _L8_START:
            raise InputDataError(f"no Landsat 8/9 OLI before {_L8_START}: cannot render {key} ({day}) as Landsat")
        craft = "LC09" if day >= _L9_START else "LC08"
        done = day + _dt.timedelta(days=2)
        return f"{craft}_L2SP_119039_{day:%Y%m%d}_{done:%Y%m%d}_02_T1"
    if day < _GF1_START:
        raise InputDataError(f"no Gaofen-1 WFV before {_GF1_START}: cannot render {key} ({day}) as Gaofen-1")
    lon, lat = _centre_lonlat(scene)
    number = 4_000_000 + (p.absolute_orbit * 7919) % 999_983
    return f"GF1_WFV3_E{lon:.1f}_N{lat:.1f}_{day:%Y%m%d}_L1A{number:010d}"


def _centre_lonlat(scene: SyntheticScene) -> tuple[float, float]:
    from ecopatch.geo.geodesy import transformer

    left, bottom, right, top = scene.grid.bounds
    lon, lat = transformer(scene.crs, "EPSG:4326").transform((left + right) / 2, (bottom + top) / 2)
    return float(lon), float(lat)


# ---------------------------------------------------------------------------
# 13-band ground at 10 m
# ---------------------------------------------------------------------------
def _tile13(scene: SyntheticScene, a: Acquisition, level: str, ti: int, tj: int) -> np.ndarray:
    """Reflectance in 13 bands plus :data:`_AUX` layers over one render tile, float32 (20, 256, 256)."""
    ck = ("tile13", a.key, level, ti, tj)
    with scene._cache_lock:
        hit = scene._cache.get(ck)
        if hit is not None:
            scene._cache.move_to_end(ck)
            return hit
    world = scene._world
    ts = surface_tile(world, a.key, ti, tj)
    xs, ys = ts.xs, ts.ys
    parts = {o: extend13(ts.surf[o]) for o in range(5)}
    ground = parts[0] + parts[1] * _SHADOW13[:, None, None]
    for o in (2, 3, 4):
        ground = ground + parts[o]
    frac = ts.frac_o
    smooth = 0.5 + 0.5 * world.noise.grid(xs, ys, 8000.0, 2, 21)
    cloudy = any(frac[o].any() for o in (2, 3, 4))
    texture = world.noise.grid(xs, ys, 300.0, 3, 20) if cloudy else None
    if level == "toa":
        aer = np.asarray(a.aerosol * (0.85 + 0.3 * smooth))[None]
        path = _PATH[:, None, None] * aer
        trans = _TRANS[:, None, None]
        rho = trans * ground + path
        if cloudy:
            assert texture is not None  # drawn when cloudy
            cloud = _CLOUD_TOA[:, None, None] * (1 + 0.08 * texture)[None]
            for o, alpha0 in ((3, 0.75), (4, 0.94)):
                if frac[o].any():
                    alpha = np.clip(alpha0 * (1 + 0.12 * texture), 0.0, 0.99)[None]
                    below = trans * parts[o] + path * frac[o][None]
                    rho = rho + alpha * (cloud * frac[o][None] - below)
            if frac[2].any():
                c = np.clip(0.28 * (1 + 0.12 * texture), 0.0, 0.99)[None]
                below = trans * parts[2] + path * frac[2][None]
                rho = rho + c * (_CIRRUS_TOA[:, None, None] * frac[2][None] - 0.15 * below)
    else:  # surface reflectance, as a Level-2 processor leaves it
        rho = ground
        if cloudy:
            assert texture is not None  # drawn when cloudy
            cloud = extend13(np.asarray(SPECTRA["cloud"])[:, None, None]) * (1 + 0.08 * texture)[None]
            for o, alpha0 in ((2, 0.28), (3, 0.75), (4, 0.94)):
                if frac[o].any():
                    alpha = np.clip(alpha0 * (1 + 0.12 * texture), 0.0, 0.99)[None]
                    rho = rho + alpha * (cloud * frac[o][None] - parts[o])
        if a.key == "after":
            rho = (_interp13(AFTER_GAIN)[:, None, None] * rho + _interp13(AFTER_OFFSET)[:, None, None]
                   + _interp13(AFTER_HAZE)[:, None, None] * smooth[None])
        elif a.key != "before":
            rho = (_interp13(a.gain)[:, None, None] * rho + _interp13(a.offset)[:, None, None]
                   + a.haze_amp * _interp13(AFTER_HAZE)[:, None, None] * smooth[None])
    rho = apply_haze(a, world, rho, xs, ys, S2_BANDS_13)
    out = np.empty((_K + len(_AUX), RENDER_TILE, RENDER_TILE), np.float32)
    out[:_K] = rho
    out[_K:_K + 6] = np.stack([frac[4], frac[3], frac[2], frac[1], ts.veg, ts.water])
    out[-1] = ~nodata_mask(world, a.key, xs, ys)
    with scene._cache_lock:
        scene._cache[ck] = out
        while len(scene._cache) > 24:
            scene._cache.popitem(last=False)
    return out


def _stack10(scene: SyntheticScene, a: Acquisition, level: str, win: Window) -> np.ndarray:
    """The 13-band ground plus aux layers over any 10 m window (it may extend past the grid)."""
    out = np.empty((_K + len(_AUX), win.height, win.width), np.float32)
    for ti in range(win.row_off // RENDER_TILE, (win.row_end - 1) // RENDER_TILE + 1):
        for tj in range(win.col_off // RENDER_TILE, (win.col_end - 1) // RENDER_TILE + 1):
            tw = Window(row_off=ti * RENDER_TILE, col_off=tj * RENDER_TILE, height=RENDER_TILE, width=RENDER_TILE)
            inter = tw.intersection(win)
            if inter is not None:
                dst = (slice(None), *inter.relative_to(win).slices)
                src = (slice(None), *inter.relative_to(tw).slices)
                out[dst] = _tile13(scene, a, level, ti, tj)[src]
    return out


# ---------------------------------------------------------------------------
# Products
# ---------------------------------------------------------------------------
def render_product(scene: SyntheticScene, key: str, *, sensor: str | Rendering | None = None,
                   window: Window | None = None) -> dict[str, np.ndarray]:
    """Render acquisition ``key`` as the product it is written as (or as ``sensor``).

    Parameters
    ----------
    scene : SyntheticScene
    key : str
        "before", "after" or an extra date (see ``scene.acquisitions``).
    sensor : str or Rendering, optional
        Render as this product instead (any acquisition can be rendered as
        any of :data:`~ecopatch.data.synthetic.tricks.SENSOR_NAMES`).
    window : Window, optional
        Window of the product's coarsest grid (Sentinel-2 L2A 20 m, L1C
        60 m; Landsat and Gaofen their only grid); default all of it.

    Returns
    -------
    dict of str to ndarray
        Digital numbers as the product stores them, each raster on its own
        grid (:func:`product_grids`), clipped to it:

        * ``sentinel2_l2a``: B02 … B12 (uint16) and SCL (uint8), see
          :meth:`SyntheticScene.render_window`;
        * ``sentinel2_l1c``: the 13 bands, uint16, DN = ρ_TOA × 10000
          (+ 1000 from processing baseline 04.00), 0 = nodata; no mask;
        * ``landsat_oli_c2l2``: SR_B1 … SR_B7 (uint16, ρ = DN × 2.75e-5 − 0.2,
          0 = fill) and QA_PIXEL (uint16, Collection 2 bits from the truth);
        * ``gf1_wfv``: B1 … B4 (uint16, ρ × 10000, 0 = nodata); no mask.

    Raises
    ------
    InputDataError
        An unknown acquisition, or a date the sensor did not fly.
    """
    r = rendering_of(scene, key, sensor)
    a = _acquisition(scene, key)
    base = _base_grid(scene, r)
    win = window or base.window
    if r.sensor == "sentinel2_l2a":
        out = scene.render_window(key, _scaled(win, 2))
        return {b: _clip(arr, scene.band_grid(b), _scaled(win, 2 if b in BANDS_10M else 1)) for b, arr in out.items()}
    if r.sensor == "sentinel2_l1c":
        return _render_l1c(scene, a, win)
    if r.sensor in ("landsat_oli_c2l2", "gf1_wfv"):
        product_name(scene, key, r)  # refuses dates before the satellite flew
    return _render_foreign(scene, a, r, base, win)


def _scaled(win: Window, f: int) -> Window:
    return Window(row_off=win.row_off * f, col_off=win.col_off * f, height=win.height * f, width=win.width * f)


def _clip(arr: np.ndarray, grid: Grid, win: Window) -> np.ndarray:
    """``arr`` (pixels of ``win``) cut to the part of ``win`` inside ``grid``."""
    inside = win.intersection(grid.window)
    if inside is None:
        return arr[..., :0, :0]
    rel = inside.relative_to(win)
    index = (..., *rel.slices)
    return arr[index]


def _noise(scene: SyntheticScene, stream: int, win: Window) -> np.ndarray:
    rows = (win.row_off + np.arange(win.height))[:, None]
    cols = (win.col_off + np.arange(win.width))[None, :]
    return scene._world.noise.normal(stream, rows, cols)


def _block(a: np.ndarray, f: int) -> np.ndarray:
    k, h, w = a.shape
    return a.reshape(k, h // f, f, w // f, f).mean(axis=(2, 4))


def _render_l1c(scene: SyntheticScene, a: Acquisition, win60: Window) -> dict[str, np.ndarray]:
    st = _stack10(scene, a, "toa", _scaled(win60, 6)).astype(np.float64)
    by_res = {10: (st, _scaled(win60, 6), scene.grid), 20: (_block(st, 2), _scaled(win60, 3), scene.grid20),
              60: (_block(st, 6), win60, _grid60(scene))}
    p = a.product
    dn_off = -p.add_offset if float(p.processing_baseline) >= 4.0 else 0
    stream0 = _STREAMS["sentinel2_l1c"] + 16 * a.noise_stream
    out = {}
    for b in S2_BANDS_13:
        arr, win, grid = by_res[S2_RES_M[b]]
        i = _I[b]
        val = arr[i] + _L1C_SIGMA[i] * _noise(scene, stream0 + i, win)
        dn = np.clip(np.rint(val * p.quantification_value) + dn_off, 1, 65535).astype(np.uint16)
        dn[arr[-1] < 0.5] = 0
        out[b] = _clip(dn, grid, win)
    return out


def _render_foreign(scene: SyntheticScene, a: Acquisition, r: Rendering, grid: Grid,
                    win: Window) -> dict[str, np.ndarray]:
    """Landsat or Gaofen pixels: means of k × k samples of the 10 m ground (surface reflectance)."""
    from ecopatch.geo.geodesy import transformer

    res_m = float(r.res) * (111_320.0 if grid.is_geographic else 1.0)  # type: ignore[arg-type]
    k = max(2, int(math.ceil(res_m / 5.0)))
    sub = (np.arange(k) + 0.5) / k
    t = grid.transform
    xs = t.c + t.a * (win.col_off + (np.arange(win.width)[:, None] + sub[None, :]).ravel())
    ys = t.f + t.e * (win.row_off + (np.arange(win.height)[:, None] + sub[None, :]).ravel())
    xx, yy = np.meshgrid(xs, ys)
    ux, uy = transformer(grid.crs, scene.crs).transform(xx.ravel(), yy.ravel())
    g10 = scene.grid
    col = np.floor((np.asarray(ux) - g10.transform.c) / g10.transform.a).astype(np.int64)
    row = np.floor((np.asarray(uy) - g10.transform.f) / g10.transform.e).astype(np.int64)
    inside = (row >= 0) & (row < g10.height) & (col >= 0) & (col < g10.width)
    nk = _K + len(_AUX)
    samples = np.zeros((nk, row.size), np.float32)
    if inside.any():
        r0, r1 = int(row[inside].min()), int(row[inside].max()) + 1
        c0, c1 = int(col[inside].min()), int(col[inside].max()) + 1
        st = _stack10(scene, a, "surface", Window(row_off=r0, col_off=c0, height=r1 - r0, width=c1 - c0))
        samples[:, inside] = st[:, row[inside] - r0, col[inside] - c0]
    pix = samples.reshape(nk, win.height, k, win.width, k).mean(axis=(2, 4), dtype=np.float64)
    valid = pix[-1] > 1 - 1e-6
    world_stream = _STREAMS[r.sensor] + 16 * a.noise_stream
    out: dict[str, np.ndarray] = {}
    if r.sensor == "landsat_oli_c2l2":
        for j, (b, s2) in enumerate(LANDSAT_BANDS.items()):
            rho = _LANDSAT_GAIN[j] * pix[_I[s2]] + _LANDSAT_OFFSET[j]
            rho = rho + _LANDSAT_SIGMA * _noise(scene, world_stream + j, win)
            dn = np.clip(np.rint((rho + 0.2) / 2.75e-5), 1, 65535).astype(np.uint16)
            dn[~valid] = 0
            out[b] = dn
        out["QA_PIXEL"] = landsat_qa_value(pix[_K], pix[_K + 1], pix[_K + 2], pix[_K + 3], pix[_K + 4], pix[_K + 5],
                                           valid)
    else:
        for j, (b, s2) in enumerate(GF_BANDS.items()):
            rho = _GF_GAIN[j] * pix[_I[s2]] + _GF_OFFSET[j] + _GF_SIGMA * _noise(scene, world_stream + j, win)
            dn = np.clip(np.rint(rho * 10000.0), 1, 65535).astype(np.uint16)
            dn[~valid] = 0
            out[b] = dn
    return out


def landsat_qa_value(f_high: np.ndarray, f_medium: np.ndarray, f_cirrus: np.ndarray, f_shadow: np.ndarray,
                     veg: np.ndarray, water: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Landsat Collection 2 QA_PIXEL values from the truth shares of each pixel.

    Cloud (bit 3) where thick cloud covers half the pixel (confidence high
    where the core does, else medium), dilated cloud (bit 1) where a little
    of it does, cirrus (bit 2, confidence high) and cloud shadow (bit 4,
    confidence high) from half the pixel, water (bit 7), clear (bit 6) where
    neither cloud nor dilated cloud; fill (bit 0 alone, value 1) outside.
    Confidences not otherwise set are low, as USGS sets them.

    Examples
    --------
    >>> z, o = np.zeros(5), np.ones(5, bool)
    >>> landsat_qa_value(np.array([0, 1, 0, 0, 0.]), z, np.array([0, 0, 1, 0, 0.]),
    ...                  np.array([0, 0, 0, 1, 0.]), z, z, np.array([1, 1, 1, 1, 0], bool)).tolist()
    [21824, 22280, 54596, 23888, 1]
    """
    cloud = (f_high + f_medium) >= 0.5
    dilated = ~cloud & ((f_high + f_medium) >= 0.05)
    cirrus = f_cirrus >= 0.5
    shadow = f_shadow >= 0.5
    wat = water >= 0.5
    clear = ~cloud & ~dilated
    conf_cloud = np.where(cloud & (f_high >= 0.5), 3, np.where(cloud, 2, 1))
    q = (dilated.astype(np.uint32) << 1) | (cirrus.astype(np.uint32) << 2) | (cloud.astype(np.uint32) << 3)
    q |= (shadow.astype(np.uint32) << 4) | (clear.astype(np.uint32) << 6) | (wat.astype(np.uint32) << 7)
    q |= conf_cloud.astype(np.uint32) << 8
    q |= np.where(shadow, 3, 1).astype(np.uint32) << 10
    q |= np.uint32(1) << 12  # snow/ice confidence low
    q |= np.where(cirrus, 3, 1).astype(np.uint32) << 14
    q = np.where(valid, q, 1)
    return q.astype(np.uint16)
