"""docs/api.md is generated from the code (docs/make_api.py) and must be in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "make_api.py"


def _make_api():
    if not SCRIPT.is_file():
        pytest.skip("not a source checkout")
    spec = importlib.util.spec_from_file_location("make_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_api_page_is_current():
    mod = _make_api()
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == mod.render(), "docs/api.md is out of date: run python docs/make_api.py"


def test_every_public_name_is_documented():
    import importlib

    mod = _make_api()
    undocumented = []
    for package in mod.PACKAGES:
        pkg = importlib.import_module(package)
        for name in getattr(pkg, "__all__", []):
            obj = getattr(pkg, name)
            if (callable(obj) or isinstance(obj, type)) and not (obj.__doc__ or "").strip():
                undocumented.append(f"{package}.{name}")
    assert undocumented == []
    assert "0x" not in mod.render(), "a signature shows an object address: give that default a readable repr"
