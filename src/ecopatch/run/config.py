"""Typed configuration of a scheduled run (``ecopatch run CONFIG.toml``), validated on load.

A bureau's monthly or quarterly change-detection run is driven by one TOML
file.  :func:`load_config` reads it into frozen dataclasses and checks every
key once, up front, so a scheduled run never fails half-way on a typo: an
unknown key, a wrong type, a value out of range, an unknown choice or a
missing input file each give a :class:`~ecopatch.errors.ConfigError` that
names the key (``[detection] min_area``), the value found and what is
allowed.  Relative paths are resolved against the folder of the config file
(``~`` and ``$VARS`` are expanded first).

A complete example (every key but ``imagery``, ``mines``, ``reserves`` and
``[outputs] dir`` is optional; the values shown are the defaults)::

    [inputs]
    imagery = "imagery/"          # folder of scenes, or a local STAC catalog/collection JSON
    scene_pattern = "*"           # glob(s) of what counts as a scene, e.g. ["*.SAFE", "GF2_*.tif"]
    sensor = "auto"               # or a name from ecopatch.raster.sensors.SENSORS
    [[inputs.products]]           # how to read scenes whose names match a pattern (first match wins;
    pattern = "taizhou_*.tif"     #   optional, repeatable; every key but pattern is optional)
    sensor = "landsat_etm_c2l1"
    bands = {blue = 1, green = 2, red = 3, nir = 4, swir1 = 5, swir2 = 6}
    scale = 0.00392157            # reflectance = DN x scale + offset
    offset = 0.0
    nodata = 0
    dem = "dem.tif"               # Gaofen L1A orthorectification
    calibration = "gf_cal.json"   # Gaofen calibration table
    cloud_mask = ""               # a cloud raster (1 = cloud) for products without a mask
    mines = "mines.gpkg"
    mines_id_field = "矿山编号"    # default: IDs generated in file order
    mines_layer = ""              # layer of a multi-layer file ("" = the only/first one)
    reserves = "reserves.gpkg"
    reserves_layer = ""
    encoding = ""                 # attribute encoding of Shapefiles ("" = detect; "gbk")

    [outputs]
    dir = "runs/"                 # one dated folder per processed scene
    ledger = "runs/ledger.gpkg"   # default: <dir>/ledger.gpkg
    formats = ["gpkg", "csv", "xlsx"]
    maps = true                   # change map PNG
    report = true                 # report.html + report.xlsx
    fieldcheck = true             # field package (地上查) for the run's new cases
    chips = true                  # before/after image chips in the field package
    lang = "zh"                   # "zh" or "en" (maps, report)
    id_prefix = "YB"              # prefix of new case IDs (used when the ledger is created)

    [detection]                   # -> ecopatch.detect_changes
    min_area = "auto"             # minimum mapping unit ("auto": ten pixels, 400-1000 m²) ...
    core_min_area = 400           # ... in core zones (核心区; default 400 m²; the smaller applies there) ...
    min_area_unit = "m2"          # ... both in "m2", "mu" or "ha"
    margin_m = 0.0
    exclude = ""                  # approved projects to leave out (polygon file)
    exclude_layer = ""
    zone_field = "auto"           # "auto", "none" or a field name
    name_field = "auto"
    include_gain = true           # report vegetation gain in the results ...
    gain_cases = false            # ... and open ledger cases for it (normally not: gain is no violation)
    normalize = "auto"            # "auto", "rrn", "none"
    clouds = "auto"               # "auto" (masks for scenes without one), "none"
    max_flagged_share = 0.05      # warn when patches cover more of a reserve than this
    simplify_m = 0.0
    [detection.change]            # ecopatch.ChangeParams (see its docstring for units)
    z_seed = 7.0                  # robust SDs of unchanged ground a patch's seed must stand out by

    [assessment]                  # -> ecopatch.assess_restoration
    reference = "earliest"        # each mine's reference: "earliest" usable scene, a date or a scene ID
    reference_field = "auto"      # per-mine reference (修复前影像日期, 治理开始年份, ...): "auto", "none" or a field
    direction_field = "auto"      # "auto", "none" or a field name (修复方向)
    target_year_field = "auto"    # the plan's target year (计划完成年份): "auto", "none" or a field
    target_rate_field = "auto"    # the plan's target restoration rate (目标修复率)
    edge = "unmix"                # "unmix", "uniform"
    default_direction = "forest"
    start_rate = 0.05
    min_valid_fraction = 0.70
    min_damaged_fraction = 0.01
    min_loss_m2 = 400             # smallest vegetation loss that raises 退化 / 反弹
    stall_after = 3               # "stalled": the rate has not moved over this many observations ...
    stall_tolerance = 0.02        # ... by this much (restoration rate, 0-1) ...
    stall_min_days = 180          # ... spanning at least this many days
    [assessment.done_rate]        # ecopatch.StatusRules, per direction, in (0, 1]
    cropland = 0.60
    [assessment.min_fvc]
    forest = 0.50
    [assessment.max_loss]         # share of a mine that may lose vegetation before 退化 / 反弹
    forest = 0.05

    [run]
    baseline = "season"           # encroachment: "season", "previous", "best" or "fixed"
    season_window_days = 45       # "season": same time of year within this many days
    history_scenes = 4            # earlier scenes (before the baseline) giving each pixel its seasonal range; 0 = off
    reference_date = 2021-09-18   # with baseline = "fixed"
    max_baseline_age_days = 0     # "best": only earlier scenes this recent (0 = any)
    min_clear_fraction = 0.0      # skip new scenes less clear than this over the mines and reserves
    scheduler = "threads"         # "threads", "synchronous", "processes" or "tcp://host:8786"
    block = 512                   # window size, pixels
    build_overviews = false       # write <file>.ovr beside imagery without overviews (faster quick-looks)
    tune_malloc = false           # let ecopatch set glibc malloc thresholds for this process
    lock_max_age_hours = 24       # a lock from another host older than this is stale
    ledger_timeout_s = 60         # wait this long for another ledger writer
    max_new_cases = 200           # refuse a scene that would open more new cases (season? haze? cloud?)
    allow_many_cases = false      # true: no such limit

Examples
--------
>>> from ecopatch.run.config import load_config
>>> cfg = load_config("sample_data/ecopatch.toml")        # doctest: +SKIP
>>> cfg.detection.min_area_m2, cfg.run.baseline           # doctest: +SKIP
(400.0, 'season')
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import os
import sys
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ecopatch.errors import ConfigError
from ecopatch.options import (
    AssessOptions,
    DetectOptions,
    OptionInfo,
    RunOptions,
    field_type,
    option,
    option_fields,
    same_as,
)
from ecopatch.run.values import (  # the keys' value converters
    DIRECTIONS,
    LANGS,
    Converter,
    absolute_path,
    bad_value,
    boolean_value,
    check_new_path,
    check_scheduler,
    choice_value,
    date_value,
    existing_path_value,
    field_name_value,
    fraction_table_value,
    id_prefix_value,
    min_area_value,
    number_value,
    output_path_value,
    quoted_list,
    reference_value,
    retired_thresholds_value,
    scheduler_value,
    sensor_value,
    string_list_value,
    string_value,
    suggestion,
    type_name,
)

if TYPE_CHECKING:
    from ecopatch.analyses.restoration import StatusRules
    from ecopatch.compute.change import ChangeParams

__all__ = [
    "AREA_UNITS",
    "AssessmentConfig",
    "DetectionConfig",
    "InputsConfig",
    "OutputsConfig",
    "ProductRule",
    "RunConfig",
    "TABLE_FORMATS",
    "check_scheduler",
    "load_config",
    "parse_config",
]

#: Units of ``[detection] min_area``.
AREA_UNITS: tuple[str, ...] = ("m2", "mu", "ha")
#: Table formats a run can write (file extensions).
TABLE_FORMATS: tuple[str, ...] = ("gpkg", "csv", "xlsx", "geojson", "kml")


# ---------------------------------------------------------------------------
# The dataclasses
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class InputsConfig:
    """``[inputs]``: imagery and polygon layers.

    Attributes
    ----------
    imagery : Path
        Folder of scenes (SAFE folders, STAC item JSONs, Landsat folders,
        folders of band files, GeoTIFFs) or a local STAC catalog/collection JSON.
    mines, reserves : Path
        Mine polygons and reserve/zone polygons (any format
        :func:`ecopatch.read_patches` reads).
    mines_id_field : str or None
        Mine ID field (e.g. ``"矿山编号"``); None: IDs generated in file order.
    mines_layer, reserves_layer : str or None
        Layers of multi-layer files.
    encoding : str or None
        Attribute encoding of Shapefiles (None: detected).
    scene_pattern : tuple of str
        Glob patterns (names in the imagery folder, or STAC item IDs) of
        what counts as a scene.
    sensor : str or None
        Sensor profile for every scene (None: guessed per scene).
    products : tuple of ProductRule
        How to read the scenes matching each pattern (``[[inputs.products]]``);
        the first matching rule wins over ``sensor``.
    """

    imagery: Path = option(help="a folder of scenes or a STAC catalog/collection JSON", kind="input")
    mines: Path = option(help="the mine polygons (GPKG, SHP, GeoJSON)", kind="input")
    reserves: Path = option(help="the reserve/zone polygons", kind="input")
    mines_id_field: str | None = option(None, help="mine ID field (None: IDs generated in file order)", nullable=True)
    mines_layer: str | None = option(None, help="layer of a multi-layer mines file", nullable=True)
    reserves_layer: str | None = option(None, help="layer of a multi-layer reserves file", nullable=True)
    encoding: str | None = option(None, help="attribute encoding of Shapefiles (None: detected)", nullable=True)
    scene_pattern: tuple[str, ...] = option(("*",), help="glob patterns of what counts as a scene")
    sensor: str | None = option(None, help="sensor profile of every scene (None: guessed)", kind="sensor",
                                nullable=True)
    products: tuple[ProductRule, ...] = option((), help="how to read the scenes matching each pattern", kind="products")

    def open_options(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Keyword arguments of :func:`ecopatch.open_scene` for a scene: its product rule, else ``sensor``."""
        name = Path(path).name
        for rule in self.products:
            if fnmatch.fnmatchcase(name, rule.pattern):
                return rule.open_options(default_sensor=self.sensor)
        return {"sensor": self.sensor}


