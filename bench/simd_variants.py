"""Time the Cython Adam kernel (no validation) under every SIMD variant this CPU can run.

    PYTHONPATH=src python bench/simd_variants.py [float32|float64] [--old DIR]

``--old DIR`` adds a module ``kold`` built in DIR from the pre-dispatch kernels.pyx (git
6041f1f, SSE2 only) as the "before" column. Interleaved rounds, ns per element as median/min; the
variant switch (~0.1 us) is inside every timed call, which matters only at 1e3.
"""
import argparse
import importlib
import sys

import numpy as np

from fastoptim import _coefficients as coef
from fastoptim import kernels
from _timing import time_calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dtype", nargs="?", default="float32")
    ap.add_argument("--old", default=None)
    ap.add_argument("--sizes", nargs="+", type=int,
                    default=[1_000, 10_000, 30_000, 100_000, 1_000_000, 10_000_000])
    args = ap.parse_args()
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    old = None
    if args.old:
        sys.path.insert(0, args.old)
        old = importlib.import_module("kold")
    targets = kernels.simd_targets()
    print(f"Adam {args.dtype}, ns/element; running variant {kernels.simd_target()}")
    print(f"{'n':>10} " + "".join(f"{k:>15} " for k in (["before"] if old else []) + targets))
    for n in args.sizes:
        rng = np.random.default_rng(0)
        p = rng.standard_normal(n).astype(args.dtype)
        g = rng.standard_normal(n).astype(args.dtype)
        m, v = np.zeros_like(p), np.zeros_like(p)
        calls = {}
        if old:
            calls["before"] = lambda: old.adam(p, g, m, v, None, *c)
        for t in targets:
            calls[t] = (lambda t=t: (kernels._select_simd_target(t),
                                     kernels.adam(p, g, m, v, None, *c)))
        times = time_calls(calls, repeats=15 if n < 10_000_000 else 7)
        print(f"{n:>10} " + "".join(
            f"{times[k][0] / n * 1e9:7.3f}/{times[k][1] / n * 1e9:<7.3f}" for k in calls),
            flush=True)
    kernels._select_simd_target(targets[-1])


if __name__ == "__main__":
    main()
