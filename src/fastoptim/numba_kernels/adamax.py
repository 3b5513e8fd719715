"""Adamax (Adam with the infinity norm): the Numba twin of ``csrc/adamax.h``."""
from __future__ import annotations

from numba import prange

from ._common import direction, jit, nan_max


@jit
def adamax_kernel(param, grad, exp_avg, exp_inf, grad_sign, weight_decay, beta1,
                  one_minus_beta1, beta2, eps, step_size):
    """d = grad_sign*g (+ wd*p);  m = beta1*m + (1-beta1)*d;
    u = max(beta2*u, |d| + eps) (NaN propagates);  p -= step_size * m / u"""
    t = param.dtype.type
    grad_sign, weight_decay = t(grad_sign), t(weight_decay)
    beta1, one_minus_beta1, beta2 = t(beta1), t(one_minus_beta1), t(beta2)
    eps, step_size = t(eps), t(step_size)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        m = beta1 * exp_avg[i] + one_minus_beta1 * d
        u = nan_max(beta2 * exp_inf[i], abs(d) + eps)
        exp_avg[i] = m
        exp_inf[i] = u
        param[i] = p - step_size * m / u
