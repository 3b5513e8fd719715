"""Interleaved timing for the scripts in bench/, reporting the median and the minimum.

The machine is shared, so other processes inflate some samples; the minimum over rounds is
the least disturbed reading and the median the typical one. Both come from the same
interleaved rounds as ``fastoptim bench`` (:func:`fastoptim.bench.interleaved_samples`).
"""
import statistics

from fastoptim.bench import interleaved_samples


def time_calls(calls: dict, repeats: int = 15, min_time: float = 2e-3) -> dict:
    """name -> (median, min) seconds per call, over ``repeats`` interleaved rounds."""
    samples = interleaved_samples(calls, repeats, min_time)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}
