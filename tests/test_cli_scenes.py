"""Command-line parity for reading imagery: band roles, scale/offset/nodata, sensor, date order."""

import numpy as np
import pytest
from click.testing import CliRunner

from ecopatch.cli.main import cli
from ecopatch.cli.options import BANDS
from tests.conftest import write_raster


def test_bands_option_parses_numbers_and_ids():
    assert BANDS.convert("red=3, green=2,nir:4", None, None) == {"red": 3, "green": 2, "nir": 4}
    assert BANDS.convert("nir=B8A", None, None) == {"nir": "B8A"}
    import click

    for bad in ("infrared=4", "red", ","):
        with pytest.raises(click.BadParameter):
            BANDS.convert(bad, None, None)


def _pair(tmp_path):
    # two unlabelled 4-band 16-bit stacks: nothing says which band is which, or how DN become reflectance
    rng = np.random.default_rng(1)
    a = (rng.random((4, 40, 40)) * 2000 + 500).astype("uint16")
    b = a.copy()
    b[:, 10:20, 10:20] = np.array([3000, 3000, 3000, 3100])[:, None, None]  # new bare ground
    old = write_raster(tmp_path / "stack_20190601.tif", a, photometric="MINISBLACK")
    new = write_raster(tmp_path / "stack_20230601.tif", b, photometric="MINISBLACK")
    return old, new


def test_detect_needs_band_roles_then_runs_with_them(tmp_path):
    old, new = _pair(tmp_path)
    out = tmp_path / "p.gpkg"
    base = ["detect", "--before", str(old), "--after", str(new), "--out", str(out), "--min-area", "0"]
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 1 and "bands=" in r.output and "--before-bands" in r.output
    r = CliRunner().invoke(cli, [*base, "--bands", "blue=1,green=2,red=3,nir=4", "--scale", "0.0001"])
    assert r.exit_code == 0, r.output
    assert out.exists()


def test_detect_refuses_reversed_dates_unless_asked(tmp_path):
    old, new = _pair(tmp_path)
    out = tmp_path / "p.gpkg"
    base = ["detect", "--before", str(new), "--after", str(old), "--out", str(out), "--min-area", "0",
            "--bands", "blue=1,green=2,red=3,nir=4", "--scale", "0.0001"]
    r = CliRunner().invoke(cli, base)
    assert r.exit_code == 1 and "older than the before scene" in r.output and "--swap-dates" in r.output
    assert not out.exists()
    r = CliRunner().invoke(cli, [*base, "--swap-dates"])
    assert r.exit_code == 0, r.output
    import geopandas as gpd

    p = gpd.read_file(out)
    assert len(p) and (p["date_after"] == "2023-06-01").all() and p["patch_id"].str.startswith("20230601").all()


def test_per_date_options_override_the_common_ones(tmp_path):
    from ecopatch.cli.options import open_pair

    old, new = _pair(tmp_path)
    params = {"before": str(old), "after": str(new), "bands": {"red": 3, "nir": 4}, "scale": 1e-4,
              "after_scale": 2e-4, "after_bands": {"red": 1, "nir": 4}}
    b, a, swap = open_pair(params)
    assert b.band("red").index == 3 and a.band("red").index == 1
    assert b.band("nir").scale == 1e-4 and a.band("nir").scale == 2e-4 and not swap
