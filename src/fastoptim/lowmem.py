r"""Low-memory optimizer state: Adam / AdamW with bfloat16 or blockwise 8-bit moments.

State precision (``state_dtype``):

* ``"float32"`` / ``"float64"``: today's float moments (:func:`fastoptim.adam_step`);
* ``"bfloat16"``: moments stored as bfloat16 (``ml_dtypes.bfloat16``), computed in
  float32, stored rounded to nearest even: 4 bytes of state per parameter;
* ``"int8"``: bitsandbytes' blockwise dynamic quantization (Dettmers et al., 8-bit
  optimizers): blocks of :data:`BLOCK` = 256 elements, one float32 absmax per block, a
  ``uint8`` index into the signed dynamic code (:func:`dynamic_map`) for :math:`m` and into
  the unsigned one for :math:`v`: 2 + 8/256 = 2.03 bytes per parameter. Arrays under
  :data:`MIN_8BIT_SIZE` = 4096 elements keep float32 state (bitsandbytes' ``min_8bit_size``).

Each step is one fused pass (``csrc/adam_lowmem.h``): per block, dequantize, update and
requantize with the new absmax, the parameter written in the same loop. The update is
Adam's, with one addition, the clamp :math:`|m| \le C_t \sqrt v` that exact arithmetic
guarantees and quantization breaks (the zero-gradient trap, unsloth-zoo #962):

.. math::

    C_t = \frac{1-\beta_1}{\sqrt{1-\beta_2}}\sqrt{\textstyle\sum_{k<t} (\beta_1^2/\beta_2)^k},
    \qquad |\Delta\theta| \le \text{lr}\, C_t \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}

so that Adam's per-step change is bounded as with float32 state.

Functions: :func:`adam_state` (a new state), :func:`adam_lowmem_step` (one step, validated,
backends ``"cython"``, ``"numba"``, ``"numpy"``), :func:`reference_adam_step` (the NumPy
reference, readable), :func:`quantize_blockwise` / :func:`dequantize_blockwise`,
:func:`state_nbytes`. State arrays of the compressed kinds are 1-D, in the parameter's
memory order; a state is a ``dict`` of NumPy arrays (what a checkpoint saves).
"""
from __future__ import annotations

import functools
import math
from typing import Dict, Tuple

import numpy as np
import ml_dtypes

from . import _params, _threads, _validation

__all__ = ["BLOCK", "MIN_8BIT_SIZE", "STATE_DTYPES", "dynamic_map", "code_tables",
           "quantize_blockwise", "dequantize_blockwise", "adam_state", "restore_state",
           "state_kind",
           "state_nbytes", "adam_lowmem_step", "reference_adam_step", "lion_state",
           "lion_lowmem_step", "momentum_state", "momentum_lowmem_step",
           "rmsprop_state", "rmsprop_lowmem_step", "moment_bound", "LowMemAdam",
           "LowMemAdamW"]

BLOCK = 256
MIN_8BIT_SIZE = 4096
STATE_DTYPES = ("float32", "float64", "bfloat16", "int8")
BACKENDS = ("auto", "cython", "numba", "numpy")
bfloat16 = np.dtype(ml_dtypes.bfloat16)

_F = "adam_lowmem_step"


# ---- the 8-bit dynamic code ----------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def dynamic_map(signed: bool = True) -> np.ndarray:
    """bitsandbytes' dynamic quantization map (``create_dynamic_map(signed, 7, 8)``): 256
    sorted float32 values in ``[-1, 1]`` (signed) or ``[0, 1]`` (unsigned), dense near 0:
    decade :math:`10^{i-6}` (i = 0..6) holds the means of a linspace(0.1, 1) grid with
    :math:`2^i` (signed, both signs) or :math:`2^{i+1}` (unsigned) items; then 0 and 1.
    Read-only."""
    data = []
    for i in range(7):
        items = 2 ** i + 1 if signed else 2 ** (i + 1) + 1
        bounds = np.linspace(0.1, 1, items, dtype=np.float32)
        means = (bounds[:-1] + bounds[1:]) / np.float32(2.0)
        scale = np.float32(10.0 ** (i - 6))
        data += list(scale * means)
        if signed:
            data += list(-scale * means)
    data += [np.float32(0.0), np.float32(1.0)]
    code = np.sort(np.array(data, dtype=np.float32))
    assert code.size == 256
    code.setflags(write=False)
    return code


# The nearest-code search of the kernels: a float32 x is put in a bucket by its bits (sign,
# exponent class, the top K mantissa bits); the bucket table holds the number of midpoints
# below the bucket's smallest value, and one comparison with the next midpoint finishes:
# index = count + (x > mid[count]), the entry being mid[count] itself (its low byte is
# count). Exponent class 0 holds |x| < 2**-24, class c = 1..25 the biased exponent 102 + c
# (class 25: [1, 2), where 1.0 lands). K is the smallest number of mantissa bits that
# leaves at most one midpoint per bucket (checked).
# Key: sign * 2**(8 + K) + class * 2**K + the top K mantissa bits.
_EXP_CLASSES = 26
_EXP_LOW = 103          # biased exponent of 2**-24
# the threshold above the last midpoint: the largest float32, whose low byte is 255 (the
# count of midpoints below it); no normalized value exceeds it
_ABOVE_ALL = np.float32(np.finfo(np.float32).max)


def _bucket_table(padded: np.ndarray, bits: int):
    """The int32 bucket table of the 255 midpoints ``padded[:255]`` (the low byte of each its
    index; ``padded[255]`` is ``_ABOVE_ALL``) for ``bits`` mantissa bits, or None when a
    bucket would hold two midpoints. An entry is the bits of the next midpoint (``_ABOVE_ALL``
    above the last), whose low byte is the count of midpoints below the bucket: the kernels'
    search takes one table load per value."""
    mid = padded[:255]
    k = np.arange(2 ** bits, dtype=np.uint32)
    low = np.zeros((_EXP_CLASSES, 2 ** bits), np.float32)
    high = np.zeros_like(low)
    tiny = np.nextafter(np.float32(2.0 ** -24), np.float32(0))
    low[0], high[0] = 0, tiny
    for c in range(1, _EXP_CLASSES):
        lo_bits = (np.uint32(_EXP_LOW + c - 1) << np.uint32(23)) | (k << np.uint32(23 - bits))
        low[c] = lo_bits.view(np.float32)
        high[c] = (lo_bits + np.uint32((1 << (23 - bits)) - 1)).view(np.float32)
    table = np.empty((2, _EXP_CLASSES, 2 ** bits), np.int32)
    for sign, (lo, hi) in enumerate(((low, high), (-high, -low))):
        a = np.searchsorted(mid, lo, side="left")
        b = np.searchsorted(mid, hi, side="left")
        if np.any(b - a > 1):
            return None
        table[sign] = a
    entries = padded.view(np.int32)[table].reshape(2, -1).astype(np.int32)
    # the negative half at 2**(8 + bits), where a float's sign bit lands in its key (the
    # AVX-512 search shifts it there); the entries between are never read
    out = np.zeros((1 << (8 + bits)) + entries.shape[1], np.int32)
    out[:entries.shape[1]] = entries[0]
    out[1 << (8 + bits):] = entries[1]
    return out


