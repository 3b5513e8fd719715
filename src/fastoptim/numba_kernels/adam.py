"""Adam with bias correction (AdamW, AMSGrad): the Numba twin of ``csrc/adam.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit, nan_max


@jit
def adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, grad_sign, weight_decay,
                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                inv_bias_correction2_sqrt, eps, eps_root=0.0):
    """d = grad_sign*g (+ wd*p);  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d;
    AMSGrad (max_exp_avg_sq not None): vmax = max(vmax, v) (NaN propagates), used for v;
    p = param_scale*p - step_size * m / (sqrt(v)*inv_bias_correction2_sqrt + eps), or with
    eps_root > 0: p = param_scale*p - step_size * m / (sqrt(v*ibc2 + eps_root) + eps),
    ibc2 = inv_bias_correction2_sqrt**2 (sqrt(v_hat + eps_root) + eps)"""
    t = param.dtype.type
    grad_sign, weight_decay, param_scale = t(grad_sign), t(weight_decay), t(param_scale)
    beta1, one_minus_beta1 = t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    step_size, inv_bc2_sqrt, eps = t(step_size), t(inv_bias_correction2_sqrt), t(eps)
    eps_root = t(eps_root)
    inv_bc2 = inv_bc2_sqrt * inv_bc2_sqrt
    use_wd = weight_decay != 0
    scale = param_scale != 1
    root = eps_root != 0      # the same for every element: LLVM unswitches the loop on it
    for i in prange(param.size):
        p = param[i]
        d = direction(grad[i], p, grad_sign, weight_decay, use_wd)
        m = beta1 * exp_avg[i] + one_minus_beta1 * d
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * (d * d)
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if max_exp_avg_sq is not None:  # pruned at compile time, like rmsprop's options
            v = nan_max(v, max_exp_avg_sq[i])
            max_exp_avg_sq[i] = v
        kept = param_scale * p if scale else p
        if root:
            denom = np.sqrt(v * inv_bc2 + eps_root) + eps
        else:
            denom = np.sqrt(v) * inv_bc2_sqrt + eps
        param[i] = kept - step_size * m / denom
