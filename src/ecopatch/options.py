"""Every option of the analyses and of the scheduled run, defined once.

Each option is a field of a frozen dataclass; its metadata
(:class:`OptionInfo`) carries the help text, the unit, the bounds or the
allowed choices and the command-line flag.  From these fields are built:

- the defaults of the analyses' keyword arguments
  (:func:`ecopatch.detect_changes`, :func:`ecopatch.assess_restoration`,
  :func:`ecopatch.analyses.joint.assess_and_detect`), which also take the whole
  dataclass as ``options=``;
- the validation of the run configuration's TOML
  (:func:`ecopatch.run.config.load_config`);
- the options of the command line (:mod:`ecopatch.cli.options`).

Window sizes have one name per meaning, everywhere:

``block``
    side, in pixels of the analysis grid, of the windows of a windowed pass
    (:class:`WindowOptions`);
``max_source_px``
    most source pixels one read decodes at once (memory for drone mosaics);
``max_pixels``
    pixels of a decimated read (a quick-look, a map panel, a sample);
``max_cells``
    working cells of the exact polygon coverage (:mod:`ecopatch.compute.zonal`).

Examples
--------
>>> from ecopatch.options import DetectOptions
>>> DetectOptions(margin_m=100).margin_m
100.0
>>> DetectOptions(margin_m=-1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ecopatch.errors.ConfigError: DetectOptions.margin_m = -1.0: must be a number >= 0 m...
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ecopatch.errors import ConfigError

if TYPE_CHECKING:
    from ecopatch.analyses.restoration import StatusRules
    from ecopatch.compute.change import ChangeParams
    from ecopatch.compute.cover import CoverParams

__all__ = [
    "AUTO_MMU_M2",
    "AUTO_MMU_PX",
    "BASELINE_RULES",
    "AssessOptions",
    "DetectOptions",
    "OptionInfo",
    "RunOptions",
    "WindowOptions",
    "info",
    "option_fields",
    "resolve_options",
]

#: How the "before" scene of the encroachment job is chosen (see :mod:`ecopatch.run.baseline`).
BASELINE_RULES: tuple[str, ...] = ("season", "previous", "best", "fixed")
#: Edge rules of the restoration assessment.
EDGE_RULES: tuple[str, ...] = ("unmix", "uniform")
#: Radiometric normalisation of the after scene onto the before scene.
NORMALIZE_RULES: tuple[str, ...] = ("auto", "rrn", "none")
#: Cloud masks computed for scenes without one.
CLOUD_RULES: tuple[str, ...] = ("auto", "none")
#: ``DetectOptions(min_area_m2="auto")``: the minimum mapping unit is this many cells of the analysis grid ...
AUTO_MMU_PX: int = 10
#: ... within these bounds, m²: the provincial land surveys' 400 m² and 0.1 ha (1.5 mu).  On the ten OSCD
#: cities (10 m) patches under 20 cells held 6-7 % labelled change (benchmarks/RESULTS.md).
AUTO_MMU_M2: tuple[float, float] = (400.0, 1000.0)


@dataclass(frozen=True)
class OptionInfo:
    """What an option means and what it accepts (the metadata of its field).

    Attributes
    ----------
    help : str
        One line for the docs, the CLI ``--help`` and the configuration errors.
    unit : str
        Unit of a number, as written after it (``"m"``, ``"m²"``, ``"pixels"``).
    lo, hi : float, optional
        Bounds of a number (``lo`` excluded when ``lo_open``).
    choices : tuple of str, optional
        The allowed words of a string option.
    flag : str, optional
        Its command-line flag (``"--margin"``; ``"--gain/--no-gain"`` for a
        boolean); None: not on the command line.
    kind : str, optional
        A special kind of value the configuration checks in its own way
        (``"field_name"``: ``"auto"``, ``"none"`` or a field name;
        ``"input"``: an existing file; ...).
    nullable : bool
        None is an allowed value.
    words : tuple of str
        Words a number option also takes (``"auto"``).
    """

    help: str
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    kind: str | None = None
    nullable: bool = False
    words: tuple[str, ...] = ()

    def bounds_text(self, integer: bool = False) -> str:
        """``" >= 0 m"``, ``" in (0, 1]"``... as the messages write them."""
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            text = f" in {'(' if self.lo_open else '['}{lo:g}, {hi:g}]"
        elif lo is not None:
            text = f" {'>' if self.lo_open else '>='} {lo:g}"
        elif hi is not None:
            text = f" <= {hi:g}"
        else:
            text = ""
        return text + (f" {self.unit}" if self.unit else "")

    def problem(self, value: Any, integer: bool = False) -> str | None:
        """Why ``value`` is not allowed, or None when it is (numbers and choices only)."""
        if value is None:
            return None if self.nullable else "must be given"
        if isinstance(value, str) and value in self.words:
            return None
        if self.choices is not None:
            if value not in self.choices:
                return f"must be one of {', '.join(repr(c) for c in self.choices)}"
            return None
        if self.lo is None and self.hi is None:
            return None
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            return f"must be {kind}{self.bounds_text(integer)}"
        x = float(value)
        if not math.isfinite(x):
            return f"must be a finite number{self.bounds_text(integer)}"
        if (self.lo is not None and (x < self.lo or (self.lo_open and x == self.lo))) or (
                self.hi is not None and x > self.hi):
            return f"must be {kind}{self.bounds_text(integer)}"
        return None


def option(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field with its :class:`OptionInfo` (keywords of :class:`OptionInfo`)."""
    md = {"ecopatch": OptionInfo(help=help, **meta)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=md)
    return field(default=default, metadata=md)


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """A field with the default and the :class:`OptionInfo` of ``cls.name`` (``changes`` replace some)."""
    f = {x.name: x for x in fields(cls)}[name]
    meta = replace(info(f), **changes) if changes else info(f)
    return field(default=f.default, metadata={"ecopatch": meta})


