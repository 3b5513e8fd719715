"""Compressed state through the optimizer classes (state_dtype="bfloat16" and "int8"), side
by side with float32 state: time per step and state bytes per parameter.

    PYTHONPATH=src python bench/state_dtype.py [--n 3e7] [--rounds 7]

Adam, Lion and SGD (both kinds) and RMSprop (bfloat16) run fastoptim.lowmem's fused kernels;
the others (generic state) run their own float32 kernel on rounds of the state decoded into
per-thread scratch (kernels.compressed_many, fastoptim.optimizers._state_dtype). Medians of
interleaved rounds; one class step per call.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastoptim
from fastoptim.bench.lowmem import median_rounds     # the same interleaved rounds

CASES = [("Adam", {}), ("Lion", {}), ("SGD", dict(lr=1e-2, momentum=0.9)), ("RMSprop", {}),
         ("Adagrad", {}), ("Adamax", {})]
KINDS = (None, "bfloat16", "int8")


def main(argv=None) -> list:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=3e7)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    n = int(args.n)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(n).astype(np.float32)
    grads = [(rng.standard_normal(n) * 1e-2).astype(np.float32)]
    calls, sizes = {}, {}
    for name, opts in CASES:
        for kind in KINDS:
            opt = getattr(fastoptim, name)([param.copy()], state_dtype=kind, **opts)
            label = f"{name} {kind or 'float32'}"
            calls[label] = lambda opt=opt: opt.step(grads)
            sizes[label] = opt.state_nbytes() / n
    for call in calls.values():
        call()
    med = median_rounds(calls, args.rounds)
    print(f"class step, n = {n:.3g}, {fastoptim.get_num_threads()} threads, median of "
          f"{args.rounds} interleaved rounds")
    print(f"{'':22} {'state B/param':>14} {'ms':>8} {'x float32 state':>16}")
    rows = []
    for name, _ in CASES:
        base = med[f"{name} float32"]
        for kind in [k or "float32" for k in KINDS]:
            label = f"{name} {kind}"
            rows.append(dict(name=label, bytes=sizes[label], ms=med[label] * 1e3,
                             ratio=base / med[label]))
            print(f"{label:22} {sizes[label]:14.2f} {med[label] * 1e3:8.1f} "
                  f"{base / med[label]:16.2f}")
    return rows


if __name__ == "__main__":
    main()
