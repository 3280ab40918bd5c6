"""ecopatch: sky watch, ground check (天上看、地上查).

Per-patch monitoring of abandoned-mine restoration and nature-reserve
encroachment from satellite and drone imagery, with a ledger that carries each
suspect patch (疑似图斑) through field verification to closure (销号).
"""

from __future__ import annotations

import logging

from .errors import EcopatchError

__version__ = "0.1.0"

__all__ = [
    "EcopatchError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
