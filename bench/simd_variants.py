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

from _timing import time_calls

from fastoptim import kernels
from fastoptim.bench import KERNELS
from fastoptim.bench.cases import RULES, coefficients, entry_arrays, make_arrays


def main():
    ap = argparse.ArgumentParser()
    registry = [k for k in KERNELS if k not in RULES]      # (LAMB: its own SIMD dispatch)
    ap.add_argument("--kernels", nargs="+", choices=registry, default=registry)
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
    for name in args.kernels:
        c = coefficients(name)   # the typical step of fastoptim bench
        for n in args.sizes:
            arrays = entry_arrays(name, make_arrays(name, n, args.dtype))
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
