"""Every kernel x competitor x dtype x size, with pytest-benchmark.

Groups are ``kernel dtype n=...``; in each group the naive NumPy reference (``numpy``) runs
first and is the baseline: every other benchmark records ``speedup_vs_numpy`` in its
``extra_info``, next to ``bytes_per_elem`` (what a fused step must move), the GB/s that
implies and the peak extra memory of one step (tracemalloc). The competitors (fastoptim
backends, careful NumPy, numexpr, torch.optim, the memory-traffic loop) are those of
``fastoptim bench``; one that cannot run here is skipped with the reason.

    PYTHONPATH=src pytest bench                          # full run (minutes)
    PYTHONPATH=src pytest bench -k "adam and float32"    # one kernel
    PYTHONPATH=src pytest bench --benchmark-disable      # smoke test: every path once
    PYTHONPATH=src pytest bench --benchmark-json out.json && python bench/plot_json.py out.json out.png
"""
import time

import numpy as np
import pytest

from fastoptim.bench.bandwidth import bytes_per_element
from fastoptim.bench.cases import BASELINE, COMPETITORS, KERNELS, Unavailable, build, make_arrays
from fastoptim.bench.timing import SETTLE, peak_extra_bytes

SIZES = (10**2, 10**3, 10**4, 10**5, 10**6, 10**7)
DTYPES = ("float32", "float64")

# One flat list, the baseline first within each (kernel, dtype, n) group: pytest runs the
# cases in this order, so the baseline's time is known when the others finish.
CASES = [(kernel, dtype, n, competitor)
         for kernel in KERNELS for dtype in DTYPES for n in SIZES for competitor in COMPETITORS]


def _disabled(benchmark):
    """True under --benchmark-disable."""
    return bool(getattr(benchmark, "disabled", False))


def _median(benchmark):
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


@pytest.mark.parametrize("kernel, dtype, n, competitor", CASES,
                         ids=[f"{k}-{d}-{n:.0e}-{c}" for k, d, n, c in CASES])
def test_step(benchmark, baseline_times, kernel, dtype, n, competitor):
    arrays = make_arrays(kernel, n, dtype)
    try:
        call = build(competitor, kernel, arrays)   # fastoptim backends are called once here
    except Unavailable as exc:
        pytest.skip(str(exc))
    call()   # warm-up: JIT compilation, lazily created state, page faults
    group = f"{kernel} {dtype} n={n:.0e}"
    benchmark.group = group
    bpe = bytes_per_element(kernel, dtype)
    benchmark.extra_info.update(kernel=kernel, dtype=dtype, n=n, backend=competitor,
                                bytes_per_elem=bpe)
    if competitor not in ("torch-foreach", "torch-fused", "numba", "traffic"):
        benchmark.extra_info["peak_bytes"] = peak_extra_bytes(call)
    if not _disabled(benchmark):
        time.sleep(SETTLE)   # let the previous test's thread pool stop spinning
    benchmark(call)
    assert np.all(np.isfinite(arrays[0]))
    t = _median(benchmark)
    if t is None:   # --benchmark-disable
        return
    benchmark.extra_info["gbps"] = bpe * n / t / 1e9
    if competitor == BASELINE:
        baseline_times[group] = t
    if group in baseline_times:
        benchmark.extra_info["speedup_vs_numpy"] = baseline_times[group] / t
