"""Lion (evolved sign momentum): the Numba twin of ``csrc/lion.h``."""
from __future__ import annotations

import numba
from numba import prange

from ._common import jit


@numba.njit(inline="always", cache=True)
def _sign(x, one, zero):
    """np.sign(x): 1, -1, +0 for either zero, NaN for NaN (the select of csrc/lion.h);
    ``one``, ``zero`` of the arrays' dtype."""
    return one if x > 0 else (-one if x < 0 else (zero if x == 0 else x))


@jit
def lion_kernel(param, grad, exp_avg, lr, grad_sign, weight_decay, beta1, one_minus_beta1,
                beta2, one_minus_beta2):
    """d = grad_sign*g;  u = sign(beta1*m + (1-beta1)*d);  m = beta2*m + (1-beta2)*d;
    p -= lr * (u + wd*p) (the wd term only when wd != 0)"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    beta1, one_minus_beta1 = t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    one, zero = t(1), t(0)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        p = param[i]
        d = grad_sign * grad[i]
        m = exp_avg[i]
        u = _sign(beta1 * m + one_minus_beta1 * d, one, zero)
        exp_avg[i] = beta2 * m + one_minus_beta2 * d
        param[i] = p - lr * (u + weight_decay * p if use_wd else u)
