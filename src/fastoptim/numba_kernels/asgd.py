"""ASGD (averaged stochastic gradient descent): the Numba twin of ``csrc/asgd.h``."""
from __future__ import annotations

from numba import prange

from ._common import direction, jit


@jit
def asgd_kernel(param, grad, ax, grad_sign, weight_decay, param_scale, eta, mu):
    """d = grad_sign*g (+ wd*p);  p = p*param_scale;  p = p - eta*d;
    ax = p if mu == 1 else ax + (p - ax)*mu"""
    t = param.dtype.type
    grad_sign, weight_decay, param_scale = t(grad_sign), t(weight_decay), t(param_scale)
    eta, mu = t(eta), t(mu)
    use_wd = weight_decay != 0
    average = mu != 1
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        p = p * param_scale
        p = p - eta * d
        param[i] = p
        ax[i] = ax[i] + (p - ax[i]) * mu if average else p
