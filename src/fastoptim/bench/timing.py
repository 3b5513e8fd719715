"""Timing and memory measurement for ``fastoptim bench``.

Competitors are timed in *interleaved* rounds: each round calls every competitor once (in a
batch of calls long enough to time), so a burst of machine noise (the 2 cores here are
shared) hits all of them alike, and ratios taken within one round are meaningful. We report
the median over rounds and the spread (quartiles, min, max).
"""
from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from typing import Callable, Dict, Iterable, List

# OpenMP runtimes (torch bundles its own libgomp; Numba's "omp" layer loads the system one)
# keep their idle threads spinning for milliseconds after a parallel region. Interleaving two
# such thread pools on 2 cores can make each wait a scheduler time slice at every barrier.
# Measured once here (load average ~3.5 from other users): torch fused Adam at n=100 took
# 6.1 ms per call interleaved with the Numba traffic loop, 0.59 ms with this pause after each
# threaded batch, 0.34 ms alone (the traffic loop 6.0 ms vs 0.10 ms); a 5 ms pause was not
# enough. Under heavier load the effect drowns in the noise (torch alone then took 16 ms).
SETTLE = 0.02


def calibrate(call: Callable[[], object], min_time: float) -> int:
    """Calls per sample so that one sample lasts at least ``min_time`` seconds."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            call()
        if time.perf_counter() - t0 >= min_time:
            return number
        number *= 2


def time_interleaved(calls: Dict[str, Callable[[], object]], repeats: int,
                     min_time: float = 2e-3, threaded: Iterable[str] = (),
                     settle: float = SETTLE) -> Dict[str, List[float]]:
    """Seconds per call of each callable, one sample per interleaved round.

    Every callable is called once first (warm-up: JIT compilation, page faults, lazy state),
    then calibrated to ``min_time`` per sample; then ``repeats`` rounds time each callable in
    turn, in a new (seeded) random order each round. After each batch of a callable named in ``threaded`` (one that runs a thread pool),
    we sleep ``settle`` seconds so that its idle threads stop spinning before the next
    callable runs (see :data:`SETTLE`). Returns ``{name: [seconds per call, one per round]}``.
    """
    threaded = set(threaded)
    numbers = {}
    for name, call in calls.items():
        call()
        numbers[name] = calibrate(call, min_time)
        if name in threaded:
            time.sleep(settle)
    samples: Dict[str, List[float]] = {name: [] for name in calls}
    order = list(calls)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)   # no competitor always runs right after the same other one
        for name in order:
            call, number = calls[name], numbers[name]
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append((time.perf_counter() - t0) / number)
            if name in threaded:
                time.sleep(settle)
    return samples


def summarize(samples: List[float]) -> dict:
    """Median, quartiles, min and max of timing samples (seconds)."""
    s = sorted(samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return dict(median=statistics.median(s), q1=q1, q3=q3, min=s[0], max=s[-1], repeats=len(s))


def peak_extra_bytes(call: Callable[[], object]) -> int:
    """Peak bytes allocated while ``call()`` runs once, as seen by :mod:`tracemalloc`.

    NumPy reports its array buffers to tracemalloc, so the temporaries of the naive reference
    are counted; memory of other allocators (torch, Numba's runtime) is not.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(0, peak - before)
