"""Per-call coefficients of the compiled kernels: the one place they are computed.

Each function turns validated user-level hyperparameters into the scalar arguments that
follow the arrays in the compiled backends' entry points (see ``kernels.pxd`` for their
meaning), so that every compiled backend and every caller (functional API, optimizer
classes) uses identical scalars. Computed once per step, never per element.
"""
import math


def sign(maximize: bool) -> float:
    return -1.0 if maximize else 1.0


def sgd(lr, weight_decay, maximize):
    return lr, sign(maximize), weight_decay


def momentum(lr, momentum, dampening, nesterov, weight_decay, maximize):
    return lr, sign(maximize), weight_decay, momentum, 1.0 - dampening, nesterov


def rmsprop(lr, alpha, eps, weight_decay, momentum, maximize):
    return lr, sign(maximize), weight_decay, alpha, 1.0 - alpha, eps, momentum


def adam(step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize):
    if decoupled_weight_decay:
        l2, param_scale = 0.0, 1.0 - lr * weight_decay
    else:
        l2, param_scale = weight_decay, 1.0
    return (sign(maximize), l2, param_scale, beta1, 1.0 - beta1, beta2, 1.0 - beta2,
            lr / (1.0 - beta1**step), 1.0 / math.sqrt(1.0 - beta2**step), eps)


def adagrad(step, lr, lr_decay, weight_decay, eps, maximize):
    return lr / (1.0 + (step - 1) * lr_decay), sign(maximize), weight_decay, eps


def ewa(beta):
    return beta, 1.0 - beta
