"""fastoptim.torch against torch.optim on CPU tensors, side by side.

Run from the repository: ``python bench/torch_front.py [--layers 10] [--width 32]
[--large 1e7] [--name Adam] [--dtype float32|bfloat16|float16]``. Two cases, each timed in
interleaved rounds (median and minimum seconds per ``step()``):

* ``mlp``: an MLP of ``--layers`` ``Linear(width, width)`` layers: 2 x layers small
  parameter tensors (20 by default, 10,560 elements); the per-call overhead regime where
  torch pays per tensor and per call. Twice: with the gradient tensors kept from step to
  step (``zero_grad(set_to_none=False)``, accumulation), and with every parameter given
  another gradient tensor before each step (what backward after the default
  ``zero_grad()`` does; the assignment is timed on both sides);
* ``large``: one tensor of ``--large`` elements: the memory-bandwidth regime.

Competitors: ``fastoptim.torch.<name>``, and with ``state_dtype="bfloat16"`` and
``"int8"`` where the class has it; ``torch.optim.<name>`` with ``fused=True`` (where torch
has a fused CPU kernel: Adam, AdamW, SGD, Adagrad), ``foreach=True`` and ``foreach=False``;
for Adam and AdamW, bitsandbytes' CPU ``Adam8bit`` / ``AdamW8bit`` when it is installed
(its 8-bit state is int8's peer). Gradients persist across steps (no zero_grad), so only the step is
timed (but for the "new gradient tensors" case). Prints a Markdown table; ratios are the
others' time over fastoptim.torch's (float32 state), from the same rounds.

``--dtype bfloat16`` / ``float16`` (Adam, AdamW): half parameters and gradients;
fastoptim.torch rounds each update to nearest, and runs again with ``master_weights=True``
and (bfloat16) ``stochastic_rounding=True``; torch's implementations step the same half
tensors (their moments in the parameters' dtype).
"""
import argparse
import inspect

import torch
from _timing import time_calls

import fastoptim.torch as ft

FUSED = ("Adam", "AdamW", "SGD", "Adagrad")


def _mlp(layers: int, width: int, dtype=torch.float32):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    model.to(dtype)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    return list(model.parameters())


def _large(n: int, dtype=torch.float32):
    torch.manual_seed(0)
    p = torch.randn(n).to(dtype).requires_grad_()
    p.grad = torch.randn_like(p)
    return [p]


def _stepper(opt, params, fresh: bool):
    """``opt.step``; with ``fresh``, a call that first gives every parameter another
    gradient tensor (two sets, alternating: what backward after ``zero_grad()`` does)."""
    if not fresh:
        return opt.step
    sets = [[torch.randn_like(p) for p in params] for _ in range(2)]
    turn = [0]

    def step():
        turn[0] ^= 1
        for p, g in zip(params, sets[turn[0]]):
            p.grad = g
        opt.step()
    return step


def _bitsandbytes():
    """bitsandbytes, or None when it is not installed (an optional peer)."""
    try:
        import bitsandbytes
    except ImportError:
        return None
    return bitsandbytes


def _calls(name: str, make_params, fresh: bool = False) -> dict:
    """label -> step of an optimizer on its own copy of the parameters."""
    kwargs = dict(lr=1e-3) if name != "SGD" else dict(lr=1e-3, momentum=0.9)
    params = make_params()
    half = params[0].dtype in (torch.bfloat16, torch.float16)
    calls = {"fastoptim.torch": _stepper(getattr(ft, name)(params, **kwargs), params,
                                         fresh)}
    options = [("master_weights", dict(master_weights=True))] if half else []
    if half and params[0].dtype == torch.bfloat16:
        options.append(("stochastic_rounding", dict(stochastic_rounding=True)))
    for label, kw in options:
        params = make_params()
        calls[f"fastoptim.torch {label}"] = _stepper(getattr(ft, name)(params, **kwargs, **kw),
                                                     params, fresh)
    if not half and "state_dtype" in inspect.signature(getattr(ft, name)).parameters:
        for kind in ("bfloat16", "int8"):
            params = make_params()
            opt = getattr(ft, name)(params, state_dtype=kind, **kwargs)
            calls[f"fastoptim.torch {kind}"] = _stepper(opt, params, fresh)
    bnb = _bitsandbytes() if name in ("Adam", "AdamW") and not half else None
    if bnb is not None:
        params = make_params()
        calls["bitsandbytes 8-bit"] = _stepper(getattr(bnb.optim, f"{name}8bit")(
            params, **kwargs), params, fresh)
    flavours = [("fused", dict(fused=True))] if name in FUSED else []
    if hasattr(torch.optim, name):          # (LAMB and Lion: fastoptim's own)
        flavours += [("foreach", dict(foreach=True)), ("for-loop", dict(foreach=False))]
    for label, kw in flavours:
        params = make_params()
        opt = getattr(torch.optim, name)(params, **kwargs, **kw)
        calls[f"torch {label}"] = _stepper(opt, params, fresh)
    return calls


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="Adam", choices=ft.CLASSES)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--large", type=float, default=1e7)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16",
                                                               "float16"))
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    mlp = (f"mlp: {2 * args.layers} tensors, "
           f"{args.layers * (args.width + 1) * args.width:,} elements")
    cases = [(f"{mlp}, gradients kept", lambda: _mlp(args.layers, args.width, dtype), False),
             (f"{mlp}, new gradient tensors", lambda: _mlp(args.layers, args.width, dtype),
              True),
             (f"large: 1 tensor, {int(args.large):,} elements",
              lambda: _large(int(args.large), dtype), False)]
    print(f"{args.name}.step() on CPU {args.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; median (min) over {args.repeats} "
          f"interleaved rounds\n")
    print("| case | optimizer | µs per step | torch / fastoptim.torch |")
    print("|---|---|---:|---:|")
    out = {}
    for title, make, fresh in cases:
        times = out[title] = time_calls(_calls(args.name, make, fresh),
                                        repeats=args.repeats)
        ours = times["fastoptim.torch"][0]
        for label, (median, least) in times.items():
            ratio = "" if label == "fastoptim.torch" else f"{median / ours:.2f}x"
            print(f"| {title} | {label} | {median * 1e6:,.1f} ({least * 1e6:,.1f}) | "
                  f"{ratio} |")
    return out


if __name__ == "__main__":
    main()