# The arithmetic ("decade") search of the AVX-512 kernels, which takes no table load: the
# code is linear inside each decade, so in decade i (n_i codes) the coordinate
#     t = |x| * n_i / (0.9 * 10**(i-6)) - 0.1 * n_i / 0.9
# puts the midpoints between its codes at the integers 1 .. n_i - 1, the midpoint below the
# decade's first code at t = 0.2 (0.19 for decade 0, the midpoint with 0), and the one below
# the next decade's first code at n_i + 1. A region runs from that midpoint below its first
# code ("the decade's start", S_i) to the next decade's start, so the count of midpoints
# below |x| is R_i + 1 + min(floor(t), n_i - 1), R_i the codes of the decades below; the
# kernels compute t' = t + R_i + 1, clamped at R_i + n_i + 0.5, whose floor is the count
# itself. Below S_0 the count is 0 (t' = 0.5 + 0.5 |x| / S_0, clamped at 0.5); above the
# start of "decade 7" (the midpoint of the top code and 1.0) it is all of them (t' constant).
# x's region: its octave (exponent) holds at most one start, so the region is the octave's
# lowest region, + 1 when |x| is above the start inside the octave. The start is the larger
# of the midpoint above 0 (x > S for x >= 0) and the float below the midpoint below 0
# (|x| >= S for x < 0); they differ in the low byte that carries the index, and a |x|
# between the two takes the lower region, where t' is then within eps of an integer:
# R_i + 2 (the next start in the lower decade's line) or 1 (S_0 on the line below it).
# The midpoints are not exactly at the integers (the codes' float32 rounding, and that low
# byte), so a lane whose t' lies within eps of an integer, or is NaN, is left to the bucket
# search; the kernels' tests check every float32 bit pattern against it.
# Layout (float32, DECADE_TABLE entries; octave r = biased exponent mod 32, region k = the
# decade + 1: 0 below S_0, 8 above the start of decade 7):
#   [0:32]   the start inside octave r, +inf when none
#   [32:64]  octave r's lowest region k (int32 bits)
#   [64:80]  the slope of t' in region k
#   [80:96]  its offset: t' = |x| * slope - offset
#   [96:112] the clamp of t' in region k
#   [112]    eps
DECADE_TABLE = 128
_DECADES = 7


def _decade_table(signed: bool, mid: np.ndarray, zero: int) -> np.ndarray:
    """The arithmetic search's table (above) of a code from its ``mid`` (the 255 midpoints
    as the kernels compare them, the low byte of each its index) and ``zero`` (the index of
    its code value 0)."""
    pos = mid[zero:]                            # the midpoints above 0, from the smallest
    neg = -mid[:zero][::-1]                     # the magnitudes of those below 0
    n = [2 ** i if signed else 2 ** (i + 1) for i in range(_DECADES)]
    below = np.concatenate([[0], np.cumsum(n)])     # R_i, i = 0 .. 7
    start = np.array([max(pos[r], np.nextafter(neg[r], np.float32(0))) if r < neg.size
                      else pos[r] for r in below], np.float32)
    out = np.zeros(DECADE_TABLE, np.float32)
    out[:32] = np.inf                   # the octaves the kernels never meet: no start
    region = out[32:64].view(np.int32)
    for exponent in range(_EXP_LOW - 1, 127 + 1):      # [2**-25, 2): the kernels clamp |x|
        low = np.float32(2.0 ** (exponent - 127))
        high = np.float32(2.0 ** (exponent - 126))
        r = exponent % 32
        region[r] = k = int(np.count_nonzero(start < low))
        inside = start[k:][start[k:] < high]
        assert inside.size <= 1, "two decade starts in one octave"
        out[r] = inside[0] if inside.size else np.inf
    slope, offset, clamp = out[64:80], out[80:96], out[96:112]
    slope[0], offset[0], clamp[0] = 0.5 / np.float64(start[0]), -0.5, 0.5     # below S_0
    slope[8], offset[8] = 0, -(below[_DECADES] + 1.5)                         # above all
    clamp[8] = below[_DECADES] + 1.5
    worst = 0.0
    for i in range(_DECADES):
        scale = 10.0 ** (i - 6)
        slope[i + 1] = n[i] / (0.9 * scale)
        offset[i + 1] = 0.1 * n[i] / 0.9 - below[i] - 1
        clamp[i + 1] = below[i] + n[i] + 0.5
        for side in (pos, neg):
            inner = side[below[i] + 1:below[i] + n[i]].astype(np.float64)
            t = inner * np.float64(slope[i + 1]) - np.float64(offset[i + 1])
            if inner.size:
                worst = max(worst, float(np.max(np.abs(t - np.rint(t)))))
    out[112] = worst + 2e-4           # t' is computed to within 2e-5 (one rounding at <= 256)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def code_tables() -> tuple:
    """The tables the kernels take, for the signed (m) and the unsigned (v) code:
    ``(m_code, m_mid, v_code, v_mid, m_zero, v_zero, m_bucket, v_bucket, m_shift,
    v_shift, m_decades, v_decades)``: the 256 code values, their 255 midpoints (the
    nearest-code thresholds, float32, the low byte of each its index) padded to 256 with the
    largest float32, the index of 0, the int32 bucket table of the search and its shift
    (23 - mantissa bits), and the table of the AVX-512 loops' arithmetic search
    (``DECADE_TABLE`` float32), which gives the bucket search's indices without a table
    load."""
    codes, mids, buckets, shifts = [], [], [], []
    for signed in (True, False):
        code = dynamic_map(signed)
        mid = ((code[:-1] + code[1:]) / np.float32(2.0)).astype(np.float32)
        # each midpoint's low 8 mantissa bits replaced by its own index (a relative change
        # below 2**-15 of where the nearest code switches): a bucket table entry is then the
        # next midpoint itself, which the kernels compare with x as it is and whose low byte
        # is the count of midpoints below the bucket
        mid = ((mid.view(np.uint32) & np.uint32(0xFFFFFF00))
               | np.arange(255, dtype=np.uint32)).view(np.float32)
        padded = np.append(mid, _ABOVE_ALL).astype(np.float32)
        for bits in range(4, 12):
            table = _bucket_table(padded, bits)
            if table is not None:
                break
        for a in (padded, table):
            a.setflags(write=False)
        codes.append(code)
        mids.append(padded)
        buckets.append(table)
        shifts.append(23 - bits)
    zeros = [int(np.flatnonzero(dynamic_map(s) == 0)[0]) for s in (True, False)]
    decades = [_decade_table(s, m[:255], z) for s, m, z in zip((True, False), mids, zeros)]
    return (codes[0], mids[0], codes[1], mids[1], zeros[0], zeros[1], buckets[0], buckets[1],
            shifts[0], shifts[1], decades[0], decades[1])


def _nearest(x: np.ndarray, signed: bool) -> np.ndarray:
    """The index of the code value nearest to each normalized x (ties to the lower, NaN to 0)."""
    mid = code_tables()[1 if signed else 3][:255]
    idx = np.searchsorted(mid, x, side="left")
    return np.where(np.isnan(x), 0, idx).astype(np.uint8)


