"""RMSprop (centered, with momentum): the Numba twin of ``csrc/rmsprop.h``."""
from __future__ import annotations

import numpy as np
from numba import prange

from ._common import direction, jit


@jit
def rmsprop_kernel(param, grad, square_avg, momentum_buffer, grad_avg, lr, grad_sign,
                   weight_decay, alpha, one_minus_alpha, eps, momentum, eps_root=0.0):
    """d = grad_sign*g (+ wd*p);  s = alpha*s + (1-alpha)*d*d;
    centered (grad_avg not None): a = alpha*a + (1-alpha)*d; avg = sqrt(s - a*a + eps_root) + eps,
    else avg = sqrt(s + eps_root) + eps (eps_root == 0: no addition, today's loop);
    momentum_buffer not None: b = momentum*b + d/avg; p -= lr*b, else p -= lr*d/avg"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    alpha, one_minus_alpha, eps, momentum = t(alpha), t(one_minus_alpha), t(eps), t(momentum)
    eps_root = t(eps_root)
    use_wd = weight_decay != 0
    root = eps_root != 0      # the same for every element: LLVM unswitches the loop on it
    # `is None` tests on arguments are pruned at compile time: no branch is left in the loop.
    for i in prange(param.size):
        d = direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
        s = alpha * square_avg[i] + one_minus_alpha * (d * d)
        square_avg[i] = s
        variance = s
        if grad_avg is not None:
            a = alpha * grad_avg[i] + one_minus_alpha * d
            grad_avg[i] = a
            variance = s - a * a
        if root:
            avg = np.sqrt(variance + eps_root) + eps
        else:
            avg = np.sqrt(variance) + eps
        if momentum_buffer is None:
            param[i] = param[i] - lr * d / avg
        else:
            b = momentum * momentum_buffer[i] + d / avg
            momentum_buffer[i] = b
            param[i] = param[i] - lr * b
