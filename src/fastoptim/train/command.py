"""``fastoptim train``: the course's network trained with each optimizer, timed honestly.

For every optimizer asked for, the network is trained twice **side by side** (one epoch of
each in turn, so machine noise hits both alike) from the same initialisation and mini-batch
order: once with fastoptim's optimizer class, once with the course's hand-written loop of
naive NumPy updates. Both give the same numbers (the cost curves are compared and the
largest difference printed); the table shows where the time went::

    fastoptim train --dataset moons --optimizer all --plot curves.png
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Dict, List, Optional

import numpy as np

from .._backends import BACKENDS
from .datasets import DATASETS, load
from .progress import progress
from .trainer import Summary, Trainer
from .updaters import OPTIMIZERS

# Per data set: the course's settings for moons; a small network that learns digits.
DEFAULTS = {
    "moons": dict(hidden=[5, 2], lr=0.0007, epochs=5000, batch_size=64),
    "digits": dict(hidden=[64, 32], lr=0.001, epochs=100, batch_size=64),
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _seed(text: str) -> int:
    """A seed NumPy's and scikit-learn's generators take: 0 to 2**32 - 1."""
    value = int(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**32 - 1, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default="moons",
                        help="moons: the course's two-class problem; digits: scikit-learn's "
                             "8x8 digit images (default: moons)")
    parser.add_argument("--optimizer", choices=[*OPTIMIZERS, "all"], default="all",
                        help="gd is mini-batch gradient descent (default: all)")
    parser.add_argument("--epochs", type=_positive_int,
                        help="moons: 5000, digits: 100")
    parser.add_argument("--batch-size", type=_positive_int, help="default 64")
    parser.add_argument("--lr", type=_nonnegative_float,
                        help="initial learning rate lr0 (moons: 0.0007, digits: 0.001)")
    parser.add_argument("--decay", type=_nonnegative_float, default=0.0,
                        help="decay rate of lr0 / (1 + decay * epoch), applied per epoch "
                             "(default 0: constant)")
    parser.add_argument("--decay-interval", type=_positive_int, default=1,
                        help="epochs per decay stair: lr0 / (1 + decay * floor(epoch / N))")
    parser.add_argument("--hidden", type=_positive_int, nargs="+",
                        help="hidden layer sizes (moons: 5 2, digits: 64 32)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--seed", type=_seed, default=3,
                        help="seeds the data, the split, the initialisation and the "
                             "mini-batch order (default 3)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="fastoptim backend of the optimizer classes")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip the run with the naive NumPy updates")
    parser.add_argument("--plot", metavar="PATH",
                        help="save the cost against the epoch for every optimizer (PNG)")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over MPI: run under mpiexec -n N; each rank "
                             "computes the gradient of its share of every mini-batch "
                             "(fastoptim.distributed; needs fastoptim[mpi])")
    parser.add_argument("--shard-state", action="store_true",
                        help="with --distributed: ZeRO-1, each rank keeps 1/N of the "
                             "optimizer state")


def machine_line() -> str:
    """CPU model, core count, OS, Python and NumPy versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = " ".join(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()}, "
            f"Python {platform.python_version()}, NumPy {np.__version__}")


def train_pair(data, optimizer: str, settings: dict, args) -> List[Trainer]:
    """Train fastoptim's run (and the naive one when comparing) in lockstep, epoch by epoch."""
    kwargs = dict(batch_size=settings["batch_size"], decay_rate=args.decay,
                  decay_interval=args.decay_interval, seed=args.seed)
    comm = getattr(args, "_comm", None)
    runs = [Trainer(data, settings["hidden"], optimizer, settings["lr"],
                    backend=args.backend, comm=comm,
                    shard_state=getattr(args, "shard_state", False), **kwargs)]
    if args.compare:
        runs.append(Trainer(data, settings["hidden"], optimizer, settings["lr"], naive=True,
                            **kwargs))
    bar = progress(settings["epochs"], optimizer, args.progress)
    try:
        for _ in range(settings["epochs"]):
            for run in runs:
                run.run_epoch()
            bar.set_postfix_str(f"cost {runs[0].costs[-1]:.4f}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
    return runs


def _row(fast: Summary, naive: Optional[Summary]) -> List[str]:
    row = [fast.optimizer, f"{fast.train_accuracy:.1%}", f"{fast.test_accuracy:.1%}",
           f"{fast.final_cost:.4f}", f"{fast.seconds:.2f}", f"{fast.step_share:.0%}"]
    if naive is not None:
        row += [f"{naive.seconds:.2f}", f"{naive.step_share:.0%}",
                _ratio(naive.step_seconds, fast.step_seconds, 1),
                _ratio(naive.seconds, fast.seconds, 2)]
    return row


def _ratio(naive: float, fast: float, digits: int) -> str:
    return f"{naive / fast:.{digits}f}x" if fast > 0 else "n/a"


HEADER = ["optimizer", "train acc", "test acc", "final cost", "time (s)", "in update"]
HEADER_NAIVE = ["naive time (s)", "in update", "update speed-up", "loop speed-up"]


def format_table(rows: List[List[str]], header: List[str], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(header)] + [fmt(r) for r in rows])


