"""What is specific to ASGD: torch's averaged parameters ``ax`` (not only the parameters)
over the steps where averaging starts, with eta and mu of the previous step, rounded to
float32 as torch keeps them; and ``ax`` an exact copy of the parameters while mu == 1."""
import numpy as np
import pytest
from testing_settings import ALL_BACKENDS

import fastoptim as fo

torch = pytest.importorskip("torch")

# torch's vectorized add_ with alpha is a fused multiply-add: a few float32 ulps apart
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-14)}


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_params_and_average_match_torch(dtype, backend):
    """lr and lambd large enough that eta changes by percents per step (an eta one step off
    shows), t0 = 4 so that mu < 1 from step 6 on."""
    rng = np.random.default_rng(11)
    n, steps = 1003, 30
    opts = dict(lr=0.2, lambd=0.5, alpha=0.75, t0=4.0, weight_decay=0.05)
    param = rng.standard_normal(n).astype(dtype)
    ax = np.zeros(n, dtype)
    tensor = torch.from_numpy(param.copy())
    peer = torch.optim.ASGD([tensor], foreach=False, **opts)
    for t in range(1, steps + 1):
        g = rng.standard_normal(n).astype(dtype)
        fo.asgd_step(param, g, ax, step=t, backend=backend, **opts)
        tensor.grad = torch.from_numpy(g)
        peer.step()
        np.testing.assert_allclose(param, tensor.numpy(), **TOL[dtype], err_msg=f"t={t}")
        np.testing.assert_allclose(ax, peer.state[tensor]["ax"].numpy(), **TOL[dtype],
                                   err_msg=f"ax, t={t}")
    assert not np.allclose(ax, param)          # averaging did happen


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_average_is_an_exact_copy_while_mu_is_one(backend):
    rng = np.random.default_rng(5)
    param, ax = rng.standard_normal(37), np.full(37, 3.0)
    for t in range(1, 5):
        fo.asgd_step(param, rng.standard_normal(37), ax, step=t, t0=2.0, backend=backend)
        np.testing.assert_array_equal(ax, param)     # mu_t = 1 for t <= t0 + 2
    fo.asgd_step(param, rng.standard_normal(37), ax, step=5, t0=2.0, backend=backend)
    assert not np.array_equal(ax, param)


def test_eta_and_mu_are_those_of_the_previous_step_rounded_to_float32():
    from fastoptim import _coefficients
    c = _coefficients.asgd(1, 0.01, 1e-4, 0.75, 1e6, 0.0, False)
    assert c.eta == float(np.float32(0.01)) and c.mu == 1.0
    c = _coefficients.asgd(7, 0.1, 0.5, 0.75, 2.0, 0.0, False)
    assert c.eta == float(np.float32(0.1 / (1 + 0.5 * 0.1 * 6) ** 0.75))
    assert c.mu == float(np.float32(1 / 4))
    assert c.param_scale == 1 - 0.5 * c.eta