def info(f: Field[Any]) -> OptionInfo:
    """The :class:`OptionInfo` of a field (a bare one when it has none)."""
    return f.metadata.get("ecopatch") or OptionInfo(help="")


def option_fields(cls: Any) -> Iterator[tuple[Field[Any], OptionInfo]]:
    """The fields of an options dataclass, with their :class:`OptionInfo`."""
    for f in fields(cls):
        yield f, info(f)


def field_type(f: Field[Any]) -> str:
    """The field's annotation as written, less ``| None`` (``"float"``, ``"tuple[str, ...]"``...)."""
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    parts = [p.strip() for p in t.split("|")]
    return " | ".join(p for p in parts if p != "None") or "None"


def check_options(obj: Any) -> None:
    """Raise :class:`~ecopatch.errors.ConfigError` for the first field out of its bounds or choices."""
    name = type(obj).__name__
    for f, meta in option_fields(obj):
        value = getattr(obj, f.name)
        why = meta.problem(value, integer=field_type(f) == "int")
        if why:
            raise ConfigError(f"{name}.{f.name} = {value!r}: {why} ({meta.help})")


_O = TypeVar("_O")


def resolve_options(cls: type[_O], options: _O | None, given: Mapping[str, Any]) -> _O:
    """``options`` (default ``cls()``) with the keyword arguments that differ from the fields' defaults.

    An analysis takes its options both as ``options=`` and as keywords
    whose defaults are the fields' defaults: a keyword given a value other
    than its default replaces that field of ``options``.
    """
    if options is not None and not isinstance(options, cls):
        raise ConfigError(f"options={options!r}: give a {cls.__name__} (ecopatch.options.{cls.__name__})")
    base = options if options is not None else cls()
    defaults = {f.name: f.default for f in fields(cls)}  # type: ignore[arg-type]
    changes = {k: v for k, v in given.items() if k in defaults and not _same(v, defaults[k])}
    return replace(base, **changes) if changes else base  # type: ignore[type-var]


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(type(a) is type(b) and a == b)
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------------
# Windowed processing
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowOptions:
    """How a windowed pass cuts its work (shared by every analysis).

    Attributes
    ----------
    block : int
        Window side, pixels of the analysis grid (default 512).
    max_source_px : int
        Most source pixels one read decodes at once (bounds memory for drone
        mosaics; default 4,000,000).
    """

    block: int = option(512, help="window size for windowed processing", unit="pixels", lo=16, hi=8192,
                        flag="--block")
    max_source_px: int = option(4_000_000, help="most source pixels read at once", unit="pixels", lo=1)

    def __post_init__(self) -> None:
        check_options(self)


