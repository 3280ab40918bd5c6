import pytest

from ecopatch._env import env_int
from ecopatch.errors import ConfigError


def test_env_int_unset_empty_clamped_and_wrong(monkeypatch):
    monkeypatch.delenv("ECOPATCH_TEST_N", raising=False)
    assert env_int("ECOPATCH_TEST_N", minimum=1) is None
    monkeypatch.setenv("ECOPATCH_TEST_N", "  ")
    assert env_int("ECOPATCH_TEST_N", minimum=1) is None
    monkeypatch.setenv("ECOPATCH_TEST_N", " 12 ")
    assert env_int("ECOPATCH_TEST_N", minimum=1) == 12
    monkeypatch.setenv("ECOPATCH_TEST_N", "-3")
    assert env_int("ECOPATCH_TEST_N", minimum=0) == 0
    monkeypatch.setenv("ECOPATCH_TEST_N", "64MB")
    with pytest.raises(ConfigError, match=r"ECOPATCH_TEST_N='64MB' is not a whole number of MB"):
        env_int("ECOPATCH_TEST_N", minimum=0, unit="MB")


def test_every_ecopatch_variable_names_itself_when_wrong(monkeypatch):
    from ecopatch.engine.tiling import _num_workers
    from ecopatch.raster.blocks import default_budget as _tile_cache_budget

    monkeypatch.setenv("ECOPATCH_NUM_WORKERS", "all")
    with pytest.raises(ConfigError, match="ECOPATCH_NUM_WORKERS"):
        _num_workers()
    monkeypatch.setenv("ECOPATCH_NUM_WORKERS", "0")
    assert _num_workers() == 1
    monkeypatch.setenv("ECOPATCH_TILE_CACHE_MB", "0")
    assert _tile_cache_budget() == 0
    monkeypatch.setenv("ECOPATCH_TILE_CACHE_MB", "")
    from ecopatch.raster.fileread import TILE_CACHE_MB

    assert _tile_cache_budget() == TILE_CACHE_MB * 1024 * 1024
