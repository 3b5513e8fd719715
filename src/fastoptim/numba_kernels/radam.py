"""RAdam (rectified Adam, decoupled weight decay): the Numba twin of ``csrc/radam.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def radam_kernel(param, grad, exp_avg, exp_avg_sq, grad_sign, weight_decay, param_scale,
                 beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction1, lr,
                 rectify, rect, bias_correction2_sqrt, eps):
    """d = grad_sign*g (+ wd*p);  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d;
    u = m / bias_correction1 * lr, times (bias_correction2_sqrt / (sqrt(v) + eps)) * rect
    when rectify;  p = param_scale*p - u"""
    t = param.dtype.type
    grad_sign, weight_decay, param_scale = t(grad_sign), t(weight_decay), t(param_scale)
    beta1, one_minus_beta1 = t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    bias_correction1, lr, rect = t(bias_correction1), t(lr), t(rect)
    bias_correction2_sqrt, eps = t(bias_correction2_sqrt), t(eps)
    use_wd = weight_decay != 0
    scale = param_scale != 1
    rectified = bool(rectify)
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        m = beta1 * exp_avg[i] + one_minus_beta1 * d
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (d * d)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        u = m / bias_correction1 * lr
        if rectified:
            u = u * (bias_correction2_sqrt / (np.sqrt(v) + eps)) * rect
        kept = param_scale * p if scale else p
        param[i] = kept - u
