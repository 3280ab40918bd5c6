"""An interactive web map (folium) for browsing patches, mines and cases over imagery.

Optional: needs the ``webmap`` extra (``pip install 'ecopatch[webmap]'``).
In Jupyter the returned :class:`folium.Map` shows inline; ``m.save("cases.html")``
writes a page that opens in any browser (tiles are fetched by the browser).
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import math
from typing import TYPE_CHECKING, Any

from ecopatch.errors import ConfigError, MissingDependencyError
from ecopatch.outputs.fonts import check_lang
from ecopatch.vector.sanitize import repair_text
from ecopatch.vocabulary import WEBMAP_FIELDS

if TYPE_CHECKING:
    import folium
    import geopandas as gpd

__all__ = ["TILES", "web_map"]

log = logging.getLogger(__name__)

#: Base layers: name -> (URL template, attribution).  Tianditu (天地图) needs a key: pass its URL as ``tiles``.
TILES: dict[str, tuple[str, str]] = {
    "satellite": (
        "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/MapServer/tile/{z}/{y}/{x}",
        "Esri, Maxar, Earthstar Geographics",
    ),
    "osm": ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "© OpenStreetMap contributors"),
}

def _folium() -> Any:
    try:
        import folium
    except ImportError as exc:
        raise MissingDependencyError(
            f"the interactive web map needs folium ({exc}); install it with: pip install 'ecopatch[webmap]'"
        ) from exc
    return folium


def _jsonable(v: Any) -> Any:
    """A property value as the tooltip shows it: numbers rounded, text HTML-escaped.

    folium's tooltips (and popups) put property values into the page with
    ``innerHTML``, so text is escaped here: a reserve named
    ``<img src=x onerror=alert(1)>`` shows as that text and runs nothing.
    Control characters are made visible, and NaN and infinities (which are
    not JSON) become empty.
    """
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 4)
    if hasattr(v, "item"):
        return _jsonable(v.item())
    if isinstance(v, int):
        return v
    return html.escape(repair_text(str(v)), quote=True)


def _prepare(gdf: gpd.GeoDataFrame, lang: str) -> tuple[gpd.GeoDataFrame, list[str], list[str]]:
    from ecopatch.errors import MissingCRSError

    if gdf.crs is None:
        raise MissingCRSError("a web-map layer has no CRS; set one (gdf.set_crs(...)) first")
    fields = [c for c in WEBMAP_FIELDS if c in gdf.columns]
    # one label per field, first of duplicates wins (e.g. change_type_zh over change_type)
    seen: set[str] = set()
    keep = []
    for c in fields:
        lab = WEBMAP_FIELDS[c][0 if lang == "zh" else 1]
        if lab not in seen:
            seen.add(lab)
            keep.append(c)
    out = gdf[[*keep, gdf.geometry.name]].to_crs(4326).copy()
    for c in keep:
        out[c] = [_jsonable(v) for v in out[c]]
    return out, keep, [WEBMAP_FIELDS[c][0 if lang == "zh" else 1] for c in keep]


def web_map(
    patches: gpd.GeoDataFrame | None = None,
    mines: gpd.GeoDataFrame | None = None,
    reserves: gpd.GeoDataFrame | None = None,
    *,
    lang: str = "zh",
    tiles: str = "satellite",
    attribution: str | None = None,
    color_by: str = "auto",
) -> folium.Map:
    """An interactive map of patches (or ledger cases), mines and reserves over a tile layer.

    Parameters
    ----------
    patches : geopandas.GeoDataFrame, optional
        Suspect patches or ledger cases (coloured as in
        :func:`ecopatch.outputs.maps.change_map`); any CRS.
    mines : geopandas.GeoDataFrame, optional
        Mines; coloured by restoration ``status`` when present.
    reserves : geopandas.GeoDataFrame, optional
        Reserve zones, shaded by zone.
    lang : {"zh", "en"}
        Language of layer names and tooltips.
    tiles : str
        ``"satellite"`` (Esri World Imagery), ``"osm"``, or a tile URL
        template (``https://.../{z}/{x}/{y}...``, e.g. Tianditu with your key).
    attribution : str, optional
        Attribution of a custom ``tiles`` URL (required by folium for URLs).
    color_by : {"auto", "change_type", "status", "colour"}
        Column colouring the patches.

    Returns
    -------
    folium.Map
        With a layer control; fitted to the layers.  Geometries are sent in
        WGS84 (EPSG:4326) as web maps require.

    Raises
    ------
    MissingDependencyError
        folium is not installed (``pip install 'ecopatch[webmap]'``).
    ConfigError
        Nothing to show, or a bad ``color_by``.
    """
    from ecopatch.outputs.maps.style import category_colour, resolve_color_by, zone_key

    folium = _folium()
    lang = check_lang(lang)
    zh = lang == "zh"
    layers = [g for g in (patches, mines, reserves) if g is not None and len(g)]
    if not layers:
        raise ConfigError("web_map needs at least one non-empty layer (patches, mines or reserves)")
    if tiles in TILES:
        url, attr = TILES[tiles]
        tile_name = ("卫星影像" if zh else "Satellite") if tiles == "satellite" else "OpenStreetMap"
    else:
        if not attribution:
            raise ConfigError("a custom tiles URL needs attribution=... (the tile provider's credit)")
        url, attr, tile_name = tiles, attribution, "tiles"
    m = folium.Map(tiles=None, control_scale=True)
    folium.TileLayer(url, attr=attr, name=tile_name).add_to(m)

    def add(gdf: gpd.GeoDataFrame, name: str, colour_of: Any, fill: float, weight: float) -> None:
        data, fields, aliases = _prepare(gdf, lang)
        data["_colour"] = [colour_of(r) for _, r in gdf.iterrows()]
        style = {"fill": fill, "weight": weight}
        folium.GeoJson(
            data.to_json(),
            name=name,
            style_function=lambda f: {"color": f["properties"]["_colour"], "fillColor": f["properties"]["_colour"],
                                      "fillOpacity": style["fill"], "weight": style["weight"]},
            tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases) if fields else None,
        ).add_to(m)

    if reserves is not None and len(reserves):
        add(reserves, "自然保护地" if zh else "Nature reserves",
            lambda r: category_colour("zone", zone_key(r)), 0.25, 1.0)
    if mines is not None and len(mines):
        has = "status" in mines.columns
        add(mines, "矿山" if zh else "Mines",
            lambda r: category_colour("status", r["status"]) if has else "#6a3d9a", 0.35, 2.0)
    if patches is not None and len(patches):
        kind = resolve_color_by(color_by, patches)
        add(patches, ("案件" if "case_id" in patches.columns else "疑似图斑") if zh else "Patches",
            lambda r: category_colour(kind, r[kind]) if kind != "none" else "#ff2a6d", 0.2, 2.5)
    import numpy as np

    bounds = np.array([g.to_crs(4326).total_bounds for g in layers])
    m.fit_bounds([[bounds[:, 1].min(), bounds[:, 0].min()], [bounds[:, 3].max(), bounds[:, 2].max()]])
    folium.LayerControl(collapsed=False).add_to(m)
    return m
