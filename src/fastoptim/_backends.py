"""Backend selection: which implementation runs a validated call.

A backend is a module exposing the same entry points as :mod:`fastoptim.kernels`
(``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``), each taking the
validated arrays (any shape, contiguous in one common order) and the per-call coefficients.
The ``"numpy"`` reference takes user-level hyperparameters instead, so :func:`select`
returns ``None`` for it and the caller runs :mod:`fastoptim.reference`.

``"auto"`` picks per call: the serial Cython kernel below :data:`AUTO_CROSSOVER` elements
(lowest call overhead; threads do not pay on small, cache-resident arrays), the parallel
Numba kernel from there on (when numba can be imported and more than one thread is allowed).

Numba is imported only when the ``"numba"`` backend is first asked for (or ``"auto"`` first
meets a large array), so that ``import fastoptim`` stays fast and compiles nothing.
"""
import importlib
import os

from . import _threads
from . import kernels as _cython

BACKENDS = ("auto", "cython", "numba", "numpy")

# Array size (elements) from which "auto" runs the Numba parallel kernels, keyed by itemsize
# (4: float32, 8: float64): 16 MiB per array for both. The one place these live. Measured on
# this machine (2 cores, shared) with `python bench/crossover.py`: Numba's two threads beat
# the serial Cython kernel on every scanned kernel only from 4 Mi float32 / 2 Mi float64
# elements; below that, waiting for the second core costs more than it brings whenever the
# cores are busy. The runs are recorded in bench/README.md.
AUTO_CROSSOVER = {4: 4_194_304, 8: 2_097_152}

_numba_module = None
_numba_missing = False


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


def _numba_if_available():
    """The Numba backend module, or ``None`` (remembered) when numba cannot be imported."""
    global _numba_missing
    if _numba_missing:
        return None
    try:
        return numba_backend()
    except ImportError:
        _numba_missing = True
        return None


def crossover(itemsize: int) -> int:
    """Elements from which ``"auto"`` runs the parallel kernels, for this itemsize."""
    return AUTO_CROSSOVER.get(itemsize, AUTO_CROSSOVER[8])


def _auto(n: int, itemsize: int):
    if n < crossover(itemsize) or _threads.get_num_threads() < 2:
        return _cython
    return _numba_if_available() or _cython


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


def select(func: str, backend, n: int, itemsize: int = 8):
    """The backend module for a call on ``n`` elements of ``itemsize`` bytes, or ``None``
    for the NumPy reference."""
    if backend == "auto":
        backend = DEFAULT_BACKEND
        if backend == "auto":
            return _auto(n, itemsize)
    if backend == "cython":
        return _cython
    if backend == "numpy":
        return None
    if backend == "numba":
        return numba_backend()
    raise ValueError(
        f"{func}: backend must be one of {', '.join(repr(b) for b in BACKENDS)}, "
        f"got {backend!r}")
