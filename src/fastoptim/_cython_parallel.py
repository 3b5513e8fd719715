"""The parallel Cython path: the single-array entry points run as one-entry multi-tensor
calls, i.e. one OpenMP parallel region over fixed chunks of the array.

``backend="auto"`` takes this module for calls that move at least
:data:`fastoptim._backends.PARALLEL_MIN_TRAFFIC` bytes of memory traffic per call, when
more than one thread is allowed. The
results are those of the serial kernels, bit for bit, for any thread count (the updates are
element-wise and the chunk boundaries do not depend on the threads).
"""
from . import kernels as _k


def _one(array):
    return None if array is None else (array,)


def sgd(param, grad, *coefficients):
    _k.sgd_multi((param,), (grad,), *coefficients)


def momentum(param, grad, velocity, *coefficients):
    _k.momentum_multi((param,), (grad,), (velocity,), *coefficients)


def rmsprop(param, grad, square_avg, momentum_buffer, grad_avg, *coefficients):
    _k.rmsprop_multi((param,), (grad,), (square_avg,), _one(momentum_buffer), _one(grad_avg),
                     *coefficients)


def adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *coefficients):
    _k.adam_multi((param,), (grad,), (exp_avg,), (exp_avg_sq,), _one(max_exp_avg_sq),
                  *coefficients)


def adagrad(param, grad, state_sum, *coefficients):
    _k.adagrad_multi((param,), (grad,), (state_sum,), *coefficients)


def ewa(average, value, *coefficients):
    _k.ewa_multi((average,), (value,), *coefficients)
