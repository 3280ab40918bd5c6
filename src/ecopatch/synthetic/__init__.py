"""Synthetic two-date scenes with known truth: the golden data of every accuracy test.

A seeded generator of a hilly landscape near Hangzhou (Yuhang district,
around 119.95° E, 30.22° N) as seen by Sentinel-2 L2A on two dates: abandoned
mines (废弃矿山) restored to different degrees, two kinds of nature reserves
(自然保护地) with functional zones, encroachments between the dates, a cloud
with its shadow, and a drone orthomosaic of one mine.  Everything is drawn
from **vector truth**: material polygons are rasterised at 1 m (10 ×
supersampling of the 10 m grid) and averaged, so boundary pixels are linear
mixtures like real ones.  Truth areas are true ground (geodesic) areas.

This module is pure: it returns arrays, GeoDataFrames and tables and never
touches a file (see :mod:`ecopatch.datasets` for the writers).  Every random
choice comes from ``seed``; textures and sensor noise are hash functions of
the world position / global pixel index, so a scene rendered block by block
is bit-identical to the scene rendered whole, and a 10980 × 10980 tile can be
rendered window by window in bounded memory.

Examples
--------
>>> from ecopatch.synthetic import make_scene
>>> scene = make_scene(shape=(64, 80), seed=1, n_mines=1, n_reserves=1,
...                    n_encroachments=2, n_decoys=0)
>>> scene.grid.shape, scene.grid20.shape
((64, 80), (32, 40))
>>> sorted(scene.dn["after"])
['B02', 'B03', 'B04', 'B08', 'B11', 'B12', 'SCL']

Modules: :mod:`~ecopatch.synthetic.materials` (bands, spectra, product
metadata), :mod:`~ecopatch.synthetic.noise` (hash noise),
:mod:`~ecopatch.synthetic.geometry`, :mod:`~ecopatch.synthetic.world` (the
scene model), :mod:`~ecopatch.synthetic.build` (placing objects),
:mod:`~ecopatch.synthetic.scene` (:class:`SyntheticScene`),
:mod:`~ecopatch.synthetic.render` (tiles to digital numbers, the drone
mosaic), :mod:`~ecopatch.synthetic.generate` (:func:`make_scene`,
:func:`make_drone`), :mod:`~ecopatch.synthetic.tricks` (seasons, brightness,
haze, other dates), :mod:`~ecopatch.synthetic.sensors` (other sensors and
grids) and :mod:`~ecopatch.synthetic.products` (their file layouts).
"""

from ecopatch.synthetic.generate import make_drone, make_scene
from ecopatch.synthetic.materials import (
    BANDS,
    BANDS_10M,
    BANDS_20M,
    DATES,
    MATERIALS,
    PRODUCTS,
    RASTERS,
    SCL_CLASSES,
    TILE_ORIGIN_XY,
    Material,
    ProductMeta,
)
from ecopatch.synthetic.scene import DroneOrtho, SyntheticScene
from ecopatch.synthetic.sensors import product_grids, render_product
from ecopatch.synthetic.tricks import SENSOR_NAMES, Haze, Rendering, cloud_geometry, crop_state
from ecopatch.synthetic.world import SceneParams

__all__ = [
    "BANDS",
    "BANDS_10M",
    "BANDS_20M",
    "DATES",
    "DroneOrtho",
    "Haze",
    "MATERIALS",
    "Material",
    "PRODUCTS",
    "ProductMeta",
    "RASTERS",
    "Rendering",
    "SCL_CLASSES",
    "SENSOR_NAMES",
    "SceneParams",
    "SyntheticScene",
    "TILE_ORIGIN_XY",
    "cloud_geometry",
    "crop_state",
    "make_drone",
    "make_scene",
    "product_grids",
    "render_product",
]
