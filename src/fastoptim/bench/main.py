"""``fastoptim bench``: how fast is each kernel on this machine, and how far from the limit.

It first measures the machine's memory bandwidth with a *traffic loop* of each optimizer's
access pattern (Adam: read p, g, m, v; write p, m, v), compiled with Numba and run on all
threads, on arrays far larger than the caches. Then, for every kernel, dtype and size, it
times the naive NumPy reference, the peers (careful NumPy, numexpr, torch.optim, when
installed), the fastoptim backends and the traffic loop itself in interleaved rounds, and
prints per size and competitor: ns/element (median and inter-quartile range over rounds),
GB/s of useful traffic, % of the measured bandwidth, the speed-up over the naive reference
and over torch, and the peak extra memory of one step (tracemalloc).

Examples::

    fastoptim bench                       # about a minute on 2 cores
    fastoptim bench --quick
    fastoptim bench --kernels adam --dtypes float32 float64 --sizes 1e3 1e5 1e7
    fastoptim bench --json bench.json --plot bench.png
    fastoptim bench --targets             # the performance targets for float32 Adam
"""
from __future__ import annotations

import json
import statistics
import sys

from .cases import BASELINE, COMPETITORS, KERNELS

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (1_000, 100_000, 1_000_000)
TARGET_SIZES = (100, 1_000, 100_000, 1_000_000, 10_000_000)
TARGET_COMPETITORS = ("numpy", "torch-fused", "auto", "traffic")
QUICK_BANDWIDTH_BYTES = 32 * 2**20


def kernel_call(kernel: str, n: int, dtype, backend: str):
    """A zero-argument callable making one step of ``kernel`` with a fastoptim ``backend``
    (``"numpy"``, ``"cython"``, ``"numba"``, ``"auto"``) on fresh arrays of ``n`` elements."""
    from .cases import fastoptim_call, make_arrays
    return fastoptim_call(kernel, make_arrays(kernel, n, dtype), backend)


def time_interleaved(calls: dict, repeats: int, min_time: float = 2e-3) -> dict:
    """Median seconds per call of each callable, timed in interleaved rounds."""
    samples = interleaved_samples(calls, repeats, min_time)
    return {name: statistics.median(s) for name, s in samples.items()}


def interleaved_samples(calls: dict, repeats: int, min_time: float = 2e-3) -> dict:
    """Seconds per call of each callable in each of ``repeats`` interleaved rounds
    (:func:`fastoptim.bench.timing.time_interleaved`, the one sampler)."""
    from .timing import time_interleaved as sample
    return sample(calls, repeats, min_time=min_time)


def _size(text: str) -> int:
    """Sizes may be written ``1000``, ``1e6`` or ``10_000``."""
    import argparse
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = 0.0
    if not 1 <= value < 2**62 or value != int(value):
        raise argparse.ArgumentTypeError(f"a size must be a positive integer, got {text!r}")
    return int(value)


def add_arguments(parser) -> None:
    parser.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=list(KERNELS),
                        metavar="KERNEL", help=f"of {', '.join(KERNELS)} (default: all)")
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32"], metavar="DTYPE",
                        help="float32 and/or float64 (default: float32)")
    parser.add_argument("--sizes", nargs="+", type=_size, default=None, metavar="N",
                        help="array sizes, e.g. 1e3 1e5 1e7 (default: decades 1e3..1e7; "
                             "--quick: 1e3 1e5 1e6)")
    parser.add_argument("--backends", nargs="+", choices=COMPETITORS, default=None,
                        metavar="NAME",
                        help=f"competitors, of {', '.join(COMPETITORS)} (default: all that "
                             f"are available; the naive 'numpy' baseline is always added)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved rounds per group (default 7, --quick 3)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer sizes, fewer rounds, smaller bandwidth arrays")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the tracemalloc peak-memory measurement")
    parser.add_argument("--json", metavar="PATH", help="write every measurement as JSON")
    parser.add_argument("--plot", metavar="PATH",
                        help="write GB/s and speed-up plots (PNG/SVG/PDF; needs matplotlib)")
    parser.add_argument("--targets", action="store_true",
                        help="only float32 Adam at 1e2..1e7 vs numpy, torch fused and the "
                             "traffic loop, and an optimizer step over 200 arrays; then print "
                             "the performance targets")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    parser.add_argument("--lowmem", action="store_true",
                        help="then Adam's low-memory state (float32, bfloat16, int8) side by "
                             "side: bytes per parameter, ms, x torch's fused step, fraction of "
                             "each access pattern's traffic roofline")
    parser.add_argument("--lowmem-size", type=_size, default=None, metavar="N",
                        help="elements of the --lowmem comparison (default 3e7, --quick 3e6)")


