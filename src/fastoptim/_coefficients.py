"""Per-call coefficients of the compiled kernels, for the Python layer.

``_coefficients.<kernel>(hyperparameters...)`` returns a :class:`fastoptim.kernels.Coefficients`:
the kernel's ``coefficients.pxd`` struct, computed once per step by the ``cdef inline``
helper of that file (the single source of these formulas, shared with Cython consumers that
``cimport`` it) and read by every compiled backend by field name. The arguments are the
registry's ``coefficient_args`` (:mod:`fastoptim._registry`), in that order.
"""
from . import kernels as _kernels
from ._registry import KERNELS

Coefficients = _kernels.Coefficients

for _name in KERNELS:
    globals()[_name] = getattr(_kernels, f"coefficients_{_name}")

__all__ = ["Coefficients", *KERNELS]


def sign(maximize: bool) -> float:
    """``-1.0`` to maximize, ``+1.0`` to minimize (``grad_sign``)."""
    return -1.0 if maximize else 1.0
