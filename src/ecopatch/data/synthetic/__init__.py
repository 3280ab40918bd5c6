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
touches a file (see :mod:`ecopatch.data.datasets` for the writers).  Every random
choice comes from ``seed``; textures and sensor noise are hash functions of
the world position / global pixel index, so a scene rendered block by block
is bit-identical to the scene rendered whole, and a 10980 × 10980 tile can be
rendered window by window in bounded memory.

Examples
--------
>>> from ecopatch.data.synthetic import make_scene
>>> scene = make_scene(shape=(64, 80), seed=1, n_mines=1, n_reserves=1,
...                    n_encroachments=2, n_decoys=0)
>>> scene.grid.shape, scene.grid20.shape
((64, 80), (32, 40))
>>> sorted(scene.dn["after"])
['B02', 'B03', 'B04', 'B08', 'B11', 'B12', 'SCL']

Modules: :mod:`~ecopatch.data.synthetic.materials` (bands, spectra, product
metadata), :mod:`~ecopatch.data.synthetic.noise` (hash noise),
:mod:`~ecopatch.data.synthetic.geometry`, :mod:`~ecopatch.data.synthetic.world` (the
scene model), :mod:`~ecopatch.data.synthetic.build` (placing objects),
:mod:`~ecopatch.data.synthetic.scene` (:class:`SyntheticScene`),
:mod:`~ecopatch.data.synthetic.render` (tiles to digital numbers, the drone
mosaic), :mod:`~ecopatch.data.synthetic.generate` (:func:`make_scene`,
:func:`make_drone`), :mod:`~ecopatch.data.synthetic.tricks` (seasons, brightness,
haze, other dates), :mod:`~ecopatch.data.synthetic.sensors` (other sensors and
grids) and :mod:`~ecopatch.data.synthetic.products` (their file layouts).
"""

from ecopatch.data.synthetic.generate import make_drone, make_scene
from ecopatch.data.synthetic.materials import (
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
from ecopatch.data.synthetic.scene import DroneOrtho, SyntheticScene
from ecopatch.data.synthetic.sensors import product_grids, render_product
from ecopatch.data.synthetic.tricks import SENSOR_NAMES, Haze, Rendering, cloud_geometry, crop_state
from ecopatch.data.synthetic.world import SceneParams

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
