"""Maps bureaus hand up the chain: change maps, mine cards (一矿一卡), overview maps, case chips.

Every function returns a :class:`matplotlib.figure.Figure` built with the
object API (no pyplot state; works headless with Agg and shows inline in
Jupyter), with a scale bar in ground metres, a north arrow pointing to true
north, a legend, and coordinates whose CRS and units are stated.  Imagery
is read decimated over the map's frame (:func:`ecopatch.raster.source.read_decimated`),
never whole; cloud and no-data pixels are drawn hatched.  Labels are in
Chinese (``lang="zh"``, with an installed CJK font, see :mod:`ecopatch.outputs.fonts`)
or English (``lang="en"``).

The building blocks shared by these maps are public modules of this package:
:mod:`~ecopatch.outputs.maps.style` (artist ids, colours by category),
:mod:`~ecopatch.outputs.maps.frame` (the ground a map shows and the imagery on it),
:mod:`~ecopatch.outputs.maps.furniture` (axes, scale bar, north arrow, outlines, legends,
panels) and :mod:`~ecopatch.outputs.maps.render` (PNG rendering in worker processes).
"""

from ecopatch.outputs.maps._card import mine_card
from ecopatch.outputs.maps._change import CaseChips, DrawnChips, case_chips, change_map
from ecopatch.outputs.maps._overview import overview_map
from ecopatch.outputs.maps._trajectory import mine_trajectory
from ecopatch.outputs.maps.frame import MapFigure, MapFrame, robust_stretch, stretch_limits
from ecopatch.outputs.maps.furniture import add_north_arrow, add_scale_bar, true_north_angle
from ecopatch.outputs.maps.render import render_pngs
from ecopatch.outputs.maps.style import (
    CASE_STATUS_COLOURS,
    CHANGE_COLOURS,
    CODE_COLOURS,
    STATUS_COLOURS,
    ZONE_COLOURS,
)

__all__ = [
    "CASE_STATUS_COLOURS",
    "CHANGE_COLOURS",
    "CODE_COLOURS",
    "STATUS_COLOURS",
    "ZONE_COLOURS",
    "CaseChips",
    "DrawnChips",
    "MapFigure",
    "MapFrame",
    "add_north_arrow",
    "add_scale_bar",
    "case_chips",
    "change_map",
    "mine_card",
    "mine_trajectory",
    "overview_map",
    "render_pngs",
    "robust_stretch",
    "stretch_limits",
    "true_north_angle",
]