def quantize_blockwise(x: np.ndarray, signed: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Blockwise dynamic quantization of the float32 values ``x`` (flattened in memory
    order): returns ``(codes, absmax)``, ``codes`` uint8 of ``x.size``, ``absmax`` float32 of
    ``ceil(x.size / 256)``. Each value is stored as the nearest code of
    ``x * (1 / absmax)`` (both scaled by 2**64 first when absmax < 2**-100); a block whose
    absmax is 0 stores the zero code."""
    x = np.asarray(x, dtype=np.float32).reshape(-1, order="A")
    n = x.size
    blocks = -(-n // BLOCK)
    padded = np.zeros(blocks * BLOCK, dtype=np.float32)
    padded[:n] = x
    padded = padded.reshape(blocks, BLOCK)
    absmax = np.max(np.abs(padded), axis=1) if blocks else np.zeros(0, np.float32)
    # a NaN absmax is the quiet NaN 0x7fc00000 (which NaN a maximum meets first depends on
    # the order it reads the values in)
    absmax = np.where(np.isnan(absmax), np.float32(np.nan), absmax).astype(np.float32)
    # x * (1 / absmax), both prescaled by 2**64 when absmax < 2**-100 (exact) so that the
    # reciprocal of a tiny absmax cannot overflow
    pre = np.where(absmax < np.float32(2.0 ** -100), np.float32(2.0 ** 64),
                   np.float32(1.0)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / (absmax * pre)
        normalized = (padded * pre[:, None]) * inv[:, None]
    codes = _nearest(normalized, signed)
    zero = code_tables()[4 if signed else 5]
    codes[absmax == 0] = zero
    codes[np.isnan(absmax)] = 0
    return codes.reshape(-1)[:n].copy(), absmax


def dequantize_blockwise(codes: np.ndarray, absmax: np.ndarray, signed: bool) -> np.ndarray:
    """The float32 values ``code[codes] * absmax`` (each block by its absmax), 1-D."""
    code = dynamic_map(signed)
    values = code[codes]
    scale = np.repeat(absmax.astype(np.float32), BLOCK)[:codes.size]
    return values * scale


# ---- state ---------------------------------------------------------------------------------
def adam_state(param: np.ndarray, state_dtype: str = "int8") -> Dict[str, np.ndarray]:
    """A new (zero) Adam state for ``param`` in ``state_dtype`` (:data:`STATE_DTYPES`).

    ``"float32"`` / ``"float64"``: ``exp_avg``, ``exp_avg_sq`` of ``param``'s shape (the
    dtype must be ``param``'s); ``"bfloat16"``: both 1-D bfloat16; ``"int8"``: ``exp_avg``,
    ``exp_avg_sq`` 1-D uint8 code indices and ``exp_avg_absmax``, ``exp_avg_sq_absmax``
    float32 per block -- or float32 moments when ``param.size < MIN_8BIT_SIZE``.
    """
    if not isinstance(param, np.ndarray):
        raise TypeError(f"adam_state: param must be a numpy.ndarray, got {type(param).__name__}")
    if state_dtype not in STATE_DTYPES:
        raise ValueError(f"adam_state: state_dtype must be one of {STATE_DTYPES}, got "
                         f"{state_dtype!r}")
    if state_dtype in ("float32", "float64"):
        if param.dtype != np.dtype(state_dtype):
            raise ValueError(f"adam_state: state_dtype {state_dtype!r} needs {state_dtype} "
                             f"parameters, got {param.dtype}")
        return {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
    if param.dtype != np.float32:
        raise ValueError(f"adam_state: state_dtype {state_dtype!r} needs float32 parameters, "
                         f"got {param.dtype}")
    n = param.size
    if state_dtype == "bfloat16":
        return {"exp_avg": np.zeros(n, bfloat16), "exp_avg_sq": np.zeros(n, bfloat16)}
    if n < MIN_8BIT_SIZE:
        return {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param)}
    m_zero, v_zero = code_tables()[4:6]
    blocks = -(-n // BLOCK)
    return {"exp_avg": np.full(n, m_zero, np.uint8),
            "exp_avg_absmax": np.zeros(blocks, np.float32),
            "exp_avg_sq": np.full(n, v_zero, np.uint8),
            "exp_avg_sq_absmax": np.zeros(blocks, np.float32)}


def restore_state(arrays) -> Dict[str, np.ndarray]:
    """A state from saved arrays (``np.load`` of an ``.npz``): ``.npz`` stores bfloat16 as
    raw 2-byte records (dtype ``V2``), which are viewed back as bfloat16 (no copy); uint16
    bits are accepted the same way. Codes and scales come back as they were: bit-exact."""
    out = {}
    for key in ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax"):
        if key in arrays:
            a = np.asarray(arrays[key])
            if a.dtype.itemsize == 2 and a.dtype.kind in "Vu":
                a = a.view(bfloat16)
            out[key] = a
    return out


def state_kind(state) -> str:
    """``"float32"``, ``"float64"``, ``"bfloat16"`` or ``"int8"``: what the arrays hold
    (Adam's and Lion's ``exp_avg``, RMSprop's ``square_avg``, SGD's ``momentum_buffer``)."""
    for name in ("exp_avg", "square_avg", "momentum_buffer"):
        if name in state:
            return _kind_of(state[name])
    raise KeyError("state_kind: no exp_avg, square_avg or momentum_buffer in the state")


_COMPRESSED_KINDS = ("bfloat16", "int8")
_KINDS = {np.dtype(np.uint8): "int8", bfloat16: "bfloat16",
          np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _kind_of(m: np.ndarray) -> str:
    """What a state buffer holds, by its dtype (a dict lookup: ``str(dtype)`` took 5 µs,
    once per array per step)."""
    kind = _KINDS.get(m.dtype)
    return str(m.dtype) if kind is None else kind


def state_nbytes(state) -> int:
    """Bytes held by the state's arrays."""
    return sum(a.nbytes for a in state.values())


# ---- per-call scalars -----------------------------------------------------------------------
def _coefficients(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize) -> tuple:
    """The kernels' 11 scalars (fo_lm_adam_coefficients' order), computed once per call."""
    grad_sign = -1.0 if maximize else 1.0
    if decoupled:
        l2, param_scale = 0.0, 1.0 - lr * weight_decay
    else:
        l2, param_scale = weight_decay, 1.0
    step_size = lr / (1.0 - beta1 ** step)
    inv_bc2_sqrt = 1.0 / math.sqrt(1.0 - beta2 ** step)
    return (grad_sign, l2, param_scale, beta1, 1.0 - beta1, beta2, 1.0 - beta2, step_size,
            inv_bc2_sqrt, eps, moment_bound(step, beta1, beta2))


def moment_bound(step: int, beta1: float, beta2: float) -> float:
    r""":math:`C_t` (the module docstring): after ``step`` steps from zero of the moving averages
    :math:`m \leftarrow \beta_1 m + (1-\beta_1) d` and :math:`v \leftarrow \beta_2 v +
    (1-\beta_2) d^2`, :math:`|m| \le C_t \sqrt v` in exact arithmetic (Cauchy-Schwarz);
    ``inf`` where that is no bound or above float32's range. Adam's int8 kernels clamp the
    new ``m`` to it; the generic int8 state clamps the decoded state (NAdam, RAdam, centered
    RMSprop's ``grad_avg``) to the bound after the steps it holds."""
    r = beta1 * beta1 / beta2 if beta2 > 0 else math.inf
    if beta2 == 0:
        ratio_sum = 1.0 if beta1 == 0 else math.inf
    elif r == 1.0:
        ratio_sum = float(step)
    else:
        ratio_sum = (1.0 - r ** step) / (1.0 - r) if r < 1.0 or step < 1000 else math.inf
    m_bound = (1.0 - beta1) / math.sqrt(1.0 - beta2) * math.sqrt(ratio_sum)
    if not math.isfinite(m_bound) or m_bound > 3.0e38:
        m_bound = math.inf
    return m_bound


# ---- validation ----------------------------------------------------------------------------
def _check_hyper(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, backend,
                 f=_F, backends=BACKENDS):
    """fastoptim's validation rules (fastoptim._validation), before any array is touched;
    ``f``: the caller's name for messages, ``backends`` the ones it has."""
    _validation.step_count(f, "step", step)
    _validation.nonnegative(f, "lr", lr)
    _validation.unit_interval(f, "beta1", beta1)
    _validation.unit_interval(f, "beta2", beta2)
    _validation.positive(f, "eps", eps)
    _validation.eps_for_dtype(f, "eps", eps, np.float32)    # the step computes in float32
    _validation.nonnegative(f, "weight_decay", weight_decay)
    _validation.flag(f, "decoupled_weight_decay", decoupled)
    _validation.flag(f, "maximize", maximize)
    _check_backend(f, backend, backends)


def _check_class_hyper(f: str, step, lr, hyper: dict, backend) -> None:
    """:func:`_check_hyper` of a :class:`LowMemAdam`'s ``hyper`` dict."""
    _check_hyper(step, lr, hyper["beta1"], hyper["beta2"], hyper["eps"],
                 hyper["weight_decay"], hyper["decoupled_weight_decay"], hyper["maximize"],
                 backend, f=f)


def _check_backend(f: str, backend, backends=BACKENDS) -> None:
    if backend not in backends:
        raise ValueError(f"{f}: backend must be one of {backends}, got {backend!r}")


def _compiled_threads() -> int:
    """The thread count of a "cython" call: fastoptim's setting (1 in a forked child)."""
    return _threads.get_num_threads()


def _read_moment(kind: str, values: np.ndarray, absmax) -> np.ndarray:
    """A bfloat16 or blockwise 8-bit (signed code) buffer as float32: the references'
    decode."""
    if kind == "int8":
        return dequantize_blockwise(values, absmax, signed=True)
    return values.astype(np.float32)


def _write_moment(kind: str, new: np.ndarray, values: np.ndarray, absmax) -> None:
    """Store the float32 ``new`` into a bfloat16 buffer (nearest even) or as blockwise 8-bit
    codes and scales (signed code): the references' encode."""
    if kind == "int8":
        values[...], absmax[...] = quantize_blockwise(new, signed=True)
    else:
        values[...] = new.astype(bfloat16)


def _flat(name: str, a, dtype, size, order: str = "A", f: str = _F) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{f}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{f}: {name} must be {np.dtype(dtype)}, got {a.dtype}")
    if a.size != size:
        raise ValueError(f"{f}: {name} must hold {size} elements, got {a.size}")
    if not (a.flags.c_contiguous or a.flags.f_contiguous):
        raise ValueError(f"{f}: {name} must be C- or F-contiguous")
    return a.reshape(-1, order=order)


def _order(param: np.ndarray) -> str:
    """The order whose flat view is ``param``'s memory order: "F" for an F-contiguous array
    that is not also C-contiguous, else "C"."""
    return "F" if (param.ndim > 1 and param.flags.f_contiguous
                   and not param.flags.c_contiguous) else "C"


def _validate(param, grad, state, names=("exp_avg", "exp_avg_sq"), f=_F) -> None:
    """Check a step's arrays before any is touched (raises naming the bad one); ``names``:
    the moments (Adam's two, Lion's one), ``f`` the caller's name for messages."""
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{f}: param must be a numpy.ndarray, got {type(param).__name__}")
    if not isinstance(grad, np.ndarray):
        raise TypeError(f"{f}: grad must be a numpy.ndarray, got {type(grad).__name__}")
    if grad.shape != param.shape:
        raise ValueError(f"{f}: grad has shape {grad.shape}, param {param.shape}")
    if not hasattr(state, "keys") or any(name not in state for name in names):
        raise TypeError(f"{f}: state must be a dict of the moments {names} (adam_state, "
                        f"lion_state, momentum_state, rmsprop_state)")
    if not isinstance(state[names[0]], np.ndarray):
        raise TypeError(f"{f}: {names[0]} must be a numpy.ndarray, got "
                        f"{type(state[names[0]]).__name__}")
    kind = _kind_of(state[names[0]])
    if param.dtype != np.float32 and kind in ("bfloat16", "int8"):
        raise ValueError(f"{f}: {kind} state needs float32 param, got {param.dtype}")
    if not param.flags.writeable:
        raise ValueError(f"{f}: param is read-only")
    for name, a in (("param", param), ("grad", grad)):
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            raise ValueError(f"{f}: {name} must be C- or F-contiguous")
    order = _order(param)
    if param.ndim > 1 and not (grad.flags.c_contiguous if order == "C"
                               else grad.flags.f_contiguous):
        raise ValueError(f"{f}: param and grad must be contiguous in one common order")
    n = param.size
    p = param.reshape(-1, order=order)
    g = _flat("grad", grad, param.dtype, n, order, f)
    if kind == "int8":
        if n < MIN_8BIT_SIZE:
            raise ValueError(f"{f}: int8 state needs at least {MIN_8BIT_SIZE} elements "
                             f"(smaller arrays keep float32 state: adam_state)")
        blocks = -(-n // BLOCK)
        arrays = [a for name in names for a in (
            _flat(name, state[name], np.uint8, n, f=f),
            _flat(name + "_absmax", state.get(name + "_absmax"), np.float32, blocks, f=f))]
    elif kind == "bfloat16":
        arrays = [_flat(name, state[name], bfloat16, n, f=f) for name in names]
    else:
        if state["exp_avg"].dtype != param.dtype:
            raise ValueError(f"{f}: exp_avg must be {param.dtype} (the parameters' dtype) or "
                             f"bfloat16 / uint8 codes, got {state['exp_avg'].dtype}")
        arrays = [state["exp_avg"], state["exp_avg_sq"]]
    for a in arrays:
        if not a.flags.writeable:
            raise ValueError(f"{f}: a state array is read-only")
    everything = [p, g] + arrays
    for i in range(len(everything)):
        for j in range(i + 1, len(everything)):
            if (everything[i] is not g or everything[j] is not g) and \
                    np.may_share_memory(everything[i], everything[j]):
                raise ValueError(f"{f}: param, grad and the state arrays must not overlap")


def _views(param, grad, state, names) -> tuple:
    """:func:`_validate`'s result without its checks, for arrays already checked (the
    optimizer classes check theirs when they are built and each gradient at each step):
    the kind and the flat views (param, grad, *state arrays in kernel order)."""
    kind = _kind_of(state[names[0]])
    order = _order(param)
    p, g = param.reshape(-1, order=order), grad.reshape(-1, order=order)
    if kind == "int8":
        arrays = [a for name in names for a in (state[name], state[name + "_absmax"])]
    else:
        arrays = [state[name] for name in names]
    return kind, p, g, arrays


# ---- the step ------------------------------------------------------------------------------
def adam_lowmem_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray], *,
                     step: int, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                     eps: float = 1e-8, weight_decay: float = 0.0,
                     decoupled_weight_decay: bool = False, maximize: bool = False,
                     backend: str = "auto") -> None:
    r"""One Adam (AdamW) step with a compressed state (:func:`adam_state`), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} \;(+\, \lambda\theta \text{ unless decoupled}), \qquad
        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda) \text{ (decoupled)} \\
        m &\leftarrow \beta_1 \tilde m + (1-\beta_1) g, \qquad
        v \leftarrow \beta_2 \tilde v + (1-\beta_2) g^2, \qquad
        m \leftarrow \operatorname{clamp}(m, \pm C_t\sqrt v) \\
        \theta &\leftarrow \theta - \text{lr}\,\frac{m/(1-\beta_1^t)}
            {\sqrt{v/(1-\beta_2^t)} + \epsilon}

    with :math:`\tilde m, \tilde v` the stored moments decoded (bfloat16, or
    ``code[q] * absmax`` per block), the new ones stored encoded (round to nearest even;
    nearest code of ``value / absmax_new``), and :math:`C_t` the exact-arithmetic bound of
    :math:`|m|/\sqrt v` (module docstring). A float32/float64 state runs
    :func:`fastoptim.adam_step` (no clamp: it never binds there).

    Parameters
    ----------
    param, grad : ndarray
        float32 for the compressed states; C- or F-contiguous in one common order.
    state : dict of ndarray
        From :func:`adam_state`, updated in place.
    step : int
        The 1-based step count.
    lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
        As :func:`fastoptim.adam_step`.
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _check_hyper(step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize,
                 backend)
    _validate(param, grad, state)
    _adam_apply(param, grad, state, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                maximize=maximize, backend=backend)


def _adam_apply(param, grad, state, *, step, lr, beta1, beta2, eps, weight_decay,
                decoupled_weight_decay, maximize, backend) -> None:
    """:func:`adam_lowmem_step` on arguments already checked (by it, or by an optimizer
    class: no per-array validation)."""
    kind = _kind_of(state["exp_avg"])
    if kind not in _COMPRESSED_KINDS:
        from .optimizers.adam import adam_step
        adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"], step=step, lr=lr,
                  beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                  decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                  backend=backend)
        return
    c = _coefficients(int(step), float(lr), float(beta1), float(beta2), float(eps),
                      float(weight_decay), bool(decoupled_weight_decay), bool(maximize))
    if backend not in ("numpy", "numba"):       # compiled: each array in its memory order
        _step_many("adam", ("exp_avg", "exp_avg_sq"), [param], [grad], _columns([state]), c)
        return
    _, p, g, arrays = _views(param, grad, state, ("exp_avg", "exp_avg_sq"))
    if backend == "numpy":
        _reference(kind, p, g, arrays, c)
    else:
        from .numba_kernels import lowmem as nb
        if kind == "bfloat16":
            nb.adam_bf16_kernel(p, g, arrays[0].view(np.uint16), arrays[1].view(np.uint16),
                                np.array(c, np.float32))
        else:
            t = code_tables()
            nb.adam_q8_kernel(p, g, *arrays, np.array(c, np.float32), t[0], t[2], t[1], t[3],
                              t[4], t[5], t[6], t[7], t[8], t[9])


def _adam_apply_many(params, grads, columns, *, step, lr, beta1, beta2, eps, weight_decay,
                     decoupled_weight_decay, maximize, backend) -> None:
    """:func:`_adam_apply` on many arrays already checked (an optimizer class's group;
    ``columns``: :func:`_apply_many`'s), the float states (int8's small arrays) by
    ``kernels.adam_multi``."""
    hyper = dict(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                 weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                 maximize=maximize)
    args = (int(step), float(lr), float(beta1), float(beta2), float(eps), float(weight_decay),
            bool(decoupled_weight_decay), bool(maximize))

    def floats(idx):
        from . import kernels
        kernels.adam_multi(
            [params[i] for i in idx], [grads[i] for i in idx],
            [columns["exp_avg"][i] for i in idx], [columns["exp_avg_sq"][i] for i in idx],
            None, kernels.coefficients_adam(*args), num_threads=_compiled_threads())

    _apply_many("adam", ("exp_avg", "exp_avg_sq"), params, grads, columns,
                lambda: _coefficients(*args), backend,
                lambda p, g, state: _adam_apply(p, g, state, backend=backend, **hyper), floats)


def _apply_many(rule: str, names: tuple, params, grads, columns, coefficients, backend,
                one, floats) -> None:
    """Step ``rule`` on many arrays already checked (an optimizer class's group): on the
    "cython" backend the coefficients (``coefficients()``) are computed once, the
    compressed arrays step in one compiled call per encoding (:func:`_step_many`) and
    ``floats(indices)`` steps those with a float state (int8's arrays under
    ``MIN_8BIT_SIZE``); the other backends step array by array, ``one(param, grad,
    state)``. ``columns``: the state by name, one entry per array (:func:`_columns`)."""
    if backend != "cython":
        for i, (param, grad) in enumerate(zip(params, grads)):
            one(param, grad, {name: col[i] for name, col in columns.items()
                              if col[i] is not None})
        return
    idx = _step_many(rule, names, params, grads, columns, coefficients())
    if idx:
        floats(idx)


def _columns(states) -> Dict[str, list]:
    """Per-array state dicts as columns (name: one entry per array, ``None`` where an
    array's dict has no such name)."""
    names = {}
    for state in states:
        names.update(dict.fromkeys(state))
    return {name: [state.get(name) for state in states] for name in names}


def _step_many(rule: str, names: tuple, params, grads, columns, c) -> list:
    """The "cython" backend's step of ``rule`` on many checked arrays: the bfloat16 ones in
    one compiled call, the int8 ones in another (``_lowmem.many``: each array gets the bits
    of a call on it alone; one OpenMP region; no Python per array), with the one-array
    call's coefficients ``c``. ``names``: the state buffers in that call's order (``None``
    for one that is off); ``columns``: the state by name, one entry per array (int8 codes'
    scales under ``<name>_absmax``). Returns the indices of the arrays with a float state,
    not stepped (the caller steps them with the float kernel)."""
    kinds = [_kind_of(b) for b in columns[names[0]]]
    floats = [i for i, kind in enumerate(kinds) if kind not in _COMPRESSED_KINDS]
    present = [kind for kind in _COMPRESSED_KINDS if kind in kinds]
    if present:
        from . import _lowmem
        threads = _compiled_threads()
        for kind in present:
            if floats or len(present) > 1:      # this encoding's arrays only
                idx = [i for i, k in enumerate(kinds) if k == kind]

                def pick(seq):
                    return [seq[i] for i in idx]
            else:
                def pick(seq):
                    return seq
            # the kernels read each array in its memory order: no flat views
            bufs = [None if n is None else pick(columns[n]) for n in names]
            scales = [pick(columns[n + "_absmax"]) for n in names
                      if n is not None] if kind == "int8" else []
            _lowmem.many(rule, kind, pick(params), pick(grads), bufs, scales, c,
                         code_tables() if kind == "int8" else None, threads)
    return floats


def _reference(kind, p, g, arrays, c) -> None:
    """The NumPy reference on flat views, written out step by step."""
    (grad_sign, l2, param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
     inv_bc2_sqrt, eps, m_bound) = (np.float32(x) for x in c)
    # decode
    if kind == "bfloat16":
        m_old = arrays[0].astype(np.float32)
        v_old = arrays[1].astype(np.float32)
    else:
        m_old = dequantize_blockwise(arrays[0], arrays[1], signed=True)
        v_old = dequantize_blockwise(arrays[2], arrays[3], signed=False)
    # update in float32
    d = grad_sign * g
    if l2 != 0:
        d = d + l2 * p
    m = beta1 * m_old + one_minus_beta1 * d
    v = beta2 * v_old + one_minus_beta2 * (d * d)
    s = np.sqrt(v)
    bound = m_bound * s
    m = np.where(m > bound, bound, np.where(m < -bound, -bound, m))
    denom = s * inv_bc2_sqrt + eps
    scaled = param_scale * p if param_scale != 1 else p
    new_p = scaled - step_size * m / denom
    # encode
    if kind == "bfloat16":
        arrays[0][...] = m.astype(bfloat16)
        arrays[1][...] = v.astype(bfloat16)
    else:
        arrays[0][...], arrays[1][...] = quantize_blockwise(m, signed=True)
        arrays[2][...], arrays[3][...] = quantize_blockwise(v, signed=False)
    p[...] = new_p


def reference_adam_step(param, grad, state, **hyper) -> None:
    """:func:`adam_lowmem_step` with ``backend="numpy"``: the readable NumPy reference
    (decode the moments to float32 temporaries, update, encode)."""
    adam_lowmem_step(param, grad, state, backend="numpy", **hyper)


# ---- Lion ---------------------------------------------------------------------------------
def lion_state(param: np.ndarray, state_dtype: str = "bfloat16") -> Dict[str, np.ndarray]:
    """A new (zero) Lion state: ``exp_avg`` as 1-D bfloat16 (float32 parameters); for
    ``"int8"`` 1-D uint8 codes of the signed code and ``exp_avg_absmax`` float32 per block
    (a float32 moment when ``param.size < MIN_8BIT_SIZE``); or of the parameters' shape and
    float dtype (``"float32"`` / ``"float64"``)."""
    if state_dtype not in STATE_DTYPES:
        raise ValueError(f"lion_state: state_dtype must be one of {STATE_DTYPES}, got "
                         f"{state_dtype!r}")
    full = adam_state(param, state_dtype)
    return {k: v for k, v in full.items() if k in ("exp_avg", "exp_avg_absmax")}


def lion_lowmem_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray], *,
                     lr: float = 1e-4, beta1: float = 0.9, beta2: float = 0.99,
                     weight_decay: float = 0.0, maximize: bool = False,
                     backend: str = "auto") -> None:
    r"""One Lion step (:func:`fastoptim.lion_step`'s formula) with its moment stored as
    bfloat16 or blockwise 8-bit codes (:func:`lion_state`), computed in float32, in place.

    .. math::

        u = \operatorname{sign}(\beta_1 m + (1-\beta_1) g), \quad
        \theta \leftarrow \theta - \text{lr}\,(u + \lambda\theta), \quad
        m \leftarrow \beta_2 m + (1-\beta_2) g

    A float state runs :func:`fastoptim.lion_step`.
    """
    f = "lion_lowmem_step"
    _validation.nonnegative(f, "lr", lr)
    _validation.unit_interval(f, "beta1", beta1)
    _validation.unit_interval(f, "beta2", beta2)
    _validation.nonnegative(f, "weight_decay", weight_decay)
    _validation.flag(f, "maximize", maximize)
    _check_backend(f, backend)
    if not hasattr(state, "keys") or "exp_avg" not in state:
        raise TypeError(f"{f}: state must be a dict from lion_state (exp_avg)")
    kind = _kind_of(state["exp_avg"]) if isinstance(state["exp_avg"], np.ndarray) else None
    if kind in ("bfloat16", "int8"):
        _validate(param, grad, state, ("exp_avg",), f)
    _lion_apply(param, grad, state, lr=lr, beta1=beta1, beta2=beta2,
                weight_decay=weight_decay, maximize=maximize, backend=backend)


