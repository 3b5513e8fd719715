"""``fastoptim bench``: time every kernel against the naive NumPy reference.

For each kernel, dtype and size the backends are timed in interleaved rounds (one call of
each backend per round, so machine noise hits all of them alike) and the median per call is
reported with the speed-up over the reference: ``NumPy time / ours``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from . import functional as F

# kernel -> (number of state arrays, keyword arguments of one step)
KERNELS = {
    "sgd": (0, dict(lr=1e-3)),
    "momentum": (1, dict(lr=1e-3, momentum=0.9)),
    "rmsprop": (1, dict(lr=1e-3)),
    "adam": (2, dict(step=10, lr=1e-3)),
    "adagrad": (1, dict(step=10, lr=1e-3)),
    "ewa": (0, dict(beta=0.9)),
}
DEFAULT_SIZES = (1_000, 100_000, 10_000_000)
QUICK_SIZES = (1_000, 100_000, 1_000_000)


def kernel_call(kernel: str, n: int, dtype, backend: str):
    """A zero-argument callable that makes one step of ``kernel`` on fresh arrays."""
    rng = np.random.default_rng(0)
    param = rng.standard_normal(n).astype(dtype)
    grad = rng.standard_normal(n).astype(dtype)
    n_state, kwargs = KERNELS[kernel]
    state = [np.zeros(n, dtype) for _ in range(n_state)]
    if kernel == "ewa":
        return lambda: F.ewa_update(param, grad, backend=backend, **kwargs)
    fn = getattr(F, f"{kernel}_step")
    return lambda: fn(param, grad, *state, backend=backend, **kwargs)


def time_interleaved(calls: dict, repeats: int, min_time: float = 2e-3) -> dict:
    """Median seconds per call of each callable, timed in interleaved rounds."""
    samples = interleaved_samples(calls, repeats, min_time)
    return {name: statistics.median(s) for name, s in samples.items()}


def interleaved_samples(calls: dict, repeats: int, min_time: float = 2e-3) -> dict:
    """Seconds per call of each callable in each of ``repeats`` interleaved rounds (one batch
    of at least ``min_time`` per callable per round, so machine noise hits all alike)."""
    numbers = {}
    for name, call in calls.items():
        call()  # warm up (and compile, for JIT backends)
        number, elapsed = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
            number *= 2
        numbers[name] = number
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            number = numbers[name]
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append((time.perf_counter() - t0) / number)
    return samples


def add_arguments(parser) -> None:
    parser.add_argument("--kernels", nargs="+", choices=sorted(KERNELS), default=list(KERNELS))
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32"])
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")


def run(args) -> int:
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeats = 3 if args.quick else args.repeats
    print(f"{'kernel':<9} {'dtype':<8} {'n':>10} {'numpy ns/elem':>14} "
          f"{'cython ns/elem':>15} {'numpy/cython':>13}")
    for kernel in args.kernels:
        for dtype in args.dtypes:
            for n in sizes:
                calls = {b: kernel_call(kernel, n, dtype, b) for b in ("numpy", "cython")}
                t = time_interleaved(calls, repeats)
                print(f"{kernel:<9} {dtype:<8} {n:>10} {t['numpy'] / n * 1e9:>14.3f} "
                      f"{t['cython'] / n * 1e9:>15.3f} {t['numpy'] / t['cython']:>12.1f}x",
                      flush=True)
    return 0
