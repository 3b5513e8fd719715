"""fastoptim.torch against torch.optim on CPU tensors, side by side.

Run from the repository: ``python bench/torch_front.py [--layers 10] [--width 32]
[--large 1e7] [--name Adam]``. Two cases, each timed in interleaved rounds (median and
minimum seconds per ``step()``):

* ``mlp``: an MLP of ``--layers`` ``Linear(width, width)`` layers: 2 x layers small
  parameter tensors (20 by default, 10,560 elements), every ``.grad`` set; the per-call
  overhead regime where torch pays per tensor and per call;
* ``large``: one tensor of ``--large`` elements: the memory-bandwidth regime.

Competitors: ``fastoptim.torch.<name>``; ``torch.optim.<name>`` with ``fused=True`` (where
torch has a fused CPU kernel: Adam, AdamW, SGD, Adagrad), ``foreach=True`` and
``foreach=False``. Gradients persist across steps (no zero_grad), so only the step is
timed. Prints a Markdown table; ratios are torch's time over fastoptim.torch's, from the
same rounds.
"""
import argparse

import torch
from _timing import time_calls

import fastoptim.torch as ft

FUSED = ("Adam", "AdamW", "SGD", "Adagrad")


def _mlp(layers: int, width: int):
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    return list(model.parameters())


def _large(n: int):
    torch.manual_seed(0)
    p = torch.randn(n, requires_grad=True)
    p.grad = torch.randn_like(p)
    return [p]


def _calls(name: str, make_params) -> dict:
    """label -> step of an optimizer on its own copy of the parameters."""
    kwargs = dict(lr=1e-3) if name != "SGD" else dict(lr=1e-3, momentum=0.9)
    calls = {"fastoptim.torch": getattr(ft, name)(make_params(), **kwargs).step}
    flavours = [("fused", dict(fused=True))] if name in FUSED else []
    flavours += [("foreach", dict(foreach=True)), ("for-loop", dict(foreach=False))]
    for label, kw in flavours:
        calls[f"torch {label}"] = getattr(torch.optim, name)(make_params(), **kwargs,
                                                             **kw).step
    return calls


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="Adam", choices=ft.CLASSES)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--large", type=float, default=1e7)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    cases = [(f"mlp: {2 * args.layers} tensors, "
              f"{args.layers * (args.width + 1) * args.width:,} elements",
              lambda: _mlp(args.layers, args.width)),
             (f"large: 1 tensor, {int(args.large):,} elements",
              lambda: _large(int(args.large)))]
    print(f"{args.name}.step() on CPU float32, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads; median (min) over {args.repeats} "
          f"interleaved rounds\n")
    print("| case | optimizer | µs per step | torch / fastoptim.torch |")
    print("|---|---|---:|---:|")
    for title, make in cases:
        times = time_calls(_calls(args.name, make), repeats=args.repeats)
        ours = times["fastoptim.torch"][0]
        for label, (median, least) in times.items():
            ratio = "" if label == "fastoptim.torch" else f"{median / ours:.2f}x"
            print(f"| {title} | {label} | {median * 1e6:,.1f} ({least * 1e6:,.1f}) | "
                  f"{ratio} |")


if __name__ == "__main__":
    main()
