"""File I/O at the edges: imagery (:mod:`.raster`) and polygon layers (:mod:`.vector`)."""
