"""The course's training loop: mini-batches, forward, cost, backward, update, decay per epoch.

::

    trainer = Trainer(data, hidden=(5, 2), optimizer="adam", lr=0.0007)
    for epoch in range(1, 5001):
        cost = trainer.run_epoch()
    trainer.summary()      # accuracies, final cost, seconds in the loop and in the update

One epoch walks the training set once in shuffled mini-batches (``fastoptim.minibatches``
with ``axis=1``: examples are columns; the shuffling generator is seeded once, so every epoch
has a new order and the run is reproducible). The epoch's cost is the course's
``cost_total / m``: the per-example cross-entropy summed over the epoch's batches, each
computed before that batch's update, divided by the number of training examples.

Learning-rate decay is the course's ``lr0 / (1 + decay_rate * epoch)``
(:func:`fastoptim.schedules.inverse_time_decay`): epoch 1 trains with ``lr0`` and, at the end
of epoch ``e``, the rate for the next epoch is set to ``schedule(e)``. With
``decay_interval > 1`` the schedule is the course's staircase
``lr0 / (1 + decay_rate * floor(epoch / decay_interval))``.
"""
from __future__ import annotations

import time
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..data import minibatches
from ..schedules import inverse_time_decay
from .datasets import Dataset
from .network import (accuracy, backward_propagation, compute_cost, forward_propagation,
                      initialize_parameters_he)
from .updaters import make_updater

__all__ = ["Trainer", "Summary"]


class Summary(NamedTuple):
    optimizer: str
    train_accuracy: float
    test_accuracy: float
    final_cost: float
    seconds: float          # the whole training loop, evaluation excluded
    step_seconds: float     # of which in the parameter update (``step``)

    @property
    def step_share(self) -> float:
        return self.step_seconds / self.seconds if self.seconds > 0 else 0.0


class Trainer:
    """One network, one optimizer, trained one epoch at a time.

    Parameters
    ----------
    data : Dataset
        From :func:`fastoptim.train.datasets.load` (examples as columns).
    hidden : sequence of int
        Hidden layer sizes; the input and output sizes come from ``data``.
    optimizer : {"gd", "momentum", "rmsprop", "adam"}
    lr : float
        Initial learning rate ``lr0``.
    batch_size : int, default 64
    decay_rate : float, default 0
        ``0`` keeps ``lr`` constant.
    decay_interval : int, default 1
        Epochs per decay stair (1: decay every epoch).
    seed : int, default 3
        Seeds the He initialisation and the mini-batch order.
    backend : str, default "auto"
        fastoptim backend of the optimizer class.
    naive : bool, default False
        Update with the course's hand-written NumPy loop instead of fastoptim.
    comm : mpi4py communicator, optional
        Data-parallel training (:mod:`fastoptim.distributed`): every rank walks the same
        mini-batches and computes the gradient of its contiguous share of each one's
        columns; the optimizer averages them (each weighted so that the average is the
        whole batch's mean gradient). The costs are summed over the ranks.
    shard_state : bool, default False
        With ``comm``: ZeRO-1, each rank keeps ``1/N`` of the optimizer state.
    """

    def __init__(self, data: Dataset, hidden: Sequence[int], optimizer: str, lr: float, *,
                 batch_size: int = 64, decay_rate: float = 0.0, decay_interval: int = 1,
                 seed: int = 3, backend: str = "auto", naive: bool = False,
                 comm=None, shard_state: bool = False) -> None:
        self.data = data
        self.optimizer = optimizer
        dims = [data.X_train.shape[0], *hidden, data.Y_train.shape[0]]
        self.parameters = initialize_parameters_he(dims, seed, data.X_train.dtype)
        self.updater = make_updater(optimizer, self.parameters, lr, backend, naive,
                                    comm=comm, shard_state=shard_state)
        self.comm = None if naive else comm
        self.schedule: Optional[inverse_time_decay] = None
        if decay_rate:
            self.schedule = inverse_time_decay(lr, decay_rate, decay_interval,
                                               staircase=decay_interval > 1)
        self.batch_size = batch_size
        self._rng = np.random.default_rng(seed)
        self.epoch = 0
        self.costs = []
        self.seconds = 0.0
        self.step_seconds = 0.0

    def run_epoch(self) -> float:
        """Train one epoch; return its cost (``cost_total / m``)."""
        X, Y, parameters, updater = (self.data.X_train, self.data.Y_train, self.parameters,
                                     self.updater)
        clock = time.perf_counter
        start = clock()
        in_step = 0.0
        cost_total = 0.0
        for X_t, Y_t in minibatches(X, Y, self.batch_size, axis=1, seed=self._rng):
            if self.comm is not None:
                cost, grads = _shard_gradients(X_t, Y_t, parameters, self.comm)
                cost_total += cost
            else:
                AL, cache = forward_propagation(X_t, parameters)
                cost_total += compute_cost(cache, Y_t)
                grads = backward_propagation(AL, Y_t, cache, parameters)
            t0 = clock()
            updater.step(grads)
            in_step += clock() - t0
        self.epoch += 1
        if self.schedule is not None:
            updater.lr = self.schedule(self.epoch)
        self.seconds += clock() - start
        self.step_seconds += in_step
        if self.comm is not None:
            cost_total = self.comm.allreduce(cost_total)
        cost = cost_total / X.shape[1]
        self.costs.append(cost)
        return cost

    def fit(self, epochs: int) -> "Trainer":
        """Run ``epochs`` more epochs."""
        for _ in range(epochs):
            self.run_epoch()
        return self

    def summary(self) -> Summary:
        d = self.data
        return Summary(self.optimizer,
                       accuracy(d.X_train, d.Y_train, self.parameters),
                       accuracy(d.X_test, d.Y_test, self.parameters),
                       self.costs[-1] if self.costs else float("nan"),
                       self.seconds, self.step_seconds)


def _shard_gradients(X_t: np.ndarray, Y_t: np.ndarray, parameters, comm):
    """This rank's cost (a sum) and gradients on its contiguous share of the batch's
    columns, scaled by ``N * m_r / m`` so that their average over the ``N`` ranks is the
    whole batch's mean gradient (a rank with no column contributes zeros)."""
    m, size, rank = X_t.shape[1], comm.size, comm.rank
    lo, hi = rank * m // size, (rank + 1) * m // size
    if hi == lo:
        return 0.0, {f"d{k}": np.zeros_like(p) for k, p in parameters.items()}
    X_r, Y_r = X_t[:, lo:hi], Y_t[:, lo:hi]
    AL, cache = forward_propagation(X_r, parameters)
    cost = compute_cost(cache, Y_r)
    grads = backward_propagation(AL, Y_r, cache, parameters)
    if size * (hi - lo) != m:
        factor = size * (hi - lo) / m
        for g in grads.values():
            g *= factor
    return cost, grads
