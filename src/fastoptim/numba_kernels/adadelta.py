"""Adadelta: the Numba twin of ``csrc/adadelta.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def adadelta_kernel(param, grad, square_avg, acc_delta, lr, grad_sign, weight_decay, rho,
                    one_minus_rho, eps):
    """d = grad_sign*g (+ wd*p);  s = rho*s + (1-rho)*d*d;
    delta = sqrt(a + eps) / sqrt(s + eps) * d;  a = rho*a + (1-rho)*delta*delta;
    p -= lr * delta"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    rho, one_minus_rho, eps = t(rho), t(one_minus_rho), t(eps)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        s = rho * square_avg[i] + one_minus_rho * (d * d)
        a = acc_delta[i]
        delta = np.sqrt(a + eps) / np.sqrt(s + eps) * d
        square_avg[i] = s
        acc_delta[i] = rho * a + one_minus_rho * (delta * delta)
        param[i] = p - lr * delta
