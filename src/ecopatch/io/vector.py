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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from ..errors import (
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
)

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

__all__ = ["atomic_path", "read_patches", "write_table"]

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
            fixed = shapely.make_valid(geoms[invalid])
            fixed = np.array([_polygonal_part(g) for g in fixed], dtype=object)
            geoms = geoms.copy()
            geoms[invalid] = fixed
            gdf = _replace_geoms(gdf, geoms)
            now_empty = shapely.is_empty(geoms) | shapely.is_missing(geoms)
            extra = now_empty & ~missing
            if extra.any():
                dropped += list(gdf["patch_id"][extra])
                missing = missing | extra
        if missing.any():
            gdf = gdf[~missing].copy()
        if repaired or dropped:
            warnings.warn(
                f"{path}: repaired {len(repaired)} invalid geometr(ies) {repaired[:10]}"
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
    from ..geodesy import transformer

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
        raise OutputError(f"{path}: cannot write in {parent} ({exc.strerror}); choose a writable folder") from exc
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
        raise OutputError(f"{path}: writing failed ({exc.strerror or exc}); nothing was written") from exc
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

    Returns
    -------
    Path
        The written file.
    """
    import geopandas as gpd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITERS:
        raise ConfigError(f"{path}: unknown output format {suffix!r}; use one of {list(WRITERS)}")
    is_geo = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns
    if suffix == ".parquet" and not is_geo:
        raise ConfigError(f"{path}: GeoParquet needs geometries")
    if suffix not in (".csv", ".xlsx", ".parquet") and not is_geo:
        raise ConfigError(f"{path}: {suffix} needs geometries; write .csv or .xlsx instead")
    with atomic_path(path, overwrite=overwrite) as tmp:
        try:
            _write(frame, tmp, suffix, is_geo, layer or path.stem)
        except OSError:
            raise  # atomic_path turns it into an OutputError and cleans up
        except Exception as exc:  # driver errors (pyogrio/GDAL, openpyxl) are not OSErrors
            raise OutputError(
                f"{path}: writing failed ({_short(exc)}); nothing was written. Is the disk full or the "
                "folder read-only?"
            ) from exc
    return path


def _write(frame: Any, tmp: Path, suffix: str, is_geo: bool, layer: str) -> None:
    import pandas as pd

    if suffix in (".csv", ".xlsx"):
        flat = pd.DataFrame(frame.drop(columns=frame.geometry.name)) if is_geo else pd.DataFrame(frame)
        if suffix == ".csv":
            flat.to_csv(tmp, index=False, encoding="utf-8-sig")
        else:
            _write_xlsx(flat, tmp)
    elif suffix == ".parquet":
        frame.to_parquet(tmp)
    else:
        out = frame.to_crs(4326) if suffix in (".geojson", ".json", ".kml") else frame
        driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".kml": "KML",
                  ".shp": "ESRI Shapefile"}[suffix]
        kw: dict[str, Any] = {"encoding": "UTF-8"} if suffix == ".shp" else {}
        _writable(out).to_file(tmp, driver=driver, engine="pyogrio", layer=layer, **kw)


def _writable(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns OGR drivers can store: dates as ISO strings, objects as text."""
    import pandas as pd

    out = gdf.copy()
    for c in out.columns:
        if c == out.geometry.name:
            continue
        s = out[c]
        if s.dtype == object or str(s.dtype).startswith("string"):
            if s.map(lambda v: hasattr(v, "isoformat")).any():
                out[c] = s.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
        elif pd.api.types.is_bool_dtype(s):
            out[c] = s.astype("int32")
    return out


def _write_xlsx(flat: pd.DataFrame, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with __import__("pandas").ExcelWriter(path, engine="openpyxl") as xw:
            flat.to_excel(xw, index=False, sheet_name="results")
            ws = xw.sheets["results"]
            ws.freeze_panes = "A2"
            for i, col in enumerate(flat.columns, start=1):
                width = max([len(str(col)) * 2] + [len(str(v)) for v in flat[col].head(200)]) + 2
                ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = min(width, 60)
