"""Mini-batch SGD: the Numba twin of ``csrc/sgd.h``."""
from __future__ import annotations

from numba import prange

from ._common import direction, jit


@jit
def sgd_kernel(param, grad, lr, grad_sign, weight_decay):
    """d = grad_sign*g (+ weight_decay*p);  p -= lr*d"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        param[i] = param[i] - lr * direction(grad[i], param[i], grad_sign, weight_decay,
                                              use_wd)
