"""RMSprop (centered, with momentum): the Numba twin of ``csrc/rmsprop.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def rmsprop_kernel(param, grad, square_avg, momentum_buffer, grad_avg, lr, grad_sign,
                   weight_decay, alpha, one_minus_alpha, eps, momentum):
    """d = grad_sign*g (+ wd*p);  s = alpha*s + (1-alpha)*d*d;
    centered (grad_avg not None): a = alpha*a + (1-alpha)*d; avg = sqrt(s - a*a) + eps,
    else avg = sqrt(s) + eps;
    momentum_buffer not None: b = momentum*b + d/avg; p -= lr*b, else p -= lr*d/avg"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    alpha, one_minus_alpha, eps, momentum = t(alpha), t(one_minus_alpha), t(eps), t(momentum)
    use_wd = weight_decay != 0
    # `is None` tests on arguments are pruned at compile time: no branch is left in the loop.
    for i in prange(param.size):
        d = direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
        s = alpha * square_avg[i] + one_minus_alpha * d * d
        square_avg[i] = s
        if grad_avg is None:
            avg = np.sqrt(s) + eps
        else:
            a = alpha * grad_avg[i] + one_minus_alpha * d
            grad_avg[i] = a
            avg = np.sqrt(s - a * a) + eps
        if momentum_buffer is None:
            param[i] = param[i] - lr * d / avg
        else:
            b = momentum * momentum_buffer[i] + d / avg
            momentum_buffer[i] = b
            param[i] = param[i] - lr * b
