"""The ``"numba"`` backend: multi-threaded ``prange`` twins of the Cython kernels.

Imported lazily (by :func:`fastoptim._backends.numba_backend`), never by ``import fastoptim``.

Two layers:

* **njit kernels** (``sgd_kernel``, ``momentum_kernel``, ``rmsprop_kernel``, ``adam_kernel``,
  ``adagrad_kernel``, ``ewa_kernel``) on 1-D contiguous arrays, with the same arguments in the
  same order as the C kernels in ``kernels.pxd`` minus ``n`` (read that file for each
  scalar's meaning). A user's own ``@numba.njit`` code may call them directly; optional state
  arrays are passed as ``None``, which Numba compiles away. They update their arrays in place,
  allocate nothing, never raise, check nothing (the caller guarantees equal sizes, one dtype,
  no aliasing) and run on ``numba.get_num_threads()`` threads. Each scalar is first converted
  to the arrays' dtype, as the Cython kernels do, so float32 arrays compute in float32.
* **Python entry points** (``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``)
  with exactly the positional signatures of those in :mod:`fastoptim.kernels`. They take
  arrays already validated by :mod:`fastoptim.functional` (any shape, contiguous in one common
  order), flatten them to 1-D views and run the kernel on :func:`fastoptim.get_num_threads`
  threads, restoring Numba's own thread count afterwards.

Every kernel is compiled by :data:`_jit`: ``parallel=True``, ``cache=True`` (compiled code is
kept on disk, so a new process does not recompile), ``error_model="numpy"`` (the Python error
model's division checks stop LLVM from vectorizing), ``fastmath=False`` (results follow IEEE
arithmetic, as in the Cython kernels) and ``nogil=True``.
"""
from __future__ import annotations

import functools
import itertools

import numba
import numpy as np
from numba import prange

from . import _coefficients as _coef
from . import _threads
from ._registry import KERNELS as _SPECS

__all__ = [
    "sgd_kernel", "momentum_kernel", "rmsprop_kernel", "adam_kernel", "adagrad_kernel",
    "ewa_kernel", "sgd", "momentum", "rmsprop", "adam", "adagrad", "ewa", "warmup",
]

# The one decorator of every kernel.
_jit = functools.partial(numba.njit, parallel=True, cache=True, error_model="numpy",
                         fastmath=False, nogil=True)


# ---------------------------------------------------------------------------------------------
# njit kernels (1-D arrays; formulas identical to kernels.pyx)
# ---------------------------------------------------------------------------------------------

@numba.njit(inline="always", cache=True)
def _direction(grad, param, grad_sign, weight_decay, use_wd):
    """grad_sign*g (+ weight_decay*p when use_wd: never 0*p, which is NaN for an inf p).
    ``use_wd`` is the same for every element, so LLVM unswitches the loop on it."""
    return grad_sign * grad + weight_decay * param if use_wd else grad_sign * grad


@numba.njit(inline="always", cache=True)
def _nan_max(a, b):
    """max(a, b) propagating NaN, like np.maximum."""
    return a if (a > b or a != a) else b


@_jit
def sgd_kernel(param, grad, lr, grad_sign, weight_decay):
    """d = grad_sign*g (+ weight_decay*p);  p -= lr*d"""
    t = param.dtype.type
    lr, grad_sign, weight_decay = t(lr), t(grad_sign), t(weight_decay)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        param[i] = param[i] - lr * _direction(grad[i], param[i], grad_sign, weight_decay,
                                              use_wd)


@_jit
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
            d = _direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
            v = momentum * momentum_buffer[i] + one_minus_dampening * d
            momentum_buffer[i] = v
            param[i] = param[i] - lr * (d + momentum * v)
    else:
        for i in prange(param.size):
            d = _direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
            v = momentum * momentum_buffer[i] + one_minus_dampening * d
            momentum_buffer[i] = v
            param[i] = param[i] - lr * v


@_jit
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
        d = _direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
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


@_jit
def adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, grad_sign, weight_decay,
                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                inv_bias_correction2_sqrt, eps):
    """d = grad_sign*g (+ wd*p);  m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d;
    AMSGrad (max_exp_avg_sq not None): vmax = max(vmax, v) (NaN propagates), used for v;
    p = param_scale*p - step_size * m / (sqrt(v)*inv_bias_correction2_sqrt + eps)"""
    t = param.dtype.type
    grad_sign, weight_decay, param_scale = t(grad_sign), t(weight_decay), t(param_scale)
    beta1, one_minus_beta1 = t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    step_size, inv_bc2_sqrt, eps = t(step_size), t(inv_bias_correction2_sqrt), t(eps)
    use_wd = weight_decay != 0
    scale = param_scale != 1
    for i in prange(param.size):
        p = param[i]
        d = _direction(grad[i], p, grad_sign, weight_decay, use_wd)
        m = beta1 * exp_avg[i] + one_minus_beta1 * d
        v = beta2 * exp_avg_sq[i] + one_minus_beta2 * d * d
        exp_avg[i] = m
        exp_avg_sq[i] = v
        if max_exp_avg_sq is not None:  # pruned at compile time, like rmsprop's options
            v = _nan_max(v, max_exp_avg_sq[i])
            max_exp_avg_sq[i] = v
        kept = param_scale * p if scale else p
        param[i] = kept - step_size * m / (np.sqrt(v) * inv_bc2_sqrt + eps)


