"""The Cython kernels (no validation) under every SIMD variant this CPU can run, optionally
against the pre-dispatch build ("before": a module ``kold`` built in DIR from git 6041f1f's
kernels.pyx/.pxd renamed, SSE2 only).

    PYTHONPATH=src python bench/simd_variants.py [--kernels adam ...] [--sizes N ...]
                                                 [--dtype float32] [--old DIR]

ns per element, median/min over interleaved rounds (bench/_timing.py). The variant switch
(~0.1 us) is inside every timed call of the new build; it shows only at n ~ 1e3.
"""
import argparse
import importlib
import sys

import numpy as np
from _timing import time_calls

from fastoptim import _coefficients as coef
from fastoptim import kernels

# kernel -> (state arrays, optional state slots, coefficients)
SETUPS = {
    "sgd": (0, 0, coef.sgd(1e-3, 0.0, False)),
    "momentum": (1, 0, coef.momentum(1e-3, 0.9, 0.0, False, 0.0, False)),
    "rmsprop": (1, 2, coef.rmsprop(1e-3, 0.99, 1e-8, 0.0, 0.0, False)),
    "adam": (2, 1, coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)),
    "adagrad": (1, 0, coef.adagrad(10, 1e-3, 0.0, 0.0, 1e-10, False)),
    "ewa": (0, 0, coef.ewa(0.9)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernels", nargs="+", choices=list(SETUPS), default=list(SETUPS))
    ap.add_argument("--sizes", nargs="+", type=int, default=[100_000])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--old", default=None)
    args = ap.parse_args()
    old = None
    if args.old:
        sys.path.insert(0, args.old)
        old = importlib.import_module("kold")
    targets = kernels.simd_targets()
    print(f"{args.dtype}, ns/element; running variant {kernels.simd_target()}")
    print(f"{'kernel':<9}{'n':>10}"
          + "".join(f"{k:>16}" for k in (["before"] if old else []) + targets))
    rng = np.random.default_rng(0)
    for name in args.kernels:
        n_state, n_optional, c = SETUPS[name]
        for n in args.sizes:
            arrays = [rng.standard_normal(n).astype(args.dtype) for _ in range(2)] + [
                np.zeros(n, args.dtype) for _ in range(n_state)] + [None] * n_optional
            calls = {}
            if old:
                calls["before"] = lambda f=getattr(old, name), a=arrays: f(*a, c)
            for t in targets:
                calls[t] = (lambda t=t, f=getattr(kernels, name), a=arrays:
                            (kernels._select_simd_target(t), f(*a, c)))
            times = time_calls(calls, repeats=11 if n < 10_000_000 else 5)
            print(f"{name:<9}{n:>10}" + "".join(
                f"{times[k][0] / n * 1e9:8.3f}/{times[k][1] / n * 1e9:<7.3f}" for k in calls),
                flush=True)
    kernels._select_simd_target(targets[-1])


if __name__ == "__main__":
    main()
