"""Issue 6's targets for float32 Adam, as ratios measured side by side in one run.

    PYTHONPATH=src python bench/targets.py [--threads N]

Compares fastoptim (``adam_step`` with its validation, backend "auto"; the multi-tensor call
for many arrays) with torch.optim.Adam(fused=True) on the same memory (torch.from_numpy)
and with the naive NumPy reference. torch is optional (``pip install .[bench]``); without it
those columns are skipped. Times: median of interleaved rounds (bench/_timing.py).
The n >= 1e7 target (95% of a pure memory-traffic loop) is measured by ``fastoptim bench``.
"""
import argparse

import numpy as np
from _timing import time_calls
from multi_tensor import sizes

from fastoptim import _coefficients as coef
from fastoptim import functional as F
from fastoptim import kernels

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def torch_step(arrays, grads):
    """A zero-argument callable: one fused torch Adam step on views of ``arrays``."""
    params = [torch.nn.Parameter(torch.from_numpy(a), requires_grad=True) for a in arrays]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g)
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    return opt.step


def adam_arrays(n, rng):
    return (rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32),
            np.zeros(n, np.float32), np.zeros(n, np.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if torch is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"SIMD variant {kernels.simd_target()}; torch "
          f"{torch.__version__ if torch else 'not installed'}; median times")
    for n, goal_torch, goal_numpy in ((8, 20, 5), (100, 20, 5), (1000, 20, 5),
                                      (100_000, 3, None), (1_000_000, 1.5, None)):
        p, g, m, v = adam_arrays(n, rng)
        calls = {"ours": lambda: F.adam_step(p, g, m, v, step=10)}
        if goal_numpy:
            calls["numpy"] = lambda: F.adam_step(p, g, m, v, step=10, backend="numpy")
        if torch is not None:
            tp = p.copy()
            calls["torch"] = torch_step([tp], [g])
        t = {k: med for k, (med, _) in time_calls(calls, repeats=11).items()}
        line = f"  n={n:>8}: ours {t['ours'] * 1e6:8.2f} us"
        if "torch" in t:
            line += f", torch fused {t['torch'] * 1e6:8.2f} us = {t['torch'] / t['ours']:5.1f}x " \
                    f"(target {goal_torch}x)"
        if "numpy" in t:
            line += f", naive {t['numpy'] / t['ours']:4.1f}x (target {goal_numpy}x)"
        print(line, flush=True)

    n = sizes()
    lists = list(zip(*(adam_arrays(k, rng) for k in n)))
    flat = adam_arrays(sum(n), rng)
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    calls = {
        "multi": lambda: kernels.adam_multi(*(list(x) for x in lists), None, *c,
                                            num_threads=args.threads),
        "flat": lambda: F.adam_step(*flat, step=10),
    }
    if torch is not None:
        calls["torch"] = torch_step([a.copy() for a in lists[0]], list(lists[1]))
    t = {k: med for k, (med, _) in time_calls(calls, repeats=11).items()}
    line = (f"  {len(n)} arrays, {sum(n)} elements: adam_multi {t['multi'] * 1e3:.3f} ms, "
            f"flat adam_step {t['flat'] * 1e3:.3f} ms, ratio {t['multi'] / t['flat']:.2f} "
            f"(target <= 1.2)")
    if "torch" in t:
        line += f"; torch fused {t['torch'] * 1e3:.3f} ms = {t['torch'] / t['multi']:.1f}x " \
                f"(target 4x)"
    print(line)


if __name__ == "__main__":
    main()
