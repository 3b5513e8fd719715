"""Memory-traffic loops: the speed limit of an optimizer step, measured on this machine.

An optimizer step on large arrays is bound by memory bandwidth, not arithmetic: Adam reads
``p, g, m, v`` and writes ``p, m, v`` (28 bytes per float32 element), and no implementation
can beat a loop that moves exactly those bytes and computes (almost) nothing. This module
has such a *traffic loop* per access pattern (one read-only array, ``k`` read-write arrays),
compiled with Numba and run on all threads with ``prange``, and measures its bandwidth on
arrays far larger than the last-level cache.

Numba is imported on first use only (``import fastoptim`` compiles nothing).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Optional, Tuple

import numpy as np

from .._registry import KERNELS as _SPECS


def access_pattern(kernel: str, hyper: Optional[Mapping[str, object]] = None) -> Tuple[int, int]:
    """``(read-only arrays, read-write arrays)`` of one step of ``kernel`` with the
    hyperparameters ``hyper`` (default: the registry's typical example), from the registry:
    the second input (the gradient) is only read; the first input and every state buffer the
    step uses are read and written (Adam: reads p, g, m, v; writes p, m, v: ``(1, 3)``)."""
    spec = _SPECS[kernel]
    hyper = spec.typical if hyper is None else hyper
    return len(spec.inputs) - 1, 1 + len(spec.active_states(hyper))


# kernel -> (read-only arrays, read-write arrays) of one step with its typical options.
ACCESS_PATTERN = {name: access_pattern(name) for name in _SPECS}

# Rules that are not registry kernels take several passes; per pass, (read-only arrays,
# read-write arrays). LAMB: pass 1 reads p, g, m, v and writes m, v; pass 2 reads p, m, v
# and writes p: ten array sweeps (40 bytes per float32 element), which its traffic loop
# makes as (1, 3) over (g; p, m, v) then (1, 1) over (m; p). Its ACCESS_PATTERN is that of
# its arrays: g read, p, m, v written.
PASSES = {"lamb": ((1, 3), (1, 1))}
ACCESS_PATTERN.update(lamb=(1, 3))

# The traffic loops cover 1 to MAX_READ_WRITE read-write arrays (and one read-only array).
MAX_READ_WRITE = 4

# Each array of the bandwidth measurement is at least this big (and at least twice the
# last-level cache): for Adam 4 arrays of 64 MiB, 8x the 32 MiB L3 of the machine here.
BANDWIDTH_ARRAY_BYTES = 64 * 2**20


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache (Linux sysfs), 0 when unknown."""
    import glob
    sizes = [0]
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as fh:
                text = fh.read().strip().upper()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes)


def bytes_per_element(kernel: str, dtype) -> int:
    """Bytes one step of ``kernel`` must move per element: (reads + writes) * itemsize."""
    passes = PASSES.get(kernel, (ACCESS_PATTERN[kernel],))
    return sum(n_read + 2 * n_rw for n_read, n_rw in passes) * np.dtype(dtype).itemsize


@lru_cache(maxsize=None)
def _traffic_loops() -> dict:
    """The compiled traffic loops, keyed by the number of read-write arrays."""
    from numba import njit, prange

    opts = dict(parallel=True, cache=True, error_model="numpy", fastmath=False)

    # Every loop reads each array once and writes each read-write array once; ``c`` is a
    # runtime scalar (0 in practice) so the compiler can neither drop the loads nor the stores.
    @njit(**opts)
    def rw1(g, a, c):  # pragma: no cover - compiled
        for i in prange(g.size):
            a[i] = a[i] + c * g[i]

    @njit(**opts)
    def rw2(g, a, b, c):  # pragma: no cover - compiled
        for i in prange(g.size):
            x = c * g[i]
            a[i] = a[i] + x
            b[i] = b[i] + x

    @njit(**opts)
    def rw3(g, a, b, d, c):  # pragma: no cover - compiled
        for i in prange(g.size):
            x = c * g[i]
            a[i] = a[i] + x
            b[i] = b[i] + x
            d[i] = d[i] + x

    @njit(**opts)
    def rw4(g, a, b, d, e, c):  # pragma: no cover - compiled
        for i in prange(g.size):
            x = c * g[i]
            a[i] = a[i] + x
            b[i] = b[i] + x
            d[i] = d[i] + x
            e[i] = e[i] + x

    loops = {1: rw1, 2: rw2, 3: rw3, 4: rw4}
    assert max(loops) == MAX_READ_WRITE
    return loops


def traffic_call(kernel: str, arrays):
    """A zero-argument callable running the traffic loop of ``kernel`` over ``arrays``.

    ``arrays`` are the 1-D arrays of one step, the read-only one (the gradient) second, as
    in ``(param, grad, *state)``. Raises ImportError when numba is missing.
    """
    n_read, n_rw = ACCESS_PATTERN[kernel]
    if len(arrays) != n_read + n_rw:
        raise ValueError(f"traffic_call: {kernel} needs {n_read + n_rw} arrays, "
                         f"got {len(arrays)}")
    loop = _traffic_loops()[n_rw]
    param, grad, *state = arrays
    rw = (param, *state)
    zero = grad.dtype.type(0.0)
    if kernel == "lamb":                    # PASSES: (g; p, m, v), then (m; p)
        second = _traffic_loops()[1]
        return lambda: (loop(grad, *rw, zero), second(state[0], param, zero))
    return lambda: loop(grad, *rw, zero)


def bandwidth_arrays(kernel: str, dtype, array_bytes: int = BANDWIDTH_ARRAY_BYTES) -> list:
    """Fresh arrays for measuring the bandwidth of ``kernel``, each ``array_bytes`` big or
    twice the last-level cache, whichever is larger."""
    n_read, n_rw = ACCESS_PATTERN[kernel]
    n = max(array_bytes, 2 * last_level_cache_bytes()) // np.dtype(dtype).itemsize
    return [np.ones(n, dtype) for _ in range(n_read + n_rw)]
