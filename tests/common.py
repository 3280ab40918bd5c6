"""Named test geometries with truth you can check by hand (like shapely/tests/common.py)."""

from __future__ import annotations

from shapely.geometry import MultiPolygon, Polygon, box

#: A 100 m × 100 m square in UTM 50N near Hangzhou: 1 ha = 15 mu (map area; ground area differs by k²).
square_1ha = box(780_000, 3_349_000, 780_100, 3_349_100)
#: 100 m square with a 40 m square hole: 8400 m² of map area.
patch_with_hole = Polygon(
    [(780_000, 3_349_000), (780_100, 3_349_000), (780_100, 3_349_100), (780_000, 3_349_100)],
    [[(780_030, 3_349_030), (780_070, 3_349_030), (780_070, 3_349_070), (780_030, 3_349_070)]],
)
#: A self-intersecting bow-tie (two 50 m triangles touching at a point).
bowtie_invalid = Polygon([(780_000, 3_349_000), (780_100, 3_349_100), (780_100, 3_349_000),
                          (780_000, 3_349_100), (780_000, 3_349_000)])
#: Two 50 m squares 100 m apart: 5000 m² map area.
multipart_patch = MultiPolygon([box(780_000, 3_349_000, 780_050, 3_349_050),
                                box(780_150, 3_349_000, 780_200, 3_349_050)])
