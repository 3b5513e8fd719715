# cython: language_level=3
"""Per-call coefficients of the compiled kernels, for the Python layer.

Each function turns validated user-level hyperparameters into the scalar arguments that
follow the arrays in the compiled backends' entry points, in their order (see ``kernels.pxd``
for their meaning), so that every compiled backend and every caller (functional API,
optimizer classes, Numba) uses identical scalars. Computed once per step, never per element.

The formulas live in one place, the ``cdef inline`` helpers of ``coefficients.pxd`` that
Cython consumers ``cimport``; this module only turns their structs into tuples.
"""
from fastoptim.coefficients cimport (AdagradCoefficients, AdamCoefficients, EWACoefficients,
                                     MomentumCoefficients, RMSpropCoefficients,
                                     SGDCoefficients, adagrad_coefficients, adam_coefficients,
                                     ewa_coefficients, grad_sign, momentum_coefficients,
                                     rmsprop_coefficients, sgd_coefficients)


def sign(bint maximize):
    return grad_sign(maximize)


def sgd(double lr, double weight_decay, bint maximize):
    cdef SGDCoefficients c = sgd_coefficients(lr, weight_decay, maximize)
    return c.lr, c.grad_sign, c.weight_decay


def momentum(double lr, double momentum, double dampening, bint nesterov, double weight_decay,
             bint maximize):
    cdef MomentumCoefficients c = momentum_coefficients(lr, momentum, dampening, nesterov,
                                                        weight_decay, maximize)
    return c.lr, c.grad_sign, c.weight_decay, c.momentum, c.one_minus_dampening, c.nesterov


def rmsprop(double lr, double alpha, double eps, double weight_decay, double momentum,
            bint maximize):
    cdef RMSpropCoefficients c = rmsprop_coefficients(lr, alpha, eps, weight_decay, momentum,
                                                      maximize)
    return (c.lr, c.grad_sign, c.weight_decay, c.alpha, c.one_minus_alpha, c.eps,
            c.momentum)


def adam(long long step, double lr, double beta1, double beta2, double eps,
         double weight_decay, bint decoupled_weight_decay, bint maximize):
    cdef AdamCoefficients c = adam_coefficients(step, lr, beta1, beta2, eps, weight_decay,
                                                decoupled_weight_decay, maximize)
    return (c.grad_sign, c.weight_decay, c.param_scale, c.beta1, c.one_minus_beta1, c.beta2,
            c.one_minus_beta2, c.step_size, c.inv_bias_correction2_sqrt, c.eps)


def adagrad(long long step, double lr, double lr_decay, double weight_decay, double eps,
            bint maximize):
    cdef AdagradCoefficients c = adagrad_coefficients(step, lr, lr_decay, weight_decay, eps,
                                                      maximize)
    return c.clr, c.grad_sign, c.weight_decay, c.eps


def ewa(double beta):
    cdef EWACoefficients c = ewa_coefficients(beta)
    return c.beta, c.one_minus_beta