def _lion_coefficients(lr, beta1, beta2, weight_decay, maximize) -> tuple:
    """The Lion kernels' 7 scalars, computed once per call."""
    return (float(lr), -1.0 if maximize else 1.0, float(weight_decay), float(beta1),
            1.0 - float(beta1), float(beta2), 1.0 - float(beta2))


def _lion_apply_many(params, grads, columns, **hyper) -> None:
    """:func:`_lion_apply` on many checked arrays (:func:`_apply_many`), the float states
    by ``kernels.lion_multi``."""
    backend = hyper.pop("backend")
    args = tuple(hyper[k] for k in ("lr", "beta1", "beta2", "weight_decay", "maximize"))

    def floats(idx):
        from . import kernels
        kernels.lion_multi([params[i] for i in idx], [grads[i] for i in idx],
                           [columns["exp_avg"][i] for i in idx], kernels.coefficients_lion(
                               *(float(x) for x in args[:4]), bool(args[4])),
                           num_threads=_compiled_threads())

    _apply_many("lion", ("exp_avg",), params, grads, columns,
                lambda: _lion_coefficients(*args), backend,
                lambda p, g, state: _lion_apply(p, g, state, backend=backend, **hyper), floats)


def _lion_apply(param, grad, state, *, lr, beta1, beta2, weight_decay, maximize,
                backend) -> None:
    """:func:`lion_lowmem_step` on arguments already checked (by it, or by an optimizer
    class: no per-array validation)."""
    if not isinstance(state["exp_avg"], np.ndarray) or \
            _kind_of(state["exp_avg"]) not in ("bfloat16", "int8"):
        from .optimizers.lion import lion_step
        lion_step(param, grad, state["exp_avg"], lr=lr, beta1=beta1, beta2=beta2,
                  weight_decay=weight_decay, maximize=maximize, backend=backend)
        return
    c = _lion_coefficients(lr, beta1, beta2, weight_decay, maximize)
    if backend not in ("numpy", "numba"):       # compiled: each array in its memory order
        _step_many("lion", ("exp_avg",), [param], [grad], _columns([state]), c)
        return
    kind, p, g, arrays = _views(param, grad, state, ("exp_avg",))
    m = arrays[0]
    if backend == "numpy":
        lr_, gs, wd, b1, omb1, b2, omb2 = (np.float32(x) for x in c)
        absmax = arrays[1] if kind == "int8" else None
        m_old = _read_moment(kind, m, absmax)
        d = gs * g
        u = np.sign(b1 * m_old + omb1 * d)
        new_m = b2 * m_old + omb2 * d
        new_p = p - lr_ * (u + wd * p if wd != 0 else u)
        _write_moment(kind, new_m, m, absmax)
        p[...] = new_p
    else:
        from .numba_kernels import lowmem as nb
        if kind == "int8":
            t = code_tables()
            nb.lion_q8_kernel(p, g, m, arrays[1], np.array(c, np.float32), t[0], t[6], t[8],
                              t[4])
        else:
            nb.lion_bf16_kernel(p, g, m.view(np.uint16), np.array(c, np.float32))


