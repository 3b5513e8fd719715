"""The parameter update of the training loop, two ways: fastoptim's optimizer classes, and the
course's hand-written loop of naive NumPy updates (:mod:`fastoptim.reference`) to compare with.

Both take the course's gradients (``grads["dW1"], grads["db1"], ...``) and update the
course's ``parameters`` dict in place; both expose ``lr`` (set by hand for learning-rate
decay) and ``step(grads)``. The optimizers and their hyperparameters:

* ``gd``, mini-batch gradient descent: ``W -= lr * dW``; ``SGD(parameters, lr)``.
* ``momentum``, the course's EWA form with b = 0.9: ``v = b*v + (1-b)*dW; W -= lr*v``;
  ``SGD(parameters, lr, momentum=b, dampening=b)``.
* ``rmsprop`` with a = 0.99 (torch's default), e = 1e-8:
  ``s = a*s + (1-a)*dW**2; W -= lr * dW / (sqrt(s) + e)``; ``RMSprop(parameters, lr)``.
* ``adam`` with bias correction, b1 = 0.9, b2 = 0.999, e = 1e-8; ``Adam(parameters, lr)``.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from .. import reference
from ..optim import SGD, Adam, RMSprop

__all__ = ["OPTIMIZERS", "FastoptimUpdater", "NaiveUpdater", "make_updater"]

OPTIMIZERS = ("gd", "momentum", "rmsprop", "adam")

BETA = 0.9                      # momentum (the course's EWA form)
ALPHA = 0.99                    # RMSprop's square-average decay (torch's default)
BETA1, BETA2 = 0.9, 0.999       # Adam
EPS = 1e-8


def _check_name(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


class FastoptimUpdater:
    """fastoptim's optimizer class for ``name``, fed with the course's gradient names."""

    def __init__(self, name: str, parameters: Dict[str, np.ndarray], lr: float,
                 backend: str = "auto", comm=None, shard_state: bool = False) -> None:
        _check_name(name)
        if name == "gd":
            opt = SGD(parameters, lr, backend=backend)
        elif name == "momentum":
            opt = SGD(parameters, lr, momentum=BETA, dampening=BETA, backend=backend)
        elif name == "rmsprop":
            opt = RMSprop(parameters, lr, alpha=ALPHA, eps=EPS, backend=backend)
        else:
            opt = Adam(parameters, lr, betas=(BETA1, BETA2), eps=EPS, backend=backend)
        self.optimizer = opt
        self._stepper = opt
        if comm is not None:        # data-parallel: rank 0's parameters, averaged gradients
            from ..distributed import DistributedOptimizer, broadcast_parameters
            broadcast_parameters(parameters, comm=comm)
            self._stepper = DistributedOptimizer(opt, comm, shard_state=shard_state)
        self._keys = list(parameters)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def step(self, grads: Dict[str, np.ndarray]) -> None:
        self._stepper.step({k: grads["d" + k] for k in self._keys})


class NaiveUpdater:
    """The course's hand-written updates: a Python loop over the arrays, naive NumPy formulas.

    The state dicts ``v`` (first moment / velocity) and ``s`` (second moment) start at
    zero like the course's ``initialize_velocity`` / ``initialize_adam``; ``t`` counts the
    steps for Adam's bias correction.
    """

    def __init__(self, name: str, parameters: Dict[str, np.ndarray], lr: float) -> None:
        _check_name(name)
        self.name, self.parameters, self.lr, self.t = name, parameters, lr, 0
        self.v = {k: np.zeros_like(p) for k, p in parameters.items()}
        self.s = {k: np.zeros_like(p) for k, p in parameters.items()}

    def step(self, grads: Dict[str, np.ndarray]) -> None:
        self.t += 1
        for k, p in self.parameters.items():
            g = grads["d" + k]
            if self.name == "gd":
                reference.sgd_step(p, g, lr=self.lr)
            elif self.name == "momentum":
                reference.momentum_step(p, g, self.v[k], lr=self.lr, momentum=BETA,
                                        dampening=BETA)
            elif self.name == "rmsprop":
                reference.rmsprop_step(p, g, self.s[k], lr=self.lr, alpha=ALPHA, eps=EPS)
            else:
                reference.adam_step(p, g, self.v[k], self.s[k], step=self.t, lr=self.lr,
                                    beta1=BETA1, beta2=BETA2, eps=EPS)


def make_updater(name: str, parameters: Dict[str, np.ndarray], lr: float,
                 backend: str = "auto", naive: bool = False, comm=None,
                 shard_state: bool = False):
    """:class:`NaiveUpdater` when ``naive``, else :class:`FastoptimUpdater` on ``backend``
    (data-parallel over ``comm`` when given)."""
    if naive:
        return NaiveUpdater(name, parameters, lr)
    return FastoptimUpdater(name, parameters, lr, backend, comm, shard_state)
