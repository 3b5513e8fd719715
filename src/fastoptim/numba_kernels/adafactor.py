"""Adafactor: the Numba twin of ``csrc/adafactor.h`` (not a registry kernel: see
``fastoptim._adafactor``).

The same passes, blocks (boundaries a function of the shape alone), eight-lane sums in
double precision and order of additions as the C kernel, so its results match the C
kernel's bit for bit on any thread count.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._common import jit

__all__ = ["adafactor_kernel", "adafactor_vector_kernel", "block_rows", "chunk_length"]

MAX_BLOCKS = 16          # FO_AF_MAX_BLOCKS of csrc/adafactor.h
MIN_BLOCK = 16384        # FO_AF_MIN_BLOCK
MAX_CHUNKS = 64          # FO_AF_MAX_CHUNKS


@numba.njit(cache=True)
def block_rows(rows, cols):
    """Rows per block of a rows x cols matrix (``fo_af_block_rows``)."""
    blocks = (rows * cols + MIN_BLOCK - 1) // MIN_BLOCK
    blocks = max(min(blocks, MAX_BLOCKS, rows), 1)
    return (rows + blocks - 1) // blocks if rows > 0 else 1


@numba.njit(cache=True)
def chunk_length(n):
    """Elements per chunk of a vector of n (``fo_af_chunk_length``)."""
    chunks = min(max((n + MIN_BLOCK - 1) // MIN_BLOCK, 1), MAX_CHUNKS)
    length = (n + chunks - 1) // chunks
    return (length + 7) // 8 * 8


@numba.njit(inline="always", cache=True)
def _lanes(x):
    return ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + x[5]) + (x[6] + x[7]))


@numba.njit(inline="always", cache=True)
def _lerp(a, b, w, half, one):
    """torch's lerp: a + w*(b - a) for |w| < 0.5, else b - (b - a)*(1 - w)."""
    return a + w * (b - a) if (w < half and w > -half) else b - (b - a) * (one - w)


@numba.njit(inline="always", cache=True)
def _update(v, g, eps1_sq, one):
    """(1 / sqrt(max(v, eps1^2))) * g (NaN kept)."""
    v = eps1_sq if v < eps1_sq else v
    return (one / np.sqrt(v)) * g


@numba.njit(inline="always", cache=True)
def _factored(ir, ic, g, cap):
    """min(ir * ic, cap) * g (NaN kept): a factored array's update."""
    s = ir * ic
    return (cap if s > cap else s) * g


@numba.njit(cache=True)
def _step(sum_p2, sum_u2, n, eps2, rho, d):
    """-max(eps2, RMS(p)) * rho / max(1, RMS(u)/d)."""
    root_n = math.sqrt(n)
    rms_p = math.sqrt(sum_p2) / root_n
    alpha = (rms_p if rms_p > eps2 else eps2) * rho
    clip = math.sqrt(sum_u2) / (root_n * d)
    return -alpha / (clip if clip > 1.0 else 1.0)


