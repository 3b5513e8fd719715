"""Multi-tensor vs flat: one float32 step of a kernel (Adam by default) over 200 arrays of
64..32768 elements (about 2M in total) against one step on a single flat array of the same
total size.

    PYTHONPATH=src python bench/multi_tensor.py [--kernel adam]

The step is the kernel's typical one (its registry example, as in ``fastoptim bench``).
Columns: ms per step, median/min over interleaved rounds (bench/_timing.py). "views": the
same 200 arrays as views of one buffer per role (an arena); "state views": only the state.
"""
import argparse

import numpy as np
from _timing import time_calls

import fastoptim as fo
from fastoptim import _registry, kernels
from fastoptim.bench import KERNELS
from fastoptim.bench.cases import RULES
from fastoptim.bench.cases import (coefficients, entry_arrays, fastoptim_call, make_arrays,
                                   state_names)


def sizes(count=200, lo=64, hi=32768, total=2_000_000, seed=0):
    """Log-uniform sizes in [lo, hi], scaled to about ``total`` elements."""
    rng = np.random.default_rng(seed)
    s = np.exp(rng.uniform(np.log(lo), np.log(hi), count))
    s = np.clip(np.round(s * total / s.sum()), lo, hi).astype(int)
    return [int(x) for x in s]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", choices=[k for k in KERNELS if k not in RULES],
                    default="adam")
    kernel = ap.parse_args().kernel
    n = sizes()
    total = sum(n)
    # one list per array role (param, grad, each state), one entry per array
    per_array = [make_arrays(kernel, k, np.float32, seed=i) for i, k in enumerate(n)]
    roles = [list(column) for column in zip(*per_array)]
    flat = make_arrays(kernel, total, np.float32, seed=1)
    c = coefficients(kernel)
    fn, multi = getattr(kernels, kernel), getattr(kernels, kernel + "_multi")

    def multi_args(lists):
        """The role lists in the order of kernels.<kernel>_multi (None: an unused state)."""
        return entry_arrays(kernel, lists)

    # the same 200 arrays as views of one buffer per role (an arena): like flat in memory
    bounds = np.cumsum([0] + n)
    views = [[a[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])] for a in flat]
    state_views = roles[:2] + views[2:]
    validated = [fastoptim_call(kernel, arrays, "cython") for arrays in per_array]
    unvalidated = [entry_arrays(kernel, arrays) for arrays in per_array]

    def loop_validated():
        for call in validated:
            call()

    def loop_kernel():
        for arrays in unvalidated:
            fn(*arrays, c)

    name = f"{kernel}_multi"
    calls = {}
    spec = _registry.kernel(kernel)
    if spec.optimizers:         # the optimizer class: 200 arrays against one flat array
        cls = getattr(fo, spec.optimizers[0].name)
        opts = dict(spec.optimizers[0].examples[0]) if spec.optimizers[0].examples else {}
        opt_many = cls([p.copy() for p in roles[0]], **opts)
        opt_flat = cls([flat[0].copy()], **opts)
        calls[f"{cls.__name__}.step, 1 flat array"] = lambda: opt_flat.step([flat[1]])
        calls[f"{cls.__name__}.step, 200 arrays"] = lambda: opt_many.step(roles[1])
    calls.update({
        "flat step (serial)": fastoptim_call(kernel, flat, "cython"),
        f"flat {name} 2 thr": lambda: multi(*multi_args([[a] for a in flat]), c,
                                            num_threads=2),
        "200 x public step loop": loop_validated,
        f"200 x kernels.{kernel} loop": loop_kernel,
        f"{name} 1 thread": lambda: multi(*multi_args(roles), c, num_threads=1),
        f"{name} 2 threads": lambda: multi(*multi_args(roles), c, num_threads=2),
        f"{name} 1 thr, views": lambda: multi(*multi_args(views), c, num_threads=1),
        f"{name} 1 thr, state views": lambda: multi(*multi_args(state_views), c,
                                                    num_threads=1),
        f"{name} 2 thr, views": lambda: multi(*multi_args(views), c, num_threads=2),
    })
    print(f"{kernel} ({', '.join(('param', 'grad') + state_names(kernel))}): {len(n)} arrays, "
          f"{min(n)}..{max(n)} elements, {total} in total; SIMD variant {kernels.simd_target()}")
    times = time_calls(calls, repeats=21)
    width = max(map(len, calls)) + 1
    for label, (med, low) in times.items():
        print(f"  {label:<{width}} {med * 1e3:7.3f} / {low * 1e3:7.3f} ms")
    ref = times["flat step (serial)"][0]
    best_flat = min(ref, times[f"flat {name} 2 thr"][0])
    m = times[f"{name} 2 threads"][0]
    print(f"  {name} 2 threads / best flat = {m / best_flat:.2f} (target <= 1.2); "
          f"/ flat serial = {m / ref:.2f}")
    steps = [k for k in times if ".step, " in k]
    if steps:
        ratio = times[steps[1]][0] / times[steps[0]][0]
        print(f"  {steps[1]} / {steps[0]} = {ratio:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
