"""Single array: the serial Cython kernel vs the same array through the OpenMP multi-tensor
entry point on 2 threads (Adam float32, no validation), to find where threads pay.

    PYTHONPATH=src python bench/parallel_single.py

ns per element, median/min over interleaved rounds (bench/_timing.py).
"""
import numpy as np
from _timing import time_calls

from fastoptim import _coefficients as coef
from fastoptim import kernels


def main(sizes=(10_000, 30_000, 65_536, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)):
    c = coef.adam(10, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False)
    print(f"{'n':>10} {'serial':>15} {'omp 1 thread':>15} {'omp 2 threads':>15} "
          f"{'speed-up(median)':>16}")
    for n in sizes:
        rng = np.random.default_rng(0)
        p = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        m, v = np.zeros_like(p), np.zeros_like(p)
        lists = ([p], [g], [m], [v], None)
        t = time_calls({
            "serial": lambda: kernels.adam(p, g, m, v, None, *c),
            "omp1": lambda: kernels.adam_multi(*lists, *c, num_threads=1),
            "omp2": lambda: kernels.adam_multi(*lists, *c, num_threads=2),
        }, repeats=15 if n < 10_000_000 else 7)
        cells = "".join(f"{t[k][0] / n * 1e9:7.3f}/{t[k][1] / n * 1e9:<7.3f} "
                        for k in ("serial", "omp1", "omp2"))
        print(f"{n:>10} {cells} {t['serial'][0] / t['omp2'][0]:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
