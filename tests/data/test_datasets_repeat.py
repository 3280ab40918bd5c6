"""Another date of the same synthetic ground: ecopatch.data.datasets.write_repeat_product."""

from __future__ import annotations

import warnings

import pytest

import ecopatch
from ecopatch.data.datasets import write_repeat_product
from ecopatch.errors import InputDataError, OutputExistsError


def test_repeat_product_is_the_same_ground_on_another_date(sample, inputs, tmp_path):
    p = write_repeat_product(sample, "2025-09-15", out_dir=tmp_path, seed=3, noise=0.004)
    assert p.name == "S2B_MSIL2A_20250915T023529_N0510_R089_T50RQU_20250915T061020.SAFE"
    assert not list(p.rglob("*20240912*")) and "2024-09-12" not in (p / "MTD_MSIL2A.xml").read_text()
    s = ecopatch.open_scene(p)
    assert s.date.isoformat() == "2025-09-15" and s.metadata["processing_baseline"] == "05.10"
    a = inputs.after.read(["red", "nir"])
    b = s.read(["red", "nir"])
    both = a.valid & b.valid
    assert (both == a.valid).all()  # same cloud mask
    diff = (b["nir"] - a["nir"])[both]
    assert abs(float(diff.mean())) < 5e-4 and float(diff.std()) == pytest.approx(0.004, rel=0.1)
    with pytest.raises(OutputExistsError):
        write_repeat_product(sample, "2025-09-15", out_dir=tmp_path)
    assert write_repeat_product(sample, "2025-09-15", out_dir=tmp_path, overwrite=True) == p
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary folder left


def test_cleared_mines_become_bare(sample, inputs, tmp_path):
    p = write_repeat_product(sample, "2025-09-15", out_dir=tmp_path, noise=0.0, cleared={"YH-KS-006": 1.0})
    s = ecopatch.open_scene(p)
    one = inputs.mines[inputs.mines["patch_id"] == "YH-KS-006"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = ecopatch.assess_restoration(inputs.after, s, one, progress=False).iloc[0]
    # pixels whose centre is outside the mine keep their vegetation: the edge cells
    assert a["veg_after_m2"] < 0.1 * a["veg_before_m2"] and a["status"] == "degraded"
    with pytest.raises(InputDataError, match=r"no mine \['NOPE'\]"):
        write_repeat_product(sample, "2026-01-01", out_dir=tmp_path, cleared={"NOPE": 1.0})
    with pytest.raises(InputDataError, match=r"cleared\['YH-KS-006'\] = 1.5"):
        write_repeat_product(sample, "2026-01-01", out_dir=tmp_path, cleared={"YH-KS-006": 1.5})
    assert not list(tmp_path.glob("*2026*"))
