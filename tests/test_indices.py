import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ecopatch.compute.indices import INDICES, bsi, compute_index, exg, mndwi, ndvi
from ecopatch.errors import ConfigError, MissingBandError

refl = arrays(np.float32, st.integers(1, 50),
              elements=st.one_of(st.floats(-0.2, 1.6, width=32), st.just(np.nan)))


def test_hand_checked_values():
    assert float(ndvi(np.float32(0.35), np.float32(0.035))) == pytest.approx(0.818, abs=1e-3)
    assert float(mndwi(0.06, 0.01)) == pytest.approx(0.714, abs=1e-3)
    assert float(bsi(0.10, 0.20, 0.26, 0.34)) == pytest.approx(0.2, abs=1e-6)
    assert float(exg(60, 120, 40)) == pytest.approx(0.636, abs=1e-3)


def test_zero_denominator_is_nan():
    assert np.isnan(ndvi(np.float32(0), np.float32(0)))
    assert np.isnan(exg(0, 0, 0))  # black no-data collar of a drone mosaic


@pytest.mark.parametrize("name", sorted(INDICES))
@given(data=st.data())
def test_indices_in_range_and_nan_exactly_where_invalid(name, data):
    spec = INDICES[name]
    n = data.draw(st.integers(1, 40))
    bands = {b: data.draw(arrays(np.float32, n, elements=st.one_of(
        st.floats(0, 1, width=32), st.just(np.nan)))) for b in spec.bands}
    out = compute_index(name, bands)
    assert out.dtype == np.float32 and out.shape == (n,)
    any_nan = np.any([np.isnan(bands[b]) for b in spec.bands], axis=0)
    assert np.isnan(out[any_nan]).all()
    finite = out[np.isfinite(out)]
    lo, hi = spec.range
    assert ((finite >= lo) & (finite <= hi)).all()


def test_compute_index_errors_name_the_band_and_alternatives():
    with pytest.raises(MissingBandError, match=r"NDVI needs band\(s\) \['nir'\]"):
        compute_index("ndvi", {"red": np.ones(2), "green": np.ones(2), "blue": np.ones(2)}, source="drone.tif")
    with pytest.raises(ConfigError, match="unknown index"):
        compute_index("ndxx", {})
