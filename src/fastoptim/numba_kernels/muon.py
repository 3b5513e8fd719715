"""Muon's element-wise passes: the Numba twins of ``csrc/muon.h`` (not registry kernels:
see ``fastoptim._muon``).

The same chunks (boundaries a function of the size alone), eight-lane sums in double
precision and order of additions as the C kernel, so that ``muon_momentum_kernel`` returns
the C kernel's sum bit for bit on any thread count (the chunks run on threads here).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._common import jit

__all__ = ["muon_momentum_kernel", "muon_apply_kernel", "chunk_length"]

MAX_CHUNKS = 64          # FO_MUON_MAX_CHUNKS of csrc/muon.h
MIN_CHUNK = 16384        # FO_MUON_MIN_CHUNK


@numba.njit(cache=True)
def chunk_length(n):
    """Elements per chunk of an array of ``n`` (``fo_muon_chunk_length``)."""
    chunks = (n + MIN_CHUNK - 1) // MIN_CHUNK
    chunks = min(max(chunks, 1), MAX_CHUNKS)
    length = (n + chunks - 1) // chunks
    return (length + 7) // 8 * 8


@numba.njit(inline="always", cache=True)
def _lerp(a, b, w, one_minus_w, small):
    """torch's lerp: a + w*(b - a) when small (|w| < 0.5), else b - (b - a)*(1 - w)."""
    return a + w * (b - a) if small else b - (b - a) * one_minus_w


@jit
def muon_momentum_kernel(grad, momentum_buffer, update, w, one_minus_w, w_small, nesterov,
                         mu, one_minus_mu, mu_small):
    """buf = lerp(buf, g, w); update = lerp(g, buf, mu) if nesterov else buf; returns
    sum(update^2) in double precision (the C kernel's chunks and lanes)."""
    t = grad.dtype.type
    w, one_minus_w, mu, one_minus_mu = t(w), t(one_minus_w), t(mu), t(one_minus_mu)
    n = grad.size
    length = chunk_length(n)
    chunks = (n + length - 1) // length if n > 0 else 0
    sums = np.zeros(max(chunks, 1))
    for c in prange(chunks):
        lo = c * length
        m_len = min(n - lo, length)
        body = m_len - m_len % 8
        s = np.zeros(8)
        for i in range(lo, lo + body, 8):
            for k in range(8):
                j = i + k
                g = grad[j]
                b = _lerp(momentum_buffer[j], g, w, one_minus_w, w_small)
                u = _lerp(g, b, mu, one_minus_mu, mu_small) if nesterov else b
                momentum_buffer[j] = b
                update[j] = u
                s[k] += np.float64(u) * np.float64(u)
        for j in range(lo + body, lo + m_len):
            g = grad[j]
            b = _lerp(momentum_buffer[j], g, w, one_minus_w, w_small)
            u = _lerp(g, b, mu, one_minus_mu, mu_small) if nesterov else b
            momentum_buffer[j] = b
            update[j] = u
            s[0] += np.float64(u) * np.float64(u)
        sums[c] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))
    total = 0.0
    for c in range(chunks):            # in chunk order
        total += sums[c]
    return total


@jit
def muon_apply_kernel(param, update, param_scale, neg_lr):
    """param = param*param_scale + neg_lr*update."""
    t = param.dtype.type
    param_scale, neg_lr = t(param_scale), t(neg_lr)
    for j in prange(param.size):
        param[j] = param[j] * param_scale + neg_lr * update[j]
