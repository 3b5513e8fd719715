"""Backend selection: which implementation runs a validated call.

A backend is a module exposing the same entry points as :mod:`fastoptim.kernels`
(``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``), each taking the
validated arrays (any shape, contiguous in one common order) and the per-call coefficients.
The ``"numpy"`` reference takes user-level hyperparameters instead, so :func:`select`
returns ``None`` for it and the caller runs :mod:`fastoptim.reference`.

``"auto"`` picks per call: the serial Cython kernel while a call moves less than
:data:`PARALLEL_MIN_TRAFFIC` bytes (lowest call overhead; threads do not pay on small,
cache-resident arrays), and from
there on the same Cython kernels run by several OpenMP threads over fixed chunks
(:mod:`fastoptim._cython_parallel`), when more than one thread is allowed. Both give the
same results bit for bit. The Numba backend is as fast on large arrays but costs tens of
microseconds more per call (and a compilation on first use), so "auto" leaves it to
``backend="numba"``.

Numba is imported only when the ``"numba"`` backend is first asked for, so that
``import fastoptim`` stays fast and compiles nothing.
"""
import importlib
import os

from . import _cython_parallel
from . import _threads
from . import kernels as _cython

BACKENDS = ("auto", "cython", "numba", "numpy")

# Memory traffic of one call (bytes read + written: every array read, all but the gradient
# written; 28 bytes per element for float32 Adam) from which threads pay: the one place this
# crossover lives (the multi-tensor kernels use it too, for their whole list). Measured on
# this machine (2 cores, AVX2, idle) with `python bench/crossover.py`: two threads beat the
# serial kernel from a serial call that moves 2-12 MiB (Adam float64 1.8 MiB, SGD float64
# 6 MiB, Adam float32 7 MiB, SGD float32 12 MiB); 8 MiB loses least across them (a wrong
# "parallel" costs up to 1.4x near the crossover, a wrong "serial" at most ~1.3x). The run
# is recorded in bench/README.md.
PARALLEL_MIN_TRAFFIC = 8 * 1024 * 1024
_cython.set_parallel_min_traffic(PARALLEL_MIN_TRAFFIC)

_numba_module = None


def numba_backend():
    """The Numba backend module, imported on first use; ImportError if numba is missing."""
    global _numba_module
    if _numba_module is None:
        try:
            _numba_module = importlib.import_module("fastoptim.numba_kernels")
        except ImportError as exc:
            raise ImportError(
                f"backend='numba' needs the numba package, which could not be imported "
                f"({exc}); install it with `pip install numba` or use backend='cython'"
            ) from exc
    return _numba_module


def crossover(itemsize: int, n_arrays: int = 4) -> int:
    """Elements per array from which ``"auto"`` runs the parallel kernels, for this itemsize
    and number of arrays (4 for Adam: param, grad, exp_avg, exp_avg_sq)."""
    per_element = itemsize * (2 * n_arrays - 1)
    return -(-PARALLEL_MIN_TRAFFIC // per_element)


def warmup() -> int:
    """Compile every Numba kernel for float32 and float64 now, instead of on first use.

    Compiled code is cached on disk, so this is slow (about a second per kernel variant,
    ~40 s in all) only the first time after installation; later processes load it in about
    a second. Also available as ``fastoptim info --warmup``.

    Returns
    -------
    int
        The number of compiled kernel variants (dtype x optional state x read-only grad).

    Raises
    ------
    ImportError
        When numba cannot be imported.
    """
    return numba_backend().warmup()


def _default_backend() -> str:
    name = os.environ.get("FASTOPTIM_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(
            f"FASTOPTIM_BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


DEFAULT_BACKEND = _default_backend()


def select(func: str, backend, n: int, itemsize: int = 8, n_arrays: int = 2):
    """The backend module for a call on ``n_arrays`` arrays (param, grad and the state) of
    ``n`` elements of ``itemsize`` bytes, or ``None`` for the NumPy reference."""
    if backend == "auto":
        backend = DEFAULT_BACKEND
        if backend == "auto":  # (inline: this runs on every call, small ones included)
            if n * itemsize * (2 * n_arrays - 1) < PARALLEL_MIN_TRAFFIC:
                return _cython
            return _cython_parallel if _threads.get_num_threads() > 1 else _cython
    if backend == "cython":
        return _cython
    if backend == "numpy":
        return None
    if backend == "numba":
        return numba_backend()
    raise ValueError(
        f"{func}: backend must be one of {', '.join(repr(b) for b in BACKENDS)}, "
        f"got {backend!r}")
