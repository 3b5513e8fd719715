"""The multi-tensor performance target: one optimizer step over 200 arrays of mixed sizes.

An optimizer class stepping 200 arrays (64 to 32768 elements, about 2.2M in total) should
take at most 1.2x one ``adam_step`` on a single flat array of the same total size, and be at
least 4x faster than ``torch.optim.Adam(fused=True)`` on the same 200 arrays. All three are
timed in interleaved rounds; competitors that are missing (``fastoptim.Adam`` before the
optimizer classes land, torch) are reported as such.
"""
from __future__ import annotations

import numpy as np

from .timing import summarize, time_interleaved

N_ARRAYS = 200


def array_sizes(n_arrays: int = N_ARRAYS, smallest: int = 64, largest: int = 32768) -> list:
    """Deterministic mixed sizes, many small and a few large, about 2.2M elements in total."""
    u = np.linspace(0.0, 1.0, n_arrays)
    sizes = np.rint(smallest + (largest - smallest) * u**2).astype(int)
    np.random.default_rng(0).shuffle(sizes)
    return [int(s) for s in sizes]


def multi_calls(dtype=np.float32) -> tuple:
    """``({name: call}, {name: reason unavailable})`` for the multi-tensor comparison."""
    import fastoptim

    rng = np.random.default_rng(0)
    sizes = array_sizes()
    params = [rng.standard_normal(s, dtype=dtype) for s in sizes]
    grads = [rng.standard_normal(s, dtype=dtype) for s in sizes]
    total = sum(sizes)
    flat = [rng.standard_normal(total, dtype=dtype) for _ in range(2)] + \
        [np.zeros(total, dtype) for _ in range(2)]
    calls = {"flat adam_step": lambda: fastoptim.adam_step(*flat, step=10, lr=1e-3)}
    missing = {}
    if hasattr(fastoptim, "Adam"):
        opt = fastoptim.Adam(params, lr=1e-3)
        calls["fastoptim.Adam"] = lambda: opt.step(grads)
    else:
        missing["fastoptim.Adam"] = "the optimizer classes are not in this build yet"
    try:
        import torch
    except ImportError as exc:
        missing["torch fused"] = f"torch is not installed ({exc})"
    else:
        tparams = [torch.from_numpy(p.copy()) for p in params]
        for p, g in zip(tparams, grads):
            p.grad = torch.from_numpy(g)
        topt = torch.optim.Adam(tparams, lr=1e-3, fused=True)
        calls["torch fused"] = topt.step
    return calls, missing, total


def run_multi(repeats: int = 7) -> dict:
    """Time and print the multi-tensor comparison; returns the medians (seconds)."""
    calls, missing, total = multi_calls()
    samples = time_interleaved(calls, repeats, min_time=5e-3, threaded=calls)
    med = {name: summarize(s)["median"] for name, s in samples.items()}
    print(f"\nmulti-tensor, adam float32: {N_ARRAYS} arrays of 64..32768 elements "
          f"({total / 1e6:.2f}M in total), medians of {repeats} interleaved rounds")
    for name, t in med.items():
        print(f"  {name:<16} {t * 1e3:8.3f} ms")
    for name, reason in missing.items():
        print(f"  {name:<16} not measured: {reason}")
    cls = med.get("fastoptim.Adam")
    if cls is not None:
        ratio = cls / med["flat adam_step"]
        print(f"  fastoptim.Adam / flat adam_step = {ratio:.2f}  (target <= 1.2)  "
              f"{'met' if ratio <= 1.2 else 'NOT met'}")
        if "torch fused" in med:
            speed = med["torch fused"] / cls
            print(f"  torch fused / fastoptim.Adam = {speed:.2f}x  (target >= 4)  "
                  f"{'met' if speed >= 4 else 'NOT met'}")
    return med
