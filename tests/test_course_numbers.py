"""Worked numbers from the course and closed-form checks of the formulas."""
import numpy as np
import pytest
from testing_settings import ALL_BACKENDS

import fastoptim as fo


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_bias_corrected_ewa_after_two_values_divides_by_0_0396(backend):
    beta = 0.98
    theta = np.array([[40.0, 49.0], [10.0, -3.0]])
    v = np.zeros(2)
    fo.ewa_update(v, theta[0], beta=beta, backend=backend)
    fo.ewa_update(v, theta[1], beta=beta, backend=backend)
    assert 1 - beta**2 == pytest.approx(0.0396)
    expected = (beta * (1 - beta) * theta[0] + (1 - beta) * theta[1]) / 0.0396
    np.testing.assert_allclose(v / (1 - beta**2), expected, rtol=1e-12)
    # a constant signal is recovered exactly once bias-corrected
    c = np.full(3, 7.0)
    w = np.zeros(3)
    for t in range(1, 6):
        fo.ewa_update(w, c, beta=beta, backend=backend)
        np.testing.assert_allclose(w / (1 - beta**t), c, rtol=1e-12)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_step_moves_each_param_by_lr(backend, dtype):
    """With zero state, bias correction makes step 1 exactly -lr * g / (|g| + eps)."""
    g = np.array([3.0, -0.5, 1e-3, -200.0, 7.0], dtype)
    p = np.zeros(5, dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    fo.adam_step(p, g, m, v, step=1, lr=0.01, eps=1e-8, backend=backend)
    np.testing.assert_allclose(p, -0.01 * np.sign(g), rtol=1e-5)
    np.testing.assert_allclose(m, 0.1 * g, rtol=1e-6)
    np.testing.assert_allclose(v, 0.001 * g.astype(np.float64) ** 2, rtol=1e-5)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_ewa_form_of_momentum_is_dampening_equal_to_momentum(backend):
    """The course's v = beta*v + (1-beta)*dW, W -= lr*v."""
    beta, lr = 0.9, 0.1
    W = np.array([1.0, -2.0, 3.0])
    dW = np.array([0.5, 0.25, -1.0])
    v = np.zeros(3)
    W_course, v_course = W.copy(), np.zeros(3)
    for _ in range(3):
        fo.momentum_step(W, dW, v, lr=lr, momentum=beta, dampening=beta, backend=backend)
        v_course = beta * v_course + (1 - beta) * dW
        W_course = W_course - lr * v_course
    np.testing.assert_allclose(W, W_course, rtol=1e-14)
    np.testing.assert_allclose(v, v_course, rtol=1e-14)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_adagrad_lr_decay_formula(backend):
    p = np.array([1.0]); g = np.array([2.0]); s = np.zeros(1)
    fo.adagrad_step(p, g, s, step=3, lr=0.1, lr_decay=0.5, eps=1e-10, backend=backend)
    # clr = 0.1 / (1 + 2*0.5) = 0.05; G = 4; p = 1 - 0.05 * 2 / (2 + 1e-10)
    np.testing.assert_allclose(p, [1 - 0.05 * 2 / (2 + 1e-10)], rtol=1e-15)
    np.testing.assert_allclose(s, [4.0])