def _options(args) -> dict:
    """The run's kernels, dtypes, sizes, competitors and repeats, from the parsed arguments."""
    if args.targets:
        kernels, dtypes, sizes = ["adam"], ["float32"], list(args.sizes or TARGET_SIZES)
        competitors = list(args.backends or TARGET_COMPETITORS)
    else:
        kernels, dtypes = args.kernels, args.dtypes
        sizes = list(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
        competitors = list(args.backends or COMPETITORS)
    if BASELINE not in competitors:
        competitors.insert(0, BASELINE)
    competitors.sort(key=COMPETITORS.index)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    if repeats < 1:
        raise SystemExit("fastoptim bench: --repeats must be >= 1")
    return dict(kernels=kernels, dtypes=dtypes, sizes=sizes, competitors=competitors,
                repeats=repeats)


def _plotter(args):
    """The plot function when ``--plot`` is given (imported before the run, so a missing
    matplotlib fails at once, not after it); None without ``--plot``. Raises ImportError."""
    if not args.plot:
        return None
    from .plot import plot
    return plot


def _print_machine(info: dict) -> None:
    """The machine line, a warning when the machine is busy, and how to read the tables."""
    from .machine import busy_warning, machine_line
    print("machine: " + machine_line(info), flush=True)
    if busy_warning(info):
        print(busy_warning(info), flush=True)
    print("GB/s counts the bytes a fused step must move; %BW is relative to the traffic "
          "loop's bandwidth; times are medians of interleaved rounds.\n", flush=True)


def _measure(args, opts: dict, info: dict) -> dict:
    """Run the benchmark, printing each kernel's table as soon as it is measured."""
    from . import report
    from .bandwidth import BANDWIDTH_ARRAY_BYTES
    from .runner import run_benchmark

    def print_table(bar, kernel, dtype, rows, bandwidth):
        bar.write(report.format_table(kernel, dtype, rows, bandwidth) + "\n")

    return run_benchmark(
        opts["kernels"], opts["dtypes"], opts["sizes"], opts["competitors"], opts["repeats"],
        min_time=1e-3 if args.quick else 2e-3,
        bandwidth_bytes=QUICK_BANDWIDTH_BYTES if args.quick else BANDWIDTH_ARRAY_BYTES,
        memory=args.memory, progress=args.progress, on_group_done=print_table, machine=info)


def _report(result: dict, args, opts: dict) -> None:
    """The skipped competitors, the performance targets and (``--targets``) the
    multi-tensor comparison, printed and added to ``result``."""
    from . import report
    for line in report.format_unavailable(result["unavailable"]):
        print(line)
    result["targets"] = report.targets(result)
    if result["targets"]:
        print("\n" + report.format_targets(result["targets"]))
    if args.targets:
        from .multi import run_multi
        result["multi_tensor_seconds"] = run_multi(opts["repeats"])
    if args.lowmem:
        from .lowmem import main as run_lowmem
        n = args.lowmem_size or (3_000_000 if args.quick else 30_000_000)
        print()
        result["lowmem"] = run_lowmem(["--n", str(n), "--rounds", str(opts["repeats"]),
                                       "--bnb-n", str(min(n, 16_000_000))])


def run(args) -> int:
    from .machine import machine_info

    opts = _options(args)
    try:
        plot = _plotter(args)
    except ImportError as exc:
        print(f"fastoptim bench: --plot needs matplotlib ({exc}); pip install '.[bench]' "
              f"from a checkout ('fastoptim[bench]' once published)", file=sys.stderr)
        return 2
    command = ("fastoptim bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"]
               else "fastoptim bench")
    info = machine_info()
    _print_machine(info)
    result = _measure(args, opts, info)
    result["command"] = command
    _report(result, args, opts)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
        print(f"wrote {args.json}")
    if plot is not None:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