# ---- SGD with momentum ---------------------------------------------------------------------
def momentum_state(param: np.ndarray, state_dtype: str = "bfloat16") -> Dict[str, np.ndarray]:
    """A new (zero) momentum state: ``momentum_buffer`` as 1-D bfloat16 (float32
    parameters); for ``"int8"`` 1-D uint8 codes of the signed code and
    ``momentum_buffer_absmax`` float32 per block (a float32 buffer when ``param.size <
    MIN_8BIT_SIZE``); or of the parameters' shape and float dtype (``"float32"`` /
    ``"float64"``)."""
    if state_dtype not in STATE_DTYPES:
        raise ValueError(f"momentum_state: state_dtype must be one of {STATE_DTYPES}, got "
                         f"{state_dtype!r}")
    full = adam_state(param, state_dtype)
    out = {"momentum_buffer": full["exp_avg"]}
    if "exp_avg_absmax" in full:
        out["momentum_buffer_absmax"] = full["exp_avg_absmax"]
    return out


def momentum_lowmem_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray],
                         *, lr: float, momentum: float = 0.9, dampening: float = 0.0,
                         nesterov: bool = False, weight_decay: float = 0.0,
                         maximize: bool = False, backend: str = "auto") -> None:
    r"""One SGD-with-momentum step (:func:`fastoptim.momentum_step`'s formula) with its
    buffer stored as bfloat16 or blockwise 8-bit codes (:func:`momentum_state`), computed
    in float32, in place.

    .. math::

        g \leftarrow \pm\,\text{grad} + \lambda\,\theta, \quad
        v \leftarrow \mu\, v + (1 - \tau)\, g, \quad
        \theta \leftarrow \theta - \text{lr}\,(g + \mu v) \text{ (Nesterov) or }
        \theta - \text{lr}\; v

    with :math:`v` stored rounded to nearest even, or per block of 256 as the nearest code
    of the signed dynamic map times the block's new absmax (the update reads the unrounded
    one). A float state runs :func:`fastoptim.momentum_step`.
    """
    f = "momentum_lowmem_step"
    _validation.nonnegative(f, "lr", lr)
    _validation.nonnegative(f, "momentum", momentum)
    _validation.closed_unit_interval(f, "dampening", dampening)
    _validation.flag(f, "nesterov", nesterov)
    _validation.nonnegative(f, "weight_decay", weight_decay)
    _validation.flag(f, "maximize", maximize)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{f}: nesterov needs momentum > 0 and dampening == 0, got "
                         f"momentum={momentum}, dampening={dampening}")
    _check_backend(f, backend)
    if not hasattr(state, "keys") or "momentum_buffer" not in state:
        raise TypeError(f"{f}: state must be a dict from momentum_state (momentum_buffer)")
    kind = _kind_of(state["momentum_buffer"]) if isinstance(state["momentum_buffer"],
                                                           np.ndarray) else None
    if kind in ("bfloat16", "int8"):
        _validate(param, grad, state, ("momentum_buffer",), f)
    _momentum_apply(param, grad, state, lr=lr, momentum=momentum, dampening=dampening,
                    nesterov=nesterov, weight_decay=weight_decay, maximize=maximize,
                    backend=backend)


