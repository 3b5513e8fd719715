"""LAMB: the Numba twin of ``csrc/lamb.h`` (not a registry kernel: see ``fastoptim._lamb``).

The same two passes, chunks (boundaries a function of the size alone), eight-lane sums in
double precision and fixed order of additions as the C kernel, so that its results match
the C kernel's bit for bit on any thread count.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._common import jit

__all__ = ["lamb_kernel", "chunk_length", "MAX_CHUNKS", "MIN_CHUNK"]

MAX_CHUNKS = 64          # FO_LAMB_MAX_CHUNKS of csrc/lamb.h
MIN_CHUNK = 16384        # FO_LAMB_MIN_CHUNK


@numba.njit(cache=True)
def chunk_length(n):
    """Elements per chunk of an array of ``n`` (``fo_lamb_chunk_length``)."""
    chunks = (n + MIN_CHUNK - 1) // MIN_CHUNK
    chunks = min(max(chunks, 1), MAX_CHUNKS)
    length = (n + chunks - 1) // chunks
    return (length + 7) // 8 * 8


@numba.njit(inline="always", cache=True)
def _direction(m, v, p, inv_bc1, inv_bc2, eps_root, eps, weight_decay, use_wd):
    """r = m_hat / (sqrt(v_hat + eps_root) + eps) (+ weight_decay * p when use_wd)."""
    r = (m * inv_bc1) / (np.sqrt(v * inv_bc2 + eps_root) + eps)
    return r + weight_decay * p if use_wd else r


@jit
def lamb_kernel(param, grad, exp_avg, exp_avg_sq, grad_sign, beta1, one_minus_beta1, beta2,
                one_minus_beta2, inv_bias_correction1, inv_bias_correction2, eps_root, eps,
                weight_decay, lr):
    """Pass 1: d = grad_sign*g; m = beta1*m + (1-beta1)*d; v = beta2*v + (1-beta2)*d*d;
    r = m*inv_bc1 / (sqrt(v*inv_bc2 + eps_root) + eps) (+ wd*p); sums of p^2 and r^2.
    trust = ||p|| / ||r|| (1 if either is 0). Pass 2: p = p - (lr*trust) * r.
    Returns the trust ratio."""
    t = param.dtype.type
    grad_sign, beta1, one_minus_beta1 = t(grad_sign), t(beta1), t(one_minus_beta1)
    beta2, one_minus_beta2 = t(beta2), t(one_minus_beta2)
    c1, c2, eps_root, eps = t(inv_bias_correction1), t(inv_bias_correction2), t(eps_root), t(eps)
    weight_decay = t(weight_decay)
    use_wd = weight_decay != 0
    n = param.size
    length = chunk_length(n)
    chunks = (n + length - 1) // length if n > 0 else 0
    sums = np.zeros((max(chunks, 1), 2))
    for c in prange(chunks):
        lo = c * length
        m_len = min(n - lo, length)
        body = m_len - m_len % 8
        sp = np.zeros(8)
        sr = np.zeros(8)
        for i in range(lo, lo + body, 8):
            for k in range(8):
                j = i + k
                p = param[j]
                d = grad_sign * grad[j]
                m = beta1 * exp_avg[j] + one_minus_beta1 * d
                v = beta2 * exp_avg_sq[j] + one_minus_beta2 * (d * d)
                r = _direction(m, v, p, c1, c2, eps_root, eps, weight_decay, use_wd)
                exp_avg[j] = m
                exp_avg_sq[j] = v
                sp[k] += np.float64(p) * np.float64(p)
                sr[k] += np.float64(r) * np.float64(r)
        for j in range(lo + body, lo + m_len):
            p = param[j]
            d = grad_sign * grad[j]
            m = beta1 * exp_avg[j] + one_minus_beta1 * d
            v = beta2 * exp_avg_sq[j] + one_minus_beta2 * (d * d)
            r = _direction(m, v, p, c1, c2, eps_root, eps, weight_decay, use_wd)
            exp_avg[j] = m
            exp_avg_sq[j] = v
            sp[0] += np.float64(p) * np.float64(p)
            sr[0] += np.float64(r) * np.float64(r)
        sums[c, 0] = ((sp[0] + sp[1]) + (sp[2] + sp[3])) + ((sp[4] + sp[5]) + (sp[6] + sp[7]))
        sums[c, 1] = ((sr[0] + sr[1]) + (sr[2] + sr[3])) + ((sr[4] + sr[5]) + (sr[6] + sr[7]))
    sum_p = 0.0
    sum_r = 0.0
    for c in range(chunks):            # in chunk order
        sum_p += sums[c, 0]
        sum_r += sums[c, 1]
    trust = 1.0 if (sum_p == 0.0 or sum_r == 0.0) else math.sqrt(sum_p) / math.sqrt(sum_r)
    scale = t(lr * trust)
    for j in prange(n):
        p = param[j]
        param[j] = p - scale * _direction(exp_avg[j], exp_avg_sq[j], p, c1, c2, eps_root, eps,
                                          weight_decay, use_wd)
    return trust
