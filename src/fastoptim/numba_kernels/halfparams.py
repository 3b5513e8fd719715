"""Adam on float16 / bfloat16 parameters: the Numba twin of ``csrc/adam_mixed.h``
(``fastoptim.halfparams``). The same float32 operations in the same order, the same half
conversions (integer bit operations: bfloat16 round to nearest even, IEEE binary16 with
subnormals) and the same counter-based stochastic rounding, so the results match the C
kernel bit for bit; parallel over chunks, element ``i``'s noise depending on ``i`` only, so
they do not depend on the thread count.

Half values travel as their uint16 bits; float32 bits are reinterpreted through per-chunk
scratch arrays (``view``), never through a temporary per element.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._common import jit

__all__ = ["adam_half_kernel", "rounding_key"]

_CHUNK = 4096           # elements per parallel work item
_BF16 = 0               # FO_HALF_BF16; 1: float16
_U32 = np.uint32
_U64 = np.uint64


@numba.njit(inline="always", cache=True)
def _splitmix64(z):
    z = z + _U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


@numba.njit(cache=True)
def rounding_key(seed, step):
    """fo_rounding_key: the per-call key of the stochastic rounding."""
    return _splitmix64(_U64(seed) ^ (_U64(step) * _U64(0x9E3779B97F4A7C15)))


@numba.njit(inline="always", cache=True)
def _f16_bits_to_f32_bits(h):
    """fo_f16_to_f32, on bits."""
    sign = (_U32(h) & _U32(0x8000)) << _U32(16)
    e = (_U32(h) >> _U32(10)) & _U32(0x1F)
    man = _U32(h) & _U32(0x3FF)
    if e == _U32(0x1F):
        return sign | _U32(0x7F800000) | (man << _U32(13))
    if e != _U32(0):
        return sign | ((e + _U32(112)) << _U32(23)) | (man << _U32(13))
    if man == _U32(0):
        return sign
    shift = 0
    while (man & _U32(0x400)) == _U32(0):
        man = man << _U32(1)
        shift += 1
    return sign | (_U32(113 - shift) << _U32(23)) | ((man & _U32(0x3FF)) << _U32(13))


@numba.njit(inline="always", cache=True)
def _half_bits_to_f32_bits(h, kind):
    if kind == _BF16:
        return _U32(h) << _U32(16)
    return _f16_bits_to_f32_bits(h)


@numba.njit(inline="always", cache=True)
def _f32_bits_to_bf16_rne(bits):
    """fo_f32_to_bf16_rne, on bits: NaN keeps its payload's top bits, quieted."""
    if (bits & _U32(0x7FFFFFFF)) > _U32(0x7F800000):
        return np.uint16((bits >> _U32(16)) | _U32(0x0040))
    lsb = (bits >> _U32(16)) & _U32(1)
    return np.uint16((bits + _U32(0x7FFF) + lsb) >> _U32(16))


@numba.njit(inline="always", cache=True)
def _f32_bits_to_f16_rne(bits):
    """fo_f32_to_f16_rne, on bits."""
    sign = (bits >> _U32(16)) & _U32(0x8000)
    absb = bits & _U32(0x7FFFFFFF)
    if absb > _U32(0x7F800000):
        return np.uint16(sign | _U32(0x7E00) | ((absb >> _U32(13)) & _U32(0x3FF)))
    if absb >= _U32(0x477FF000):
        return np.uint16(sign | _U32(0x7C00))
    if absb < _U32(0x38800000):
        if absb < _U32(0x33000000):
            return np.uint16(sign)
        e = absb >> _U32(23)
        man = (absb & _U32(0x7FFFFF)) | _U32(0x800000)
        shift = _U32(126) - e
        q = man >> shift
        rem = man & ((_U32(1) << shift) - _U32(1))
        half = _U32(1) << (shift - _U32(1))
        if rem > half or (rem == half and (q & _U32(1)) != _U32(0)):
            q += _U32(1)
        return np.uint16(sign | q)
    lsb = (absb >> _U32(13)) & _U32(1)
    absb = absb + _U32(0xFFF) + lsb
    return np.uint16(sign | (((absb >> _U32(23)) - _U32(112)) << _U32(10))
                     | ((absb >> _U32(13)) & _U32(0x3FF)))


@numba.njit(inline="always", cache=True)
def _f32_bits_to_bf16_stochastic(bits, key, i):
    """fo_f32_to_bf16_stochastic with fo_rounding_noise(key, i), on bits."""
    if (bits & _U32(0x7F800000)) == _U32(0x7F800000):
        out = bits >> _U32(16)
        if (bits & _U32(0x007FFFFF)) != _U32(0):
            out = out | _U32(0x0040)
        return np.uint16(out)
    noise = _U32(_splitmix64(key + _U64(i)) >> _U64(48))
    return np.uint16((bits + noise) >> _U32(16))


@jit
def adam_half_kernel(param, grad, master, exp_avg, exp_avg_sq, c, kind, wd_mode, maximize,
                     has_master, sr, key):
    """One step in place. ``param``, ``grad``: uint16 half bits; ``master``: float32 (any
    array when ``has_master`` is false); ``c``: float32 ``(beta1, 1 - beta1, beta2,
    1 - beta2, step_size, inv_bc2_sqrt, eps, weight_decay, decay)``; ``kind`` 0 bfloat16,
    1 float16; ``key``: :func:`rounding_key` when ``sr``."""
    n = param.size
    b1, omb1, b2, omb2, ss, ibc, eps, wd, decay = c[0], c[1], c[2], c[3], c[4], c[5], c[6], \
        c[7], c[8]
    chunks = (n + _CHUNK - 1) // _CHUNK
    for k in prange(chunks):
        lo = k * _CHUNK
        hi = min(n, lo + _CHUNK)
        gbits = np.empty(hi - lo, np.uint32)
        wbits = np.empty(hi - lo, np.uint32)
        for j in range(hi - lo):
            gb = _half_bits_to_f32_bits(grad[lo + j], kind)
            gbits[j] = gb ^ _U32(0x80000000) if maximize else gb     # -g flips the sign bit
            if not has_master:
                wbits[j] = _half_bits_to_f32_bits(param[lo + j], kind)
        gf = gbits.view(np.float32)
        wf = wbits.view(np.float32)
        for j in range(hi - lo):
            i = lo + j
            g = gf[j]
            w = master[i] if has_master else wf[j]
            if wd_mode == 2:
                w = w * decay
            elif wd_mode == 1:
                g = g + wd * w
            mi = b1 * exp_avg[i] + omb1 * g
            vi = b2 * exp_avg_sq[i] + omb2 * g * g
            exp_avg[i] = mi
            exp_avg_sq[i] = vi
            w = w - ss * mi / (np.sqrt(vi) * ibc + eps)
            if has_master:
                master[i] = w
            wf[j] = w
        for j in range(hi - lo):
            if sr:
                param[lo + j] = _f32_bits_to_bf16_stochastic(wbits[j], key, lo + j)
            elif kind == _BF16:
                param[lo + j] = _f32_bits_to_bf16_rne(wbits[j])
            else:
                param[lo + j] = _f32_bits_to_f16_rne(wbits[j])
