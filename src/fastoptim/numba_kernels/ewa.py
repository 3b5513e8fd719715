"""The exponentially weighted average: the Numba twin of ``csrc/ewa.h``."""
from __future__ import annotations

from numba import prange

from ._common import jit


@jit
def ewa_kernel(average, value, beta, one_minus_beta):
    """average = beta*average + (1-beta)*value"""
    t = average.dtype.type
    beta, one_minus_beta = t(beta), t(one_minus_beta)
    for i in prange(average.size):
        average[i] = beta * average[i] + one_minus_beta * value[i]