def _momentum_coefficients(lr, momentum, dampening, nesterov, weight_decay, maximize) -> tuple:
    """The momentum kernels' 6 scalars, computed once per call."""
    return (float(lr), -1.0 if maximize else 1.0, float(weight_decay), float(momentum),
            1.0 - float(dampening), int(bool(nesterov)))


def _momentum_apply_many(params, grads, columns, **hyper) -> None:
    """:func:`_momentum_apply` on many checked arrays (:func:`_apply_many`), the float
    states by ``kernels.momentum_multi``."""
    backend = hyper.pop("backend")
    args = tuple(hyper[k] for k in ("lr", "momentum", "dampening", "nesterov",
                                    "weight_decay", "maximize"))

    def floats(idx):
        from . import kernels
        lr, momentum, dampening, nesterov, wd, maximize = args
        kernels.momentum_multi(
            [params[i] for i in idx], [grads[i] for i in idx],
            [columns["momentum_buffer"][i] for i in idx], kernels.coefficients_momentum(
                float(lr), float(momentum), float(dampening), bool(nesterov), float(wd),
                bool(maximize)), num_threads=_compiled_threads())

    _apply_many("momentum", ("momentum_buffer",), params, grads, columns,
                lambda: _momentum_coefficients(*args), backend,
                lambda p, g, state: _momentum_apply(p, g, state, backend=backend, **hyper),
                floats)


