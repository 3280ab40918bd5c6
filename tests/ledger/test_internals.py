"""The ledger's internal modules: their doctests, and the ledger standing without the field check."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

import ecopatch.ledger.gpkg
import ecopatch.ledger.summary
import ecopatch.ledger.values


@pytest.mark.parametrize("module", [ecopatch.ledger.gpkg, ecopatch.ledger.values, ecopatch.ledger.summary])
def test_doctests(module):
    assert doctest.testmod(module, raise_on_error=False).failed == 0


def test_the_ledger_never_imports_the_field_check():
    """fieldcheck is a client of the ledger: importing and using the ledger loads none of it."""
    code = (
        "import sys, tempfile, os\n"
        "from ecopatch.ledger import Ledger\n"
        "import ecopatch.ledger.check, ecopatch.ledger.migrations, ecopatch.ledger.report\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        "    led = Ledger(os.path.join(d, 'l.gpkg'))\n"
        "    led.summary(); led.precision(); led.check(); led.export_report(os.path.join(d, 'r'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('ecopatch.fieldcheck')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