#: The default windowing, whose fields are the defaults of every ``block`` and ``max_source_px``.
WINDOWS = WindowOptions()


# ---------------------------------------------------------------------------
# The analyses
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectOptions:
    """Options of :func:`ecopatch.detect_changes` (the reserves' change detection).

    Attributes
    ----------
    min_area_m2 : float, "auto" or None
        Minimum mapping unit, m² (None or 0: none): a patch's outline
        covers at least this, and at least half of it is estimated changed.
        ``"auto"`` (default): ten pixels of the analysis grid, but at least
        400 m² and at most 1000 m² (0.1 ha, 1.5 mu), so 1000 m² on
        Sentinel-2 and Landsat, 400 m² on imagery of 6 m or finer
        (:meth:`units_m2`).
    min_area_mu : float or None
        The same in mu (亩); overrides ``min_area_m2`` when given.
    core_min_area_m2 : float or None
        Minimum mapping unit of patches in core zones (核心区), m² (default
        400): a few hundred m² of new construction in a core zone is a case.
        The smaller of this and the unit above applies there; None: the
        same as elsewhere.
    margin_m : float
        Ground distance (m) around the reserves also watched (zone ``outside``).
    zone_field, name_field : str or None
        Fields of the reserves with the functional zone (功能分区) and the
        reserve name (保护地名称); ``"auto"`` looks for the usual names;
        None: the layer has none.
    params : ChangeParams, optional
        Thresholds of the change statistic and of the typing.
    cover : CoverParams, optional
        Cover-rule thresholds for relative-brightness imagery (drone RGB).
    normalize : {"auto", "rrn", "none"}
        Relative radiometric normalisation of ``after`` onto ``before``.
    clouds : {"auto", "none"}
        ``"auto"`` computes cloud and shadow masks for scenes that have none.
    include_gain : bool
        Also report ``vegetation_gain`` patches.
    max_flagged_share : float
        Share (0-1) of a reserve's observed area covered by disturbance
        patches beyond which a warning is issued.
    simplify_m : float
        Simplify outlines by this tolerance (ground metres); 0 keeps pixel edges.
    """

    min_area_m2: float | str | None = option("auto", help="minimum mapping unit ('auto': ten pixels, 400-1000 m²)",
                                             unit="m²", lo=0.0, nullable=True, words=("auto",))
    min_area_mu: float | None = option(None, help="minimum mapping unit in mu (overrides min_area_m2)",
                                       unit="mu", lo=0.0, nullable=True)
    core_min_area_m2: float | None = option(400.0, help="minimum mapping unit in core zones (核心区)", unit="m²",
                                            lo=0.0, nullable=True)
    margin_m: float = option(0.0, help="ground distance around the reserves also watched", unit="m", lo=0.0,
                             flag="--margin")
    zone_field: str | None = option("auto", help="zone field of the reserves ('auto': the usual names)",
                                    kind="field_name", nullable=True, flag="--zone-field")
    name_field: str | None = option("auto", help="reserve-name field of the reserves ('auto': the usual names)",
                                    kind="field_name", nullable=True, flag="--name-field")
    params: ChangeParams | None = option(None, help="thresholds of the change statistic (ecopatch.ChangeParams)",
                                         nullable=True)
    cover: CoverParams | None = option(None, help="cover-rule thresholds (ecopatch.CoverParams)", nullable=True)
    normalize: str = option("auto", help="relative radiometric normalisation of the after scene",
                            choices=NORMALIZE_RULES, flag="--normalize")
    clouds: str = option("auto", help="compute cloud and shadow masks for scenes without one",
                         choices=CLOUD_RULES, flag="--clouds")
    include_gain: bool = option(True, help="also report vegetation gain", flag="--gain/--no-gain")
    max_flagged_share: float = option(0.05, help="share of a reserve flagged beyond which a warning is issued",
                                      lo=0.0, hi=1.0, lo_open=True, flag="--max-flagged-share")
    simplify_m: float = option(0.0, help="outline simplification tolerance (0 keeps pixel edges)", unit="m",
                               lo=0.0, flag="--simplify")

    def __post_init__(self) -> None:
        for name in ("min_area_m2", "core_min_area_m2"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, (bool, str)):
                object.__setattr__(self, name, _number(v))
        object.__setattr__(self, "margin_m", _number(self.margin_m))
        for name in ("min_area_m2", "min_area_mu", "core_min_area_m2"):
            v = getattr(self, name)
            if name == "min_area_m2" and v == "auto":
                continue
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v < 0):
                unit, auto = ("mu", "") if name.endswith("mu") else ("m²", ' or "auto"' * (name == "min_area_m2"))
                raise ConfigError(f"minimum mapping unit {v!r} {unit} ({name}): must be a number >= 0{auto} "
                                  '(defaults: "auto", 400 m² in core zones)')
        check_options(self)

    def units_m2(self, cell_m2: float) -> tuple[float, float]:
        """The minimum mapping units (m²) outside and inside core zones, on cells of ``cell_m2`` m².

        ``min_area_mu`` converted when given; ``"auto"``: ``cell_m2`` ×
        :data:`AUTO_MMU_PX`, rounded to 10 m² (a 10 m UTM cell's true area
        is 99.9 m²), within :data:`AUTO_MMU_M2`; 0 for none.  The core
        zones' unit is the smaller of ``core_min_area_m2`` and the other.

        Examples
        --------
        >>> DetectOptions().units_m2(100.0), DetectOptions().units_m2(4.0)  # 10 m and 2 m pixels
        ((1000.0, 400.0), (400.0, 400.0))
        """
        if self.min_area_mu is not None:
            from ecopatch.geo.units import area_to_m2

            mmu = float(area_to_m2(self.min_area_mu, "mu"))
        elif self.min_area_m2 == "auto":
            lo, hi = AUTO_MMU_M2
            mmu = float(min(hi, max(lo, round(AUTO_MMU_PX * float(cell_m2) / 10.0) * 10.0)))
        else:
            mmu = 0.0 if self.min_area_m2 is None else float(self.min_area_m2)
        core = mmu if self.core_min_area_m2 is None else min(mmu, float(self.core_min_area_m2))
        return mmu, core


