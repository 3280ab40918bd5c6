"""Write small synthetic scenes to disk for engine tests (the golden sample lives in sample_data/)."""

from __future__ import annotations

from pathlib import Path

import rasterio

from ecopatch.data.synthetic import make_scene
from ecopatch.raster.scene import open_scene

BANDS = ("B02", "B03", "B04", "B08", "B11", "B12", "SCL")


def write_pair(folder: Path, *, tile: int | None = None, compress: str | None = None, **scene_kw):
    """Render a synthetic scene's two dates as single-band GeoTIFFs; return (scene, before, after).

    ``tile``: write tiled GeoTIFFs with square tiles of this many pixels (a multiple of 16),
    DEFLATE-compressed unless ``compress`` says otherwise, as full Sentinel-2 tiles are stored
    (their blocks then go through the shared tile cache); default striped, uncompressed.
    """
    if tile and compress is None:
        compress = "deflate"
    s = make_scene(**scene_kw)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for date in ("before", "after"):
        arrs = s.render_window(date)
        paths[date] = []
        for band in BANDS:
            g = s.band_grid(band)
            arr = arrs[band]
            p = folder / f"{date}_{band}.tif"
            with rasterio.open(p, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
                               dtype="uint16", crs=g.crs.to_wkt(), transform=g.transform, nodata=0,
                               **({"tiled": True, "blockxsize": tile, "blockysize": tile} if tile else {}),
                               **({"compress": compress} if compress else {})) as ds:
                ds.write(arr.astype("uint16"), 1)
                ds.set_band_description(1, band)
            paths[date].append(str(p))
    before = open_scene(paths["before"], sensor="sentinel2_l2a", date=s.dates["before"])
    meta = s.products["after"]
    after = open_scene(paths["after"], sensor="sentinel2_l2a", date=s.dates["after"],
                       offset=meta.add_offset / meta.quantification_value)
    return s, before, after
