"""Interleaved timing for the scripts in bench/, reporting the median and the minimum.

The machine is shared, so other processes inflate some samples; the minimum over rounds is
the least disturbed reading and the median the typical one. Both come from the same
interleaved rounds (one batch of each callable per round), as in fastoptim.bench.
"""
import statistics
import time


def batch_size(call, min_time):
    call()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            call()
        if time.perf_counter() - t0 >= min_time:
            return number
        number *= 2


def time_calls(calls: dict, repeats: int = 15, min_time: float = 2e-3) -> dict:
    """name -> (median, min) seconds per call, over ``repeats`` interleaved rounds."""
    numbers = {name: batch_size(call, min_time) for name, call in calls.items()}
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            number = numbers[name]
            t0 = time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append((time.perf_counter() - t0) / number)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}
