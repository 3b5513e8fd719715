"""The functional API: one optimizer step on NumPy arrays, fused, in place.

Every function here validates all of its arguments first (hyperparameters in one compiled
call, :func:`fastoptim._validation.check_scalars`, then arrays through
:func:`fastoptim._checks.check_arrays`), then computes the per-call coefficients once, picks the
backend and makes one kernel call. A failed check raises before any array is touched.

Common contract of every ``*_step`` function:

* arrays are ``numpy.ndarray`` of float32 or float64, all of one dtype and one shape, all
  C-contiguous or all F-contiguous, in native byte order; ``param`` and every state array are
  writeable (``grad`` may be read-only); no two share memory;
* they are updated **in place** and the function returns ``None``;
* state buffers start at zero (``np.zeros_like(param)``);
* ``maximize=True`` uses ``g = -grad``, otherwise ``g = grad``;
* ``backend`` is ``"auto"`` (default), ``"cython"``, ``"numba"`` or ``"numpy"`` (the naive
  reference in :mod:`fastoptim.reference`).

Formulas and defaults follow ``torch.optim`` (for-loop implementation).
"""
from __future__ import annotations

from . import optimizers as _optimizers
from .optimizers import *  # noqa: F401,F403  (the functions; filtered by __all__ below)

__all__ = list(_optimizers.FUNCTIONS)
