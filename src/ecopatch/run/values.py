"""The values of a run configuration's keys: TOML values checked and converted, errors that name the key.

Each converter takes ``(value, where, base)``: the TOML value, the key as
the user wrote it (``[detection] min_area``) for the error message, and the
folder relative paths are resolved against.  It returns the typed value or
raises a :class:`~ecopatch.errors.ConfigError` naming the key, the value
found and what is allowed.  :mod:`ecopatch.run.config` builds each key's
converter from its dataclass field (:class:`~ecopatch.options.OptionInfo`).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ecopatch.errors import ConfigError
from ecopatch.options import OptionInfo

Converter = Callable[[Any, str, Path], Any]

_THRESHOLDS = ("fixed", "otsu")  # accepted, with a warning: change is measured against the scene's noise now
LANGS = ("zh", "en")
DIRECTIONS = ("cropland", "forest", "grass", "natural", "shrub")
_SCHEDULERS = ("threads", "synchronous", "processes")


def bad_value(where: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``where = value``: what is allowed instead."""
    return ConfigError(f"{where} = {_show(value)}: {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{table}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return repr(value)


def type_name(value: Any) -> str:
    """The TOML type of a value, in words ("a string", "a table")."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table", _dt.date: "a date", _dt.datetime: "a date-time"}.get(type(value), type(value).__name__)


def string_value(*, none_words: Sequence[str] = ("",), lower: bool = False) -> Converter:
    """A string; the words in ``none_words`` mean None."""

    def conv(v: Any, where: str, base: Path) -> str | None:
        if not isinstance(v, str):
            raise bad_value(where, v, f"must be a string, not {type_name(v)}")
        s = v.strip()
        if s.lower() in none_words:
            return None
        return s.lower() if lower else s

    return conv


def choice_value(choices: Sequence[str]) -> Converter:
    """A converter to one of ``choices`` (case-insensitive)."""
    def conv(v: Any, where: str, base: Path) -> str:
        if not isinstance(v, str):
            raise bad_value(where, v, f"must be one of {quoted_list(choices)} (a string), not {type_name(v)}")
        s = v.strip().lower()
        if s not in choices:
            hint = suggestion(s, choices)
            raise bad_value(where, v, f"must be one of {quoted_list(choices)}{hint}")
        return s

    return conv


def number_value(*, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 integer: bool = False, unit: str = "") -> Converter:
    """A converter to a number within the bounds given (an integer when ``integer``)."""
    def conv(v: Any, where: str, base: Path) -> float | int:
        kind = "an integer" if integer else "a number"
        ok_types = (int,) if integer else (int, float)
        if isinstance(v, bool) or not isinstance(v, ok_types):
            raise bad_value(where, v, f"must be {kind}{_range(lo, hi, lo_open)}{unit}, not {type_name(v)}")
        x = int(v) if integer else float(v)
        if x != x or x in (float("inf"), float("-inf")):
            raise bad_value(where, v, f"must be a finite number{_range(lo, hi, lo_open)}{unit}")
        if (lo is not None and (x < lo or (lo_open and x == lo))) or (hi is not None and x > hi):
            raise bad_value(where, v, f"must be {kind}{_range(lo, hi, lo_open)}{unit}")
        return x

    return conv


def _range(lo: float | None, hi: float | None, lo_open: bool) -> str:
    return OptionInfo(help="", lo=lo, hi=hi, lo_open=lo_open).bounds_text()  # " >= 0", " in (0, 1]" ...


def boolean_value(v: Any, where: str, base: Path) -> bool:
    """``true`` or ``false``."""
    if not isinstance(v, bool):
        raise bad_value(where, v, f"must be true or false (no quotes), not {type_name(v)}")
    return v


def date_value(v: Any, where: str, base: Path) -> _dt.date | None:
    """A date (TOML date or ISO string); an empty string gives None."""
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    if isinstance(v, str):
        if not v.strip():
            return None
        try:
            return _dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise bad_value(where, v, "must be a date written YYYY-MM-DD (e.g. 2021-09-18)")


def reference_value(v: Any, where: str, base: Path) -> str | _dt.date:
    """``"earliest"``, a date (TOML date or ``"YYYY-MM-DD"``) or a scene ID."""
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    if isinstance(v, str) and v.strip():
        s = v.strip()
        if s.lower() == "earliest":
            return "earliest"
        try:
            return _dt.date.fromisoformat(s)
        except ValueError:
            return s  # a scene ID, checked against the imagery when the run starts
    raise bad_value(where, v, '"earliest", a date written YYYY-MM-DD (e.g. 2021-09-18) or a scene ID')


def string_list_value(*, choices: Sequence[str] | None = None) -> Converter:
    """A converter to a tuple of strings (one string is a list of one), each one of ``choices`` if given."""
    def conv(v: Any, where: str, base: Path) -> tuple[str, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip() for x in items):
            what = f"strings from {quoted_list(choices)}" if choices else "non-empty strings"
            raise bad_value(where, v, f"must be a string or a non-empty list of {what}")
        out = tuple(x.strip().lower() if choices else x.strip() for x in items)
        if choices:
            bad = [x for x in out if x not in choices]
            if bad:
                raise bad_value(where, v, f"{quoted_list(bad)} not allowed; use {quoted_list(choices)}"
                                f"{suggestion(bad[0], choices)}")
        return out

    return conv


def fraction_table_value(keys: Sequence[str]) -> Converter:
    """A converter to a table of ``keys`` = a number in (0, 1]."""
    def conv(v: Any, where: str, base: Path) -> dict[str, float]:
        if not isinstance(v, dict):
            raise bad_value(where, v, f"must be a table of {quoted_list(keys)} = number in (0, 1]")
        out: dict[str, float] = {}
        for k, x in v.items():
            if k not in keys:
                raise ConfigError(f"{where}: unknown key \"{k}\"{suggestion(k, keys)}; "
                                  f"allowed keys: {quoted_list(keys)}")
            out[k] = number_value(lo=0.0, hi=1.0, lo_open=True)(x, where.replace("] ", ".", 1) + "] " + k, base)
        return out

    return conv



def min_area_value(v: Any, where: str, base: Path) -> float | str:
    """A minimum mapping unit: a number >= 0, or ``"auto"``."""
    if isinstance(v, str) and v.strip().lower() != "auto":
        raise bad_value(where, v, 'must be a number >= 0 or "auto", not a string')
    return "auto" if isinstance(v, str) else number_value(lo=0.0)(v, where, base)


def retired_thresholds_value(v: Any, where: str, base: Path) -> str:
    """A key no longer used: accepted with a warning."""
    import warnings

    from ecopatch.errors import EcopatchWarning

    s_ = choice_value(_THRESHOLDS)(v, where, base)
    warnings.warn(
        f"{where}: thresholds is no longer used and is ignored: change is measured against each scene pair's "
        "own noise ([detection.change] z_seed / z_grow); remove the key",
        EcopatchWarning, stacklevel=2,
    )
    return s_


def _given_path(v: Any, where: str, base: Path, to: str = "") -> Path | None:
    """``v`` as an absolute path (None for an empty string); an error if it is not a string."""
    if not isinstance(v, str):
        raise bad_value(where, v, f"must be a path (a string){to}, not {type_name(v)}")
    return absolute_path(v.strip(), base) if v.strip() else None


def existing_path_value(*, what: str) -> Converter:
    """A converter to the absolute path of an existing file or folder (an empty string gives None)."""
    def conv(v: Any, where: str, base: Path) -> Path | None:
        p = _given_path(v, where, base, f" to {what}")
        if p is not None and not p.exists():
            raise bad_value(where, v, f"{p} does not exist; give the path to {what} "
                                      f"(relative paths are read from the config file's folder {base})")
        return p

    return conv


def output_path_value(*, want_dir: bool) -> Converter:
    """A converter to the absolute path of a folder or file to write (checked it can be one)."""
    def conv(v: Any, where: str, base: Path) -> Path | None:
        p = _given_path(v, where, base)
        if p is not None:
            check_new_path(p, where, want_dir=want_dir)
        return p

    return conv


def scheduler_value(v: Any, where: str, base: Path) -> str | None:
    """A window scheduler (:func:`check_scheduler`)."""
    if not isinstance(v, str):
        raise bad_value(where, v, f"must be a string, not {type_name(v)}")
    return check_scheduler(v, where)


def check_scheduler(value: str, where: str = "scheduler") -> str | None:
    """Validate a Dask scheduler name or address.

    Parameters
    ----------
    value : str
        ``"threads"``, ``"synchronous"``, ``"processes"``, a
        dask.distributed address (``tcp://10.0.0.5:8786``), or ``""``.
    where : str
        The key or option, for the message.

    Returns
    -------
    str or None
        The value (lower-cased for the names), None for ``""``.

    Raises
    ------
    ConfigError
        Anything else.
    """
    s = value.strip()
    if not s:
        return None
    if "://" in s:
        return s
    if s.lower() in _SCHEDULERS:
        return s.lower()
    raise ConfigError(
        f"{where} = {_show(value)}: use {quoted_list(_SCHEDULERS)} or a dask.distributed address such as "
        f"\"tcp://10.0.0.5:8786\"{suggestion(s.lower(), _SCHEDULERS)}"
    )


def sensor_value(v: Any, where: str, base: Path) -> str | None:
    """``"auto"`` or a sensor name of :data:`ecopatch.raster.sensors.SENSORS`."""
    s = string_value(none_words=("", "auto"), lower=True)(v, where, base)
    if s is None:
        return None
    from ecopatch.raster.sensors import SENSOR_ALIASES, SENSORS

    s = SENSOR_ALIASES.get(s.replace("-", "_"), s)
    if s not in SENSORS:
        raise bad_value(where, v, f"must be \"auto\" or one of {quoted_list(sorted(SENSORS))}"
                                  f"{suggestion(s, list(SENSORS))}")
    return s


def field_name_value(v: Any, where: str, base: Path) -> str | None:
    """A field name, ``"auto"`` (look for the usual names) or ``"none"`` (None)."""
    if not isinstance(v, str) or not v.strip():
        raise bad_value(where, v, 'must be "auto" (look for the usual names), "none" (the layer has no such field) '
                        "or a field name")
    s = v.strip()
    return None if s.lower() == "none" else ("auto" if s.lower() == "auto" else s)


def id_prefix_value(v: Any, where: str, base: Path) -> str:
    """A case ID prefix: letters, digits and underscores."""
    s = string_value()(v, where, base)
    if not s or not s.replace("_", "").isalnum():
        raise bad_value(where, v, "must be letters and digits, e.g. \"YB\"")
    return s


def absolute_path(value: str | os.PathLike[str], base: Path) -> Path:
    """``value`` (``~`` and ``$VARS`` expanded) as an absolute path, relative ones against ``base``."""
    p = Path(os.path.expandvars(os.path.expanduser(str(value))))
    return Path(os.path.normpath(p if p.is_absolute() else (base / p)))


def check_new_path(p: Path, where: str, *, want_dir: bool) -> None:
    """Raise unless ``p`` can be written as a folder (``want_dir``) or as a file."""
    if want_dir and p.exists() and not p.is_dir():
        raise ConfigError(f"{where} = {str(p)!r}: exists and is not a folder; give a folder for the run folders")
    if not want_dir and p.is_dir():
        raise ConfigError(f"{where} = {str(p)!r}: is a folder; give a file name such as ledger.gpkg")


def quoted_list(items: Sequence[str] | Mapping[str, Any]) -> str:
    """The items quoted and separated by commas, for a message."""
    return ", ".join(f'"{x}"' for x in items)


def suggestion(word: str, options: Sequence[str] | Mapping[str, Any], *, fmt: str = '"{}"') -> str:
    """`` (did you mean "x"?)`` for the closest of ``options``, or nothing."""
    close = difflib.get_close_matches(str(word).lower(), list(options), n=1, cutoff=0.6)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""
