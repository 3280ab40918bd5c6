"""Reading patch polygons and writing result tables, atomically.

:func:`read_patches` reads mine or reserve polygons from a Shapefile (GBK or
UTF-8 attribute tables), GeoPackage, GeoJSON or GeoParquet, checks the CRS
and the coordinates against it, repairs invalid geometries by a stated
policy, and gives every row a unique ``patch_id``.  :func:`write_table`
writes a (Geo)DataFrame by extension to a temporary file next to the target
and renames it into place, so a half-written result never looks complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from ecopatch.errors import (
    ConfigError,
    DuplicateIDError,
    GeometryError,
    GeometryRepairedWarning,
    InputDataError,
    MissingCRSError,
    OutputError,
    OutputExistsError,
    SuspiciousCoordinatesError,
    VectorReadError,
    describe_os_error,
)

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

__all__ = ["read_patches", "write_table", "write_tables"]

log = logging.getLogger(__name__)

ON_INVALID = ("raise", "warn", "ignore", "fix")
#: dBase language-driver IDs that mean a Chinese code page (GBK / cp936).
_GBK_LDIDS = {0x4D, 0x7A}


def _dbf_encoding(path: Path) -> str | None:
    """Encoding of a Shapefile's attribute table: from the .cpg, else from the DBF header."""
    cpg = path.with_suffix(".cpg")
    if not cpg.exists():
        cpg = path.with_suffix(".CPG")
    if cpg.exists():
        text = cpg.read_text(errors="replace").strip().upper()
        if text in ("936", "CP936", "GBK", "GB2312", "GB18030"):
            return "gbk"
        if "UTF" in text and "8" in text:
            return "utf-8"
        return text.lower() or None
    dbf = path.with_suffix(".dbf")
    if not dbf.exists():
        dbf = path.with_suffix(".DBF")
    if dbf.exists():
        with open(dbf, "rb") as fh:
            head = fh.read(32)
        if len(head) > 29 and head[29] in _GBK_LDIDS:
            return "gbk"
        # No declaration: sniff the bytes of the first records.
        with open(dbf, "rb") as fh:
            sample = fh.read(65536)
        try:
            sample.decode("utf-8")
            return None
        except UnicodeDecodeError:
            try:
                sample[32:].decode("gbk")
                return "gbk"
            except UnicodeDecodeError:
                return None
    return None


