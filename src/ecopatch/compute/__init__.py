"""Pure array and geometry functions: no file, no scheduler, only numpy, scipy, shapely and numba.

:mod:`~ecopatch.compute.indices`  spectral indices (NDVI, MNDWI, NDBI, BSI, RGB-only)
:mod:`~ecopatch.compute.cover`  vegetation, bare, built and water fractions per pixel; FVC
:mod:`~ecopatch.compute.change`  the two-date change statistic against the scene's own noise, and the types
:mod:`~ecopatch.compute.zonal`  the exact share of every pixel inside each polygon; zonal sums
:mod:`~ecopatch.compute.components`  connected change pixels of a window and their union across windows
:mod:`~ecopatch.compute.kernels`  numba kernels of the hot loops, each with a NumPy reference it agrees with
"""
