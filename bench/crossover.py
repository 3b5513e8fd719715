"""Measure where the Numba parallel kernels start beating the serial Cython ones.

    PYTHONPATH=src python bench/crossover.py            # scan, print the crossovers
    PYTHONPATH=src python bench/crossover.py --sizes 1000 100000 1000000 10000000 \
        --kernels adam --dtypes float32 --backends cython numba auto   # side-by-side table

For each kernel, dtype and size, the backends are timed in interleaved rounds (median per
call; see ``fastoptim.bench.time_interleaved``). The crossover of a dtype is the smallest
scanned size from which ``numba`` is faster than ``cython`` at that size and every larger one,
for every scanned kernel. Copy it into ``AUTO_CROSSOVER`` in ``src/fastoptim/_backends.py``
and record the output in ``bench/README.md``.
"""
from __future__ import annotations

import argparse

import fastoptim
from fastoptim._backends import AUTO_CROSSOVER
from fastoptim.bench import kernel_call, time_interleaved

SCAN_SIZES = [2**k for k in range(10, 24)]  # 1 Ki .. 8 Mi elements


def crossover(times: dict, sizes: list) -> int:
    """Smallest size from which numba wins at it and at every larger size (inf if never)."""
    best = float("inf")
    for n in reversed(sizes):
        if times[n]["numba"] >= times[n]["cython"]:
            break
        best = n
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", default=["sgd", "adam"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--sizes", nargs="+", type=int, default=SCAN_SIZES)
    parser.add_argument("--backends", nargs="+", default=["cython", "numba"])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    fastoptim.warmup()
    print(f"threads {fastoptim.get_num_threads()}, current AUTO_CROSSOVER {AUTO_CROSSOVER}")
    head = "".join(f"{b + ' ns/el':>14}" for b in args.backends)
    print(f"{'kernel':<8}{'dtype':<9}{'n':>10}{head}{'numba/cython':>14}"
          if "numba" in args.backends and "cython" in args.backends
          else f"{'kernel':<8}{'dtype':<9}{'n':>10}{head}")
    found = {}
    for dtype in args.dtypes:
        for kernel in args.kernels:
            times = {}
            for n in args.sizes:
                calls = {b: kernel_call(kernel, n, dtype, b) for b in args.backends}
                t = times[n] = time_interleaved(calls, args.repeats)
                row = "".join(f"{t[b] / n * 1e9:>14.3f}" for b in args.backends)
                ratio = (f"{t['numba'] / t['cython']:>14.2f}"
                         if "numba" in t and "cython" in t else "")
                print(f"{kernel:<8}{dtype:<9}{n:>10}{row}{ratio}", flush=True)
            if "numba" in args.backends and "cython" in args.backends:
                n_x = crossover(times, args.sizes)
                found[dtype] = max(found.get(dtype, 0), n_x)
                print(f"# {kernel} {dtype}: numba wins from {n_x} elements")
    for dtype, n_x in found.items():
        print(f"crossover {dtype}: {n_x}")


if __name__ == "__main__":
    main()
