"""SGD with momentum (classical, EWA form, Nesterov): the Numba twin of ``csrc/momentum.h``."""
from __future__ import annotations

from numba import prange

from ._common import direction, jit


@jit
def momentum_kernel(param, grad, momentum_buffer, lr, grad_sign, weight_decay, momentum,
                    one_minus_dampening, nesterov):
    """d = grad_sign*g (+ wd*p);  v = momentum*v + (1-dampening)*d;
    p -= lr*(d + momentum*v) if nesterov else lr*v"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    momentum, one_minus_dampening = t(momentum), t(one_minus_dampening)
    use_wd = weight_decay != 0
    if nesterov:
        for i in prange(param.size):
            d = direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
            v = momentum * momentum_buffer[i] + one_minus_dampening * d
            momentum_buffer[i] = v
            param[i] = param[i] - lr * (d + momentum * v)
    else:
        for i in prange(param.size):
            d = direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
            v = momentum * momentum_buffer[i] + one_minus_dampening * d
            momentum_buffer[i] = v
            param[i] = param[i] - lr * v
