"""Adamax's infinity norm ``u = max(beta2*u, |g| + eps)`` with non-finite gradients, against
torch.optim.Adamax (torch.maximum: a NaN in either operand gives NaN, and NaN stays in u
from then on since beta2*NaN is NaN) on every backend and SIMD level; bad elements sit in
the vector body and in the scalar tail."""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import kernels

BACKENDS = ["numba", "numpy"] + [f"cython:{t}" for t in kernels.simd_targets()]
N = 37


def _run(backend, grads, dtype):
    def run(b):
        p = np.linspace(-1, 1, N).astype(dtype)
        m, u = np.zeros(N, dtype), np.zeros(N, dtype)
        for t, g in enumerate(grads, 1):
            fo.adamax_step(p, g, m, u, step=t, lr=0.1, weight_decay=0.01, backend=b)
        return p, m, u

    if backend.startswith("cython:"):
        previous = kernels._select_simd_target(backend.split(":")[1])
        try:
            return run("cython")
        finally:
            kernels._select_simd_target(previous)
    return run(backend)


def _torch(grads, dtype):
    torch = pytest.importorskip("torch")
    p = torch.from_numpy(np.linspace(-1, 1, N).astype(dtype))
    opt = torch.optim.Adamax([p], lr=0.1, weight_decay=0.01, foreach=False)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    state = opt.state[p]
    return p.numpy(), state["exp_avg"].numpy(), state["exp_inf"].numpy()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_nonfinite_gradient_like_torch(backend, dtype, bad):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(N).astype(dtype) for _ in range(4)]
    bad_at = [1, N // 2, N - 1]
    grads[1][bad_at] = bad
    ours = _run(backend, grads, dtype)
    theirs = _torch(grads, dtype)
    for name, a, b in zip(("param", "exp_avg", "exp_inf"), ours, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_array_equal(np.isinf(a), np.isinf(b), err_msg=name)
        fine = np.isfinite(b)
        np.testing.assert_allclose(a[fine], b[fine], rtol=1e-5, err_msg=name)
    # NaN: kept by every later maximum; +-inf: m/u is inf/inf. Elsewhere all stays finite.
    assert np.isnan(ours[0][bad_at]).all() and np.isnan(ours[2][bad_at]).all()
    good = np.ones(N, bool)
    good[bad_at] = False
    assert all(np.isfinite(a[good]).all() for a in ours)


def test_exp_inf_is_at_least_eps():
    """eps is added to |g| inside the maximum (torch), not to the denominator: a zero
    gradient on the first step gives u = eps and a zero update."""
    p, g = np.ones(20, np.float32), np.zeros(20, np.float32)
    m, u = np.zeros(20, np.float32), np.zeros(20, np.float32)
    fo.adamax_step(p, g, m, u, step=1, eps=1e-3)
    np.testing.assert_array_equal(u, np.float32(1e-3))
    np.testing.assert_array_equal(p, 1.0)
