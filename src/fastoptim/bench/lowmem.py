"""Low-memory Adam state (fastoptim.lowmem): speed and bytes per parameter, side by side.

    fastoptim bench --lowmem [--lowmem-size 3e7]      (after the kernel tables), or
    python bench/lowmem.py [--n 3e7] [--rounds 7] [--bnb-n 1.6e7] [--json F] [--simd LEVEL]
                            [--search bucket|arithmetic]

One Adam step on float32 parameters of n elements with float32, bfloat16 and int8 state,
against torch's fused float32 step (torch.optim.Adam(fused=True)), in interleaved rounds
(medians). Each kind is also compared with the traffic roofline of its own access pattern:
a Numba loop on all threads that moves exactly its bytes (read g; read and write p and the
two moments in their storage type) and computes nothing. With bitsandbytes installed
(an optional peer, imported here only) its CPU AdamW8bit is timed at --bnb-n elements
against fastoptim's int8 AdamW.
"""
from __future__ import annotations

import argparse
import json
import time

import functools

import numpy as np

from fastoptim import lowmem as lm


@functools.lru_cache(maxsize=None)
def _traffic_loop():
    """The traffic roofline's loop (Numba, compiled on first use: `import fastoptim.bench`
    stays free of Numba)."""
    import numba

    @numba.njit(parallel=True)        # a closure: compiled once per process, not cached
    def traffic(g, p, m, v):
        """Read g; read and write p, m, v (each in its own type); no arithmetic to speak
        of."""
        for i in numba.prange(p.size):
            p[i] = p[i] + g[i]
            m[i] = m[i] + 1
            v[i] = v[i] + 1
    return traffic


def _traffic(g, p, m, v):
    _traffic_loop()(g, p, m, v)


def _traffic_int8(g, p, m, v, ma, va):
    _traffic(g, p, m, v)
    _traffic(ma, ma, ma, va)          # the per-block scales (n / 256 of them)


def with_search(step, search: str, restore=None):
    """``step`` with the int8 loops' nearest-code search set to ``search`` for the call, then
    to ``restore`` (None: the CPU's choice)."""
    from fastoptim import _lowmem

    def call():
        _lowmem._select_nearest_code_search(search)
        try:
            step()
        finally:
            _lowmem._select_nearest_code_search(restore)
    return call


