"""What skip_nonfinite=True costs: an optimizer's step (Adam by default, with the typical
options of its registry entry) on float32 arrays with and without it.

Interleaved rounds, medians, in one run (the machine is shared: compare the ratio, not the
absolute times)::

    python bench/skip_nonfinite.py --sizes 100 1e5 1e7 --rounds 15 [--optimizer Adam]
"""
import argparse
import time

import numpy as np

import fastoptim as fo
from fastoptim._registry import optimizer_classes


def timed(opt, grads, repeat):
    t0 = time.perf_counter()
    for _ in range(repeat):
        opt.step(grads)
    return (time.perf_counter() - t0) / repeat


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e2, 1e5, 1e7])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--optimizer", choices=list(optimizer_classes()), default="Adam")
    args = ap.parse_args(argv)
    cls = getattr(fo, args.optimizer)
    _, entry = optimizer_classes()[args.optimizer][-1]   # with state, for SGD: momentum
    opts = dict(entry.examples[0])
    rng = np.random.default_rng(0)
    print(f"{'n':>10} {'plain (us)':>12} {'skip_nonfinite (us)':>20} {'ratio':>7}")
    for n in (int(s) for s in args.sizes):
        g = [rng.standard_normal(n).astype(np.float32)]
        plain = cls([rng.standard_normal(n).astype(np.float32)], **opts)
        guarded = cls([rng.standard_normal(n).astype(np.float32)], skip_nonfinite=True, **opts)
        repeat = max(1, int(2e6 // max(n, 1)))
        a, b = [], []
        for _ in range(args.rounds):
            a.append(timed(plain, g, repeat))
            b.append(timed(guarded, g, repeat))
        ta, tb = np.median(a) * 1e6, np.median(b) * 1e6
        print(f"{n:>10} {ta:>12.2f} {tb:>20.2f} {tb / ta:>7.3f}")


if __name__ == "__main__":
    main()