def _momentum_apply(param, grad, state, *, lr, momentum, dampening, nesterov, weight_decay,
                    maximize, backend) -> None:
    """:func:`momentum_lowmem_step` on arguments already checked (by it, or by an optimizer
    class: no per-array validation)."""
    buf = state["momentum_buffer"]
    if not isinstance(buf, np.ndarray) or _kind_of(buf) not in ("bfloat16", "int8"):
        from .optimizers.sgd import momentum_step
        momentum_step(param, grad, buf, lr=lr, momentum=momentum, dampening=dampening,
                      nesterov=nesterov, weight_decay=weight_decay, maximize=maximize,
                      backend=backend)
        return
    c = _momentum_coefficients(lr, momentum, dampening, nesterov, weight_decay, maximize)
    if backend not in ("numpy", "numba"):       # compiled: each array in its memory order
        _step_many("momentum", ("momentum_buffer",), [param], [grad], _columns([state]), c)
        return
    kind, p, g, arrays = _views(param, grad, state, ("momentum_buffer",))
    buf = arrays[0]
    if backend == "numpy":
        lr_, gs, wd, mu, omd = (np.float32(x) for x in c[:5])
        absmax = arrays[1] if kind == "int8" else None
        v_old = _read_moment(kind, buf, absmax)
        d = gs * g
        if wd != 0:
            d = d + wd * p
        v = mu * v_old + omd * d
        step = d + mu * v if nesterov else v
        new_p = p - lr_ * step
        _write_moment(kind, v, buf, absmax)
        p[...] = new_p
    else:
        from .numba_kernels import lowmem as nb
        k = np.array(c[:5], np.float32)
        if kind == "int8":
            t = code_tables()
            nb.momentum_q8_kernel(p, g, buf, arrays[1], k, bool(nesterov), t[0], t[6], t[8],
                                  t[4])
        else:
            nb.momentum_bf16_kernel(p, g, buf.view(np.uint16), k, bool(nesterov))


# ---- RMSprop --------------------------------------------------------------------------------
_RMSPROP_BUFFERS = ("square_avg", "momentum_buffer", "grad_avg")


def rmsprop_state(param: np.ndarray, state_dtype: str = "bfloat16", *, momentum: bool = False,
                  centered: bool = False) -> Dict[str, np.ndarray]:
    """A new (zero) RMSprop state: ``square_avg``, plus ``momentum_buffer`` (``momentum``)
    and ``grad_avg`` (``centered``), each 1-D bfloat16 (float32 parameters), or of the
    parameters' shape and float dtype (``"float32"`` / ``"float64"``)."""
    if state_dtype not in ("float32", "float64", "bfloat16"):
        raise ValueError(f"rmsprop_state: state_dtype must be one of ('float32', 'float64', "
                         f"'bfloat16'), got {state_dtype!r}")
    names = [n for n, on in zip(_RMSPROP_BUFFERS, (True, momentum, centered)) if on]
    return {name: adam_state(param, state_dtype)["exp_avg"] for name in names}


def rmsprop_lowmem_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray], *,
                        lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                        weight_decay: float = 0.0, momentum: float = 0.0,
                        centered: bool = False, maximize: bool = False,
                        eps_root: float = 0.0, backend: str = "auto") -> None:
    r"""One RMSprop step (:func:`fastoptim.rmsprop_step`'s formula) with its buffers stored as
    bfloat16 (:func:`rmsprop_state`), computed in float32, in place.

    .. math::

        g \leftarrow \pm\,\text{grad} + \lambda\,\theta, \quad
        s \leftarrow \alpha s + (1-\alpha) g^2, \quad
        a \leftarrow \alpha a + (1-\alpha) g \text{ (centered)}, \quad
        \bar s = \sqrt{s - a^2 + \epsilon_{root}} + \epsilon \\
        b \leftarrow \mu b + g / \bar s, \quad \theta \leftarrow \theta - \text{lr}\, b
        \text{ (momentum) or } \theta \leftarrow \theta - \text{lr}\, g / \bar s

    with each buffer stored rounded to nearest even (the update reads the unrounded values).
    ``state`` holds ``momentum_buffer`` exactly when ``momentum > 0`` and ``grad_avg``
    exactly when ``centered``. A float state runs :func:`fastoptim.rmsprop_step`.
    """
    f = "rmsprop_lowmem_step"
    _validation.nonnegative(f, "lr", lr)
    _validation.unit_interval(f, "alpha", alpha)
    _validation.nonnegative(f, "eps", eps)
    _validation.nonnegative(f, "weight_decay", weight_decay)
    _validation.nonnegative(f, "momentum", momentum)
    _validation.flag(f, "centered", centered)
    _validation.flag(f, "maximize", maximize)
    _validation.nonnegative(f, "eps_root", eps_root)
    if eps == 0 and eps_root == 0:
        raise ValueError(f"{f}: eps must be > 0 unless eps_root > 0 (with both 0 the "
                         f"denominator is 0 on a zero gradient)")
    for name, value in (("eps", eps), ("eps_root", eps_root)):
        if value > 0:
            _validation.eps_for_dtype(f, name, value, np.float32)
    _check_backend(f, backend)
    names = tuple(n for n in _rmsprop_buffers(momentum, centered) if n is not None)
    if not hasattr(state, "keys") or set(state) != set(names):
        raise TypeError(f"{f}: state must be a dict from rmsprop_state with exactly {names} "
                        f"(momentum={momentum}, centered={centered})")
    kind = _kind_of(state["square_avg"]) if isinstance(state["square_avg"], np.ndarray) \
        else None
    if kind == "int8":
        raise ValueError(f"{f}: the fused step keeps bfloat16 or float buffers, not int8 "
                         f"codes (RMSprop(state_dtype='int8') steps them chunk by chunk)")
    if kind == "bfloat16":
        _validate(param, grad, state, names, f)
    _rmsprop_apply(param, grad, state, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                   momentum=momentum, centered=centered, maximize=maximize,
                   eps_root=eps_root, backend=backend)


def _rmsprop_buffers(momentum, centered) -> tuple:
    """RMSprop's buffers in the kernel's order, ``None`` for one that is off."""
    return tuple(n if on else None
                 for n, on in zip(_RMSPROP_BUFFERS, (True, momentum > 0, centered)))


def _rmsprop_coefficients(lr, alpha, eps, weight_decay, momentum, maximize, eps_root) -> tuple:
    """The RMSprop kernel's 8 scalars, computed once per call."""
    return (float(lr), -1.0 if maximize else 1.0, float(weight_decay), float(alpha),
            1.0 - float(alpha), float(eps), float(momentum), float(eps_root))


def _rmsprop_apply_many(params, grads, columns, **hyper) -> None:
    """:func:`_rmsprop_apply` on many checked arrays (:func:`_apply_many`), the float
    states one array at a time."""
    backend = hyper.pop("backend")

    def one(p, g, state):
        _rmsprop_apply(p, g, state, backend=backend, **hyper)

    def floats(idx):
        for i in idx:
            one(params[i], grads[i], {name: col[i] for name, col in columns.items()
                                      if col[i] is not None})

    _apply_many("rmsprop", _rmsprop_buffers(hyper["momentum"], hyper["centered"]), params,
                grads, columns, lambda: _rmsprop_coefficients(
                    hyper["lr"], hyper["alpha"], hyper["eps"], hyper["weight_decay"],
                    hyper["momentum"], hyper["maximize"], hyper["eps_root"]), backend, one,
                floats)


