"""Run the benchmark: bandwidth first, then every kernel x dtype x size group, interleaved.

The result is one plain dict (JSON-able), the single source of the printed tables, the
``--json`` file, the plots and the performance targets::

    {"machine": {...}, "bandwidth": [{"kernel", "dtype", "gbps", ...}, ...],
     "results": [{"kernel", "dtype", "n", "backend", "seconds", "q1", "q3", "min", "max",
                  "ns_per_elem", "gbps", "pct_bandwidth", "speedup_vs_numpy",
                  "speedup_vs_torch", "peak_bytes", "bytes_per_elem"}, ...],
     "unavailable": {"kernel/backend": "reason", ...}}

(``fastoptim bench`` adds ``"command"`` and ``"targets"``, see :mod:`fastoptim.bench.report`.)
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from . import bandwidth as _bandwidth
from .cases import BASELINE, NotApplicable, Unavailable, build, make_arrays
from .timing import peak_extra_bytes, summarize, time_interleaved

# competitors whose memory tracemalloc cannot see (their own allocators)
UNTRACED = ("torch-foreach", "torch-fused", "numba", "traffic")
TORCH_PREFERENCE = ("torch-fused", "torch-foreach")
# competitors running a thread pool (``auto`` runs OpenMP threads on large arrays)
THREADED = ("numexpr", "torch-foreach", "torch-fused", "numba", "auto", "traffic")


def measure_bandwidth(kernel: str, dtype, repeats: int,
                      array_bytes: int = _bandwidth.BANDWIDTH_ARRAY_BYTES) -> dict:
    """Bandwidth (GB/s) of the traffic loop with ``kernel``'s access pattern, on all threads,
    on arrays of ``array_bytes`` each (far larger than the last-level cache).

    ``gbps`` is the best rate over the rounds (as STREAM reports it: noise only ever slows a
    loop down, so the fastest round is the best estimate of what the hardware can do);
    ``gbps_median`` and ``gbps_min`` show the spread."""
    arrays = _bandwidth.bandwidth_arrays(kernel, dtype, array_bytes)
    call = _bandwidth.traffic_call(kernel, arrays)
    samples = time_interleaved({"traffic": call}, repeats, min_time=0.05)["traffic"]
    stats = summarize(samples)
    n = arrays[0].size
    moved = _bandwidth.bytes_per_element(kernel, dtype) * n
    return dict(kernel=kernel, dtype=np.dtype(dtype).name, n=n,
                bytes_per_elem=_bandwidth.bytes_per_element(kernel, dtype),
                gbps=moved / stats["min"] / 1e9, gbps_median=moved / stats["median"] / 1e9,
                gbps_min=moved / stats["max"] / 1e9, seconds=stats["min"])


def run_group(kernel: str, dtype, n: int, competitors: Sequence[str], repeats: int,
              min_time: float, bandwidth_gbps: Optional[float], unavailable: dict,
              memory: bool = True) -> list:
    """Time every available competitor on one (kernel, dtype, n), interleaved; rows of results.

    All competitors share one set of arrays (each step is in place), so cache-resident sizes
    are warm for all alike.
    """
    arrays = make_arrays(kernel, n, dtype)
    calls = {}
    for name in competitors:
        try:
            calls[name] = build(name, kernel, arrays)
        except NotApplicable:
            pass
        except Unavailable as exc:
            unavailable[f"{kernel}/{name}"] = str(exc)
    samples = time_interleaved(calls, repeats, min_time=min_time, threaded=THREADED)
    bpe = _bandwidth.bytes_per_element(kernel, dtype)
    rows = []
    for name, call in calls.items():
        stats = summarize(samples[name])
        t = stats["median"]
        gbps = bpe * n / t / 1e9
        rows.append(dict(
            kernel=kernel, dtype=np.dtype(dtype).name, n=n, backend=name,
            seconds=t, q1=stats["q1"], q3=stats["q3"], min=stats["min"], max=stats["max"],
            repeats=stats["repeats"], ns_per_elem=t / n * 1e9, bytes_per_elem=bpe, gbps=gbps,
            pct_bandwidth=100 * gbps / bandwidth_gbps if bandwidth_gbps else None,
            peak_bytes=(None if name in UNTRACED or not memory else peak_extra_bytes(call)),
        ))
    add_speedups(rows)
    return rows


def add_speedups(rows: list) -> None:
    """Speed-up of each row over the naive reference and over torch (fused, else foreach)."""
    by_name = {r["backend"]: r["seconds"] for r in rows}
    torch_t = next((by_name[t] for t in TORCH_PREFERENCE if t in by_name), None)
    for r in rows:
        base = by_name.get(BASELINE)
        r["speedup_vs_numpy"] = base / r["seconds"] if base else None
        r["speedup_vs_torch"] = torch_t / r["seconds"] if torch_t else None


class _NoProgress:
    """Stand-in for a tqdm bar when tqdm is missing or output is not a terminal."""

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, desc: str) -> None:
        pass

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool = True):
    """A tqdm progress bar on stderr when tqdm is installed and stderr is a terminal."""
    import sys
    if not enabled or not sys.stderr.isatty():
        return _NoProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgress()

    bar = tqdm(total=total, file=sys.stderr, leave=False, unit="group", dynamic_ncols=True)
    bar.write = lambda text: tqdm.write(text, file=sys.stdout)   # table lines go to stdout
    return bar


def _pattern_bandwidth(kernel: str, dtype, patterns: dict, repeats: int, array_bytes: int,
                       unavailable: dict) -> Optional[dict]:
    """The bandwidth row of ``kernel``'s access pattern and ``dtype``, measured once per
    pattern (cached in ``patterns``); None (and a note in ``unavailable``) without numba."""
    key = (_bandwidth.PASSES.get(kernel, _bandwidth.ACCESS_PATTERN[kernel]), dtype)
    if key not in patterns:
        try:
            patterns[key] = measure_bandwidth(kernel, dtype, repeats, array_bytes)
        except ImportError as exc:
            unavailable["bandwidth"] = f"needs numba ({exc})"
            patterns[key] = None
    return patterns[key] and dict(patterns[key], kernel=kernel)


def run_benchmark(kernels: Iterable[str], dtypes: Iterable[str], sizes: Iterable[int],
                  competitors: Sequence[str], repeats: int, min_time: float = 2e-3,
                  bandwidth_bytes: int = _bandwidth.BANDWIDTH_ARRAY_BYTES,
                  memory: bool = True, progress: bool = True,
                  on_group_done: Optional[Callable] = None,
                  machine: Optional[dict] = None) -> dict:
    """Measure the bandwidth per access pattern, then time every group; the results dict.

    ``on_group_done(bar, kernel, dtype, rows_of_that_kernel_and_dtype, bandwidth)`` is called
    after the last size of each (kernel, dtype), e.g. to print its table.
    """
    from .machine import machine_info
    kernels, dtypes, sizes = list(kernels), list(dtypes), list(sizes)
    result = dict(machine=machine or machine_info(), bandwidth=[], results=[],
                  unavailable={})
    patterns = {}  # (access pattern, dtype) -> bandwidth row, measured once
    bar = progress_bar(len(kernels) * len(dtypes) * (len(sizes) + 1), progress)
    try:
        for kernel in kernels:
            for dtype in dtypes:
                bar.set_description(f"bandwidth {kernel} {dtype}")
                bw = _pattern_bandwidth(kernel, dtype, patterns, max(3, repeats),
                                        bandwidth_bytes, result["unavailable"])
                if bw:
                    result["bandwidth"].append(bw)
                bar.update()
                rows = []
                for n in sizes:
                    bar.set_description(f"{kernel} {dtype} n={n:.0e}")
                    rows += run_group(kernel, dtype, n, competitors, repeats, min_time,
                                      bw and bw["gbps"], result["unavailable"], memory)
                    bar.update()
                result["results"] += rows
                if on_group_done is not None:
                    on_group_done(bar, kernel, dtype, rows, bw)
    finally:
        bar.close()
    return result
