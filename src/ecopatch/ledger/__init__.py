"""The case ledger (台账, 网上管): every suspect patch from detection to closure (销号).

- :mod:`.model` — the pure state machine: :class:`Status`, :class:`EventKind`,
  :class:`Case`, :class:`Event`, the sky tier :class:`SkyTier`, the transition table, :func:`advance` and the
  red/yellow/green code :func:`case_colour`.
- :mod:`.match` — stable case IDs across runs by overlap (:func:`match_patches`).
- :mod:`.store` — :class:`Ledger`, the GeoPackage store and its only writer.
"""

from __future__ import annotations

from ecopatch.ledger.match import MatchResult, match_patches, overlap_score
from ecopatch.ledger.model import (
    TRANSITIONS,
    Case,
    Colour,
    Event,
    EventKind,
    SkyTier,
    Status,
    advance,
    allowed_events,
    case_colour,
    open_case,
    replay,
)
from ecopatch.ledger.store import (
    LEDGER_CRS,
    MINE_COLUMNS,
    SCHEMA_VERSION,
    AddResult,
    AssessmentResult,
    CheckReport,
    Ledger,
    summarise_cases,
)

__all__ = [
    "LEDGER_CRS",
    "MINE_COLUMNS",
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "AddResult",
    "AssessmentResult",
    "Case",
    "CheckReport",
    "Colour",
    "Event",
    "EventKind",
    "Ledger",
    "MatchResult",
    "SkyTier",
    "Status",
    "advance",
    "allowed_events",
    "case_colour",
    "match_patches",
    "open_case",
    "overlap_score",
    "replay",
    "summarise_cases",
]
