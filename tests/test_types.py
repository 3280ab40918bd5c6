"""The type check is part of the suite: mypy reports no error on src/ecopatch (config in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean(tmp_path):
    if not (ROOT / "pyproject.toml").is_file() or not (ROOT / "src" / "ecopatch").is_dir():
        pytest.skip("not a source checkout")
    config, cache = str(ROOT / "pyproject.toml"), str(tmp_path / "mypy")
    out, err, status = api.run(["--config-file", config, "--cache-dir", cache, str(ROOT / "src" / "ecopatch")])
    assert status == 0, f"mypy found errors:\n{out}{err}"
