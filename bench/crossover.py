"""Measure where running a kernel on several threads starts to pay: the crossover that
``backend="auto"`` uses (``PARALLEL_MIN_TRAFFIC`` in ``src/fastoptim/_backends.py``).

    PYTHONPATH=src python bench/crossover.py            # scan, print the crossovers
    PYTHONPATH=src python bench/crossover.py --sizes 1000 100000 1000000 10000000 \\
        --kernels adam --dtypes float32                 # side-by-side table

Per kernel, dtype and size, three implementations are timed in interleaved rounds (median per
call; ``fastoptim.bench.time_interleaved``): ``serial`` (the Cython kernel on one thread),
``parallel`` (the same kernels on ``fastoptim.get_num_threads()`` OpenMP threads, forced at
every size) and ``numba`` (the Numba ``prange`` kernels). The crossover of a dtype is the
smallest scanned size from which ``parallel`` beats ``serial`` at that size and every larger
one. Expressed as the memory traffic of a serial call (bytes read + written per element x n)
it is about the same for every kernel and dtype; copy that into ``PARALLEL_MIN_TRAFFIC`` and
record the output in ``bench/README.md``.
"""
from __future__ import annotations

import argparse

import numpy as np

import fastoptim
from fastoptim import _backends, kernels
from fastoptim.bench import KERNELS, kernel_call, time_interleaved
from fastoptim.bench.bandwidth import bytes_per_element

SCAN_SIZES = [2**k for k in range(12, 25)]  # 4 Ki .. 16 Mi elements
IMPLEMENTATIONS = {"serial": "cython", "parallel": "auto", "numba": "numba"}
# by default the kernels that move the least and the most memory per element
DEFAULT_KERNELS = sorted({min(KERNELS, key=lambda k: bytes_per_element(k, np.float32)),
                          max(KERNELS, key=lambda k: bytes_per_element(k, np.float32))},
                         key=list(KERNELS).index)


def crossover(times: dict, sizes: list) -> float:
    """Smallest size from which parallel wins at it and at every larger size (inf if never)."""
    best = float("inf")
    for n in reversed(sizes):
        if times[n]["parallel"] >= times[n]["serial"]:
            break
        best = n
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", nargs="+", choices=list(KERNELS), default=DEFAULT_KERNELS)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--sizes", nargs="+", type=int, default=SCAN_SIZES)
    parser.add_argument("--no-numba", action="store_true", help="time serial and parallel only")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    impls = dict(IMPLEMENTATIONS)
    if args.no_numba:
        del impls["numba"]
    else:
        fastoptim.warmup()
    print(f"threads {fastoptim.get_num_threads()}, current PARALLEL_MIN_TRAFFIC "
          f"{_backends.PARALLEL_MIN_TRAFFIC}")
    # "auto" on the parallel path at every size: the measurement decides, not the constant
    _backends.PARALLEL_MIN_TRAFFIC = 0
    kernels.set_parallel_min_traffic(0)
    head = "".join(f"{name + ' ns/el':>16}" for name in impls)
    print(f"{'kernel':<8}{'dtype':<9}{'n':>10}{head}{'parallel/serial':>17}")
    for dtype in args.dtypes:
        for kernel in args.kernels:
            times = {}
            for n in args.sizes:
                calls = {name: kernel_call(kernel, n, dtype, backend)
                         for name, backend in impls.items()}
                t = times[n] = time_interleaved(calls, args.repeats)
                row = "".join(f"{t[name] / n * 1e9:>16.3f}" for name in impls)
                print(f"{kernel:<8}{dtype:<9}{n:>10}{row}{t['parallel'] / t['serial']:>17.2f}",
                      flush=True)
            n_x = crossover(times, args.sizes)
            traffic = n_x * bytes_per_element(kernel, dtype)
            print(f"# {kernel} {dtype}: parallel wins from {n_x} elements "
                  f"({traffic / 2**20:.1f} MiB moved per call)")


if __name__ == "__main__":
    main()
