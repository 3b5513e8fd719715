"""Backend selection: which implementation runs a validated call.

A backend is a module exposing the same entry points as :mod:`fastoptim.kernels`
(``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``), each taking the
validated arrays (any shape, contiguous in one common order) and the per-call coefficients.
The ``"numpy"`` reference takes user-level hyperparameters instead, so :func:`select`
returns ``None`` for it and the caller runs :mod:`fastoptim.reference`.

``"auto"`` picks per call: the serial Cython kernel while a call moves less than
:data:`PARALLEL_MIN_TRAFFIC` bytes (``kernels.threads_pay``, the one threading decision,
also that of the multi-tensor kernels; lowest call overhead; threads do not pay on small,
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

# The default crossover, in bytes of memory traffic per call, from which "auto" runs on
# threads: the number and the decision live in the compiled module
# (kernels.threads_pay, shared with the multi-tensor kernels); this is for display.
PARALLEL_MIN_TRAFFIC = _cython.get_parallel_min_traffic()
_threads_pay = _cython.threads_pay

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
    return -(-_cython.get_parallel_min_traffic() // per_element)


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
            if not _threads_pay(n * itemsize, n_arrays):
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
