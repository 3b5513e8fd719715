"""The parallel Cython path: the single-array entry points run as one-entry multi-tensor
calls, i.e. one OpenMP parallel region over fixed chunks of the array.

``backend="auto"`` takes this module for calls that move enough memory for threads to pay
(``fastoptim.kernels.threads_pay``, the measured crossover), when more than one thread is
allowed. The
results are those of the serial kernels, bit for bit, for any thread count (the updates are
element-wise and the chunk boundaries do not depend on the threads).
"""
from . import kernels as _k
from ._registry import KERNELS


def _parallel_entry(name: str):
    """``kernels.<name>`` with the signature of the serial entry point, run as a one-entry
    ``kernels.<name>_multi`` call (``None`` stays ``None``: an absent optional state)."""
    multi = getattr(_k, name + "_multi")

    def entry(*arrays_then_coefficients):
        *arrays, coefficients = arrays_then_coefficients
        multi(*[None if a is None else (a,) for a in arrays], coefficients)

    entry.__name__ = entry.__qualname__ = name
    return entry


for _name in KERNELS:
    globals()[_name] = _parallel_entry(_name)
