"""Multi-tensor vs flat: one Adam float32 step over 200 arrays of 64..32768 elements
(about 2M in total) against one step on a single flat array of the same total size.

    PYTHONPATH=src python bench/multi_tensor.py

Columns: ms per step, median/min over interleaved rounds (bench/_timing.py). "views": the
same 200 arrays as views of one buffer per role (an arena); "m v views": only the state.
"""
import numpy as np
from _timing import time_calls

import fastoptim as fo
from fastoptim import _coefficients as coef
from fastoptim import functional as F
from fastoptim import kernels


def sizes(count=200, lo=64, hi=32768, total=2_000_000, seed=0):
    """Log-uniform sizes in [lo, hi], scaled to about ``total`` elements."""
    rng = np.random.default_rng(seed)
    s = np.exp(rng.uniform(np.log(lo), np.log(hi), count))
    s = np.clip(np.round(s * total / s.sum()), lo, hi).astype(int)
    return [int(x) for x in s]


def main():
    n = sizes()
    total = sum(n)
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(k).astype(np.float32) for k in n]
    grads = [rng.standard_normal(k).astype(np.float32) for k in n]
    ms = [np.zeros(k, np.float32) for k in n]
    vs = [np.zeros(k, np.float32) for k in n]
    flat = [rng.standard_normal(total).astype(np.float32)] + [
        np.zeros(total, np.float32) for _ in range(3)]
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    # the same 200 arrays as views of one buffer per role (an arena): like flat in memory
    bounds = np.cumsum([0] + n)
    views = [[a[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])] for a in flat]

    def loop_validated():
        for p, g, m, v in zip(params, grads, ms, vs):
            F.adam_step(p, g, m, v, step=10, backend="cython")

    def loop_kernel():
        for p, g, m, v in zip(params, grads, ms, vs):
            kernels.adam(p, g, m, v, None, c)

    opt_many = fo.Adam([p.copy() for p in params])
    opt_flat = fo.Adam([flat[0].copy()])
    calls = {
        "Adam.step, 1 flat array": lambda: opt_flat.step([flat[1]]),
        "Adam.step, 200 arrays": lambda: opt_many.step(grads),
        "flat adam_step (serial)": lambda: F.adam_step(*flat, step=10, backend="cython"),
        "flat adam_multi 2 thr": lambda: kernels.adam_multi(
            [flat[0]], [flat[1]], [flat[2]], [flat[3]], None, c, num_threads=2),
        "200 x adam_step loop": loop_validated,
        "200 x kernels.adam loop": loop_kernel,
        "adam_multi 1 thread": lambda: kernels.adam_multi(params, grads, ms, vs, None, c,
                                                          num_threads=1),
        "adam_multi 2 threads": lambda: kernels.adam_multi(params, grads, ms, vs, None, c,
                                                           num_threads=2),
        "adam_multi 1 thr, views": lambda: kernels.adam_multi(*views, None, c,
                                                              num_threads=1),
        "adam_multi 1 thr, m v views": lambda: kernels.adam_multi(
            params, grads, *views[2:], None, c, num_threads=1),
        "adam_multi 2 thr, views": lambda: kernels.adam_multi(*views, None, c,
                                                              num_threads=2),
    }
    print(f"{len(n)} arrays, {min(n)}..{max(n)} elements, {total} in total; "
          f"SIMD variant {kernels.simd_target()}")
    times = time_calls(calls, repeats=21)
    for name, (med, low) in times.items():
        print(f"  {name:<26} {med * 1e3:7.3f} / {low * 1e3:7.3f} ms")
    ref = times["flat adam_step (serial)"][0]
    best_flat = min(times["flat adam_step (serial)"][0], times["flat adam_multi 2 thr"][0])
    multi = times["adam_multi 2 threads"][0]
    print(f"  adam_multi 2 threads / best flat = {multi / best_flat:.2f} (target <= 1.2); "
          f"/ flat serial = {multi / ref:.2f}")
    many, one = times["Adam.step, 200 arrays"][0], times["Adam.step, 1 flat array"][0]
    print(f"  Adam.step: 200 arrays / 1 flat array = {many / one:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
