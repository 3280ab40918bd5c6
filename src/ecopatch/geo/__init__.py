"""Georeferencing and true ground areas: the lowest layer, importing nothing else of ecopatch.

:mod:`~ecopatch.geo.grid`  :class:`Grid` (shape, transform, CRS; odc-geo GeoBox interop) and
:class:`Window` (whole pixels, rasterio's order)
:mod:`~ecopatch.geo.geodesy`  CRSs, geodesic polygon areas (m²), lon/lat
:mod:`~ecopatch.geo.units`  m², hectare and mu (亩)
"""
