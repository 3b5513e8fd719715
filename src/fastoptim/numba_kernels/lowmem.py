"""Adam with bfloat16 or blockwise 8-bit moments: the Numba twins of ``csrc/adam_lowmem.h``
(``fastoptim.lowmem``). The same float32 operations in the same order, the same bfloat16
rounding (integer bit operations) and the same nearest-code search, so the results match
the C kernels bit for bit; parallel over blocks, so they do not depend on the thread count.

``c`` is the float32 array of the 11 per-call scalars (``fastoptim.lowmem._coefficients``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._common import float32_bits, float32_from_bits, jit

__all__ = ["adam_bf16_kernel", "adam_q8_kernel", "lion_bf16_kernel", "BLOCK"]

BLOCK = 256            # FO_Q8_BLOCK
_EXP_CLASSES = 26      # FO_Q8_EXP_CLASSES: the bucket tables' exponent classes
_EXP_LOW = 103         # FO_Q8_EXP_LOW: the biased exponent of 2**-24


@numba.njit(inline="always", cache=True)
def _bf16_load(h):
    return float32_from_bits(np.uint32(np.uint32(h) << np.uint32(16)))


@numba.njit(inline="always", cache=True)
def _bf16_store(f):
    u = float32_bits(np.float32(f))
    if f != f:
        return np.uint16(((u >> np.uint32(16)) & np.uint32(0x8000)) | np.uint32(0x7fc0))
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    return np.uint16((u + np.uint32(0x7fff) + lsb) >> np.uint32(16))


@numba.njit(inline="always", cache=True)
def _update(p, g, m, v, c, use_wd, scale):
    """(new p, new m, new v): csrc/adam_lowmem.h's adam_update."""
    d = c[0] * g + c[1] * p if use_wd else c[0] * g
    mn = c[3] * m + c[4] * d
    vn = c[5] * v + c[6] * (d * d)
    s = np.sqrt(vn)
    bound = c[10] * s
    if mn > bound:
        mn = bound
    elif mn < -bound:
        mn = -bound
    denom = s * c[8] + c[9]
    pn = (c[2] * p if scale else p) - c[7] * mn / denom
    return pn, mn, vn


@numba.njit(inline="always", cache=True)
def _prescale(absmax):
    """FO_Q8_PRESCALE: 2**64 when absmax < 2**-100, else 1."""
    return np.float32(2.0 ** 64) if absmax < np.float32(2.0 ** -100) else np.float32(1.0)


@numba.njit(inline="always", cache=True)
def _index(bucket, shift, x):
    """The index of x's nearest code, csrc/quant8.h's q8_index: the count of midpoints below
    x (ties to the lower value, NaN to 0), from the bucket of x's bits (sign, exponent class,
    top 23 - shift mantissa bits), whose entry is the next midpoint (its low byte the count
    below the bucket), and one comparison."""
    u = np.int64(float32_bits(x))
    bits = 23 - shift
    e = ((u >> 23) & 0xff) - (_EXP_LOW - 1)
    e = 0 if e < 0 else (_EXP_CLASSES - 1 if e > _EXP_CLASSES - 1 else e)
    key = (u >> 31) * (1 << (8 + bits)) + e * (1 << bits) + ((u >> shift) & ((1 << bits) - 1))
    entry = np.uint32(bucket[key])
    idx = np.int64(entry & np.uint32(0xff)) + (1 if x > float32_from_bits(entry) else 0)
    return np.uint8(0 if x != x else idx)


@numba.njit(inline="always", cache=True)
def _encode_block(buf, count, codes, lo, bucket, shift, zero, signed):
    """The block's new absmax (NaN-propagating max of |x|, NaN as the quiet NaN) and its
    codes from buf[:count] (requantize8's rule); returns the absmax."""
    one = np.float32(1.0)
    new = np.float32(0.0)
    for j in range(count):
        a = abs(buf[j]) if signed else buf[j]
        if not (new > a or new != new):
            new = a
    if new != new:
        new = np.float32(np.nan)
    if new > 0:
        pre = _prescale(new)
        inv = one / (new * pre)
        for j in range(count):
            codes[lo + j] = _index(bucket, shift, (buf[j] * pre) * inv)
    else:
        fill = zero if new == 0 else 0
        for j in range(count):
            codes[lo + j] = fill
    return new


@jit
def adam_bf16_kernel(param, grad, exp_avg, exp_avg_sq, c):
    """bfloat16 moments (uint16 bit views), in place."""
    n = param.size
    use_wd = c[1] != 0
    scale = c[2] != 1
    for i in prange(n):
        pn, mn, vn = _update(param[i], grad[i], _bf16_load(exp_avg[i]),
                             _bf16_load(exp_avg_sq[i]), c, use_wd, scale)
        param[i] = pn
        exp_avg[i] = _bf16_store(mn)
        exp_avg_sq[i] = _bf16_store(vn)


