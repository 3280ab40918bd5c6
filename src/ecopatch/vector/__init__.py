"""Polygon layers and tables at the edges: read, checked and repaired; written atomically.

:mod:`~ecopatch.vector.layers`  :func:`read_patches`, :func:`write_table`, atomic file writes
:mod:`~ecopatch.vector.tables`  spreadsheets and CSV in and out (streamed, bounded, formula-safe)
:mod:`~ecopatch.vector.sanitize`  text that cannot attack its reader
"""
