"""Cython Adam float32: ns/element at 1e3..1e7 and the per-call cost at 8..1000 elements.

    PYTHONPATH=src python bench/adam_sizes.py [float32|float64]

"kernel" is kernels.adam (no validation), "call" the public adam_step(backend="cython")
with its validation. Interleaved rounds, median/min (bench/_timing.py).
"""
import sys

import numpy as np
from _timing import time_calls

from fastoptim import _coefficients as coef
from fastoptim import functional as F
from fastoptim import kernels


def arrays(n, dtype):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    return p, g, np.zeros(n, dtype), np.zeros(n, dtype)


def cell(t, scale):
    return f"{t[0] * scale:8.3f}/{t[1] * scale:<8.3f}"


def main(dtype="float32"):
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    print(f"Adam {dtype}, SIMD variant {kernels.simd_target()}; ns/element")
    for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        p, g, m, v = arrays(n, dtype)
        t = time_calls({
            "kernel": lambda: kernels.adam(p, g, m, v, None, c),
            "call": lambda: F.adam_step(p, g, m, v, step=10, backend="cython"),
        }, repeats=15 if n < 10_000_000 else 7)
        print(f"  n={n:>9}  kernel {cell(t['kernel'], 1e9 / n)} call {cell(t['call'], 1e9 / n)}",
              flush=True)
    print("per call, microseconds")
    for n in (8, 100, 1000):
        p, g, m, v = arrays(n, dtype)
        t = time_calls({
            "kernel": lambda: kernels.adam(p, g, m, v, None, c),
            "call": lambda: F.adam_step(p, g, m, v, step=10, backend="cython"),
            "numpy": lambda: F.adam_step(p, g, m, v, step=10, backend="numpy"),
        }, repeats=15)
        print(f"  n={n:>5}  kernel {cell(t['kernel'], 1e6)} adam_step {cell(t['call'], 1e6)} "
              f"numpy reference {cell(t['numpy'], 1e6)} "
              f"ratio {t['numpy'][0] / t['call'][0]:.1f}x", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
