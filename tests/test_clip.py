"""Gradient clipping: global norm in a fixed order, in place, errors change nothing."""
import math

import numpy as np
import pytest

import fastoptim
from fastoptim import clip_grad_norm, clip_grad_value
from testing_settings import DTYPES


def grads_of(rng, dtype, as_dict=True, scale=1.0):
    shapes = {"W1": (20, 30), "b1": (20, 1), "W2": (1, 20), "e": (0,), "v": (1001,)}
    out = {k: (scale * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}
    out["W1"] = np.asfortranarray(out["W1"])
    return out if as_dict else list(out.values())


def vals(g):
    return list(g.values()) if isinstance(g, dict) else g


@pytest.mark.parametrize("as_dict", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_norm_scales_to_max_norm(dtype, as_dict, rng):
    grads = grads_of(rng, dtype, as_dict, scale=3.0)
    before = [g.copy() for g in vals(grads)]
    ptrs = [g.ctypes.data for g in vals(grads)]
    expected = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in before))
    norm = clip_grad_norm(grads, 1.0)
    assert type(norm) is float
    assert norm == pytest.approx(expected, rel=1e-12)
    factor = 1.0 / (expected + 1e-6)
    for g, b in zip(vals(grads), before):
        np.testing.assert_allclose(g, b * dtype(factor), rtol=1e-6 if dtype is np.float32 else 1e-14)
    assert [g.ctypes.data for g in vals(grads)] == ptrs
    after = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in vals(grads)))
    assert after <= 1.0 + 1e-6


def _fixed_order_sum_squares(g):
    """The documented order: 8 double lanes over memory order, remainder into lane 0."""
    x = g.ravel(order="K").astype(np.float64)
    lanes = [0.0] * 8
    m = len(x) - len(x) % 8
    for i in range(m):
        lanes[i % 8] += x[i] * x[i]
    for i in range(m, len(x)):
        lanes[0] += x[i] * x[i]
    s = lanes
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


def test_norm_is_exact_double_sum_in_fixed_order(rng):
    grads = grads_of(rng, np.float32, as_dict=False)
    total = 0.0
    for g in grads:                                   # per-array sums added in list order
        total += _fixed_order_sum_squares(g)
    assert clip_grad_norm(grads, 1e9) == math.sqrt(total)       # bit-exact
    again = [g.copy() for g in grads]
    assert clip_grad_norm(again, 1e9) == clip_grad_norm(grads, 1e9)


def test_small_norm_is_untouched(rng):
    grads = grads_of(rng, np.float64)
    before = {k: g.copy() for k, g in grads.items()}
    norm = clip_grad_norm(grads, 1e6)
    assert norm > 0
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


@pytest.mark.parametrize("bad", [np.inf, np.nan, 1e200])
def test_nonfinite_norm(bad, rng):
    grads = grads_of(rng, np.float64)
    grads["b1"][3, 0] = bad
    before = {k: g.copy() for k, g in grads.items()}
    with pytest.raises(ValueError, match=r"non-finite\), first in grads\['b1'\]; nothing was scaled"):
        clip_grad_norm(grads, 1.0)
    norm = clip_grad_norm(grads, 1.0, error_if_nonfinite=False)
    assert not math.isfinite(norm)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_grad_value(dtype, rng):
    grads = grads_of(rng, dtype, scale=2.0)
    grads["v"][0] = np.nan
    expected = {k: np.clip(g, -0.5, 0.5) for k, g in grads.items()}
    assert clip_grad_value(grads, 0.5) is None
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[k])
    assert np.isnan(grads["v"][0])


@pytest.mark.parametrize("call,exc,msg", [
    (lambda g: clip_grad_norm(g, 0.0), ValueError, "clip_grad_norm: max_norm must be > 0"),
    (lambda g: clip_grad_norm(g, 1.0, error_if_nonfinite=1), TypeError, "error_if_nonfinite must be a bool"),
    (lambda g: clip_grad_value(g, -1.0), ValueError, "clip_value must be > 0"),
    (lambda g: clip_grad_norm(dict(g, x=np.ones(3, np.int32)), 1.0), TypeError, r"grads\['x'\] must have dtype"),
    (lambda g: clip_grad_value(dict(g, x=g["v"][::2]), 1.0), ValueError, r"grads\['x'\] must be C- or F-contiguous"),
    (lambda g: clip_grad_norm(dict(g, x=g["v"][:10]), 1.0), ValueError, r"grads\['v'\] and grads\['x'\] share memory"),
    (lambda g: clip_grad_norm(g["v"], 1.0), TypeError, "wrap it in a list"),
])
def test_errors_change_nothing(call, exc, msg, rng):
    grads = grads_of(rng, np.float64, scale=10.0)
    before = {k: g.copy() for k, g in grads.items()}
    with pytest.raises(exc, match=msg):
        call(grads)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_readonly_grad_rejected(rng):
    g = np.ones(3)
    g.flags.writeable = False
    with pytest.raises(ValueError, match=r"grads\[0\] is read-only"):
        clip_grad_value([g], 1.0)


def test_empty_list():
    assert clip_grad_norm([], 1.0) == 0.0


def test_public():
    assert fastoptim.clip_grad_norm is clip_grad_norm
    assert fastoptim.clip_grad_value is clip_grad_value
