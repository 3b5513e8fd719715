"""Cython Adam float32: ns/element at 1e3..1e7 and the per-call cost at 8..1000 elements.

Run from the worktree: ``PYTHONPATH=src python bench/adam_sizes.py``. Interleaved medians
(fastoptim.bench.time_interleaved); the machine is shared, so compare numbers from one run.
"""
import sys

import numpy as np

from fastoptim import functional as F
from fastoptim import kernels
from fastoptim import _coefficients as coef
from fastoptim.bench import time_interleaved


def arrays(n, dtype=np.float32):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    return p, g, np.zeros(n, dtype), np.zeros(n, dtype)


def main(dtype="float32"):
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    print(f"Adam {dtype}: ns/element (kernel = kernels.adam without validation, "
          f"call = adam_step with validation)")
    for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        p, g, m, v = arrays(n, dtype)
        t = time_interleaved({
            "kernel": lambda: kernels.adam(p, g, m, v, None, *c),
            "call": lambda: F.adam_step(p, g, m, v, step=10, backend="cython"),
        }, repeats=9 if n < 10_000_000 else 5)
        print(f"  n={n:>9}  kernel {t['kernel'] / n * 1e9:7.3f}  call {t['call'] / n * 1e9:7.3f}",
              flush=True)
    print("per call, microseconds")
    for n in (8, 100, 1000):
        p, g, m, v = arrays(n, dtype)
        t = time_interleaved({
            "kernel": lambda: kernels.adam(p, g, m, v, None, *c),
            "call": lambda: F.adam_step(p, g, m, v, step=10, backend="cython"),
            "auto": lambda: F.adam_step(p, g, m, v, step=10),
        }, repeats=9)
        print(f"  n={n:>5}  kernel {t['kernel'] * 1e6:6.3f}  adam_step(cython) "
              f"{t['call'] * 1e6:6.3f}  adam_step(auto) {t['auto'] * 1e6:6.3f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
