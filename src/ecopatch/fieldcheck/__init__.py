"""Ground check (地上查): field packages out, field results in, restoration verdicts of mines.

A client of the case ledger (:mod:`ecopatch.ledger`): it reads the ledger's
cases and mine history and records what the field teams found through the
ledger's own writers, in one transaction per import.  The ledger never
imports this package.

- :mod:`.package` — the field package of a ledger's cases
  (:func:`export_package`, :func:`write_field_package`): GeoPackage, KML,
  CSV and workbook with Chinese headers, image chips, and the results
  template with drop-down lists.
- :mod:`.results` — the filled results back: :func:`read_results`,
  :func:`validate_results` (every row checked against the cases, each
  refusal with its reason) and :func:`import_results`, which records the
  accepted rows.
- :mod:`.verdicts` — the same for restored mines (修复核查): the verdicts
  template (:func:`export_verdict_template`), :func:`import_verdicts`, and
  the agreement of field and imagery (:func:`verdict_agreement`).
- :mod:`.cells` — the readers and cell checks both share.

Detection precision from the verdicts recorded is the ledger's
(:meth:`ecopatch.ledger.Ledger.precision`).

Examples
--------
>>> from ecopatch.fieldcheck import export_package, import_results  # doctest: +SKIP
>>> pkg = export_package(ledger, "field_2024_09", dispatch=True)  # doctest: +SKIP
>>> report = import_results(ledger, pkg.results_template)  # doctest: +SKIP
"""

from __future__ import annotations

from ecopatch.fieldcheck.cells import CONCLUSIONS, RESULT_HEADERS, RESULTS_SHEET
from ecopatch.fieldcheck.package import FieldPackage, export_package, write_field_package
from ecopatch.fieldcheck.results import (
    ImportPlan,
    ImportReport,
    PlannedEvent,
    import_results,
    read_results,
    validate_results,
)
from ecopatch.fieldcheck.verdicts import (
    VERDICT_HEADERS,
    VERDICTS,
    VERDICTS_SHEET,
    AgreementReport,
    PlannedVerdict,
    VerdictImportReport,
    VerdictPlan,
    export_verdict_template,
    import_verdicts,
    read_verdicts,
    validate_verdicts,
    verdict_agreement,
    write_verdict_template,
)
from ecopatch.ledger.report import PACKAGE_HEADERS
from ecopatch.ledger.values import parse_date

__all__ = [
    "CONCLUSIONS",
    "PACKAGE_HEADERS",
    "RESULTS_SHEET",
    "RESULT_HEADERS",
    "VERDICTS",
    "VERDICTS_SHEET",
    "VERDICT_HEADERS",
    "AgreementReport",
    "FieldPackage",
    "ImportPlan",
    "ImportReport",
    "PlannedEvent",
    "PlannedVerdict",
    "VerdictImportReport",
    "VerdictPlan",
    "export_package",
    "export_verdict_template",
    "import_results",
    "import_verdicts",
    "parse_date",
    "read_results",
    "read_verdicts",
    "validate_results",
    "validate_verdicts",
    "verdict_agreement",
    "write_field_package",
    "write_verdict_template",
]
