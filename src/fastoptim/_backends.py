"""Backend selection: which implementation runs a validated call.

A backend is a module exposing the same entry points as :mod:`fastoptim.kernels`
(``sgd``, ``momentum``, ``rmsprop``, ``adam``, ``adagrad``, ``ewa``), each taking the
validated arrays (any shape, contiguous in one common order) and the per-call coefficients.
The ``"numpy"`` reference takes user-level hyperparameters instead, so :func:`select`
returns ``None`` for it and the caller runs :mod:`fastoptim.reference`.

Numba is imported only when the ``"numba"`` backend is first asked for, so that
``import fastoptim`` stays fast and compiles nothing.
"""
import importlib
import os

from . import kernels as _cython

BACKENDS = ("auto", "cython", "numba", "numpy")

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


def _default_backend() -> str:
    name = os.environ.get("FASTOPTIM_BACKEND", "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(
            f"FASTOPTIM_BACKEND must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


DEFAULT_BACKEND = _default_backend()


def select(func: str, backend, n: int):
    """The backend module for a call on ``n`` elements, or ``None`` for the NumPy reference."""
    if backend == "auto":
        backend = DEFAULT_BACKEND
    if backend == "cython" or backend == "auto":
        return _cython
    if backend == "numpy":
        return None
    if backend == "numba":
        return numba_backend()
    raise ValueError(
        f"{func}: backend must be one of {', '.join(repr(b) for b in BACKENDS)}, "
        f"got {backend!r}")
