"""File I/O of polygon layers and tables (:mod:`.vector`, :mod:`.tables`); imagery is in :mod:`ecopatch.raster`."""
