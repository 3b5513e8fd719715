"""ExponentialMovingAverage: the course's numbers, scalars and arrays, in place, errors."""
import numpy as np
import pytest

import fastoptim
from fastoptim import ExponentialMovingAverage
from testing_settings import ALL_BACKENDS, DTYPES, TOLERANCE


def test_course_bias_correction_after_two_values():
    ema = ExponentialMovingAverage(beta=0.98)
    ema.update(10.0)
    ema.update(12.0)
    v2 = 0.98 * (0.02 * 10.0) + 0.02 * 12.0
    assert 1 - 0.98 ** 2 == pytest.approx(0.0396)
    assert ema.value == pytest.approx(v2 / 0.0396, rel=1e-14)
    assert ema.value == pytest.approx(11.0101, abs=1e-4)
    assert ema.t == 2
    raw = ExponentialMovingAverage(beta=0.98, bias_correction=False)
    raw.update(10.0)
    raw.update(12.0)
    assert raw.value == pytest.approx(v2, rel=1e-14)


def test_temperature_stream_matches_the_course_loop():
    temps = 10 + 5 * np.sin(np.linspace(0, 6, 200)) + np.random.default_rng(0).standard_normal(200)
    ema = ExponentialMovingAverage(0.9)
    v = 0.0
    for t, theta in enumerate(temps, start=1):
        ema.update(float(theta))
        v = 0.9 * v + 0.1 * theta
        assert ema.value == pytest.approx(v / (1 - 0.9 ** t), rel=1e-12)


def test_value_before_update_is_none():
    assert ExponentialMovingAverage().value is None


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_arrays_in_place_match_formula(dtype, backend, rng):
    values = [np.asfortranarray(rng.standard_normal((7, 5)).astype(dtype)) for _ in range(30)]
    ema = ExponentialMovingAverage(0.95, backend=backend)
    ema.update(values[0])
    buf = ema._average
    assert buf.flags.f_contiguous and buf.dtype == dtype and not np.shares_memory(buf, values[0])
    v = np.zeros((7, 5))
    v = 0.95 * v + 0.05 * values[0].astype(np.float64)
    for x in values[1:]:
        x.flags.writeable = False                       # values may be read-only
        ema.update(x)
        v = 0.95 * v + 0.05 * x.astype(np.float64)
    assert ema._average is buf                          # same buffer, updated in place
    out = ema.value
    assert out.dtype == dtype and not np.shares_memory(out, buf)
    np.testing.assert_allclose(out, v / (1 - 0.95 ** 30), **TOLERANCE[np.dtype(dtype)])


def test_errors_change_nothing(rng):
    ema = ExponentialMovingAverage(0.9)
    with pytest.raises(TypeError, match=r"value must have dtype float32 or float64"):
        ema.update(np.arange(3))
    with pytest.raises(ValueError, match="value must be C- or F-contiguous"):
        ema.update(np.ones((4, 4))[:, ::2])
    assert ema.t == 0 and ema.value is None
    ema.update(np.ones(3))
    with pytest.raises(ValueError, match="value must have the shape of average"):
        ema.update(np.ones(4))
    with pytest.raises(TypeError, match="holds arrays"):
        ema.update(1.0)
    assert ema.t == 1
    np.testing.assert_allclose(ema.value, np.ones(3))
    s = ExponentialMovingAverage()
    s.update(2)
    with pytest.raises(TypeError, match="holds scalars"):
        s.update(np.ones(2))
    with pytest.raises(ValueError, match="value must be finite"):
        s.update(float("nan"))
    with pytest.raises(TypeError, match="value must be a real number"):
        s.update("3")
    assert s.t == 1 and s.value == pytest.approx(2.0)


@pytest.mark.parametrize("kw,exc,msg", [
    (dict(beta=1.0), ValueError, r"beta must be in \[0, 1\)"),
    (dict(bias_correction=None), TypeError, "bias_correction must be a bool"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
])
def test_bad_arguments(kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ExponentialMovingAverage(**kw)


def test_public():
    assert fastoptim.ExponentialMovingAverage is ExponentialMovingAverage