def median_rounds(calls: dict, rounds: int) -> dict:
    """{name: median seconds}, the calls interleaved round by round."""
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=3e7)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--bnb-n", type=float, default=1.6e7)
    ap.add_argument("--json", default=None)
    ap.add_argument("--simd", default=None,
                    help="the SIMD level of the compressed-state kernels (default: the best "
                         "this CPU has; fastoptim._lowmem.simd_targets() lists them)")
    ap.add_argument("--search", default=None, choices=("bucket", "arithmetic"),
                    help="the int8 loops' nearest-code search at the AVX-512 levels (default: "
                         "this CPU's choice); the other one runs too, as an extra int8 row")
    args = ap.parse_args(argv)
    from fastoptim import _lowmem
    if args.simd is not None:
        _lowmem._select_simd_target(args.simd)
    _lowmem._select_nearest_code_search(args.search)
    search = _lowmem.nearest_code_search()
    # the other search, side by side (the AVX-512 levels have both)
    other = next((s for s in _lowmem.nearest_code_searches() if s != search), None)
    n = int(args.n)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(n).astype(np.float32)
    grad = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    kinds = ("float32", "bfloat16", "int8")
    params = {k: param.copy() for k in kinds}
    states = {k: lm.adam_state(params[k], k) for k in kinds}
    steps = {k: 0 for k in kinds}
    calls = {}
    for k in kinds:
        def step(k=k):
            steps[k] += 1
            lm.adam_lowmem_step(params[k], grad, states[k], step=steps[k], lr=1e-3)
        calls[k] = step
    if other is not None:
        other_param = param.copy()
        other_state = lm.adam_state(other_param, "int8")
        other_steps = [0]

        def step_other():
            other_steps[0] += 1
            lm.adam_lowmem_step(other_param, grad, other_state, step=other_steps[0], lr=1e-3)
        calls["int8 " + other] = with_search(step_other, other, restore=search)
    # the traffic roofline of each access pattern
    tp = param.copy()
    store = {"float32": (np.zeros(n, np.float32), np.zeros(n, np.float32)),
             "bfloat16": (np.zeros(n, np.uint16), np.zeros(n, np.uint16)),
             "int8": (np.zeros(n, np.uint8), np.zeros(n, np.uint8))}
    scales = (np.zeros(-(-n // 256), np.float32), np.zeros(-(-n // 256), np.float32))
    _traffic(grad[:1000], tp[:1000], store["float32"][0][:1000], store["float32"][1][:1000])
    for k in kinds:
        m, v = store[k]
        if k == "int8":
            calls["roofline " + k] = lambda m=m, v=v: _traffic_int8(grad, tp, m, v, *scales)
        else:
            calls["roofline " + k] = lambda m=m, v=v: _traffic(grad, tp, m, v)
    try:
        import torch
        tparam = torch.from_numpy(param.copy())
        tparam.grad = torch.from_numpy(grad.copy())
        topt = torch.optim.Adam([tparam], lr=1e-3, fused=True)
        calls["torch fused float32"] = topt.step
    except ImportError:
        torch = None
    for call in calls.values():            # warm up: first touch, compilation
        call()
    med = median_rounds(calls, args.rounds)
    rows = []
    for k in kinds:
        row = dict(state=k, bytes_per_param=lm.state_nbytes(states[k]) / n,
                   ms=med[k] * 1e3, roofline_fraction=med["roofline " + k] / med[k])
        if torch is not None:
            row["vs_torch_fused"] = med["torch fused float32"] / med[k]
        rows.append(row)
    if other is not None:
        rows[-1]["search"] = search
        row = dict(state="int8", search=other, bytes_per_param=rows[-1]["bytes_per_param"],
                   ms=med["int8 " + other] * 1e3,
                   roofline_fraction=med["roofline int8"] / med["int8 " + other])
        if torch is not None:
            row["vs_torch_fused"] = med["torch fused float32"] / med["int8 " + other]
        rows.append(row)
    result = dict(n=n, rounds=args.rounds, rows=rows, simd=_lowmem.simd_target(),
                  torch_ms=med.get("torch fused float32", float("nan")) * 1e3)
    print(f"Adam, float32 parameters, n = {n:.3g}, median of {args.rounds} interleaved rounds, "
          f"compressed-state kernels at SIMD level {_lowmem.simd_target()}")
    print(f"{'state':>9} {'bytes/param':>12} {'ms':>8} {'x torch fused':>14} "
          f"{'of roofline':>12}")
    for r in rows:
        search_note = f"  ({r['search']} search)" if "search" in r else ""
        print(f"{r['state']:>9} {r['bytes_per_param']:>12.3f} {r['ms']:>8.1f} "
              f"{r.get('vs_torch_fused', float('nan')):>14.2f} {r['roofline_fraction']:>12.2f}"
              f"{search_note}")
    print(f"{'torch':>9} {8.0:>12.3f} {result['torch_ms']:>8.1f}")
    result["bitsandbytes"] = bnb_compare(int(args.bnb_n), args.rounds)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


def bnb_compare(n: int, rounds: int):
    """bitsandbytes' CPU AdamW8bit against fastoptim's int8 AdamW at n elements, or None."""
    try:
        import torch
        import bitsandbytes as bnb
    except Exception:                       # optional peer (its import can fail in many ways)
        print("bitsandbytes: not installed, skipped")
        return None
    rng = np.random.default_rng(1)
    param = rng.standard_normal(n).astype(np.float32)
    grad = (rng.standard_normal(n) * 1e-2).astype(np.float32)
    tparam = torch.nn.Parameter(torch.from_numpy(param.copy()))
    tparam.grad = torch.from_numpy(grad.copy())
    bopt = bnb.optim.AdamW8bit([tparam], lr=1e-3, weight_decay=1e-2)
    ours, state, count = param.copy(), lm.adam_state(param, "int8"), [0]

    def step():
        count[0] += 1
        lm.adam_lowmem_step(ours, grad, state, step=count[0], lr=1e-3, weight_decay=1e-2,
                            decoupled_weight_decay=True)
    calls = {"bitsandbytes AdamW8bit": bopt.step, "fastoptim int8 AdamW": step}
    for call in calls.values():
        call()
    med = median_rounds(calls, max(3, rounds // 2))
    ratio = med["bitsandbytes AdamW8bit"] / med["fastoptim int8 AdamW"]
    print(f"AdamW 8-bit at n = {n:.3g}: bitsandbytes {bnb.__version__} "
          f"{med['bitsandbytes AdamW8bit'] * 1e3:.1f} ms, fastoptim "
          f"{med['fastoptim int8 AdamW'] * 1e3:.1f} ms: {ratio:.1f}x")
    return dict(n=n, bnb_ms=med["bitsandbytes AdamW8bit"] * 1e3,
                fastoptim_ms=med["fastoptim int8 AdamW"] * 1e3, ratio=ratio,
                version=bnb.__version__)


if __name__ == "__main__":
    main()