def _settings(args) -> dict:
    defaults = DEFAULTS[args.dataset]
    return dict(hidden=args.hidden or defaults["hidden"],
                lr=defaults["lr"] if args.lr is None else args.lr,
                epochs=args.epochs or defaults["epochs"],
                batch_size=args.batch_size or defaults["batch_size"])


def run(args) -> int:
    """Train and print the table; a missing optional package is a one-line error (status 2)."""
    try:
        if args.plot:
            from .plot import require_matplotlib
            require_matplotlib()            # fail before training, not after
        if args.backend != "numpy":
            from .._backends import select
            select("fastoptim train", args.backend, 0)      # numba importable?
        data = load(args.dataset, seed=args.seed, dtype=np.dtype(args.dtype))
        args._comm = None
        if getattr(args, "distributed", False):
            from ..distributed import MPI
            args._comm = MPI.COMM_WORLD
        elif getattr(args, "shard_state", False):
            print("fastoptim train: error: --shard-state needs --distributed",
                  file=sys.stderr)
            return 2
    except ImportError as exc:
        print(f"fastoptim train: error: {exc}", file=sys.stderr)
        return 2
    if args._comm is not None and args._comm.rank != 0:
        import contextlib
        import io
        args.progress, args.plot = False, None      # rank 0 reports
        with contextlib.redirect_stdout(io.StringIO()):
            return _train(args, data)
    return _train(args, data)


def _train(args, data) -> int:
    settings = _settings(args)
    dims = [data.X_train.shape[0], *settings["hidden"], data.Y_train.shape[0]]
    n_params = sum(dims[l] * dims[l - 1] + dims[l] for l in range(1, len(dims)))
    print(f"fastoptim train: {args.dataset}, {data.X_train.shape[1]} training / "
          f"{data.X_test.shape[1]} test examples; network {'-'.join(map(str, dims))} "
          f"({n_params:,} parameters, {args.dtype})")
    print(f"lr0 {settings['lr']:g}, decay {args.decay:g}"
          + (f" every {args.decay_interval} epochs" if args.decay_interval > 1 else "")
          + f", batch {settings['batch_size']}, {settings['epochs']} epochs, seed {args.seed}, "
          f"backend {args.backend}")
    if args._comm is not None:
        print(f"distributed: {args._comm.size} MPI ranks, each a share of every mini-batch"
              + (", optimizer state sharded (ZeRO-1)" if args.shard_state else ""))
    print(f"machine: {machine_line()}", flush=True)

    names = list(OPTIMIZERS) if args.optimizer == "all" else [args.optimizer]
    rows, curves, drift = [], {}, 0.0
    for name in names:
        runs = train_pair(data, name, settings, args)
        fast = runs[0].summary()
        naive = runs[1].summary() if args.compare else None
        rows.append(_row(fast, naive))
        curves[name] = runs[0].costs
        if args.compare:
            a, b = np.asarray(runs[0].costs), np.asarray(runs[1].costs)
            drift = max(drift, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))

    header = HEADER + (HEADER_NAIVE if args.compare else [])
    print()
    print(format_table(rows, header, args.markdown))
    print()
    print("time: the training loop (evaluation excluded); in update: its share spent in the "
          "optimizer step.")
    if args.compare:
        print("naive: the same loop with the course's hand-written NumPy updates "
              "(fastoptim.reference), run side by side;")
        print("speed-up: naive time / fastoptim time, for the update alone and for the "
              "whole loop.")
        print(f"fastoptim and naive cost curves: largest relative difference {drift:.1e}.")
        if args._comm is not None:
            print("(--distributed: the naive run steps whole mini-batches in each process, "
                  "so this difference checks the data-parallel run.)")
    if args.plot:
        from .plot import plot_costs
        title = (f"{args.dataset}, network {'-'.join(map(str, dims))}: "
                 f"learning rate = {settings['lr']:g}, batch {settings['batch_size']}")
        if args.decay:
            title += f", decay {args.decay:g}"
        plot_costs(args.plot, curves, title)
        print(f"saved {args.plot}")
    return 0