def _rmsprop_apply(param, grad, state, *, lr, alpha, eps, weight_decay, momentum, centered,
                   maximize, eps_root, backend) -> None:
    """:func:`rmsprop_lowmem_step` on arguments already checked (by it, or by an optimizer
    class: no per-array validation)."""
    square_avg = state["square_avg"]
    if not isinstance(square_avg, np.ndarray) or _kind_of(square_avg) != "bfloat16":
        from .optimizers.rmsprop import rmsprop_step
        rmsprop_step(param, grad, square_avg, lr=lr, alpha=alpha, eps=eps,
                     weight_decay=weight_decay, momentum=momentum,
                     momentum_buffer=state.get("momentum_buffer"), centered=centered,
                     grad_avg=state.get("grad_avg"), maximize=maximize, backend=backend,
                     eps_root=eps_root)
        return
    c = _rmsprop_coefficients(lr, alpha, eps, weight_decay, momentum, maximize, eps_root)
    if backend not in ("numpy", "numba"):       # compiled: each array in its memory order
        _step_many("rmsprop", _rmsprop_buffers(momentum, centered), [param], [grad],
                   _columns([state]), c)
        return
    names = tuple(n for n in _rmsprop_buffers(momentum, centered) if n is not None)
    _, p, g, arrays = _views(param, grad, state, names)
    bufs = dict(zip(names, arrays))
    if backend == "numpy":
        lr_, gs, wd, al, oma, eps_, mu, er = (np.float32(x) for x in c)
        d = gs * g
        if wd != 0:
            d = d + wd * p
        s = al * bufs["square_avg"].astype(np.float32) + oma * (d * d)
        variance = s
        if centered:
            a = al * bufs["grad_avg"].astype(np.float32) + oma * d
            variance = s - a * a
        avg = np.sqrt(variance + er if er != 0 else variance) + eps_
        if momentum > 0:
            b = mu * bufs["momentum_buffer"].astype(np.float32) + d / avg
            new_p = p - lr_ * b
            bufs["momentum_buffer"][...] = b.astype(bfloat16)
        else:
            new_p = p - lr_ * d / avg
        bufs["square_avg"][...] = s.astype(bfloat16)
        if centered:
            bufs["grad_avg"][...] = a.astype(bfloat16)
        p[...] = new_p
        return
    from .numba_kernels import lowmem as nb
    bits = [None if bufs.get(n) is None else bufs[n].view(np.uint16)
            for n in _RMSPROP_BUFFERS]
    empty = np.zeros(0, np.uint16)
    nb.rmsprop_bf16_kernel(p, g, bits[0], empty if bits[1] is None else bits[1],
                           empty if bits[2] is None else bits[2],
                           np.array(c, np.float32), momentum > 0, bool(centered))


# ---- classes --------------------------------------------------------------------------------
class LowMemAdam:
    r"""Adam (AdamW with ``decoupled_weight_decay=True``) keeping its moments in
    ``state_dtype``: ``"bfloat16"``, ``"int8"`` (blockwise, arrays of at least 4096
    elements; smaller ones keep float32) or the parameters' float dtype. The update is
    :func:`adam_lowmem_step`'s:

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
        \quad m \leftarrow \operatorname{clamp}(m, \pm C_t \sqrt v), \quad
        \theta \leftarrow \theta - \text{lr}\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)}
        + \epsilon}

    Parameters
    ----------
    params : list or dict of ndarray
        Updated in place by :meth:`step`.
    lr : float or callable, default 1e-3
        A float, or a schedule called with the step count t.
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
    state_dtype : {"int8", "bfloat16", "float32", "float64"}, default "int8"
    decoupled_weight_decay : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """

    _DEFAULT_WEIGHT_DECAY = 0.0
    _DECOUPLED = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float | None = None, *, state_dtype: str = "int8",
                 decoupled_weight_decay: bool | None = None, maximize: bool = False,
                 backend: str = "auto") -> None:
        f = f"{type(self).__name__}"
        if weight_decay is None:
            weight_decay = self._DEFAULT_WEIGHT_DECAY
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._DECOUPLED
        beta1, beta2 = _validation.betas(f, betas)
        if not callable(lr):
            _validation.nonnegative(f, "lr", lr)
        _check_hyper(1, 0.0, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
                     maximize, backend, f=f)
        self._is_dict = isinstance(params, dict)
        self._keys = list(params.keys()) if self._is_dict else list(range(len(params)))
        self._params = [params[k] for k in self._keys]
        self._names = [f"params[{k!r}]" for k in self._keys]
        for name, p in zip(self._names, self._params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"{f}: {name} must be a numpy.ndarray, got "
                                f"{type(p).__name__}")
        _params.check_disjoint(f, self._names, self._params)
        self.state = [adam_state(p, state_dtype) for p in self._params]
        # what a step writes, for its gradients-apart check (load_state_dict copies into
        # these arrays, never replaces them)
        self._written = self._params + [a for s in self.state for a in s.values()]
        self._written_names = self._names + [f"the {k} of {n}"
                                             for n, s in zip(self._names, self.state) for k in s]
        self._grad_names = [f"grads[{k!r}]" for k in self._keys]
        self.hyper = dict(beta1=float(beta1), beta2=float(beta2), eps=float(eps),
                          weight_decay=float(weight_decay),
                          decoupled_weight_decay=bool(decoupled_weight_decay),
                          maximize=bool(maximize))
        self.lr, self.backend, self.state_dtype, self.t = lr, backend, state_dtype, 0

    def step(self, grads) -> None:
        """One step of every parameter; every array is checked before any is updated."""
        f = f"{type(self).__name__}.step"
        grads = [grads[k] for k in self._keys] if self._is_dict else list(grads)
        if len(grads) != len(self._params):
            raise ValueError(f"{f}: {len(grads)} gradients for {len(self._params)} "
                             f"parameters")
        for p, g, s in zip(self._params, grads, self.state):
            _validate(p, g, s, f=f)
        _params.check_grads_apart(f, self._grad_names, grads, self._written_names,
                                  self._written)
        t = self.t + 1
        lr = self.lr(t) if callable(self.lr) else self.lr
        _check_class_hyper(f, t, lr, self.hyper, self.backend)
        _adam_apply_many(self._params, grads, _columns(self.state), step=t, lr=lr,
                         backend=self.backend, **self.hyper)
        self.t = t

    def state_nbytes(self) -> int:
        """Bytes of optimizer state."""
        return sum(state_nbytes(s) for s in self.state)

    def state_dict(self) -> dict:
        """Copies of the state's arrays (codes, scales, bfloat16 moments: NumPy arrays), the
        step count and the hyperparameters."""
        return dict(t=self.t, state_dtype=self.state_dtype, hyper=dict(self.hyper),
                    state=[{k: v.copy() for k, v in s.items()} for s in self.state])

    def load_state_dict(self, state_dict) -> None:
        """Restore :meth:`state_dict` output bit-exact. Everything (step count,
        hyperparameters, every array's keys, dtype and shape) is checked before anything is
        copied; ``.npz``-loaded bfloat16 records are accepted, see :func:`restore_state`."""
        f = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"{f}: state_dict must be a dict from state_dict(), got "
                            f"{type(state_dict).__name__}")
        missing = {"t", "state"} - set(state_dict)
        if missing:
            raise ValueError(f"{f}: the state_dict has no {sorted(missing)}")
        t = _validation.steps_taken(f, "t", state_dict["t"])
        hyper = dict(self.hyper)
        extra = set(state_dict.get("hyper", {})) - set(hyper)
        if extra:
            raise ValueError(f"{f}: unknown hyperparameters {sorted(extra)}; expected "
                             f"{sorted(hyper)}")
        hyper.update(state_dict.get("hyper", {}))
        _check_class_hyper(f, max(t, 1), 0.0, hyper, self.backend)
        hyper = dict(beta1=float(hyper["beta1"]), beta2=float(hyper["beta2"]),
                     eps=float(hyper["eps"]), weight_decay=float(hyper["weight_decay"]),
                     decoupled_weight_decay=bool(hyper["decoupled_weight_decay"]),
                     maximize=bool(hyper["maximize"]))
        saved = [restore_state(s) for s in state_dict["state"]]
        if len(saved) != len(self.state):
            raise ValueError(f"{f}: {len(saved)} states for {len(self.state)} parameters")
        for mine, theirs in zip(self.state, saved):
            if set(mine) != set(theirs):
                raise ValueError(f"{f}: state keys {sorted(theirs)}, expected {sorted(mine)}")
            for k in mine:
                if mine[k].shape != theirs[k].shape or mine[k].dtype != theirs[k].dtype:
                    raise ValueError(f"{f}: {k} is {theirs[k].dtype}{theirs[k].shape}, "
                                     f"expected {mine[k].dtype}{mine[k].shape}")
        for mine, theirs in zip(self.state, saved):
            for k in mine:
                np.copyto(mine[k], theirs[k], casting="no")
        self.t = t
        self.hyper = hyper


class LowMemAdamW(LowMemAdam):
    """:class:`LowMemAdam` with decoupled weight decay (default ``1e-2``), as torch's AdamW."""

    _DEFAULT_WEIGHT_DECAY = 1e-2
    _DECOUPLED = True
