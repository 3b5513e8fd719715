"""The per-step cost of the optimizer classes on many small arrays: the Python and call
overhead regime, where the update itself is a few microseconds.

    PYTHONPATH=src python bench/small_arrays.py [--layers 10] [--width 32] [--repeats 15]
                                                [--names AdamW NAdam ...]

The arrays are an MLP's: ``--layers`` weights of ``width x width`` and their biases (20
arrays, 10,560 elements by default). Each class steps them with float32 state, with
``state_dtype="bfloat16"`` and ``"int8"`` where it has them (int8: every array is under
MIN_8BIT_SIZE and keeps float32 state, but steps through the compressed path), and for Adam
and AdamW on bfloat16 parameters (to nearest, and with master weights). Prints µs per step,
median (min) over interleaved rounds (bench/_timing.py).
"""
import argparse

import numpy as np
from _timing import time_calls

import fastoptim

NAMES = ("AdamW", "Lion", "SGD", "RMSprop", "NAdam", "RAdam", "Adagrad", "Adamax")


def _arrays(layers: int, width: int, dtype, seed: int):
    rng = np.random.default_rng(seed)
    shapes = [(width, width), (width,)] * layers
    return [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in shapes]


def _calls(name: str, layers: int, width: int) -> dict:
    """label -> one step of class ``name`` on its own arrays."""
    cls = getattr(fastoptim, name)
    kwargs = dict(lr=1e-3, momentum=0.9) if name == "SGD" else dict(lr=1e-3)
    variants = [("float32", np.float32, {})]
    variants += [(kind, np.float32, dict(state_dtype=kind)) for kind in cls._compressed]
    if name in ("Adam", "AdamW"):
        from fastoptim.lowmem import bfloat16
        variants += [("bfloat16 params", bfloat16, {}),
                     ("bfloat16 params, master weights", bfloat16,
                      dict(master_weights=True))]
    calls = {}
    for label, dtype, options in variants:
        params = _arrays(layers, width, dtype, 0)
        grads = [(g * 0.1).astype(dtype) for g in _arrays(layers, width, np.float32, 1)]
        opt = cls(params, **kwargs, **options)
        calls[label] = (lambda opt=opt, grads=grads: opt.step(grads))
    return calls


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--names", nargs="+", default=list(NAMES))
    args = ap.parse_args(argv)
    total = args.layers * (args.width + 1) * args.width
    print(f"one step on {2 * args.layers} arrays, {total:,} elements, "
          f"{fastoptim.get_num_threads()} threads; µs, median (min) over {args.repeats} "
          f"interleaved rounds\n")
    print("| optimizer | state | µs per step |")
    print("|---|---|---:|")
    out = {}
    for name in args.names:
        times = out[name] = time_calls(_calls(name, args.layers, args.width),
                                       repeats=args.repeats, min_time=2e-4)
        for label, (median, least) in times.items():
            print(f"| {name} | {label} | {median * 1e6:,.1f} ({least * 1e6:,.1f}) |")
    return out


if __name__ == "__main__":
    main()