@dataclass(frozen=True)
class AssessOptions:
    """Options of :func:`ecopatch.assess_restoration` (each mine's restoration).

    Attributes
    ----------
    direction_field : str or None
        Column holding each mine's restoration direction (修复方向);
        ``"auto"`` looks for the usual names; None uses
        ``rules.default_direction`` for all.
    cover, cover_before, cover_after : CoverParams, optional
        Cover-rule thresholds (for both dates, or per date).
    rules : StatusRules, optional
        Status thresholds per direction.
    edge : {"unmix", "uniform"}
        How a cell cut by the mine boundary is shared.
    target_year_field, target_rate_field : str or None
        Columns with the plan's target year (计划完成年份) and target rate
        (目标修复率): ``"auto"``, a field name or None.
    """

    direction_field: str | None = option("auto", help="restoration direction field of the mines (修复方向)",
                                         kind="field_name", nullable=True, flag="--direction-field")
    cover: CoverParams | None = option(None, help="cover-rule thresholds of both dates", nullable=True)
    cover_before: CoverParams | None = option(None, help="cover-rule thresholds of the before date", nullable=True)
    cover_after: CoverParams | None = option(None, help="cover-rule thresholds of the after date", nullable=True)
    rules: StatusRules | None = option(None, help="status thresholds (ecopatch.StatusRules)", nullable=True)
    edge: str = option("unmix", help="how a cell cut by the mine boundary is shared", choices=EDGE_RULES,
                       flag="--edge")
    target_year_field: str | None = option("auto", help="the plan's target year field (计划完成年份)",
                                           kind="field_name", nullable=True, flag="--target-year-field")
    target_rate_field: str | None = option("auto", help="the plan's target restoration rate field (目标修复率)",
                                           kind="field_name", nullable=True, flag="--target-rate-field")

    def __post_init__(self) -> None:
        if self.edge not in EDGE_RULES:
            raise ConfigError(f"edge={self.edge!r}; use 'unmix' or 'uniform'")
        check_options(self)


