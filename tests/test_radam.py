"""What is specific to RAdam: the rectification switch (``rho_t > 5``) is decided per call
from the step count, the way torch decides it, and the steps before it ignore the second
moment."""
import numpy as np
import pytest
from testing_settings import COMPILED_BACKENDS

import fastoptim as fo
from fastoptim import _coefficients


def _torch_rho(t, beta2):
    """rho_inf and rho_t written as torch.optim.radam writes them."""
    bias_correction2 = 1 - beta2**t
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf, rho_inf - 2 * t * (beta2**t) / bias_correction2


@pytest.mark.parametrize("beta2", [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999])
def test_rectification_switches_at_torchs_step_with_torchs_term(beta2):
    switched = None
    for t in range(1, 300):
        c = _coefficients.radam(t, 1e-3, 0.9, beta2, 1e-8, 0.0, False, False)
        rho_inf, rho_t = _torch_rho(t, beta2)
        assert bool(c.rectify) == (rho_t > 5), t
        if rho_t > 5:
            switched = t if switched is None else switched
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            assert c.rect == rect, t
            assert c.bias_correction2_sqrt == (1 - beta2**t) ** 0.5
    if beta2 >= 0.9:
        assert switched is not None and switched > 1      # both branches taken
    else:
        assert switched is None                           # rho_inf <= 5: never rectified


@pytest.mark.parametrize("backend", COMPILED_BACKENDS + ["numpy"])
def test_steps_before_the_switch_ignore_eps_and_the_second_moment(backend, rng):
    """Until rho_t > 5 (step 6 with beta2=0.999) the update is lr * m_hat: eps plays no
    part; from the switch on it does."""
    shape = (1001,)
    p = rng.standard_normal(shape)
    runs = {}
    for eps in (1e-8, 10.0):
        q, m, v = p.copy(), np.zeros(shape), np.zeros(shape)
        history = []
        for t in range(1, 8):
            g = np.random.default_rng(t).standard_normal(shape)
            fo.radam_step(q, g, m, v, step=t, lr=0.01, eps=eps, backend=backend)
            history.append(q.copy())
        runs[eps] = history
    switch = next(t for t in range(1, 8) if _torch_rho(t, 0.999)[1] > 5)
    for t in range(1, switch):
        np.testing.assert_array_equal(runs[1e-8][t - 1], runs[10.0][t - 1])
    assert not np.array_equal(runs[1e-8][switch - 1], runs[10.0][switch - 1])
