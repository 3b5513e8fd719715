"""Optimizer classes: torch.optim's names and defaults, on NumPy arrays, updated in place.

::

    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}      # the course's dict
    opt = fastoptim.Adam(parameters, lr=1e-3)
    ...
    opt.step({"W1": dW1, "b1": db1, "W2": dW2, "b2": db2})      # same keys

Each class keeps its parameters, and each of its state buffers, as **parallel lists in one
fixed order** (list order or the dict's insertion order). A step

1. checks every gradient against its parameter (structure, shape, dtype, layout) before
   touching anything, so a bad gradient raises naming its key and nothing is updated;
2. computes the learning rate (a float, or a schedule called with the step count
   ``t = 1, 2, ...``) and the kernel's per-call coefficients **once**
   (:mod:`fastoptim._coefficients`);
3. runs :meth:`Optimizer._apply`, the one place that walks the arrays and calls the backend.

Hyperparameters are validated once, at construction (and when ``opt.lr`` is set by hand).
Every state buffer starts at zero, with its parameter's dtype and layout (Adagrad: at
``initial_accumulator_value``).

The base class is :class:`fastoptim._optimizer.Optimizer`; each optimizer's class lives
with its functional step in :mod:`fastoptim.optimizers` (``optimizers/adam.py``...).
"""
from __future__ import annotations

from . import optimizers as _optimizers
from ._optimizer import Optimizer
from .optimizers import *  # noqa: F401,F403  (the classes; filtered by __all__ below)

__all__ = ["Optimizer"] + list(_optimizers.CLASSES)
