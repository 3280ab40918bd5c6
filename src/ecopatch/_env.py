"""Settings read from environment variables (``ECOPATCH_*``), with one way to get them wrong."""

from __future__ import annotations

import os

from ecopatch.errors import ConfigError


def env_int(name: str, *, minimum: int, unit: str = "") -> int | None:
    """The whole number in environment variable ``name``, or None when it is unset or empty.

    Parameters
    ----------
    name : str
        Variable name, e.g. ``"ECOPATCH_NUM_WORKERS"``.
    minimum : int
        Smaller values are raised to this.
    unit : str
        Unit named in the error message (e.g. ``"MB"``).

    Raises
    ------
    ConfigError
        If the variable is set to something other than a whole number.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        what = f"a whole number of {unit}" if unit else "a whole number"
        raise ConfigError(f"{name}={raw!r} is not {what}; set it to one (e.g. {name}=4) or unset it") from None
    return max(minimum, value)
