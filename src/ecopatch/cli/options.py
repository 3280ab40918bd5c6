"""Options shared by several ``ecopatch`` subcommands."""

from __future__ import annotations

import click

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

block_opt = click.option(
    "--block",
    default=512,
    show_default=True,
    type=click.IntRange(16, 8192),
    help="Window size in pixels for windowed processing.",
)


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


def scene_opts(f=None, *, required: bool = True):  # type: ignore[no-untyped-def]
    """--before/--after and how to read them: sensor, band roles, scale/offset/nodata, DEM, calibration.

    The command receives them as keyword arguments; :func:`open_pair` opens
    the two scenes from them.
    """

    def deco(f):  # type: ignore[no-untyped-def]
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


def open_pair(params: dict) -> tuple:  # type: ignore[type-arg]
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
    out = []
    for when in ("before", "after"):
        path = params.pop(when, None)
        kw = {}
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
