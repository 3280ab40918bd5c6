"""Area units used by Chinese land administration: m², hectare and mu (亩).

1 mu = 10000/15 m² ≈ 666.67 m², so 1 ha = 15 mu exactly.  Everything inside
ecopatch is in m²; mu and hectares appear only in tables and reports.

Examples
--------
>>> m2_to_mu(10_000.0)
15.0
>>> round(mu_to_m2(1.0), 2)
666.67
>>> m2_to_ha(25_000.0)
2.5
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

__all__ = [
    "HA_M2",
    "MU_M2",
    "area_to_m2",
    "ha_to_m2",
    "m2_to_ha",
    "m2_to_mu",
    "mu_to_m2",
]

#: Square metres in one mu (亩): exactly 10000/15.
MU_M2: float = 10_000.0 / 15.0
#: Square metres in one hectare.
HA_M2: float = 10_000.0

T = TypeVar("T", float, np.ndarray)

# (numerator, denominator) so that mu converts without rounding: 0.6 mu -> 400.0 m².
_UNITS = {"m2": (1.0, 1.0), "ha": (HA_M2, 1.0), "mu": (10_000.0, 15.0)}


def m2_to_mu(area_m2: T) -> T:
    """Convert square metres to mu (亩); 1 mu = 10000/15 m²."""
    return area_m2 * 15.0 / 10_000.0


def mu_to_m2(area_mu: T) -> T:
    """Convert mu (亩) to square metres."""
    return area_mu * 10_000.0 / 15.0


def m2_to_ha(area_m2: T) -> T:
    """Convert square metres to hectares."""
    return area_m2 / HA_M2


def ha_to_m2(area_ha: T) -> T:
    """Convert hectares to square metres."""
    return area_ha * HA_M2


def area_to_m2(value: float, unit: str) -> float:
    """Convert an area in ``unit`` ("m2", "ha" or "mu") to square metres.

    Parameters
    ----------
    value : float
        The area, in ``unit``.
    unit : {"m2", "ha", "mu"}
        Unit of ``value``.

    Returns
    -------
    float
        Area in m².

    Raises
    ------
    ConfigError
        If ``unit`` is not one of the three.

    Examples
    --------
    >>> area_to_m2(0.6, "mu")
    400.0
    """
    from ecopatch.errors import ConfigError

    try:
        num, den = _UNITS[unit]
    except KeyError:
        raise ConfigError(
            f"unknown area unit {unit!r}; use one of {sorted(_UNITS)}"
        ) from None
    return float(value) * num / den
