"""Cython Adam float32: ns/element at 1e3..1e7 and the per-call cost at 8..1000 elements.

    PYTHONPATH=src python bench/adam_sizes.py [float32|float64]

"kernel" is kernels.adam (no validation), "call" the public adam_step(backend="cython")
with its validation, both on the typical step of ``fastoptim bench`` (the registry's first
Adam example). Interleaved rounds, median/min (bench/_timing.py).
"""
import sys

from _timing import time_calls

from fastoptim import kernels
from fastoptim.bench.cases import entry_call, fastoptim_call, make_arrays

KERNEL = "adam"


def calls(n, dtype, *backends):
    """The unvalidated kernel and the public call (on each backend) on fresh arrays."""
    arrays = make_arrays(KERNEL, n, dtype)
    out = {"kernel": entry_call(KERNEL, arrays)}
    for backend in backends:
        out["call" if backend == "cython" else backend] = fastoptim_call(KERNEL, arrays,
                                                                         backend)
    return out


def cell(t, scale):
    return f"{t[0] * scale:8.3f}/{t[1] * scale:<8.3f}"


def main(dtype="float32"):
    print(f"Adam {dtype}, SIMD variant {kernels.simd_target()}; ns/element")
    for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        t = time_calls(calls(n, dtype, "cython"), repeats=15 if n < 10_000_000 else 7)
        print(f"  n={n:>9}  kernel {cell(t['kernel'], 1e9 / n)} call {cell(t['call'], 1e9 / n)}",
              flush=True)
    print("per call, microseconds")
    for n in (8, 100, 1000):
        t = time_calls(calls(n, dtype, "cython", "numpy"), repeats=15)
        print(f"  n={n:>5}  kernel {cell(t['kernel'], 1e6)} adam_step {cell(t['call'], 1e6)} "
              f"numpy reference {cell(t['numpy'], 1e6)} "
              f"ratio {t['numpy'][0] / t['call'][0]:.1f}x", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
