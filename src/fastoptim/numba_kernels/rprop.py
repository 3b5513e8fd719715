"""Rprop (resilient backpropagation): the Numba twin of ``csrc/rprop.h``."""
from __future__ import annotations

from numba import prange

from ._common import jit


@jit
def rprop_kernel(param, grad, prev, step_size, grad_sign, lr, etaminus, etaplus,
                 step_size_min, step_size_max, first_step):
    """g = grad_sign*grad;  f = etaplus if g*prev > 0, etaminus if < 0, else 1 (NaN too);
    s = clamp((lr if first_step else s) * f, step_size_min, step_size_max);
    g = 0 where g*prev < 0;  prev = g;  p -= sign(g) * s  (sign(NaN) = 0, as torch)"""
    t = param.dtype.type
    grad_sign, lr, etaminus, etaplus = t(grad_sign), t(lr), t(etaminus), t(etaplus)
    lo, hi = t(step_size_min), t(step_size_max)
    one, zero = t(1.0), t(0.0)
    for i in prange(param.size):
        g = grad_sign * grad[i]
        product = g * prev[i]
        factor = etaplus if product > zero else (etaminus if product < zero else one)
        s = (lr if first_step else step_size[i]) * factor
        s = lo if s < lo else s
        s = hi if s > hi else s
        g = zero if product < zero else g
        step_size[i] = s
        prev[i] = g
        sign = (one if g > zero else zero) - (one if g < zero else zero)
        param[i] = param[i] - sign * s