@_jit
def adagrad_kernel(param, grad, state_sum, clr, grad_sign, weight_decay, eps):
    """d = grad_sign*g (+ wd*p);  G += d*d;  p -= clr * d / (sqrt(G) + eps)"""
    t = param.dtype.type
    clr, grad_sign, weight_decay, eps = t(clr), t(grad_sign), t(weight_decay), t(eps)
    use_wd = weight_decay != 0
    for i in prange(param.size):
        d = _direction(grad[i], param[i], grad_sign, weight_decay, use_wd)
        s = state_sum[i] + d * d
        state_sum[i] = s
        param[i] = param[i] - clr * d / (np.sqrt(s) + eps)


@_jit
def ewa_kernel(average, value, beta, one_minus_beta):
    """average = beta*average + (1-beta)*value"""
    t = average.dtype.type
    beta, one_minus_beta = t(beta), t(one_minus_beta)
    for i in prange(average.size):
        average[i] = beta * average[i] + one_minus_beta * value[i]


KERNELS = (sgd_kernel, momentum_kernel, rmsprop_kernel, adam_kernel, adagrad_kernel,
           ewa_kernel)


# ---------------------------------------------------------------------------------------------
# Python entry points (unchecked: called by fastoptim.functional after validation)
# ---------------------------------------------------------------------------------------------

def _flat(a):
    """A 1-D view of a contiguous array (either order), or None."""
    return None if a is None else a.ravel(order="K")


_serial_twins = {}


def _serial(kernel):
    """The kernel compiled without ``parallel`` (its ``prange`` runs as ``range``), for a
    process created by fork(): Numba's parallel launcher does not survive fork (its OpenMP
    layer terminates the child), so a forked child runs these. Compiled on first use in the
    child, and not cached on disk: Numba's cache index does not tell them from the parallel
    kernels of the same function, and would hand back the parallel code."""
    twin = _serial_twins.get(kernel)
    if twin is None:
        twin = _serial_twins[kernel] = numba.njit(
            kernel.py_func, parallel=False, cache=False, error_model="numpy", fastmath=False,
            nogil=True)
    return twin


def _run(kernel, *args):
    """Call ``kernel`` on fastoptim's thread count, leaving Numba's own setting as it was."""
    if _threads.in_forked_child():
        return _serial(kernel)(*args)
    n = min(_threads.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    if n == previous:
        return kernel(*args)
    numba.set_num_threads(n)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


def _entry(name: str, kernel):
    """The Python entry point ``name`` of this backend: the signature of
    ``fastoptim.kernels.<name>`` (the kernel's arrays, ``None`` for an absent optional state,
    then its :class:`~fastoptim.kernels.Coefficients`), flattening each array to 1-D."""
    def entry(*arrays_then_coefficients):
        *arrays, coefficients = arrays_then_coefficients
        _run(kernel, *[_flat(a) for a in arrays], *coefficients.values())

    entry.__name__ = entry.__qualname__ = name
    return entry


sgd = _entry("sgd", sgd_kernel)
momentum = _entry("momentum", momentum_kernel)
rmsprop = _entry("rmsprop", rmsprop_kernel)
adam = _entry("adam", adam_kernel)
adagrad = _entry("adagrad", adagrad_kernel)
ewa = _entry("ewa", ewa_kernel)


def warmup(dtypes=(np.float32, np.float64)) -> int:
    """Compile (or load from the disk cache) every specialization the entry points use.

    That is every kernel, for each dtype, with every combination of optional state arrays
    and with a writeable and a read-only ``grad``/``value``. Returns the number of compiled
    specializations held by the kernels afterwards.
    """
    for spec in _SPECS.values():
        hyper = {**spec.defaults(), "lr": 0.1, "step": 1, "beta": 0.9}
        coefficients = getattr(_coef, spec.name)(*[hyper[a] for a in spec.coefficient_args])
        optional = [s for s in spec.states if s.enabled_by is not None]
        entry = globals()[spec.name]
        for dtype in dtypes:
            for readonly in (False, True):
                for present in itertools.product((False, True), repeat=len(optional)):
                    on = {s.name for s, p in zip(optional, present) if p}
                    grad = np.zeros(1, dtype)
                    grad.flags.writeable = not readonly
                    states = [np.zeros(1, dtype) if s.enabled_by is None or s.name in on
                              else None for s in spec.states]
                    entry(np.zeros(1, dtype), grad, *states, coefficients)
    return sum(len(k.signatures) for k in KERNELS)