@jit
def adam_q8_kernel(param, grad, exp_avg, m_absmax, exp_avg_sq, v_absmax, c, m_code, v_code,
                   m_mid, v_mid, m_zero, v_zero, m_bucket, v_bucket, m_shift, v_shift):
    """Blockwise 8-bit moments, in place: per block dequantize, update, requantize. The
    nearest code is found in the bucket tables, as the C kernels' scalar loop finds it
    (``m_mid`` and ``v_mid``, the midpoints, are the tables' source: not read here)."""
    n = param.size
    use_wd = c[1] != 0
    scale = c[2] != 1
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        mb = np.empty(BLOCK, np.float32)
        vb = np.empty(BLOCK, np.float32)
        am = m_absmax[b]
        av = v_absmax[b]
        for i in range(lo, hi):
            pn, mn, vn = _update(param[i], grad[i], m_code[exp_avg[i]] * am,
                                 v_code[exp_avg_sq[i]] * av, c, use_wd, scale)
            param[i] = pn
            mb[i - lo] = mn
            vb[i - lo] = vn
        m_absmax[b] = _encode_block(mb, hi - lo, exp_avg, lo, m_bucket, m_shift, m_zero, True)
        v_absmax[b] = _encode_block(vb, hi - lo, exp_avg_sq, lo, v_bucket, v_shift, v_zero,
                                     False)


@numba.njit(inline="always", cache=True)
def _sign(e):
    """sign(e) with sign(0) = 0 and NaN kept (np.sign)."""
    if e > 0:
        return np.float32(1.0)
    if e < 0:
        return np.float32(-1.0)
    if e == 0:
        return np.float32(0.0)
    return e


@numba.njit(inline="always", cache=True)
def _lion(p, g, m, c, use_wd):
    """Lion on one element (csrc/lion.h's formula): the new (param, moment)."""
    d = c[1] * g
    u = _sign(c[3] * m + c[4] * d)
    return p - c[0] * (u + c[2] * p if use_wd else u), c[5] * m + c[6] * d


@numba.njit(inline="always", cache=True)
def _momentum(p, g, v, c, use_wd, nesterov):
    """SGD with momentum on one element (csrc/momentum.h's formula): the new (param,
    buffer)."""
    d = c[1] * g + c[2] * p if use_wd else c[1] * g
    v = c[3] * v + c[4] * d
    return p - c[0] * (d + c[3] * v if nesterov else v), v


@jit
def lion_bf16_kernel(param, grad, exp_avg, c):
    """Lion with a bfloat16 moment (uint16 bit view), in place; ``c``: lr, grad_sign,
    weight_decay, beta1, 1 - beta1, beta2, 1 - beta2 (float32)."""
    n = param.size
    use_wd = c[2] != 0
    for i in prange(n):
        param[i], m = _lion(param[i], grad[i], _bf16_load(exp_avg[i]), c, use_wd)
        exp_avg[i] = _bf16_store(m)


@jit
def momentum_bf16_kernel(param, grad, momentum_buffer, c, nesterov):
    """SGD with momentum with a bfloat16 buffer (uint16 bit view), in place; ``c``: lr,
    grad_sign, weight_decay, momentum, 1 - dampening (float32)."""
    n = param.size
    use_wd = c[2] != 0
    for i in prange(n):
        param[i], v = _momentum(param[i], grad[i], _bf16_load(momentum_buffer[i]), c,
                                use_wd, nesterov)
        momentum_buffer[i] = _bf16_store(v)


@jit
def rmsprop_bf16_kernel(param, grad, square_avg, momentum_buffer, grad_avg, c, use_momentum,
                        centered):
    """RMSprop with bfloat16 buffers (uint16 bit views; the unused ones empty), in place;
    ``c``: lr, grad_sign, weight_decay, alpha, 1 - alpha, eps, momentum, eps_root (float32)."""
    n = param.size
    use_wd = c[2] != 0
    root = c[7] != 0
    for i in prange(n):
        p = param[i]
        d = c[1] * grad[i] + c[2] * p if use_wd else c[1] * grad[i]
        s = c[3] * _bf16_load(square_avg[i]) + c[4] * (d * d)
        square_avg[i] = _bf16_store(s)
        variance = s
        if centered:
            a = c[3] * _bf16_load(grad_avg[i]) + c[4] * d
            grad_avg[i] = _bf16_store(a)
            variance = s - a * a
        avg = np.sqrt(variance + c[7]) + c[5] if root else np.sqrt(variance) + c[5]
        if use_momentum:
            b = c[6] * _bf16_load(momentum_buffer[i]) + d / avg
            momentum_buffer[i] = _bf16_store(b)
            param[i] = p - c[0] * b
        else:
            param[i] = p - c[0] * d / avg


@jit
def momentum_q8_kernel(param, grad, codes, absmax, c, nesterov, code, bucket, shift, zero):
    """SGD with momentum with a blockwise 8-bit buffer (the signed code), in place: per block
    dequantize, update, requantize; ``c`` as momentum_bf16_kernel's."""
    n = param.size
    use_wd = c[2] != 0
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        vb = np.empty(BLOCK, np.float32)
        a = absmax[b]
        for i in range(lo, hi):
            param[i], vb[i - lo] = _momentum(param[i], grad[i], code[codes[i]] * a, c, use_wd,
                                             nesterov)
        absmax[b] = _encode_block(vb, hi - lo, codes, lo, bucket, shift, zero, True)


@jit
def lion_q8_kernel(param, grad, codes, absmax, c, code, bucket, shift, zero):
    """Lion with a blockwise 8-bit moment (the signed code), in place: per block dequantize,
    update, requantize; ``c`` as lion_bf16_kernel's."""
    n = param.size
    use_wd = c[2] != 0
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks):
        lo = b * BLOCK
        hi = min(n, lo + BLOCK)
        mb = np.empty(BLOCK, np.float32)
        a = absmax[b]
        for i in range(lo, hi):
            param[i], mb[i - lo] = _lion(param[i], grad[i], code[codes[i]] * a, c, use_wd)
        absmax[b] = _encode_block(mb, hi - lo, codes, lo, bucket, shift, zero, True)
