"""The ``"numba"`` backend: multi-threaded ``prange`` twins of the Cython kernels.

Imported lazily (by :func:`fastoptim._backends.numba_backend`), never by ``import fastoptim``.

Two layers:

* **njit kernels** (``sgd_kernel``, ``momentum_kernel``, ``rmsprop_kernel``, ``adam_kernel``,
  ``adagrad_kernel``, ``ewa_kernel``) on 1-D contiguous arrays, with the same arguments in the
  same order as the C kernels in ``kernels.pxd`` minus ``n`` (read that file for each
  scalar's meaning). A user's own ``@numba.njit`` code may call them directly; optional state
  arrays are passed as ``None``, which Numba compiles away. They update their arrays in place,
  allocate nothing, never raise, check nothing (the caller guarantees equal sizes, one dtype,
  no aliasing) and run on ``numba.get_num_threads()`` threads. Each scalar is first converted
  to the arrays' dtype, as the Cython kernels do, so float32 arrays compute in float32.
* **Python entry points** (``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``)
  with exactly the positional signatures of those in :mod:`fastoptim.kernels`. They take
  arrays already validated by :mod:`fastoptim.functional` (any shape, contiguous in one common
  order), flatten them to 1-D views and run the kernel on :func:`fastoptim.get_num_threads`
  threads, restoring Numba's own thread count afterwards.

Each kernel lives in its own module, ``numba_kernels/<kernel>.py`` (the registry's name),
and is compiled by the one decorator of ``numba_kernels/_common.py``: ``parallel=True``, ``cache=True`` (compiled code is
kept on disk, so a new process does not recompile), ``error_model="numpy"`` (the Python error
model's division checks stop LLVM from vectorizing), ``fastmath=False`` (results follow IEEE
arithmetic, as in the Cython kernels) and ``nogil=True``.
"""
from __future__ import annotations

import importlib
import itertools

import numba
import numpy as np

from .. import _coefficients as _coef
from .. import _threads
from .._registry import KERNELS as _SPECS

# every registry kernel's twin, from its own module: <name>_kernel
for _name in _SPECS:
    globals()[f"{_name}_kernel"] = getattr(
        importlib.import_module(f"{__name__}.{_name}"), f"{_name}_kernel")

KERNELS = tuple(globals()[f"{_name}_kernel"] for _name in _SPECS)

__all__ = [f"{_name}_kernel" for _name in _SPECS] + list(_SPECS) + ["warmup"]


# ---------------------------------------------------------------------------------------------
# Python entry points (unchecked: called by fastoptim.functional after validation)
# ---------------------------------------------------------------------------------------------
def _flat(a):
    """A 1-D view of a contiguous array (either order), or None."""
    return None if a is None else a.ravel(order="K")


_serial_twins = {}


def _serial(kernel):
    """The kernel compiled without ``parallel`` (its ``prange`` runs as ``range``), for a
    process created by fork(): Numba's parallel launcher does not survive fork (its OpenMP
    layer terminates the child), so a forked child runs these. Compiled on first use in the
    child, and not cached on disk: Numba's cache index does not tell them from the parallel
    kernels of the same function, and would hand back the parallel code."""
    twin = _serial_twins.get(kernel)
    if twin is None:
        twin = _serial_twins[kernel] = numba.njit(
            kernel.py_func, parallel=False, cache=False, error_model="numpy", fastmath=False,
            nogil=True)
    return twin


def _run(kernel, *args):
    """Call ``kernel`` on fastoptim's thread count, leaving Numba's own setting as it was."""
    if _threads.in_forked_child():
        return _serial(kernel)(*args)
    n = min(_threads.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    previous = numba.get_num_threads()
    if n == previous:
        return kernel(*args)
    numba.set_num_threads(n)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


def _entry(name: str, kernel):
    """The Python entry point ``name`` of this backend: the signature of
    ``fastoptim.kernels.<name>`` (the kernel's arrays, ``None`` for an absent optional state,
    then its :class:`~fastoptim.kernels.Coefficients`), flattening each array to 1-D."""
    def entry(*arrays_then_coefficients):
        *arrays, coefficients = arrays_then_coefficients
        _run(kernel, *[_flat(a) for a in arrays], *coefficients.values())

    entry.__name__ = entry.__qualname__ = name
    return entry


for _name in _SPECS:
    globals()[_name] = _entry(_name, globals()[f"{_name}_kernel"])


def warmup(dtypes=(np.float32, np.float64)) -> int:
    """Compile (or load from the disk cache) every specialization the entry points use.

    That is every kernel, for each dtype, with every combination of optional state arrays
    and with a writeable and a read-only ``grad``/``value``. Returns the number of compiled
    specializations held by the kernels afterwards.
    """
    for spec in _SPECS.values():
        hyper = {**spec.defaults(), **spec.carried, "lr": 0.1, "step": 1, "beta": 0.9}
        coefficients = getattr(_coef, spec.name)(*[hyper[a] for a in spec.coefficient_args])
        optional = [s for s in spec.states if s.enabled_by is not None]
        entry = globals()[spec.name]
        for dtype in dtypes:
            for readonly in (False, True):
                for present in itertools.product((False, True), repeat=len(optional)):
                    on = {s.name for s, p in zip(optional, present) if p}
                    grad = np.zeros(1, dtype)
                    grad.flags.writeable = not readonly
                    states = [np.zeros(1, dtype) if s.enabled_by is None or s.name in on
                              else None for s in spec.states]
                    entry(np.zeros(1, dtype), grad, *states, coefficients)
    return sum(len(k.signatures) for k in KERNELS)
