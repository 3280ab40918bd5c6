"""GeoPackage encoding of the ledger's geometries (internal): GP binary, envelopes, SRS rows.

A GeoPackage geometry is a small header (magic ``GP``, flags, SRS ID), an
optional envelope and ISO WKB.  The ledger writes 2-D MultiPolygons in
EPSG:4490 with an xy envelope, and registers the SQL functions that the
R-tree triggers of GDAL call, so that a spatial index a user adds in QGIS
keeps the file writable.  Not part of the public API.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from typing import Any

import shapely
from pyproj import CRS

__all__ = [
    "APPLICATION_ID",
    "SRS_ID",
    "USER_VERSION",
    "decode_geometry",
    "encode_geometry",
    "envelope",
    "register_functions",
    "srs_rows",
]

#: SRS ID of every geometry in the ledger: CGCS2000 longitude/latitude.
SRS_ID = 4490
#: ``PRAGMA application_id`` of a GeoPackage ('GPKG').
APPLICATION_ID = 0x47504B47
#: ``PRAGMA user_version`` written: GeoPackage 1.4.0.
USER_VERSION = 10400


def encode_geometry(geom: Any, srs_id: int = SRS_ID) -> bytes:
    """GeoPackage binary of a 2-D geometry: GP header, xy envelope, ISO WKB.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> b = encode_geometry(box(0, 0, 1, 1))
    >>> b[:2], len(b) == 8 + 32 + len(shapely.to_wkb(box(0, 0, 1, 1)))
    (b'GP', True)
    >>> decode_geometry(b).equals(box(0, 0, 1, 1))
    True
    """
    if geom is None or shapely.is_empty(geom):
        # empty flag set, no envelope; WKB of an empty multipolygon
        flags = 0b0001_0001
        return (
            b"GP"
            + struct.pack("<BBi", 0, flags, srs_id)
            + shapely.to_wkb(shapely.MultiPolygon(), byte_order=1)
        )
    minx, miny, maxx, maxy = shapely.bounds(geom)
    flags = 0b0000_0011  # little endian, envelope [minx, maxx, miny, maxy]
    head = b"GP" + struct.pack("<BBi", 0, flags, srs_id)
    env = struct.pack("<4d", minx, maxx, miny, maxy)
    wkb = shapely.to_wkb(geom, byte_order=1, flavor="iso", output_dimension=2)
    return head + env + wkb


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def decode_geometry(blob: bytes | None) -> Any:
    """Shapely geometry from GeoPackage binary (None for NULL).

    Raises
    ------
    ValueError
        If ``blob`` is not GeoPackage binary.
    """
    if blob is None:
        return None
    blob = bytes(blob)
    if blob[:2] != b"GP":
        raise ValueError("not GeoPackage geometry binary (no 'GP' magic)")
    flags = blob[3]
    env = (flags >> 1) & 0b111
    if env not in _ENVELOPE_BYTES:
        raise ValueError(f"bad GeoPackage envelope indicator {env}")
    return shapely.from_wkb(blob[8 + _ENVELOPE_BYTES[env] :])


def envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of GeoPackage binary, or None when NULL or empty."""
    if blob is None:
        return None
    g = decode_geometry(blob)
    if g is None or g.is_empty:
        return None
    minx, miny, maxx, maxy = g.bounds
    return minx, maxx, miny, maxy


def register_functions(con: sqlite3.Connection) -> None:
    """SQL functions GDAL's R-tree triggers call (ST_IsEmpty, ST_MinX, ...).

    The ledger writes no spatial index, but if a user adds one in QGIS or with
    GDAL, its triggers call these; providing them keeps the ledger writable.
    """

    def part(i: int) -> Callable[[bytes | None], float | None]:
        def f(blob: bytes | None) -> float | None:
            env = envelope(blob)
            return None if env is None else env[i]

        return f

    con.create_function("ST_IsEmpty", 1, lambda b: 1 if envelope(b) is None else 0, deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, part(i), deterministic=True)


def srs_rows() -> list[tuple[Any, ...]]:
    """Rows of ``gpkg_spatial_ref_sys``: the two undefined SRSs, WGS 84 and CGCS2000."""

    def wkt(code: int) -> str:
        return CRS.from_epsg(code).to_wkt("WKT1_GDAL")

    undefined = "undefined {} coordinate reference system"
    return [
        ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", undefined.format("cartesian")),
        ("Undefined geographic SRS", 0, "NONE", 0, "undefined", undefined.format("geographic")),
        ("WGS 84 geodetic", 4326, "EPSG", 4326, wkt(4326), "WGS 84 longitude/latitude, degrees"),
        ("China Geodetic Coordinate System 2000", 4490, "EPSG", 4490, wkt(4490),
         "CGCS2000 longitude/latitude, degrees"),
    ]  # fmt: skip
