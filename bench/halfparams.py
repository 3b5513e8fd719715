"""Adam on half-precision parameters (fastoptim.halfparams): time per step and bytes moved,
side by side with float32 parameters and torch's fused step on the same dtypes.

    PYTHONPATH=src python bench/halfparams.py [--n 3e7] [--rounds 7]

Rows: fastoptim float32 Adam (fastoptim.adam_step); bfloat16 parameters with stochastic
rounding (no master copy: read p, g, m, v, write p, m, v = 2+2+4+4 + 2+4+4 = 22 bytes per
element); bfloat16 and float16 parameters with float32 master weights (26 + 8 = 34 bytes);
torch.optim.Adam(fused=True) on float32 and on bfloat16 parameters (its state in the
parameters' dtype). Medians of interleaved rounds.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastoptim
from fastoptim import halfparams as hp
from fastoptim.half_reference import bfloat16
from fastoptim.bench.lowmem import median_rounds     # the same interleaved rounds


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=3e7)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    n = int(args.n)
    rng = np.random.default_rng(0)
    p32 = rng.standard_normal(n).astype(np.float32)
    g32 = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    calls, nbytes, count = {}, {}, {}

    def counter(name):
        count[name] = count.get(name, 0) + 1
        return count[name]

    m, v, p = np.zeros(n, np.float32), np.zeros(n, np.float32), p32.copy()
    calls["fastoptim float32"] = lambda: fastoptim.adam_step(
        p, g32, m, v, step=counter("f32"), lr=1e-3)
    nbytes["fastoptim float32"] = 28
    for label, dtype, master, sr, b in (("bfloat16, stochastic rounding", bfloat16, False,
                                         True, 22),
                                        ("bfloat16, master weights", bfloat16, True, False, 30),
                                        ("float16, master weights", np.float16, True, False,
                                         30)):
        param = p32.astype(dtype)
        grad = g32.astype(dtype)
        state = hp.half_state(param, master_weights=master)
        calls["fastoptim " + label] = (
            lambda param=param, grad=grad, state=state, sr=sr, label=label:
            hp.adam_half_step(param, grad, state, step=counter(label), lr=1e-3,
                              stochastic_rounding=sr))
        nbytes["fastoptim " + label] = b
    try:
        import torch
        for dtype, name in ((torch.float32, "float32"), (torch.bfloat16, "bfloat16")):
            tp = torch.from_numpy(p32.copy()).to(dtype)
            tp.grad = torch.from_numpy(g32.copy()).to(dtype)
            opt = torch.optim.Adam([tp], lr=1e-3, fused=True)
            calls[f"torch fused {name}"] = opt.step
            nbytes[f"torch fused {name}"] = 28 if name == "float32" else 14
    except ImportError:
        torch = None
    for call in calls.values():
        call()
    med = median_rounds(calls, args.rounds)
    base = med["fastoptim float32"]
    print(f"Adam step, n = {n:.3g}, {fastoptim.get_num_threads()} threads, median of "
          f"{args.rounds} interleaved rounds")
    print(f"{'':40} {'ms':>8} {'bytes/elem':>11} {'GB/s':>7} {'x fastoptim f32':>16}")
    rows = []
    for name, t in med.items():
        gbs = nbytes[name] * n / t / 1e9
        rows.append(dict(name=name, ms=t * 1e3, bytes=nbytes[name], gbs=gbs, ratio=base / t))
        print(f"{name:40} {t * 1e3:8.1f} {nbytes[name]:>11} {gbs:7.1f} {base / t:16.2f}")
    return dict(n=n, rows=rows)


if __name__ == "__main__":
    main()
