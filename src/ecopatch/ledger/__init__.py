"""The case ledger (台账, 网上管): every suspect patch from detection to closure (销号).

- :mod:`.model` — the pure state machine: :class:`Status`, :class:`EventKind`,
  :class:`Case`, :class:`Event`, the sky tier :class:`SkyTier`, the transition table, :func:`advance` and the
  red/yellow/green code :func:`case_colour`.
- :mod:`.match` — stable case IDs across runs by overlap (:func:`match_patches`).
- :mod:`.store` — :class:`Ledger`, the GeoPackage store and its only writer.
- :mod:`.summary` — counts and areas by dimension (:func:`summarise_cases`) and
  detection precision from field verdicts (:func:`detection_precision`).
- :mod:`.check` — the integrity check behind :meth:`Ledger.check` (:class:`CheckReport`).

The other modules are the store's internals: :mod:`.gpkg` (GeoPackage
geometry encoding), :mod:`.schema` and :mod:`.migrations` (tables and
upgrades), :mod:`.connection`, :mod:`.rows`, :mod:`.queries`,
:mod:`.patches` (checking what goes in), :mod:`.values`, :mod:`.files` and
:mod:`.report` (the monthly report).  The field check
(:mod:`ecopatch.fieldcheck`) is a client of the ledger; the ledger never
imports it.
"""

from __future__ import annotations

from ecopatch.ledger.check import CheckReport
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
from ecopatch.ledger.schema import LEDGER_CRS, SCHEMA_VERSION
from ecopatch.ledger.store import MINE_COLUMNS, AddResult, AssessmentResult, Ledger
from ecopatch.ledger.summary import detection_precision, summarise_cases

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
    "detection_precision",
    "match_patches",
    "open_case",
    "overlap_score",
    "replay",
    "summarise_cases",
]