def _list_layers(path: Path) -> list[tuple[str, str]]:
    import pyogrio

    try:
        return [(str(n), str(t)) for n, t in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends
        raise VectorReadError(
            f"{path}: cannot open as a polygon layer ({_short(exc)}); check that it is a complete "
            "Shapefile (.shp with .shx, .dbf, .prj), GeoPackage, GeoJSON or GeoParquet file"
        ) from exc


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return msg[:200]


def _read_frame(path: Path, layer: str | int | None, encoding: str | None) -> gpd.GeoDataFrame:
    import geopandas as gpd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        try:
            return gpd.read_parquet(path)
        except Exception as exc:
            raise VectorReadError(f"{path}: cannot read as GeoParquet ({_short(exc)})") from exc
    if layer is None and suffix == ".gpkg":
        layers = _list_layers(path)
        poly = [n for n, t in layers if t is None or "Polygon" in str(t) or t == "None"]
        if not layers:
            raise GeometryError(f"{path}: the GeoPackage has no layer")
        if len(layers) > 1:
            if len(poly) == 1:
                layer = poly[0]
            else:
                raise InputDataError(
                    f"{path}: the GeoPackage has several layers {[n for n, _ in layers]}; "
                    "choose one with layer="
                )
    kwargs: dict[str, Any] = {}
    if encoding is None and suffix == ".shp":
        encoding = _dbf_encoding(path)
    if encoding:
        kwargs["encoding"] = encoding
    try:
        return gpd.read_file(path, layer=layer, engine="pyogrio", **kwargs)
    except UnicodeDecodeError as exc:
        raise VectorReadError(
            f"{path}: the attribute table is not valid {kwargs.get('encoding', 'UTF-8')} ({exc.reason}); "
            "pass encoding='gbk' (or the right one) to read_patches, and note that Shapefile field "
            "names hold only 10 bytes, which cuts Chinese names mid-character: save the layer as a "
            "GeoPackage to keep them"
        ) from exc
    except Exception as exc:
        raise VectorReadError(
            f"{path}: cannot read{' layer ' + repr(layer) if layer is not None else ''} "
            f"({_short(exc)}); check the file and, for a Shapefile, its .dbf/.shx/.prj companions"
        ) from exc


def read_patches(
    path: str | os.PathLike[str],
    id_field: str | None = None,
    layer: str | int | None = None,
    encoding: str | None = None,
    *,
    on_invalid: str = "fix",
    crs: Any = None,
) -> gpd.GeoDataFrame:
    """Read patch polygons (mines, reserves, zones) with a unique ``patch_id``.

    Parameters
    ----------
    path : path-like
        Shapefile, GeoPackage, GeoJSON or GeoParquet.
    id_field : str, optional
        Attribute holding the patch ID (e.g. ``"矿山编号"``).  Values must be
        present and unique.  Without it, IDs ``P0001``, ``P0002`` ... are
        generated in file order.
    layer : str or int, optional
        Layer of a multi-layer file.
    encoding : str, optional
        Attribute-table encoding of a Shapefile.  By default read from the
        ``.cpg`` file or the DBF header, and sniffed (GBK vs UTF-8) when
        neither says.
    on_invalid : {"fix", "warn", "raise", "ignore"}
        What to do with invalid geometries (self-intersections) and empty or
        missing ones: ``"fix"`` repairs with :func:`shapely.make_valid`
        (keeping polygonal parts) and drops empty rows, warning with
        :class:`~ecopatch.errors.GeometryRepairedWarning`; ``"warn"`` keeps
        them as they are with a warning; ``"raise"`` raises
        :class:`~ecopatch.errors.GeometryError`; ``"ignore"`` keeps them silently.
    crs : CRS-like, optional
        CRS to assume when the file carries none (it never overrides one).

    Returns
    -------
    geopandas.GeoDataFrame
        ``patch_id`` (str) first, then the file's attributes, in the file's
        CRS.  ``.attrs["repaired"]`` lists repaired IDs and
        ``.attrs["dropped"]`` the IDs dropped for having no geometry.

    Raises
    ------
    VectorReadError
        The file cannot be opened.
    MissingCRSError
        Neither the file nor ``crs`` gives a CRS.
    SuspiciousCoordinatesError
        Coordinates plainly do not fit the CRS (swapped lat/lon, projected
        metres labelled as degrees, a Gauss–Krüger zone prefix mismatch).
    GeometryError
        An empty layer, or points/lines in a polygon layer.
    DuplicateIDError
        ``id_field`` missing, empty or repeated.
    """
    path = Path(path)
    if on_invalid not in ON_INVALID:
        raise ConfigError(f"on_invalid={on_invalid!r}; use one of {list(ON_INVALID)}")
    if not path.exists():
        raise VectorReadError(f"{path}: no such file")
    gdf = _read_frame(path, layer, encoding)
    if len(gdf) == 0:
        raise GeometryError(f"{path}: the layer is empty (no features); check layer= or the export")
    if gdf.crs is None:
        if crs is None:
            raise MissingCRSError(
                f"{path}: the layer has no CRS (for a Shapefile: the .prj file is missing); "
                "pass crs='EPSG:4490' (or the right one) to read_patches, or add the .prj"
            )
        gdf = gdf.set_crs(crs)

    gdf = _clean_text(gdf, path)
    ids = _patch_ids(gdf, id_field, path)
    gdf = gdf.copy()
    if "patch_id" in gdf.columns and id_field != "patch_id":
        # keep a file's own patch_id column under another name rather than lose it
        gdf = gdf.rename(columns={"patch_id": "patch_id_source"})
    if "patch_id" in gdf.columns:
        gdf = gdf.drop(columns=["patch_id"])
    # the original ID column stays too: users look for it by its own name
    gdf.insert(0, "patch_id", ids)

    gdf = _check_geometries(gdf, path, on_invalid)
    check_coordinates(gdf, str(path))
    gdf.attrs["source"] = str(path)
    return gdf


def _patch_ids(gdf: gpd.GeoDataFrame, id_field: str | None, path: Path) -> list[str]:
    if id_field is None:
        width = max(4, len(str(len(gdf))))
        return [f"P{i + 1:0{width}d}" for i in range(len(gdf))]
    if id_field not in gdf.columns:
        fields = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputDataError(
            f"{path}: no field {id_field!r} to take patch IDs from; the fields are {fields}"
        )
    col = gdf[id_field]
    if pd_api_is_bool(col):
        raise DuplicateIDError(
            f"{path}: field {id_field!r} holds yes/no values (True/False), not IDs; choose the field with the "
            "patch IDs, or read without id_field to generate them"
        )
    missing = col.isna() | (col.astype(str).str.strip() == "")
    if missing.any():
        rows = list(np.flatnonzero(missing.to_numpy())[:10] + 1)
        raise DuplicateIDError(
            f"{path}: field {id_field!r} is empty in {int(missing.sum())} row(s) (rows {rows}); "
            "fill in the IDs or read without id_field to generate them"
        )
    vals = col.map(_id_str)
    dup = vals[vals.duplicated(keep=False)]
    if len(dup):
        raise DuplicateIDError(
            f"{path}: field {id_field!r} repeats IDs {sorted(set(dup))[:10]}; "
            "each patch needs its own ID"
        )
    return list(vals)


def pd_api_is_bool(col: Any) -> bool:
    """Whether a column holds only yes/no values (a bool dtype, or Python bools in an object column)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return True
    vals = [v for v in col if v is not None and not (isinstance(v, float) and v != v)]
    return bool(vals) and all(isinstance(v, (bool, np.bool_)) for v in vals)


def _clean_text(gdf: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    """Remove control and direction-override characters from attribute text, with a warning naming them."""
    from ecopatch.errors import TextRepairedWarning
    from ecopatch.vector.sanitize import describe_char, strip_text, text_problem

    found: list[str] = []
    out = gdf
    geom = gdf.geometry.name
    renames = {c: strip_text(c, multiline=False) for c in gdf.columns
               if isinstance(c, str) and c != geom and text_problem(c, multiline=False)}
    for c, new in renames.items():
        found.append(f"field name {c!r} -> {new!r}")
    import pandas as pd

    for c in gdf.columns:
        if c == geom or not (gdf[c].dtype == object or pd.api.types.is_string_dtype(gdf[c].dtype)):
            continue
        vals = gdf[c].to_numpy(dtype=object)
        bad = [i for i, v in enumerate(vals) if isinstance(v, str) and text_problem(v)]
        if not bad:
            continue
        if out is gdf:
            out = gdf.copy()
        col = out[c].to_numpy(dtype=object, copy=True)
        for i in bad:
            first = next(ch for ch in col[i] if strip_text(ch) == "")
            found.append(f"row {i + 1} field {c!r} ({describe_char(first)})")
            col[i] = strip_text(col[i])
        out[c] = pd.Series(col, index=out.index, dtype=out[c].dtype)
    if renames:
        out = out.rename(columns=renames)
    if found:
        warnings.warn(
            f"{path}: removed control or direction-override characters from {len(found)} value(s): "
            f"{'; '.join(found[:10])}{' ...' if len(found) > 10 else ''}; correct them in the source layer",
            TextRepairedWarning,
            stacklevel=4,
        )
    return out


def _id_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _check_geometries(gdf: gpd.GeoDataFrame, path: Path, on_invalid: str) -> gpd.GeoDataFrame:
    geoms = gdf.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    types = shapely.get_type_id(np.where(missing, None, geoms))
    polygonal = np.isin(types, (3, 6))
    collection = types == 7
    wrong = ~missing & ~polygonal & ~collection
    if wrong.any():
        names = sorted({shapely.get_type_id(g) for g in geoms[wrong]})
        tnames = {0: "Point", 1: "LineString", 2: "LinearRing", 4: "MultiPoint", 5: "MultiLineString"}
        raise GeometryError(
            f"{path}: {int(wrong.sum())} feature(s) are not polygons "
            f"({', '.join(tnames.get(t, str(t)) for t in names)}; e.g. patch "
            f"{list(gdf['patch_id'][wrong][:5])}); patch layers must hold polygons: "
            "buffer points/lines or export the polygon layer"
        )
    invalid = ~missing & ~shapely.is_valid(np.where(missing, None, geoms))
    invalid |= collection
    repaired = list(gdf["patch_id"][invalid])
    dropped = list(gdf["patch_id"][missing])
    if (invalid.any() or missing.any()) and on_invalid == "raise":
        reasons = [shapely.is_valid_reason(g) for g in geoms[invalid][:3]]
        raise GeometryError(
            f"{path}: {int(invalid.sum())} invalid geometr(ies) {repaired[:10]} ({'; '.join(reasons)}) "
            f"and {int(missing.sum())} empty {dropped[:10]}; read with on_invalid='fix' to repair"
        )
    if on_invalid == "fix":
        if invalid.any():
            before = geoms[invalid]
            fixed = np.array([_repair(g) for g in before], dtype=object)
            geoms = geoms.copy()
            geoms[invalid] = fixed
            gdf = _replace_geoms(gdf, geoms)
            details = _repair_details(before, fixed, list(gdf["patch_id"][invalid]), gdf.crs)
            now_empty = shapely.is_empty(geoms) | shapely.is_missing(geoms)
            extra = now_empty & ~missing
            if extra.any():
                dropped += list(gdf["patch_id"][extra])
                missing = missing | extra
        if missing.any():
            gdf = gdf[~missing].copy()
        if repaired or dropped:
            shown = "; ".join(details[:10]) + (" ..." if len(details) > 10 else "") if repaired else ""
            warnings.warn(
                f"{path}: repaired {len(repaired)} invalid geometr(ies) {repaired[:10]}"
                + (f" ({shown}); check these outlines" if shown else "")
                + (f"; dropped {len(dropped)} feature(s) without geometry {dropped[:10]}" if dropped else ""),
                GeometryRepairedWarning,
                stacklevel=3,
            )
        if len(gdf) == 0:
            raise GeometryError(f"{path}: no feature has a usable polygon geometry")
    elif on_invalid == "warn" and (repaired or dropped):
        warnings.warn(
            f"{path}: {len(repaired)} invalid geometr(ies) {repaired[:10]} and {len(dropped)} empty "
            f"{dropped[:10]} kept as they are; results for them may be wrong",
            GeometryRepairedWarning,
            stacklevel=3,
        )
    gdf.attrs["repaired"] = repaired
    gdf.attrs["dropped"] = dropped
    return gdf


def _replace_geoms(gdf: gpd.GeoDataFrame, geoms: np.ndarray) -> gpd.GeoDataFrame:
    import geopandas as gpd

    out = gdf.copy()
    out[gdf.geometry.name] = gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs)
    return out


def _repair(g: Any) -> Any:
    """A valid polygonal geometry for an invalid one.

    :func:`shapely.make_valid` turns a hole that lies (partly) outside its
    shell into extra area; a hole never adds area, so polygons with such
    holes are rebuilt as the shell minus the holes first.
    """
    if g is not None and shapely.get_type_id(g) in (3, 6):
        parts = list(shapely.get_parts(g))
        if any(_hole_outside(p) for p in parts):
            rebuilt = []
            for p in parts:
                shell = _polygonal_part(shapely.make_valid(shapely.Polygon(p.exterior)))
                holes = [_polygonal_part(shapely.make_valid(shapely.Polygon(h))) for h in p.interiors]
                rebuilt.append(shapely.difference(shell, shapely.union_all(holes)) if holes else shell)
            g = shapely.union_all(rebuilt)
            if shapely.is_valid(g):
                return _polygonal_part(g)
    return _polygonal_part(shapely.make_valid(g))


def _hole_outside(p: Any) -> bool:
    shell = shapely.Polygon(p.exterior)
    if not shapely.is_valid(shell):
        return False
    return any(not shell.covers(shapely.Polygon(h)) for h in p.interiors)


def _repair_details(before: np.ndarray, after: np.ndarray, ids: list[Any], crs: Any) -> list[str]:
    """One phrase per repaired patch: why it was invalid and how its ground area changed."""
    from ecopatch.geo.geodesy import geodesic_area_m2

    try:
        a0 = geodesic_area_m2(before, crs)
        a1 = geodesic_area_m2(after, crs)
    except Exception:  # noqa: BLE001 - the areas are for the message only
        a0 = a1 = np.full(len(before), np.nan)
    out = []
    for pid, g, x0, x1 in zip(ids, before, a0, a1):
        reason = shapely.is_valid_reason(g) if g is not None else "no geometry"
        if g is not None and any(_hole_outside(p) for p in shapely.get_parts(g) if shapely.get_type_id(p) == 3):
            reason = "a hole lies outside its shell: the hole was dropped"
        elif reason.startswith("Hole lies outside shell"):
            reason = "a hole lies outside its shell"
        change = ""
        if np.isfinite(x0) and np.isfinite(x1):
            change = f"; area {x0:,.0f} m² as drawn -> {x1:,.0f} m²"
            if x0 > 0 and abs(x1 - x0) > 0.001 * x0:
                change += f" ({(x1 - x0) / x0:+.1%})"
        out.append(f"{pid}: {reason}{change}")
    return out


def _polygonal_part(g: Any) -> Any:
    """Polygon/MultiPolygon parts of a geometry (make_valid may return collections)."""
    if g is None:
        return None
    tid = shapely.get_type_id(g)
    if tid in (3, 6):
        return g
    if tid == 7:
        parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
        if not parts:
            return shapely.Polygon()
        return shapely.union_all(parts)
    return shapely.Polygon()


def check_coordinates(gdf: gpd.GeoDataFrame, what: str) -> None:
    """Raise :class:`SuspiciousCoordinatesError` when coordinates plainly do not fit the CRS.

    Catches projected metres labelled as degrees, latitude/longitude swapped,
    and Gauss–Krüger coordinates with (or without) the zone number in the
    false easting given the other kind of GK CRS.
    """
    from pyproj import CRS

    crs = CRS.from_user_input(gdf.crs)
    geoms = gdf.geometry.to_numpy()
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not ok.any():
        return
    minx, miny, maxx, maxy = shapely.total_bounds(geoms[ok])
    name = crs.to_string()
    if crs.is_geographic:
        if max(abs(minx), abs(maxx)) <= 90 and 90 < max(abs(miny), abs(maxy)) <= 180:
            raise SuspiciousCoordinatesError(
                f"{what}: y holds values up to {max(abs(miny), abs(maxy)):.4g}°, which cannot be "
                f"latitudes, while x looks like latitudes: longitude and latitude look swapped. "
                "Re-export with x = longitude, or swap the axes "
                "(e.g. shapely.ops.transform(lambda x, y: (y, x), g))"
            )
        if max(abs(minx), abs(maxx)) > 180 or max(abs(miny), abs(maxy)) > 90:
            raise SuspiciousCoordinatesError(
                f"{what}: coordinates ({minx:.0f}, {miny:.0f}) - ({maxx:.0f}, {maxy:.0f}) are not "
                f"degrees but the layer says {name}; they look projected (metres, e.g. a CGCS2000 "
                "Gauss–Krüger zone such as EPSG:4549): set the right CRS on the file"
            )
    aou = crs.area_of_use
    if aou is None:
        return
    from ecopatch.geo.geodesy import transformer

    try:
        geo = crs.geodetic_crs or CRS.from_epsg(4326)
        lon, lat = transformer(crs, geo).transform([minx, maxx], [miny, maxy])
    except Exception:  # noqa: BLE001 - a failed transform is itself suspicious
        lon, lat = [np.inf, np.inf], [np.inf, np.inf]
    margin = 2.0  # degrees of slack around the CRS's area of use
    inside = (
        np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))
        and aou.west - margin <= min(lon) and max(lon) <= aou.east + margin
        and aou.south - margin <= min(lat) and max(lat) <= aou.north + margin
    )
    if inside:
        return
    hint = ""
    swapped_fits = (aou.west - margin <= miny <= aou.east + margin
                    and aou.south - margin <= minx <= aou.north + margin)
    if crs.is_geographic and swapped_fits:
        hint = (" Longitude and latitude look swapped (x holds latitudes): re-export with "
                "x = longitude, or swap the axes (e.g. shapely.ops.transform(lambda x, y: (y, x), g))")
    elif not crs.is_geographic and 1e7 <= abs(minx) < 1e8:
        hint = (" The eastings carry a Gauss–Krüger zone number (e.g. 40 500 000 m): use the "
                "CGCS2000 GK CRS with the zone in the false easting (EPSG:4513-4533)")
    elif not crs.is_geographic and 1e5 <= abs(minx) < 1e6 and "Gauss" in crs.name and aou:
        hint = (" The eastings have no zone number: use the CGCS2000 GK CRS without it "
                "(EPSG:4534-4554) for this central meridian")
    raise SuspiciousCoordinatesError(
        f"{what}: coordinates ({minx:.6g}, {miny:.6g}) - ({maxx:.6g}, {maxy:.6g}) fall outside "
        f"where {name} ({crs.name}) is used ({aou.west:.1f}..{aou.east:.1f}°E, "
        f"{aou.south:.1f}..{aou.north:.1f}°N).{hint or ' Check that the layer carries the right CRS.'}"
    )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
WRITERS = (".gpkg", ".geojson", ".json", ".csv", ".xlsx", ".kml", ".parquet", ".shp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix so drivers that look at it
    work.  On error the temporary file is removed and ``path`` is untouched.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    OutputError
        The folder is missing, not writable, or the disk is full.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True (CLI: --overwrite) to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise OutputError(f"{path}: the folder {parent} does not exist; create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write in {parent} ({describe_os_error(exc)})") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.unlink()  # drivers (GPKG) want to create the file themselves
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise OutputError(f"{path}: the writer produced no file")
        os.replace(tmp_path, path)
    except OSError as exc:
        _cleanup(tmp_path)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{path}: writing failed ({describe_os_error(exc)}); nothing was written") from exc
    except BaseException:
        _cleanup(tmp_path)
        raise


def _cleanup(tmp: Path) -> None:
    for p in [tmp, *tmp.parent.glob(tmp.name + "*")]:
        with contextlib.suppress(OSError):
            p.unlink()


def write_table(
    frame: pd.DataFrame | gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    layer: str | None = None,
) -> Path:
    """Write a result table; the format follows the extension.

    ``.gpkg``, ``.geojson``/``.json``, ``.kml``, ``.parquet``, ``.shp`` keep
    geometries (GeoJSON and KML in WGS84 lon/lat as their specs require);
    ``.csv`` (UTF-8 with BOM, so Excel shows Chinese) and ``.xlsx`` drop the
    geometry.  Writing is atomic (temporary file + rename).

    Text is written so that it cannot attack the reader: CSV and XLSX cells
    go through :func:`ecopatch.vector.tables.cell_value` (formula-like text gets
    a leading apostrophe; nothing is a formula); control characters are
    shown as control pictures (``␇``) in every format; in KML, whose
    balloons are HTML, ``&``, ``<`` and ``>`` in text are escaped.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    OutputError
        The folder is missing or read-only, the disk is full, the file-size
        limit is reached: the message names the file and the cause; nothing
        is left behind.
    """
    return write_tables([(frame, path)], overwrite=overwrite, layer=layer)[0]


def write_tables(
    items: Sequence[tuple[pd.DataFrame | gpd.GeoDataFrame, str | os.PathLike[str]]],
    *,
    overwrite: bool = False,
    layer: str | None = None,
) -> list[Path]:
    """Write several tables as one output: all of them, or none.

    Every target is checked before anything is written; each is written to
    a temporary file, and they are renamed into place only when all are
    complete (e.g. ``patches.xlsx`` and its ``patches_observation.csv``).
    See :func:`write_table` for formats and errors.

    Returns
    -------
    list of Path
    """
    import geopandas as gpd

    paths = [Path(p) for _, p in items]
    plans = []
    for (frame, _), path in zip(items, paths):
        suffix = path.suffix.lower()
        if suffix not in WRITERS:
            raise ConfigError(f"{path}: unknown output format {suffix!r}; use one of {list(WRITERS)}")
        is_geo = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
        if suffix == ".parquet" and not is_geo:
            raise ConfigError(f"{path}: GeoParquet needs geometries")
        if suffix not in (".csv", ".xlsx", ".parquet") and not is_geo:
            raise ConfigError(f"{path}: {suffix} needs geometries; write .csv or .xlsx instead")
        plans.append((frame, path, suffix, is_geo))
    if len({p.resolve() for p in paths}) < len(paths):
        raise ConfigError(f"the same output file is named twice: {[str(p) for p in paths]}")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: exists; pass overwrite=True (CLI: --overwrite) to replace it"
                                + (f" (also exist: {existing[1:]})" if len(existing) > 1 else "")
                                + "; nothing was written")
    with contextlib.ExitStack() as stack:
        for frame, path, suffix, is_geo in plans:
            tmp = stack.enter_context(atomic_path(path, overwrite=overwrite))
            try:
                _write(frame, tmp, suffix, is_geo, layer or path.stem)
                if suffix == ".kml":
                    _check_xml(tmp)  # the KML driver does not report a failed write
            except OSError:
                raise  # atomic_path turns it into an OutputError and cleans up
            except Exception as exc:  # driver errors (pyogrio/GDAL, openpyxl) are not OSErrors
                raise OutputError(
                    f"{path}: writing failed ({_driver_error(exc, path.parent)}); nothing was written"
                ) from exc
    return paths


def _write(frame: Any, tmp: Path, suffix: str, is_geo: bool, layer: str) -> None:
    import pandas as pd

    if suffix in (".csv", ".xlsx"):
        from ecopatch.vector.tables import write_csv, write_workbook

        flat = pd.DataFrame(frame.drop(columns=frame.geometry.name)) if is_geo else pd.DataFrame(frame)
        if suffix == ".csv":
            write_csv(flat, tmp)
        else:
            write_workbook(tmp, [("results", flat)], max_width=60)
    elif suffix == ".parquet":
        frame.to_parquet(tmp)
    else:
        out = frame.to_crs(4326) if suffix in (".geojson", ".json", ".kml") else frame
        driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".kml": "KML",
                  ".shp": "ESRI Shapefile"}[suffix]
        kw: dict[str, Any] = {"encoding": "UTF-8"} if suffix == ".shp" else {}
        _writable(out, html_text=suffix == ".kml").to_file(tmp, driver=driver, engine="pyogrio", layer=layer, **kw)


def _check_xml(path: Path) -> None:
    import xml.etree.ElementTree as ET

    try:
        for _ in ET.iterparse(path):
            pass
    except ET.ParseError as exc:
        raise RuntimeError(f"the written file is incomplete ({exc})") from None


def _driver_error(exc: BaseException, folder: Path) -> str:
    """A driver's error in a few words: SQL cut out; a full disk or file-size limit said plainly.

    GDAL's drivers report a full disk as whatever step failed (a missing
    table, "Cannot write feature"), so the free space of ``folder`` is
    looked at too.
    """
    import errno
    import shutil

    from ecopatch.errors import describe_os_error

    text = str(exc)
    low = text.lower()
    try:
        full = shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        full = False
    if full or "disk is full" in low or "no space left" in low:
        return describe_os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    if "file too large" in low:
        return describe_os_error(OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
    if "read-only" in low or "readonly" in low:
        return describe_os_error(OSError(errno.EROFS, os.strerror(errno.EROFS)))
    import re

    return _short(Exception(re.sub(r"sqlite3_exec\(.*", "(SQL statement left out)", text, flags=re.S)))


def _writable(gdf: gpd.GeoDataFrame, *, html_text: bool = False) -> gpd.GeoDataFrame:
    """Columns OGR drivers can store: dates as ISO strings, objects as text, text repaired.

    Control characters become control pictures (GDAL cuts text at NUL, and
    XML formats cannot hold most of them); with ``html_text`` (KML) ``&``,
    ``<`` and ``>`` are escaped too.
    """
    import html
    import json

    import pandas as pd

    from ecopatch.vector.sanitize import repair_text

    def text(v: Any) -> Any:
        if v is None or (isinstance(v, float) and v != v):
            return v
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif isinstance(v, (list, tuple, dict)):
            v = json.dumps(v, ensure_ascii=False, default=str)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if not isinstance(v, str):
            return v
        v = repair_text(v)
        return html.escape(v, quote=False) if html_text else v

    out = gdf.copy()
    for c in out.columns:
        if c == out.geometry.name:
            continue
        s = out[c]
        if s.dtype == object or str(s.dtype).startswith("string"):
            out[c] = s.map(text).astype(object)
        elif pd.api.types.is_bool_dtype(s):
            out[c] = s.astype("int32")
    renamed = {c: repair_text(str(c), multiline=False) for c in out.columns
               if isinstance(c, str) and c != out.geometry.name}
    return out.rename(columns=renamed)
