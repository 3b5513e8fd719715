# cython: language_level=3
"""Test-only: exposes fastoptim/coefficients.pxd's inline helpers to Python (each struct
comes back as a dict in field order), so tests/test_extending.py can compare them with
fastoptim._coefficients (the compiled Python layer). Built by that test, next to examples/embedding/consumer.pyx."""
from fastoptim cimport coefficients as c


def sgd(lr, weight_decay, maximize):
    return c.sgd_coefficients(lr, weight_decay, maximize)


def momentum(lr, momentum, dampening, nesterov, weight_decay, maximize):
    return c.momentum_coefficients(lr, momentum, dampening, nesterov, weight_decay, maximize)


def rmsprop(lr, alpha, eps, weight_decay, momentum, maximize):
    return c.rmsprop_coefficients(lr, alpha, eps, weight_decay, momentum, maximize)


def adam(step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize):
    return c.adam_coefficients(step, lr, beta1, beta2, eps, weight_decay,
                               decoupled_weight_decay, maximize)


def adagrad(step, lr, lr_decay, weight_decay, eps, maximize):
    return c.adagrad_coefficients(step, lr, lr_decay, weight_decay, eps, maximize)


def ewa(beta):
    return c.ewa_coefficients(beta)