def _number(v: Any) -> Any:
    """An int given for a float option, as a float (other values as they are, for the checks)."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


# ---------------------------------------------------------------------------
# The scheduled run
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOptions:
    """``[run]`` of the run configuration: baseline rule, compute and locking.

    Attributes
    ----------
    baseline : {"season", "previous", "best", "fixed"}
        How the before scene of the encroachment job is chosen (see
        :mod:`ecopatch.run.baseline`); restoration has each mine's reference.
    season_window_days : int
        ``"season"``: an earlier year's scene counts as the same season when
        its day of year is at most this many days away.
    history_scenes : int
        Up to this many usable scenes dated before the encroachment baseline
        (the most recent first) are passed to the detection as ``history=``
        (each pixel's own seasonal range).  0 turns it off.
    reference_date : datetime.date or None
        The fixed baseline's date (required with ``baseline = "fixed"``).
    max_baseline_age_days : int
        With ``"best"``: consider only earlier scenes at most this many days
        older than the new scene (0: any).
    min_clear_fraction : float
        A new scene clear over less than this share of the mines and
        reserves is recorded as skipped, not processed.
    scheduler : str or None
        Dask scheduler: "threads", "synchronous", "processes" or a
        dask.distributed address (None: threads).
    block : int
        Window size, pixels (:class:`WindowOptions`).
    build_overviews : bool
        Build external overviews (``<file>.ovr``, beside the imagery) for
        large files that have none, before their first quick-look.
    tune_malloc : bool
        Opt in to glibc malloc tuning for the windowed passes of this run's
        process (:func:`ecopatch.engine.tiling.tune_malloc`).
    lock_max_age_hours : float
        A run lock taken on another host whose heartbeat is older than this
        is treated as stale.
    ledger_timeout_s : float
        Seconds a ledger write waits for another writer.
    max_new_cases : int
        A scene whose detections would open more new ledger cases than this
        fails with :class:`~ecopatch.errors.TooManyCasesError` and records
        nothing.
    allow_many_cases : bool
        Lift ``max_new_cases``.
    """

    baseline: str = option("season", help="how the before scene of the reserves is chosen", choices=BASELINE_RULES)
    season_window_days: int = option(45, help="same season: day of year within this many days", unit="days",
                                     lo=1, hi=182)
    history_scenes: int = option(4, help="earlier scenes giving each pixel its seasonal range (0: off)",
                                 unit="scenes", lo=0, hi=50)
    reference_date: _dt.date | None = option(None, help="the fixed baseline's date", kind="date", nullable=True)
    max_baseline_age_days: int = option(0, help="'best' baseline: only scenes this recent (0: any)", unit="days",
                                        lo=0)
    min_clear_fraction: float = option(0.0, help="skip new scenes less clear than this over the mines and reserves",
                                       lo=0.0, hi=1.0)
    scheduler: str | None = option(None, help="Dask scheduler: 'threads', 'synchronous', 'processes' or an address",
                                   kind="scheduler", nullable=True)
    block: int = same_as(WindowOptions, "block")
    build_overviews: bool = option(False, help="write <file>.ovr beside imagery without overviews")
    tune_malloc: bool = option(False, help="let ecopatch set glibc malloc thresholds for this process")
    lock_max_age_hours: float = option(24.0, help="a lock from another host older than this is stale", unit="hours",
                                       lo=0.0, lo_open=True)
    ledger_timeout_s: float = option(60.0, help="wait this long for another ledger writer", unit="s", lo=0.0)
    max_new_cases: int = option(200, help="refuse a scene that would open more new cases", unit="cases", lo=0,
                                flag="--max-new-cases")
    allow_many_cases: bool = option(False, help="no limit on the new cases of a scene")

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def new_case_limit(self) -> int | None:
        """``max_new_cases``, or None when ``allow_many_cases``."""
        return None if self.allow_many_cases else self.max_new_cases


def describe(cls: Any) -> Sequence[str]:
    """One line per option of ``cls``: name, default, unit, bounds and help (for docs and ``--help``)."""
    out = []
    for f, meta in option_fields(cls):
        default = f.default if f.default is not MISSING else "(required)"
        out.append(f"{f.name} = {default!r}{meta.bounds_text(field_type(f) == 'int')}: {meta.help}")
    return out
