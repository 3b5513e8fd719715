"""Readable NumPy reference for half-precision (float16 / bfloat16) parameters (issue 14, item 2).

The step is: upcast the half gradient (and parameter) to float32, run the float32 Adam
update, round back to the half dtype. Two ways to keep the small updates that a direct
half-precision parameter would lose:

* ``master`` (float32 master copy): the update runs on ``master``; ``param`` receives
  ``master`` rounded to nearest, ties to even.
* ``stochastic_rounding=True`` (bfloat16 only, no master copy): the float32 result is
  rounded up or down at random with probability proportional to the distance, using a
  counter-based hash of ``(seed, step, element index)`` so the result is reproducible and
  independent of the thread count or SIMD level.

This module is the oracle for the compiled kernels still to come; it is pure NumPy.
"""
from __future__ import annotations

import numpy as np

try:
    import ml_dtypes
    bfloat16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a declared dependency of this feature
    bfloat16 = None

HALF_DTYPES = tuple(d for d in (np.dtype(np.float16), bfloat16) if d is not None)

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def f32_to_bf16_bits_rne(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit pattern (uint16), round to nearest, ties to even; NaN stays NaN.

    The bit trick the C kernels use: add ``0x7FFF + lsb`` to the float32 bits and keep the
    top 16 bits."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    nan = np.isnan(x)
    rounded[nan] = ((bits[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return rounded


def splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def rounding_noise(seed: int, step: int, n: int) -> np.ndarray:
    """16 random bits per element (uint32 in [0, 2**16)), a pure function of
    ``(seed, step, index)``: ``splitmix64(splitmix64(seed ^ step*golden) + index)``."""
    with np.errstate(over="ignore"):
        key = splitmix64(np.array([np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
                                   ^ ((np.uint64(step) * np.uint64(0x9E3779B97F4A7C15)) & _M64)],
                                  dtype=np.uint64))[0]
        h = splitmix64((np.arange(n, dtype=np.uint64) + key) & _M64)
    return (h >> np.uint64(48)).astype(np.uint32)


def f32_to_bf16_stochastic(x: np.ndarray, *, seed: int, step: int) -> np.ndarray:
    """float32 -> bfloat16 with stochastic rounding: add 16 random bits below the kept
    mantissa and truncate, so ``E[round(x)] = x`` for finite x; NaN and inf pass through."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    bits = flat.view(np.uint32)
    noise = rounding_noise(seed, step, flat.size)
    finite = np.isfinite(flat)
    out = np.where(finite, (bits + noise) >> np.uint32(16), bits >> np.uint32(16))
    nan = np.isnan(flat)
    out = np.where(nan, out | np.uint32(0x0040), out)
    return out.astype(np.uint16).view(bfloat16).reshape(np.shape(x))


def _check(param, grad, exp_avg, exp_avg_sq, master, stochastic_rounding):
    for name, a in (("param", param), ("grad", grad)):
        if not isinstance(a, np.ndarray) or a.dtype not in HALF_DTYPES:
            raise TypeError(f"{name} must be a float16 or bfloat16 ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
    if grad.dtype != param.dtype:
        raise TypeError(f"grad dtype {grad.dtype} differs from param dtype {param.dtype}")
    for name, a in (("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq), ("master", master)):
        if a is None and name == "master":
            continue
        if not isinstance(a, np.ndarray) or a.dtype != np.float32:
            raise TypeError(f"{name} must be a float32 ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
    for name, a in (("grad", grad), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq),
                    ("master", master)):
        if a is not None and a.shape != param.shape:
            raise ValueError(f"{name} shape {a.shape} differs from param shape {param.shape}")
    if master is not None and stochastic_rounding:
        raise ValueError("master and stochastic_rounding are exclusive: pass one of them")
    if stochastic_rounding and param.dtype != bfloat16:
        raise TypeError("stochastic_rounding needs bfloat16 parameters, got " + str(param.dtype))


def adam_step_mixed(param, grad, exp_avg, exp_avg_sq, *, step, lr=1e-3, beta1=0.9,
                    beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                    maximize=False, master=None, stochastic_rounding=False, seed=0):
    """Adam/AdamW on half-precision ``param``/``grad`` with float32 moments.

    .. math::
        g = \\mathrm{f32}(grad),\\; w = master \\text{ or } \\mathrm{f32}(param) \\\\
        m \\leftarrow \\beta_1 m + (1-\\beta_1) g,\\;
        v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2 \\\\
        w \\leftarrow w - lr\\, \\frac{m / (1-\\beta_1^t)}{\\sqrt{v / (1-\\beta_2^t)} + \\epsilon}
        ,\\; param = \\mathrm{round}(w)

    ``round`` is nearest-even, or stochastic (bfloat16, seeded by ``(seed, step, index)``).
    All arrays are updated in place; the arithmetic is float32 throughout.
    """
    _check(param, grad, exp_avg, exp_avg_sq, master, stochastic_rounding)
    f32 = np.float32
    g = grad.astype(f32)
    if maximize:
        g = -g
    w = master.copy() if master is not None else param.astype(f32)
    if decoupled_weight_decay:
        w = w * f32(1 - lr * weight_decay)
    elif weight_decay != 0:
        g = g + f32(weight_decay) * w
    exp_avg[...] = f32(beta1) * exp_avg + f32(1 - beta1) * g
    exp_avg_sq[...] = f32(beta2) * exp_avg_sq + f32(1 - beta2) * g * g
    step_size = f32(lr / (1 - beta1**step))
    inv_bc2_sqrt = f32(1 / np.sqrt(1 - beta2**step))
    w = w - step_size * exp_avg / (np.sqrt(exp_avg_sq) * inv_bc2_sqrt + f32(eps))
    if master is not None:
        master[...] = w
    if stochastic_rounding:
        param[...] = f32_to_bf16_stochastic(w, seed=seed, step=step)
    else:
        param[...] = w.astype(param.dtype)  # NumPy/ml_dtypes casts round to nearest even
