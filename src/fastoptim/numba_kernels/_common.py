"""What every Numba kernel shares: the one decorator factory and the per-element helpers."""
from __future__ import annotations

import functools

import numba

__all__ = ["jit", "direction", "nan_max"]

# The one decorator of every kernel.
jit = functools.partial(numba.njit, parallel=True, cache=True, error_model="numpy",
                        fastmath=False, nogil=True)


@numba.njit(inline="always", cache=True)
def direction(grad, param, grad_sign, weight_decay, use_wd):
    """grad_sign*g (+ weight_decay*p when use_wd: never 0*p, which is NaN for an inf p).
    ``use_wd`` is the same for every element, so LLVM unswitches the loop on it."""
    return grad_sign * grad + weight_decay * param if use_wd else grad_sign * grad


@numba.njit(inline="always", cache=True)
def nan_max(a, b):
    """max(a, b) propagating NaN, like np.maximum."""
    return a if (a > b or a != a) else b
