"""The int8 loops' two nearest-code searches side by side: the bucket table's gather and the
arithmetic search (csrc/adam_lowmem.h; the AVX-512 loops use the arithmetic one on AMD CPUs),
for Adam, SGD with momentum and Lion (fastoptim.lowmem's fused kernels) and Adagrad (the
generic compressed state, kernels.compressed). Both give the same codes.

    PYTHONPATH=src python bench/int8_search.py [--n 3e7] [--rounds 9] [--threads 2]

One process, the two searches alternating call by call; medians.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastoptim.lowmem as lm
from fastoptim import _lowmem, kernels
from fastoptim.bench.lowmem import median_rounds, with_search   # the same rounds
from fastoptim.optimizers._state_dtype import _Int8Codec

SEARCHES = ("bucket", "arithmetic")


def step_of(kind: str, param: np.ndarray, grad: np.ndarray, threads: int):
    """One int8 step of ``kind`` on ``param`` (its own state), as a call."""
    if kind == "Adam":
        state, count = lm.adam_state(param, "int8"), [0]

        def step():
            count[0] += 1
            lm.adam_lowmem_step(param, grad, state, step=count[0], lr=1e-3)
    elif kind == "SGD":
        state = lm.momentum_state(param, "int8")

        def step():
            lm.momentum_lowmem_step(param, grad, state, lr=1e-3)
    elif kind == "Lion":
        state = lm.lion_state(param, "int8")

        def step():
            lm.lion_lowmem_step(param, grad, state, lr=1e-4)
    else:       # Adagrad on the generic compressed state: its sum of squares in 8 bits
        codes, absmax = lm.quantize_blockwise(grad * grad, False)
        tables = _Int8Codec(False).tables
        c = kernels.coefficients_adagrad(1, 0.1, 0.0, 0.0, 1e-10, False)

        def step():
            kernels.compressed(param, grad, (codes,), (absmax,), (tables,), c,
                               num_threads=threads)
    return step


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=3e7)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if len(_lowmem.nearest_code_searches()) < 2:
        raise SystemExit(f"the searches differ at the AVX-512 levels only; this CPU runs "
                         f"{_lowmem.simd_target()}")
    import fastoptim
    fastoptim.set_num_threads(args.threads)
    n = int(args.n)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(n).astype(np.float32)
    grad = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    print(f"int8 state, n = {n:.3g}, {args.threads} threads, SIMD level "
          f"{_lowmem.simd_target()}, this CPU's search: {_lowmem.nearest_code_search()}; "
          f"medians of {args.rounds} interleaved calls")
    print(f"{'':8} {'bucket ms':>10} {'arithmetic ms':>14} {'x':>6}")
    result = {}
    for kind in ("Adam", "SGD", "Lion", "Adagrad"):
        calls = {s: with_search(step_of(kind, param.copy(), grad, args.threads), s)
                 for s in SEARCHES}
        for call in calls.values():          # first touch
            call()
        med = median_rounds(calls, args.rounds)
        result[kind] = {s: med[s] * 1e3 for s in SEARCHES}
        print(f"{kind:8} {med['bucket'] * 1e3:>10.2f} {med['arithmetic'] * 1e3:>14.2f} "
              f"{med['bucket'] / med['arithmetic']:>6.2f}")
    return result


if __name__ == "__main__":
    main()
