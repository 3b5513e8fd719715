"""Lion, which has no torch.optim peer: against a hand computation, against optax's
``lion`` written out the way optax composes it, and its sign (np.sign's: 0 for either zero,
NaN for NaN) the same bits on every backend and SIMD level, in the vector body and the
scalar tail."""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import kernels

BACKENDS = ["numba", "numpy"] + [f"cython:{t}" for t in kernels.simd_targets()]
REPEAT = 9          # 4 hand-computed elements, 36 in all: vector body and scalar tail


def _on(backend, fn):
    if backend.startswith("cython:"):
        previous = kernels._select_simd_target(backend.split(":")[1])
        try:
            return fn("cython")
        finally:
            kernels._select_simd_target(previous)
    return fn(backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hand_computation(backend, dtype):
    """Two steps with lr=0.1, betas (0.9, 0.99), worked out by hand; a zero gradient on a
    zero momentum has sign 0 and leaves its element in place."""
    def tile(values):
        return np.tile(np.array(values, dtype), REPEAT)

    def run(b, **opts):
        p, m = tile([1.0, -2.0, 0.5, 3.0]), tile([0, 0, 0, 0])
        fo.lion_step(p, tile([0.5, -0.25, 0.0, 1.0]), m, lr=0.1, backend=b, **opts)
        first = p.copy()
        # c = 0.9*m + 0.1*g = [0.0035, -0.02725, 0, -0.041]
        fo.lion_step(p, tile([-0.01, -0.25, 0.0, -0.5]), m, lr=0.1, backend=b, **opts)
        return first, p, m

    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-14, atol=0)
    first, p, m = _on(backend, run)
    np.testing.assert_allclose(first, tile([0.9, -1.9, 0.5, 2.9]), **tol)
    np.testing.assert_allclose(p, tile([0.8, -1.8, 0.5, 3.0]), **tol)
    np.testing.assert_allclose(m, tile([0.00485, -0.004975, 0.0, 0.0049]), **tol)
    # decoupled decay: p - lr*(u + wd*p) = 0.95*p - 0.1*u on the first step
    first, _, _ = _on(backend, lambda b: run(b, weight_decay=0.5))
    np.testing.assert_allclose(first, tile([0.85, -1.8, 0.475, 2.75]), **tol)
    first, _, m = _on(backend, lambda b: run(b, maximize=True))
    np.testing.assert_allclose(first, tile([1.1, -2.1, 0.5, 3.1]), **tol)
    np.testing.assert_allclose(m, -tile([0.00485, -0.004975, 0.0, 0.0049]), **tol)


def _optax_lion(param, grads, *, learning_rate, b1, b2, weight_decay):
    """optax.lion, in NumPy: chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay),
    scale_by_learning_rate(learning_rate)), then optax.apply_updates."""
    mu = np.zeros_like(param)
    for g in grads:
        updates = np.sign((1.0 - b1) * g + b1 * mu)           # scale_by_lion
        mu = (1 - b2) * g + b2 * mu                            # update_moment, order 1
        updates = updates + weight_decay * param               # add_decayed_weights
        updates = -learning_rate * updates                     # scale_by_learning_rate
        param = param + updates                                # apply_updates
    return param, mu


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opts", [dict(lr=1e-3), dict(lr=3e-3, beta1=0.8, beta2=0.9,
                                                         weight_decay=0.3)])
def test_matches_optax_bit_for_bit(opts, dtype, backend):
    """Same operations in the same order: equal bits, over many steps."""
    rng = np.random.default_rng(3)
    n = 1003
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(40)]
    start = rng.standard_normal(n).astype(dtype)
    full = {**dict(beta1=0.9, beta2=0.99, weight_decay=0.0), **opts}
    expected_p, expected_m = _optax_lion(
        start.copy(), grads, learning_rate=full["lr"], b1=full["beta1"], b2=full["beta2"],
        weight_decay=full["weight_decay"])

    def run(b):
        p, m = start.copy(), np.zeros(n, dtype)
        for g in grads:
            fo.lion_step(p, g, m, backend=b, **opts)
        return p, m

    p, m = _on(backend, run)
    np.testing.assert_array_equal(p, expected_p)
    np.testing.assert_array_equal(m, expected_m)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("maximize", [False, True])
def test_sign_is_the_same_bits_everywhere(dtype, maximize):
    """Zeros of either sign, NaN and tiny values, at positions in the vector body and the
    tail. sign(-0.0) is +0 (np.sign): an element with p = m = g = -0.0 stays -0.0 (a sign
    that returned its -0.0 argument would give -0.0 - lr*(-0.0) = +0.0)."""
    n = 37
    tiny = np.finfo(dtype).smallest_subnormal

    def arrays():
        p = np.linspace(-1, 1, n).astype(dtype)
        m = np.zeros(n, dtype)
        g = np.linspace(-2, 2, n).astype(dtype)
        for i in (0, 17, 36):                         # -0.0 everywhere: c = -0.0
            p[i] = m[i] = g[i] = -0.0
        g[[1, 18, 35]] = 0.0                          # c = +0.0
        g[[2, 19, 34]] = np.nan
        g[[3, 20, 33]] = tiny                         # c underflows to zero
        g[[4, 21, 32]] = -tiny
        return p, m, g

    def run(b):
        p, m, g = arrays()
        fo.lion_step(p, g, m, lr=0.1, maximize=maximize, backend=b)
        return p, m

    results = {b: _on(b, run) for b in BACKENDS}
    p_ref, m_ref = results["numpy"]
    if not maximize:
        assert np.signbit(p_ref[[0, 17, 36]]).all() and (p_ref[[0, 17, 36]] == 0).all()
    assert np.isnan(p_ref[[2, 19, 34]]).all()
    np.testing.assert_array_equal(p_ref[[3, 20, 33, 4, 21, 32]],
                                  arrays()[0][[3, 20, 33, 4, 21, 32]])
    bits = np.dtype(f"u{np.dtype(dtype).itemsize}")
    for b, (p, m) in results.items():
        for name, a, r in (("param", p, p_ref), ("exp_avg", m, m_ref)):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(r), err_msg=f"{b} {name}")
            fine = ~np.isnan(r)
            np.testing.assert_array_equal(a[fine].view(bits), r[fine].view(bits),
                                          err_msg=f"{b} {name}")