@dataclass(frozen=True)
class ProductRule:
    """``[[inputs.products]]``: how to read the scenes whose names match ``pattern``.

    The keys mirror :func:`ecopatch.open_scene` and the command line's
    ``--sensor``, ``--bands``, ``--scale``, ``--offset``, ``--nodata``,
    ``--dem``, ``--calibration`` and ``--*-cloud-mask``.
    """

    pattern: str
    sensor: str | None = None
    bands: Mapping[str, int | str] | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    dem: Path | None = None
    calibration: Path | None = None
    cloud_mask: Path | None = None

    def open_options(self, *, default_sensor: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`ecopatch.open_scene` (``sensor`` falls back to ``default_sensor``)."""
        return {"sensor": self.sensor or default_sensor, "bands": dict(self.bands) if self.bands else None,
                "scale": self.scale, "offset": self.offset, "nodata": self.nodata, "dem": self.dem,
                "calibration": self.calibration, "cloud_mask": self.cloud_mask}


@dataclass(frozen=True)
class OutputsConfig:
    """``[outputs]``: where runs and the ledger go, and what each run writes.

    Attributes
    ----------
    dir : Path
        Folder of the dated run folders (created if missing).
    ledger : Path
        The case ledger GeoPackage (created if missing; default
        ``<dir>/ledger.gpkg``).
    formats : tuple of str
        Table formats of the results (from :data:`TABLE_FORMATS`).
    maps, report, fieldcheck, chips : bool
        Write the change map, the report, the field package of the run's new
        cases, and before/after image chips in it.
    lang : {"zh", "en"}
        Language of maps and report.
    id_prefix : str
        Prefix of new case IDs when the ledger is created.
    """

    dir: Path = option(help="folder for the dated run folders", kind="output_dir")
    ledger: Path = option(help="the case ledger (default <dir>/ledger.gpkg)", kind="output_file")
    formats: tuple[str, ...] = option(("gpkg", "csv", "xlsx"), help="table formats of the results",
                                      choices=TABLE_FORMATS)
    maps: bool = option(True, help="write the change map")
    report: bool = option(True, help="write the report")
    fieldcheck: bool = option(True, help="write the field package of the run's new cases")
    chips: bool = option(True, help="before/after image chips in the field package")
    lang: str = option("zh", help="language of maps and report", choices=LANGS)
    id_prefix: str = option("YB", help="prefix of new case IDs", kind="id_prefix")


@dataclass(frozen=True)
class DetectionConfig:
    """``[detection]``: parameters of :func:`ecopatch.detect_changes`.

    Attributes
    ----------
    min_area, core_min_area : float
        Minimum mapping unit (``"auto"``: ten pixels, 400-1000 m²), and that of core zones (核心区;
        default 400 m²).
    min_area_unit : {"m2", "mu", "ha"}
        Unit of both.
    margin_m : float
        Ground distance (m) around the reserves also watched.
    exclude : Path or None
        Approved projects / permitted activities to cut out.
    exclude_layer : str or None
    zone_field, name_field : str or None
        ``"auto"``, a field name, or None (the layer has none).
    include_gain : bool
        Report ``vegetation_gain`` patches in the results.
    gain_cases : bool
        Also add them to the ledger as cases (default False: regrowth is
        not a suspect patch; only disturbance opens cases).
    normalize : {"auto", "rrn", "none"}
    clouds : {"auto", "none"}
        Compute cloud and shadow masks for scenes that have none.
    max_flagged_share : float
        Share (0-1) of a reserve covered by patches above which the run
        warns (season, radiometry or cloud?).
    thresholds : str
        No longer used (kept so that older configuration files load; a
        warning says so): change is measured against each pair's own noise.
    simplify_m : float
        Outline simplification tolerance, ground metres.
    change : mapping of str to float
        Overrides of :class:`ecopatch.ChangeParams`.
    """

    min_area: float | str = option(DetectOptions().min_area_m2, help="minimum mapping unit ('auto': ten pixels)",
                                   unit="(in min_area_unit)", lo=0.0, words=("auto",), kind="min_area")
    core_min_area: float | None = option(None, help="minimum mapping unit in core zones (default 400 m²)",
                                         unit="(in min_area_unit)", lo=0.0, nullable=True)
    min_area_unit: str = option("m2", help="unit of min_area and core_min_area", choices=AREA_UNITS)
    margin_m: float = same_as(DetectOptions, "margin_m")
    exclude: Path | None = option(None, help="the approved-projects polygons", kind="input", nullable=True)
    exclude_layer: str | None = option(None, help="layer of a multi-layer exclusion file", nullable=True)
    zone_field: str | None = same_as(DetectOptions, "zone_field")
    name_field: str | None = same_as(DetectOptions, "name_field")
    include_gain: bool = same_as(DetectOptions, "include_gain")
    gain_cases: bool = option(False, help="open ledger cases for vegetation gain")
    normalize: str = same_as(DetectOptions, "normalize")
    clouds: str = same_as(DetectOptions, "clouds")
    max_flagged_share: float = same_as(DetectOptions, "max_flagged_share")
    thresholds: str | None = option(None, help="no longer used", kind="retired", nullable=True)
    simplify_m: float = same_as(DetectOptions, "simplify_m")
    change: Mapping[str, float] = option(help="overrides of ecopatch.ChangeParams", kind="change", default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "change", MappingProxyType(dict(self.change)))

    @property
    def min_area_m2(self) -> float | str:
        """The minimum mapping unit in m², or ``"auto"``."""
        from ecopatch.geo.units import area_to_m2

        return self.min_area if isinstance(self.min_area, str) else area_to_m2(self.min_area, self.min_area_unit)

    def change_params(self) -> ChangeParams:
        """:class:`ecopatch.ChangeParams` with this section's overrides."""
        from ecopatch.compute.change import ChangeParams

        overrides: dict[str, Any] = dict(self.change)  # float and int keys (tolerance_px)
        return ChangeParams(**overrides)

    def detect_options(self) -> DetectOptions:
        """The :class:`~ecopatch.options.DetectOptions` of this section."""
        from ecopatch.geo.units import area_to_m2

        core = self.core_min_area  # in min_area_unit when given; else the library's 400 m²
        core_m2 = DetectOptions().core_min_area_m2 if core is None else area_to_m2(core, self.min_area_unit)
        return DetectOptions(min_area_m2=self.min_area_m2, core_min_area_m2=core_m2, margin_m=self.margin_m,
                             zone_field=self.zone_field, name_field=self.name_field, params=self.change_params(),
                             normalize=self.normalize, clouds=self.clouds, include_gain=self.include_gain,
                             max_flagged_share=self.max_flagged_share, simplify_m=self.simplify_m)


@dataclass(frozen=True)
class AssessmentConfig:
    """``[assessment]``: parameters of :func:`ecopatch.assess_restoration`.

    Attributes
    ----------
    reference : str or datetime.date
        Each mine's reference (the state before restoration), unless its own
        field names one: ``"earliest"`` (the earliest usable scene that sees
        the mine clear), a date (the scene of that date, else the latest
        before it) or a scene ID.  See :mod:`ecopatch.run.pipeline`.
    reference_field : str or None
        Field of the mines layer with a per-mine reference: a date (修复前影像日期),
        a year (治理开始年份: the latest clear scene before that year) or a
        scene ID.  ``"auto"`` looks for the usual names
        (:data:`ecopatch.run.baseline.REFERENCE_FIELDS`); None: the config's for all.
    direction_field : str or None
        ``"auto"``, a field name, or None (``default_direction`` for all).
    target_year_field, target_rate_field : str or None
        The plan's target year and rate: ``"auto"``, a field name or None.
    edge : {"unmix", "uniform"}
    default_direction : str
        Direction of mines without one (forest, shrub, grass, cropland, natural).
    start_rate, min_valid_fraction, min_damaged_fraction : float
        :class:`ecopatch.StatusRules` thresholds, fractions 0-1.
    done_rate, min_fvc, max_loss : mapping of str to float
        Per-direction overrides of :class:`ecopatch.StatusRules`.
    min_loss_m2, stall_after, stall_tolerance, stall_min_days
        :class:`ecopatch.StatusRules` losses and stalls.
    """

    reference: str | _dt.date = option("earliest", help="each mine's reference scene", kind="reference")
    reference_field: str | None = option("auto", help="per-mine reference field", kind="field_name", nullable=True)
    direction_field: str | None = same_as(AssessOptions, "direction_field")
    target_year_field: str | None = same_as(AssessOptions, "target_year_field")
    target_rate_field: str | None = same_as(AssessOptions, "target_rate_field")
    edge: str = same_as(AssessOptions, "edge")
    default_direction: str = option("forest", help="direction of mines without one", choices=DIRECTIONS)
    start_rate: float = option(0.05, help="restoration rate from which a mine is in progress", lo=0.0, hi=1.0)
    min_valid_fraction: float = option(0.70, help="share observed at both dates below which data is insufficient",
                                       lo=0.0, hi=1.0)
    min_damaged_fraction: float = option(0.01, help="damaged share below which a mine needs no restoration",
                                         lo=0.0, hi=1.0)
    min_loss_m2: float = option(400.0, help="smallest vegetation loss that raises an alert", unit="m²", lo=0.0)
    stall_after: int = option(3, help="observations over which a stalled rate has not moved", unit="observations",
                              lo=2, hi=100)
    stall_tolerance: float = option(0.02, help="rate change below which a mine is stalled", lo=0.0, hi=1.0)
    stall_min_days: int = option(180, help="days a stall spans at least", unit="days", lo=0, hi=3650)
    done_rate: Mapping[str, float] = option(help="per direction: rate at which a mine is restored",
                                            choices=DIRECTIONS, lo=0.0, hi=1.0, lo_open=True, default_factory=dict)
    min_fvc: Mapping[str, float] = option(help="per direction: vegetation cover a restored mine reaches",
                                          choices=DIRECTIONS, lo=0.0, hi=1.0, lo_open=True, default_factory=dict)
    max_loss: Mapping[str, float] = option(help="per direction: share that may lose vegetation",
                                           choices=DIRECTIONS, lo=0.0, hi=1.0, lo_open=True, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "done_rate", MappingProxyType(dict(self.done_rate)))
        object.__setattr__(self, "min_fvc", MappingProxyType(dict(self.min_fvc)))
        object.__setattr__(self, "max_loss", MappingProxyType(dict(self.max_loss)))

    def assess_options(self) -> AssessOptions:
        """The :class:`~ecopatch.options.AssessOptions` of this section."""
        return AssessOptions(direction_field=self.direction_field, rules=self.status_rules(), edge=self.edge,
                             target_year_field=self.target_year_field, target_rate_field=self.target_rate_field)

    def status_rules(self) -> StatusRules:
        """:class:`ecopatch.StatusRules` with this section's values."""
        from ecopatch.analyses.restoration import StatusRules

        return StatusRules(
            done_rate=dict(self.done_rate), min_fvc=dict(self.min_fvc), start_rate=self.start_rate,
            min_valid_fraction=self.min_valid_fraction, min_damaged_fraction=self.min_damaged_fraction,
            default_direction=self.default_direction, max_loss=dict(self.max_loss), min_loss_m2=self.min_loss_m2,
            stall_after=self.stall_after, stall_tolerance=self.stall_tolerance, stall_min_days=self.stall_min_days,
        )


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration (see the module docstring for the TOML).

    Attributes
    ----------
    inputs, outputs, detection, assessment, run
        The sections.
    path : Path or None
        The config file it was read from.
    """

    inputs: InputsConfig
    outputs: OutputsConfig
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    assessment: AssessmentConfig = field(default_factory=AssessmentConfig)
    run: RunOptions = field(default_factory=RunOptions)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values of every key (paths as strings, dates ISO), for manifests."""

        def plain(v: Any) -> Any:
            if isinstance(v, Path):
                return str(v)
            if isinstance(v, _dt.date):
                return v.isoformat()
            if isinstance(v, Mapping):
                return {str(k): plain(x) for k, x in v.items()}
            if isinstance(v, ProductRule):
                return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
            if isinstance(v, (tuple, list)):
                return [plain(x) for x in v]
            return v

        out: dict[str, Any] = {}
        for sec in ("inputs", "outputs", "detection", "assessment", "run"):
            obj = getattr(self, sec)
            out[sec] = {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        out["path"] = str(self.path) if self.path else None
        return out

    def with_overrides(
        self,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        ledger: str | os.PathLike[str] | None = None,
        scheduler: str | None = None,
        max_new_cases: int | None = None,
        allow_many_cases: bool | None = None,
    ) -> RunConfig:
        """A copy with command-line overrides (relative paths against the current folder).

        ``out_dir`` replaces ``[outputs] dir``; the ledger follows it when the
        config did not name one, unless ``ledger`` is given too.
        ``max_new_cases`` and ``allow_many_cases`` replace the ``[run]`` keys.

        Raises
        ------
        ConfigError
            An unusable path, scheduler or number.
        """
        outputs = self.outputs
        if out_dir is not None:
            new_dir = absolute_path(out_dir, Path.cwd())
            check_new_path(new_dir, "--out-dir", want_dir=True)
            led = outputs.ledger
            if led == outputs.dir / "ledger.gpkg":
                led = new_dir / "ledger.gpkg"
            outputs = replace(outputs, dir=new_dir, ledger=led)
        if ledger is not None:
            led = absolute_path(ledger, Path.cwd())
            check_new_path(led, "--ledger", want_dir=False)
            outputs = replace(outputs, ledger=led)
        run = self.run
        if scheduler is not None:
            run = replace(run, scheduler=check_scheduler(scheduler, "--scheduler"))
        if max_new_cases is not None:
            if isinstance(max_new_cases, bool) or int(max_new_cases) < 0:
                raise ConfigError(f"--max-new-cases {max_new_cases!r}: give a whole number >= 0")
            run = replace(run, max_new_cases=int(max_new_cases))
        if allow_many_cases is not None:
            run = replace(run, allow_many_cases=bool(allow_many_cases))
        return replace(self, outputs=outputs, run=run)


# ---------------------------------------------------------------------------
# Key specifications (their values' converters: ecopatch.run.values)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Key:
    """One allowed key: how to convert/check its value, whether it is required, whether None is a value."""

    convert: Converter
    required: bool = False
    help: str = ""
    keeps_none: bool = False


def _where(section: str, key: str) -> str:
    return f"[{section}] {key}" if section else key


def _change_table(v: Any, where: str, base: Path) -> dict[str, float]:
    """``[detection.change]``: the fields of ChangeParams with their bounds, then checked together."""
    from ecopatch.compute.change import ChangeParams

    keys = {f.name: (f, meta) for f, meta in option_fields(ChangeParams)}
    if not isinstance(v, dict):
        raise bad_value(where, v, f"must be a table of {quoted_list(keys)} = number")
    out: dict[str, float] = {}
    for k, x in v.items():
        if k not in keys:
            raise ConfigError(f"{where}: unknown key \"{k}\"{suggestion(k, keys)}; allowed keys: {quoted_list(keys)}")
        out[k] = _converter(*keys[k])(x, where.replace("] ", ".", 1) + "] " + k, base)
    checked: dict[str, Any] = out
    try:
        ChangeParams(**checked)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return out


_PRODUCT_KEYS = ("pattern", "sensor", "bands", "scale", "offset", "nodata", "dem", "calibration", "cloud_mask")


def _products(v: Any, where: str, base: Path) -> tuple[ProductRule, ...]:
    """``[[inputs.products]]``: a list of tables, each with a ``pattern`` and open_scene keys."""
    from ecopatch.raster.sensors import COMMON_BANDS

    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise bad_value(where, v, "must be tables [[inputs.products]] with pattern = \"...\" and the keys "
                        f"{quoted_list(_PRODUCT_KEYS[1:])}")
    rules = []
    for i, t in enumerate(v, start=1):
        at = f"{where} #{i}"
        unknown = [k for k in t if k not in _PRODUCT_KEYS]
        if unknown:
            raise ConfigError(f"{at}: unknown key \"{unknown[0]}\"{suggestion(unknown[0], _PRODUCT_KEYS)}; allowed "
                              f"keys: {quoted_list(_PRODUCT_KEYS)}")
        pattern = string_value()(t.get("pattern", ""), f"{at} pattern", base)
        if not pattern:
            raise ConfigError(f"{at}: pattern is required (a glob of scene names, e.g. \"GF2_*.tar.gz\")")
        bands = t.get("bands")
        if bands is not None:
            if not isinstance(bands, dict) or not bands:
                raise bad_value(f"{at} bands", bands, "must be a table of role = band number or band ID, e.g. "
                                "{red = 3, nir = 4}")
            for role, b in bands.items():
                if role not in COMMON_BANDS:
                    raise ConfigError(f"{at} bands: \"{role}\" is not a band role{suggestion(role, COMMON_BANDS)}; "
                                      f"use {quoted_list(COMMON_BANDS)}")
                if isinstance(b, bool) or not isinstance(b, (int, str)) or (isinstance(b, int) and b < 1):
                    raise bad_value(f"{at} bands.{role}", b, "must be a band number (1, 2, ...) or a band ID (\"B8A\")")
        num = number_value()
        rules.append(ProductRule(
            pattern=pattern,
            sensor=sensor_value(t["sensor"], f"{at} sensor", base) if "sensor" in t else None,
            bands=dict(bands) if bands else None,
            scale=num(t["scale"], f"{at} scale", base) if "scale" in t else None,
            offset=num(t["offset"], f"{at} offset", base) if "offset" in t else None,
            nodata=num(t["nodata"], f"{at} nodata", base) if "nodata" in t else None,
            dem=existing_path_value(what="an elevation model")(t["dem"], f"{at} dem", base) if "dem" in t else None,
            calibration=(existing_path_value(what="a Gaofen calibration table (JSON)")(t["calibration"],
                                                                                       f"{at} calibration", base)
                         if "calibration" in t else None),
            cloud_mask=(existing_path_value(what="a cloud raster")(t["cloud_mask"], f"{at} cloud_mask", base)
                        if "cloud_mask" in t else None),
        ))
    return tuple(rules)


def _convert_kind(kind: str, meta: OptionInfo) -> Converter:
    """The converter of a value of a special kind (:attr:`OptionInfo.kind`)."""
    if kind == "input":
        return existing_path_value(what=meta.help)
    if kind in ("output_dir", "output_file"):
        return output_path_value(want_dir=kind == "output_dir")
    return {"field_name": field_name_value, "sensor": sensor_value, "scheduler": scheduler_value,
            "reference": reference_value, "date": date_value, "id_prefix": id_prefix_value, "products": _products,
            "change": _change_table, "retired": retired_thresholds_value, "min_area": min_area_value}[kind]


def _converter(f: Field[Any], meta: OptionInfo) -> Converter:
    """How a key's TOML value is checked and converted, from its field's type and :class:`OptionInfo`."""
    if meta.kind is not None:
        return _convert_kind(meta.kind, meta)
    kind = field_type(f)
    unit = f" {meta.unit}" if meta.unit else ""
    if kind == "bool":
        return boolean_value
    if kind in ("int", "float"):
        return number_value(lo=meta.lo, hi=meta.hi, lo_open=meta.lo_open, integer=kind == "int", unit=unit)
    if kind == "tuple[str, ...]":
        return string_list_value(choices=meta.choices)
    if kind == "Mapping[str, float]":
        assert meta.choices is not None, f"{f.name}: a table of numbers names its keys (choices)"
        return fraction_table_value(meta.choices)
    if kind == "str":
        return choice_value(meta.choices) if meta.choices is not None else string_value()
    raise TypeError(f"{f.name}: no TOML converter for {kind!r}; give its OptionInfo a kind")  # pragma: no cover


#: Keys with no default that the configuration need not give (derived from others in :func:`_assemble`).
_DERIVED = {("outputs", "ledger")}


def _keys(section: str, cls: type) -> dict[str, _Key]:
    """The TOML keys of a section, one per field of its dataclass."""
    out = {}
    for f, meta in option_fields(cls):
        required = f.default is MISSING and f.default_factory is MISSING and (section, f.name) not in _DERIVED
        out[f.name] = _Key(_converter(f, meta), required=required, help=meta.help, keeps_none=meta.nullable)
    return out


_CLASSES: dict[str, type] = {"inputs": InputsConfig, "outputs": OutputsConfig, "detection": DetectionConfig,
                              "assessment": AssessmentConfig, "run": RunOptions}
#: The allowed keys of each section, made from the fields of its dataclass.
_SECTIONS: dict[str, dict[str, _Key]] = {section: _keys(section, cls) for section, cls in _CLASSES.items()}


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
def load_config(path: str | os.PathLike[str]) -> RunConfig:
    r"""Read and validate a run configuration from a TOML file.

    Parameters
    ----------
    path : path-like
        The ``.toml`` file.  Relative paths inside it are resolved against
        its folder.

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        The file is missing or not valid TOML, or any key is unknown, of the
        wrong type, out of range, not an allowed choice, or names an input
        that does not exist.  Every problem found is listed, each naming its
        key (``[detection] min_area``), the value and what is allowed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "bad.toml").write_text('[detection]\nmin_aera = 400\n')
    >>> load_config(d / "bad.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ecopatch.errors.ConfigError: ...[detection] unknown key "min_aera" (did you mean "min_area"?)...
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist (or is not a file); give the path to a .toml file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p}: cannot read it as UTF-8 text ({exc})") from exc
    toml = _toml()
    try:
        data = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    return parse_config(data, base=p.resolve().parent, path=p.resolve())


def parse_config(data: Mapping[str, Any], *, base: str | os.PathLike[str], path: Path | None = None) -> RunConfig:
    """Validate an already-parsed TOML document.

    Parameters
    ----------
    data : mapping
        The document (sections as nested mappings).
    base : path-like
        Folder that relative paths are resolved against.
    path : Path, optional
        Where it came from, for messages and :attr:`RunConfig.path`.

    Returns
    -------
    RunConfig

    Raises
    ------
    ConfigError
        Listing every problem found.
    """
    base = Path(base)
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for name, table in data.items():
        if name not in _SECTIONS:
            if isinstance(table, dict):
                problems.append(f"unknown section [{name}]{suggestion(name, _SECTIONS, fmt='[{}]')}; "
                                f"allowed: {', '.join(f'[{s}]' for s in _SECTIONS)}")
            else:
                problems.append(f"unknown top-level key \"{name}\"{suggestion(name, _SECTIONS, fmt='[{}]')}; keys "
                                f"belong in one of the sections {', '.join(f'[{s}]' for s in _SECTIONS)}")
            continue
        if not isinstance(table, dict):
            problems.append(f"{name} must be a section [{name}] (a table), not {type_name(table)}")
    for section, keys in _SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            continue
        out: dict[str, Any] = {}
        failed: set[str] = set()
        for key, value in table.items():
            if key not in keys:
                problems.append(
                    f"[{section}] unknown key \"{key}\"{suggestion(key, keys)}; allowed keys: {quoted_list(keys)}"
                )
                continue
            try:
                out[key] = keys[key].convert(value, _where(section, key), base)
            except ConfigError as exc:
                problems.append(str(exc))
                failed.add(key)
        for key, spec in keys.items():
            if spec.required and out.get(key) is None and key not in failed:
                problems.append(f"[{section}] {key} is required: {spec.help}")
        values[section] = out
    if not problems:
        try:
            return _assemble(values, path)
        except ConfigError as exc:
            problems.append(str(exc))
    head = f"config file {path}" if path else "configuration"
    if len(problems) == 1:
        raise ConfigError(f"{head}: {problems[0]}")
    raise ConfigError(f"{head}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))


def _assemble(values: dict[str, dict[str, Any]], path: Path | None) -> RunConfig:
    """Dataclasses from converted values, with the cross-key checks."""
    secs: dict[str, Any] = {}
    for section, cls in _CLASSES.items():
        given = {k: v for k, v in values.get(section, {}).items() if v is not None}
        if section == "outputs":
            given.setdefault("ledger", given["dir"] / "ledger.gpkg")
        # keys set to "" (None) fall back to their default, except where None is meaningful (field names)
        for k, v in values.get(section, {}).items():
            if v is None and _SECTIONS[section][k].convert is field_name_value:
                given[k] = None
        secs[section] = cls(**given)
    run: RunOptions = secs["run"]
    if run.baseline == "fixed" and run.reference_date is None:
        raise ConfigError('[run] baseline = "fixed" needs [run] reference_date = YYYY-MM-DD, '
                          "the date of the baseline scene")
    if run.baseline != "fixed" and run.reference_date is not None:
        raise ConfigError(
            f'[run] reference_date = {run.reference_date} is only used with baseline = "fixed" '
            f'(baseline is "{run.baseline}"); remove it or set baseline = "fixed"'
        )
    outputs: OutputsConfig = secs["outputs"]
    inputs: InputsConfig = secs["inputs"]
    if outputs.ledger.resolve() in (inputs.mines.resolve(), inputs.reserves.resolve()):
        raise ConfigError(f"[outputs] ledger = {outputs.ledger} is an input layer; give the ledger its own file")
    return RunConfig(path=path, **secs)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - Python 3.10
        import tomli
    except ImportError as exc:  # pragma: no cover
        from ecopatch.errors import MissingDependencyError

        raise MissingDependencyError("reading TOML on Python 3.10 needs tomli: pip install tomli") from exc
    return tomli  # pragma: no cover
