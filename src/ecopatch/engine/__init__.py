"""Windowed passes: plan the windows a job reads, run one task per window (Dask), add the partial sums.

:mod:`~ecopatch.engine.tiling`  windows, schedulers, :class:`~ecopatch.engine.tiling.WindowPass`
"""
