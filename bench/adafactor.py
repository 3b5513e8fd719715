"""Adafactor at the memory wall and at small sizes (measured under load: read as +-15%).

    PYTHONPATH=src python bench/adafactor.py [--repeats 7]

1. A 3162 x 3162 float32 matrix (1e7 elements): fastoptim's Adafactor step (cython, numba,
   auto) side by side with the traffic loop of its own access pattern, three passes
   (read p, g | read g | read g, read+write p: 24 bytes/element), and with the one-pass
   element-wise pattern (read g, read+write p: 12 bytes/element) no Adafactor can reach,
   since the update clipping needs the RMS of the whole update before any element is
   written. And torch.optim.Adafactor (foreach=False, the for-loop) on the same memory.
2. The whole call at n = 100 (a 10 x 10 matrix and a 100-vector) against adam_step's.

Medians (and minima) of interleaved rounds.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _timing import time_calls  # noqa: E402

import fastoptim as fo  # noqa: E402
from fastoptim import _adafactor  # noqa: E402
from fastoptim.bench.bandwidth import _traffic_loops  # noqa: E402


def _three_pass_traffic():
    from numba import njit, prange

    opts = dict(parallel=True, cache=True, error_model="numpy", fastmath=False)

    @njit(**opts)
    def loop(p, g, pi, gi, c):  # the reads and writes of an Adafactor step, no arithmetic
        # the reading passes sum the bits as integers (pi, gi: int32 views of p, g), which
        # the compiler may vectorize: a float sum must keep its order and would be
        # latency-bound, not memory-bound
        s = 0
        for i in prange(gi.size):          # pass 1: read p, g
            s += pi[i] + gi[i]
        t = 0
        for i in prange(gi.size):          # pass 2: read g
            t += gi[i]
        x = c * (s + t)
        for i in prange(g.size):           # pass 3: read g, read and write p
            p[i] = p[i] + x * g[i]
    return loop


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--side", type=int, default=3162,
                    help="the matrix is side x side (3162: 1e7 elements; larger where the "
                         "last-level cache holds 1e7)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    side = args.side
    n = side * side
    p = rng.standard_normal((side, side)).astype(np.float32)
    g = rng.standard_normal((side, side)).astype(np.float32)
    rv = np.zeros((side, 1), np.float32)
    cv = np.zeros((1, side), np.float32)
    opt = fo.Adafactor([p], backend="auto")
    opt_numba = fo.Adafactor([p.copy()], backend="numba")
    g_numba = g.copy()
    three = _three_pass_traffic()
    one = _traffic_loops()[1]
    flat_p, flat_g = p.reshape(-1), g.reshape(-1)
    zero = np.float32(0.0)
    calls = {
        "auto (class)": lambda: opt.step([g]),
        "auto (adafactor_step)": lambda: fo.adafactor_step(p, g, rv, cv, step=5),
        "numba (class)": lambda: opt_numba.step([g_numba]),
        "traffic, 3 passes (24 B/elem)": lambda: three(flat_p, flat_g, flat_p.view(np.int32),
                                                       flat_g.view(np.int32), zero),
        "traffic, 1 pass (12 B/elem)": lambda: one(flat_g, flat_p, zero),
    }
    try:
        import torch
        tp = torch.from_numpy(p.copy())
        tp.grad = torch.from_numpy(g.copy())
        topt = torch.optim.Adafactor([tp], foreach=False)
        calls["torch (foreach=False)"] = topt.step
    except ImportError:
        pass
    for f in calls.values():
        f()
    print(f"Adafactor, {side} x {side} float32 ({n:.3g} elements), threads="
          f"{fo.get_num_threads()}, SIMD {_adafactor.simd_target()}")
    res = time_calls(calls, repeats=args.repeats, min_time=0.05)
    roof = res["traffic, 3 passes (24 B/elem)"][0]
    print("| case | median ms | min ms | GB/s (24 B/elem) | fraction of 3-pass roofline |")
    print("|---|---:|---:|---:|---:|")
    for name, (med, mn) in res.items():
        print(f"| {name} | {med * 1e3:.2f} | {mn * 1e3:.2f} | {24 * n / med / 1e9:.1f} | "
              f"{roof / med:.2f} |")

    # small calls
    small = {}
    pm = rng.standard_normal((10, 10)).astype(np.float32)
    gm = rng.standard_normal((10, 10)).astype(np.float32)
    rvm, cvm = np.zeros((10, 1), np.float32), np.zeros((1, 10), np.float32)
    pv = rng.standard_normal(100).astype(np.float32)
    gv = rng.standard_normal(100).astype(np.float32)
    vv = np.zeros(100, np.float32)
    m, v = np.zeros(100, np.float32), np.zeros(100, np.float32)
    pa = pv.copy()
    om = fo.Adafactor([pm.copy()])
    oa = fo.Adam([pa.copy()])
    small["adam_step (100)"] = lambda: fo.adam_step(pa, gv, m, v, step=5)
    small["adafactor_step (10x10)"] = lambda: fo.adafactor_step(pm, gm, rvm, cvm, step=5)
    small["adafactor_step (100,)"] = lambda: fo.adafactor_step(pv, gv, variance=vv, step=5)
    small["Adam.step (100)"] = lambda: oa.step([gv])
    small["Adafactor.step (10x10)"] = lambda: om.step([gm])
    res = time_calls(small, repeats=args.repeats * 3)
    base = res["adam_step (100)"][0]
    print("\n| call (n = 100) | median us | min us | vs adam_step |")
    print("|---|---:|---:|---:|")
    for name, (med, mn) in res.items():
        print(f"| {name} | {med * 1e6:.2f} | {mn * 1e6:.2f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
