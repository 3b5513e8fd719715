"""Quality of low-memory Adam state on the course networks: float32, bfloat16 and int8
moments, several seeds each, cost curves plotted together.

    PYTHONPATH=src python bench/lowmem_quality.py [--epochs 300] [--seeds 3]
        [--png docs/lowmem_quality.png] [--json bench/results/lowmem_quality.json]

* moons: the course network (2-5-2-1); its arrays are under 4096 elements, so int8 state
  keeps float32 moments there (bitsandbytes' min_8bit_size): int8 equals float32 exactly;
* digits, wide: 64-256-256-10 (W1 16k, W2 65k elements: blockwise 8-bit moments).

Full-batch Adam (lr 1e-2 moons, 1e-3 digits), float32 parameters, seeds = the weights'
initialisation. Reported: final training cost and test accuracy per state kind, mean and
spread over seeds; the float32 spread over seeds is the run-to-run noise to compare with.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from fastoptim import lowmem as lm
from fastoptim.train import datasets, network

KINDS = ("float32", "bfloat16", "int8")
CASES = {"moons": ([5, 2], 1e-2), "digits (wide)": ([256, 256], 1e-3)}


def train(data, hidden, lr, kind, seed, epochs):
    dims = [data.X_train.shape[0], *hidden, data.Y_train.shape[0]]
    params = network.initialize_parameters_he(dims, seed=seed, dtype=np.float32)
    opt = lm.LowMemAdam(params, lr=lr, state_dtype=kind)
    costs = []
    for _ in range(epochs):
        AL, cache = network.forward_propagation(data.X_train, params)
        costs.append(float(network.compute_cost(cache, data.Y_train)))
        grads = network.backward_propagation(AL, data.Y_train, cache, params)
        opt.step({k: np.ascontiguousarray(grads["d" + k], dtype=np.float32) for k in params})
    return costs, float(network.accuracy(data.X_test, data.Y_test, params))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--png", default="docs/lowmem_quality.png")
    ap.add_argument("--json", default="bench/results/lowmem_quality.json")
    args = ap.parse_args(argv)
    results = {}
    for case, (hidden, lr) in CASES.items():
        data = datasets.load(case.split()[0], dtype=np.float32)
        results[case] = {}
        for kind in KINDS:
            runs = [train(data, hidden, lr, kind, seed, args.epochs)
                    for seed in range(args.seeds)]
            final = [r[0][-1] for r in runs]
            acc = [r[1] for r in runs]
            results[case][kind] = dict(curves=[r[0] for r in runs], final_cost=final,
                                       accuracy=acc)
            print(f"{case:>14} {kind:>9}: final cost {np.mean(final):.4f} "
                  f"(spread {np.ptp(final):.4f}), test accuracy {np.mean(acc):.3f} "
                  f"(spread {np.ptp(acc):.3f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({c: {k: {f: v[f] for f in ("final_cost", "accuracy")}
                           for k, v in r.items()} for c, r in results.items()}, fh, indent=1)
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(results), figsize=(9, 3.2), dpi=80)
        for ax, (case, r) in zip(axes, results.items()):
            for kind, style in zip(KINDS, ("-", "--", ":")):
                for i, curve in enumerate(r[kind]["curves"]):
                    ax.plot(curve, style, lw=1.2, label=kind if i == 0 else None,
                            color={"float32": "C0", "bfloat16": "C1", "int8": "C2"}[kind])
            ax.set_yscale("log")
            ax.set_title(f"{case}: Adam, state dtype")
            ax.set_xlabel("step (full batch)")
            ax.set_ylabel("training cost")
            ax.legend()
        fig.tight_layout()
        fig.savefig(args.png)
    return results


if __name__ == "__main__":
    main()
