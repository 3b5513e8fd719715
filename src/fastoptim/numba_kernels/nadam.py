"""NAdam (Nesterov momentum in Adam, decoupled weight decay): the Numba twin of
``csrc/nadam.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def nadam_kernel(param, grad, exp_avg, exp_avg_sq, grad_sign, weight_decay, param_scale,
                 beta1, one_minus_beta1, beta2, one_minus_beta2, bias_correction2, eps,
                 grad_coef, exp_avg_coef):
    """d = grad_sign*g (+ wd*p);  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d;
    denom = sqrt(v / bias_correction2) + eps;
    p = (param_scale*p + grad_coef * d / denom) + exp_avg_coef * m / denom"""
    t = param.dtype.type
    grad_sign, weight_decay, param_scale = t(grad_sign), t(weight_decay), t(param_scale)
    beta1, one_minus_beta1 = t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    bias_correction2, eps = t(bias_correction2), t(eps)
    grad_coef, exp_avg_coef = t(grad_coef), t(exp_avg_coef)
    use_wd = weight_decay != 0
    scale = param_scale != 1
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        m = beta1 * exp_avg[i] + one_minus_beta1 * d
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (d * d)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        denom = np.sqrt(v / bias_correction2) + eps
        kept = param_scale * p if scale else p
        q = kept + grad_coef * d / denom
        param[i] = q + exp_avg_coef * m / denom
