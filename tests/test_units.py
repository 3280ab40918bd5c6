import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecopatch.errors import ConfigError
from ecopatch.geo.units import MU_M2, area_to_m2, ha_to_m2, m2_to_ha, m2_to_mu, mu_to_m2


def test_one_hectare_is_fifteen_mu():
    assert m2_to_mu(10_000.0) == 15.0
    assert mu_to_m2(15.0) == 10_000.0
    assert MU_M2 == pytest.approx(666.6666667)


def test_area_to_m2_units_and_error():
    assert area_to_m2(0.6, "mu") == 400.0
    assert area_to_m2(2, "ha") == 20_000.0
    assert area_to_m2(7, "m2") == 7.0
    with pytest.raises(ConfigError, match="unknown area unit 'acre'"):
        area_to_m2(1, "acre")


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_round_trips(x):
    assert mu_to_m2(m2_to_mu(x)) == pytest.approx(x, rel=1e-12, abs=1e-9)
    assert ha_to_m2(m2_to_ha(x)) == pytest.approx(x, rel=1e-12, abs=1e-9)
    arr = np.array([x, 2 * x])
    np.testing.assert_allclose(mu_to_m2(m2_to_mu(arr)), arr, rtol=1e-12, atol=1e-9)
