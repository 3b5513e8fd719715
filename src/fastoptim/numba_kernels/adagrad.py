"""Adagrad: the Numba twin of ``csrc/adagrad.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def adagrad_kernel(param, grad, state_sum, clr, grad_sign, weight_decay, eps):
    """d = grad_sign*g (+ wd*p);  G += d*d;  p -= clr * d / (sqrt(G) + eps)"""
    t = param.dtype.type
    clr, grad_sign, weight_decay, eps = t(clr), t(grad_sign), t(weight_decay), t(eps)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        d = direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
        s = state_sum[i] + d * d
        state_sum[i] = s
        param[i] = param[i] - clr * d / (np.sqrt(s) + eps)
