"""Options shared by several ``ecopatch`` subcommands.

The analyses' options are not written here: :func:`options_of` makes the
click options of the fields of an options dataclass
(:mod:`ecopatch.options`) that name a flag, with their default, bounds,
choices and help, and :func:`pop_options` makes the dataclass from the
values the command received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ecopatch.options import OptionInfo, WindowOptions, field_type, option_fields

if TYPE_CHECKING:
    from ecopatch.raster.scene import Scene

_F = TypeVar("_F", bound=Callable[..., Any])
_O = TypeVar("_O")

overwrite_opt = click.option(
    "--overwrite/--no-overwrite",
    default=False,
    show_default=True,
    help="Replace existing output files.",
)

out_opt = click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output file; the format follows the extension (.gpkg, .geojson, .csv, .xlsx, .kml).",
)

progress_opt = click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar (default: only on a terminal).",
)

scheduler_opt = click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler: 'threads' (default, all cores), 'synchronous', or a dask.distributed "
    "address such as tcp://10.0.0.5:8786.",
)



def _none_word(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """``none`` (any case) given for a field name means None: the layer has no such field."""
    return None if isinstance(value, str) and value.strip().lower() == "none" else value


def click_option(f: Field[Any], meta: OptionInfo, *, override: str | None = None) -> Callable[[_F], _F]:
    """The click option of one options field (its flag, default, type from its bounds or choices, help).

    With ``override`` (the configuration section, e.g. ``"run"``), the
    option overrides that key of the run configuration: its default is None
    (the configuration's value).
    """
    if meta.flag is None:
        raise ValueError(f"option {f.name} has no command-line flag")
    kind = field_type(f)
    default = None if f.default is MISSING else f.default
    text = meta.help[:1].upper() + meta.help[1:] + (f" ({meta.unit})" if meta.unit else "") + "."
    if override:
        text = f"Override [{override}] {f.name}: {meta.help} (default {default})."
        default = None
    kw: dict[str, Any] = {"default": default, "show_default": override is None, "help": text}
    if kind == "bool":
        return click.option(meta.flag, f.name, **kw)
    if meta.choices is not None:
        kw["type"] = click.Choice(list(meta.choices))
    elif kind == "int":
        kw["type"] = click.IntRange(None if meta.lo is None else int(meta.lo),
                                    None if meta.hi is None else int(meta.hi))
    elif kind == "float":
        kw["type"] = click.FloatRange(meta.lo, meta.hi, min_open=meta.lo_open)
    if meta.kind == "field_name":
        kw["callback"] = _none_word
        kw["help"] = text[:-1] + "; 'none': the layer has none."
    return click.option(meta.flag, f.name, **kw)


def options_of(cls: type, *, only: tuple[str, ...] = (), override: str | None = None) -> Callable[[_F], _F]:
    """A decorator adding the click options of every field of ``cls`` that has a flag (or of ``only``)."""
    chosen = [(f, meta) for f, meta in option_fields(cls)
              if meta.flag is not None and (not only or f.name in only)]

    def deco(func: _F) -> _F:
        for f, meta in reversed(chosen):
            func = click_option(f, meta, override=override)(func)
        return func

    return deco


def pop_options(cls: type[_O], params: dict[str, Any], **values: Any) -> _O:
    """``cls`` from the values the command received for its fields (popped from ``params``), and ``values``."""
    given = {f.name: params.pop(f.name) for f, meta in option_fields(cls) if meta.flag and f.name in params}
    return cls(**given, **values)


block_opt = options_of(WindowOptions, only=("block",))


class BandsType(click.ParamType):
    """Band roles as ``red=3,green=2,blue=1,nir=4`` (band numbers) or ``nir=B8A`` (product band IDs)."""

    name = "ROLE=BAND,..."

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dict[str, int | str]:
        """Parse ``value`` into ``{role: band}``."""
        from ecopatch.raster.sensors import COMMON_BANDS

        if isinstance(value, dict):
            return value
        out: dict[str, int | str] = {}
        for part in str(value).split(","):
            if not part.strip():
                continue
            role, sep, band = part.partition("=") if "=" in part else part.partition(":")
            role, band = role.strip().lower(), band.strip()
            if not sep or not band:
                self.fail(f"{part.strip()!r}: write ROLE=BAND, e.g. red=3,nir=4 or nir=B8A", param, ctx)
            if role not in COMMON_BANDS:
                self.fail(f"{role!r} is not a band role; use {', '.join(COMMON_BANDS)}", param, ctx)
            out[role] = int(band) if band.isdigit() else band
        if not out:
            self.fail("no band given; e.g. red=3,green=2,blue=1,nir=4", param, ctx)
        return out


BANDS = BandsType()

#: The open_scene keywords each command takes per date (``--before-X``/``--after-X``) and for both (``--X``).
_PER_DATE = ("sensor", "bands", "scale", "offset", "nodata", "cloud_mask")


def scene_opts(f=None, *, required: bool = True):
    """--before/--after and how to read them: sensor, band roles, scale/offset/nodata, DEM, calibration.

    The command receives them as keyword arguments; :func:`open_pair` opens
    the two scenes from them.
    """

    def deco(f):
        opts = [
            click.option("--before", "before", required=required, default=None, type=click.Path(exists=True),
                         help="Before scene: SAFE folder, STAC item, Landsat folder, Gaofen package or GeoTIFF."),
            click.option("--after", "after", required=required, default=None, type=click.Path(exists=True),
                         help="After scene: SAFE folder, STAC item, Landsat folder, Gaofen package or GeoTIFF."),
            click.option("--sensor", "sensor", default=None,
                         help="Sensor profile of both scenes (e.g. sentinel2_l1c, landsat_etm_c2l2, naip; "
                              "default: identified from each product)."),
            click.option("--before-sensor", default=None, help="Sensor of the before scene (overrides --sensor)."),
            click.option("--after-sensor", default=None, help="Sensor of the after scene (overrides --sensor)."),
            click.option("--bands", "bands", default=None, type=BANDS,
                         help="Band roles of both scenes: red=3,green=2,blue=1,nir=4 (band numbers of a multi-band "
                              "file) or nir=B8A (product band IDs)."),
            click.option("--before-bands", default=None, type=BANDS, help="Band roles of the before scene."),
            click.option("--after-bands", default=None, type=BANDS, help="Band roles of the after scene."),
            click.option("--scale", "scale", default=None, type=float,
                         help="reflectance = DN × scale + offset, for both scenes (e.g. 0.0001, or 0.00392 = 1/255 "
                              "for 8-bit DN)."),
            click.option("--offset", "offset", default=None, type=float, help="Offset of that formula, both scenes."),
            click.option("--nodata", "nodata", default=None, type=float, help="DN meaning no data, both scenes."),
            click.option("--before-scale", default=None, type=float, help="Scale of the before scene only."),
            click.option("--after-scale", default=None, type=float, help="Scale of the after scene only."),
            click.option("--before-offset", default=None, type=float, help="Offset of the before scene only."),
            click.option("--after-offset", default=None, type=float, help="Offset of the after scene only."),
            click.option("--before-nodata", default=None, type=float, help="No-data DN of the before scene only."),
            click.option("--after-nodata", default=None, type=float, help="No-data DN of the after scene only."),
            click.option("--before-cloud-mask", default=None, type=click.Path(exists=True, dir_okay=False),
                         help="Cloud raster for the before scene (1 = cloud, 0 = clear), for products without one."),
            click.option("--after-cloud-mask", default=None, type=click.Path(exists=True, dir_okay=False),
                         help="Cloud raster for the after scene (1 = cloud, 0 = clear)."),
            click.option("--dem", default=None, type=click.Path(exists=True, dir_okay=False),
                         help="Elevation model for orthorectifying Gaofen L1A packages through their RPCs."),
            click.option("--calibration", default=None, type=click.Path(exists=True, dir_okay=False),
                         help="Gaofen calibration table (JSON) replacing the shipped CRESDA coefficients."),
            click.option("--swap-dates", is_flag=True, default=False,
                         help="If the after scene is older than the before scene, swap them (default: refuse)."),
        ]
        for o in reversed(opts):
            f = o(f)
        return f

    return deco(f) if f is not None else deco


def open_pair(params: dict[str, Any]) -> tuple[Scene | None, Scene | None, bool]:
    """Open the before and after scenes from the options of :func:`scene_opts` (popped from ``params``).

    Returns
    -------
    (Scene or None, Scene or None, bool)
        The scenes (None where not given) and ``swap_dates``.
    """
    from ecopatch.raster.scene import open_scene

    common = {k: params.pop(k, None) for k in ("sensor", "bands", "scale", "offset", "nodata")}
    dem, calibration = params.pop("dem", None), params.pop("calibration", None)
    swap = bool(params.pop("swap_dates", False))
    out: list[Scene | None] = []
    for when in ("before", "after"):
        path = params.pop(when, None)
        kw: dict[str, Any] = {}
        for k in _PER_DATE:
            v = params.pop(f"{when}_{k}", None)
            kw[k] = v if v is not None else common.get(k)
        if path is None:
            out.append(None)
            continue
        out.append(open_scene(path, kw["sensor"], kw["bands"], scale=kw["scale"], offset=kw["offset"],
                              nodata=kw["nodata"], cloud_mask=kw["cloud_mask"], dem=dem, calibration=calibration))
    return out[0], out[1], swap


def check_new_outputs(*paths: object, overwrite: bool) -> None:
    """Refuse before any work when an output exists and --overwrite was not given."""
    from pathlib import Path

    from ecopatch.errors import OutputExistsError

    existing = [str(p) for p in paths if p is not None and Path(str(p)).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]}: exists; pass --overwrite to replace it, or choose another name"
                                + (f" (also exist: {existing[1:]})" if len(existing) > 1 else ""))
