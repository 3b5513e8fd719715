"""One Muon step on one matrix: fastoptim.Muon against torch.optim.Muon, side by side.

Run from the repository: ``python bench/muon.py [--shapes 512x512 1024x256] [--dtype
float32]``. Prints the median and the minimum seconds per step over interleaved rounds of

* ``fastoptim``: :class:`fastoptim.Muon` (fused momentum pass, Newton-Schulz with
  ``np.matmul(out=)`` in the array's dtype, fused update);
* ``fastoptim-numpy``: the same class on the NumPy reference (temporaries everywhere);
* ``torch``: ``torch.optim.Muon`` as shipped (its Newton-Schulz iteration in bfloat16);
* ``torch-f32``: ``torch.optim.Muon`` with the iteration in the array's dtype (its own
  source, ``grad.bfloat16()`` made ``grad.clone()``): the same arithmetic as fastoptim's;
* ``elementwise``: fastoptim's two fused passes alone (momentum and update), no matmul;
  the part of a step that is not matrix products.
"""
import argparse
import inspect

import numpy as np
from _timing import time_calls

import fastoptim as fo
from fastoptim import _muon
from fastoptim.optimizers.muon import MuonWorkspace


def _shape(text):
    rows, cols = text.lower().split("x")
    return int(rows), int(cols)


def _torch_calls(p, g, dtype_clone):
    import torch
    from torch.optim import _muon as torch_muon
    tp = torch.tensor(p.copy(), requires_grad=True)
    tp.grad = torch.tensor(g)
    opt = torch.optim.Muon([tp], lr=1e-3)
    if not dtype_clone:
        return opt.step
    source = inspect.getsource(torch_muon._zeropower_via_newtonschulz)
    namespace = dict(vars(torch_muon))
    exec(source.replace("grad.bfloat16()", "grad.clone()"), namespace)
    patched, original = namespace["_zeropower_via_newtonschulz"], \
        torch_muon._zeropower_via_newtonschulz

    def step():
        torch_muon._zeropower_via_newtonschulz = patched
        try:
            opt.step()
        finally:
            torch_muon._zeropower_via_newtonschulz = original
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", type=_shape,
                    default=[(256, 256), (1024, 256), (768, 768)])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.dtype}; seconds per step, median / min over {args.repeats} interleaved "
          f"rounds")
    names = ("fastoptim", "fastoptim-numpy", "torch", "torch-f32", "elementwise")
    print(f"{'shape':>11}" + "".join(f"{n:>22}" for n in names))
    for shape in args.shapes:
        p = rng.standard_normal(shape).astype(args.dtype)
        g = rng.standard_normal(shape).astype(args.dtype)
        ours, naive = [p.copy()], [p.copy()]
        opt, ref = fo.Muon(ours, lr=1e-3), fo.Muon(naive, lr=1e-3, backend="numpy")
        buf, ws = np.zeros_like(p), MuonWorkspace.for_param(p)
        q = p.copy()
        calls = {
            "fastoptim": lambda: opt.step([g]),
            "fastoptim-numpy": lambda: ref.step([g]),
            "torch": _torch_calls(p, g, False),
            "torch-f32": _torch_calls(p, g, True),
            "elementwise": lambda: (
                _muon.momentum(g, buf, ws.update, 0.05, 0.95, True, True, 0.95, 0.05, False),
                _muon.apply(q, ws.update, 1.0, -1e-9)),
        }
        times = time_calls(calls, repeats=args.repeats, min_time=0.02)
        print(f"{'x'.join(map(str, shape)):>11}" + "".join(
            f"{times[n][0]:>13.2e} /{times[n][1]:8.2e}" for n in names), flush=True)


if __name__ == "__main__":
    main()