@jit
def adafactor_kernel(param, grad, rvar, cvar, work, batches, rows, cols, norm_by_cols,
                     grad_sign, w, eps1, eps1_sq, eps2, rho, decay, use_wd, d):
    """One step of ``batches`` factored rows x cols matrices (flat, C order), in place:
    pass 1 row/column sums of g^2 and the sum of p^2, the factors' lerp; pass 2 the sum of
    u^2; pass 3 ``p = p*decay (if use_wd) + step*u``. ``work``: the C kernel's layout."""
    t = param.dtype.type
    one, half = t(1.0), t(0.5)
    grad_sign, w, eps1, eps1_sq, decay = t(grad_sign), t(w), t(eps1), t(eps1_sq), t(decay)
    n = batches * rows * cols
    if n == 0:
        return
    length = block_rows(rows, cols)
    nb = (rows + length - 1) // length
    tasks = batches * nb
    psum = tasks * cols
    usum = psum + tasks
    ic = np.empty(batches * cols, param.dtype)      # (the C kernel keeps it in work)
    cap = one / np.sqrt(eps1_sq)
    for c in prange(tasks):
        b = c // nb
        r0 = (c % nb) * length
        r1 = min(r0 + length, rows)
        base = b * rows * cols
        cp = c * cols
        for j in range(cols):
            work[cp + j] = 0.0
        pl = np.zeros(8)
        body = cols - cols % 8
        for i in range(r0, r1):
            row = base + i * cols
            rl = np.zeros(8)
            for j0 in range(0, body, 8):
                for k in range(8):
                    x = np.float64(grad[row + j0 + k]) * np.float64(grad[row + j0 + k])
                    rl[k] += x
                    work[cp + j0 + k] += x
                    pl[k] += np.float64(param[row + j0 + k]) * np.float64(param[row + j0 + k])
            for j in range(body, cols):
                x = np.float64(grad[row + j]) * np.float64(grad[row + j])
                rl[0] += x
                work[cp + j] += x
                pl[0] += np.float64(param[row + j]) * np.float64(param[row + j])
            r = b * rows + i
            rvar[r] = _lerp(rvar[r], t(_lanes(rl) / np.float64(cols)), w, half, one)
        work[psum + c] = _lanes(pl)
    for b in range(batches):
        for j in range(cols):
            s = 0.0
            for k in range(nb):
                s += work[(b * nb + k) * cols + j]
            cvar[b * cols + j] = _lerp(cvar[b * cols + j], t(s / np.float64(rows)), w, half, one)
        mean = 0.0
        if norm_by_cols:
            for j in range(cols):
                mean += np.float64(cvar[b * cols + j])
            m = t(mean / np.float64(cols))
        else:
            for i in range(rows):
                mean += np.float64(rvar[b * rows + i])
            m = t(mean / np.float64(rows))
        m = eps1 if m < eps1 else m
        for j in range(cols):
            ic[b * cols + j] = one / np.sqrt(cvar[b * cols + j] / m)
    for c in prange(tasks):
        b = c // nb
        r0 = (c % nb) * length
        r1 = min(r0 + length, rows)
        base = b * rows * cols
        ul = np.zeros(8)
        body = cols - cols % 8
        for i in range(r0, r1):
            row = base + i * cols
            ir = one / np.sqrt(rvar[b * rows + i])
            for j0 in range(0, body, 8):
                for k in range(8):
                    u = _factored(ir, ic[b * cols + j0 + k], grad[row + j0 + k], cap)
                    ul[k] += np.float64(u) * np.float64(u)
            for j in range(body, cols):
                u = _factored(ir, ic[b * cols + j], grad[row + j], cap)
                ul[0] += np.float64(u) * np.float64(u)
        work[usum + c] = _lanes(ul)
    sum_p2 = 0.0
    sum_u2 = 0.0
    for c in range(tasks):                  # in task order
        sum_p2 += work[psum + c]
        sum_u2 += work[usum + c]
    step = t(_step(sum_p2, sum_u2, n, eps2, rho, d))
    for c in prange(tasks):
        b = c // nb
        r0 = (c % nb) * length
        r1 = min(r0 + length, rows)
        base = b * rows * cols
        for i in range(r0, r1):
            row = base + i * cols
            ir = one / np.sqrt(rvar[b * rows + i])
            for j in range(cols):
                u = _factored(ir, ic[b * cols + j], grad_sign * grad[row + j], cap)
                q = param[row + j] * decay if use_wd else param[row + j]
                param[row + j] = q + step * u


@jit
def adafactor_vector_kernel(param, grad, var, grad_sign, w, eps1_sq, eps2, rho, decay,
                            use_wd, d):
    """One step of an unfactored array (flat), in place: pass 1 ``v = lerp(v, g^2, w)`` and
    the sums of p^2 and u^2; pass 2 ``p = p*decay (if use_wd) + step*u``."""
    t = param.dtype.type
    one, half = t(1.0), t(0.5)
    grad_sign, w, eps1_sq, decay = t(grad_sign), t(w), t(eps1_sq), t(decay)
    n = param.size
    if n == 0:
        return
    length = chunk_length(n)
    chunks = (n + length - 1) // length
    sums = np.zeros((chunks, 2))
    for c in prange(chunks):
        lo = c * length
        hi = min(n, lo + length)
        body = lo + (hi - lo) - (hi - lo) % 8
        pl = np.zeros(8)
        ul = np.zeros(8)
        for i in range(lo, body, 8):
            for k in range(8):
                g = grad_sign * grad[i + k]
                v = _lerp(var[i + k], g * g, w, half, one)
                u = _update(v, g, eps1_sq, one)
                var[i + k] = v
                pl[k] += np.float64(param[i + k]) * np.float64(param[i + k])
                ul[k] += np.float64(u) * np.float64(u)
        for i in range(body, hi):
            g = grad_sign * grad[i]
            v = _lerp(var[i], g * g, w, half, one)
            u = _update(v, g, eps1_sq, one)
            var[i] = v
            pl[0] += np.float64(param[i]) * np.float64(param[i])
            ul[0] += np.float64(u) * np.float64(u)
        sums[c, 0] = _lanes(pl)
        sums[c, 1] = _lanes(ul)
    sum_p2 = 0.0
    sum_u2 = 0.0
    for c in range(chunks):
        sum_p2 += sums[c, 0]
        sum_u2 += sums[c, 1]
    step = t(_step(sum_p2, sum_u2, n, eps2, rho, d))
    for i in prange(n):
        u = _update(var[i], grad_sign * grad[i], eps1_sq, one)
        q = param[i] * decay if use_wd else param[i]
        param[i] = q + step * u
