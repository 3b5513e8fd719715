"""Mini-batches: one shuffled pass over a data set, one batch in memory at a time."""
from __future__ import annotations

from numbers import Integral
from typing import Iterator, Optional, Tuple, Union

import numpy as np

__all__ = ["minibatches"]

Seed = Union[None, int, np.random.Generator, np.random.SeedSequence]


def _examples(f: str, name: str, a, axis) -> Tuple[int, int]:
    """``(normalised axis, number of examples)`` of ``a`` along ``axis``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{f}: {name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.ndim == 0:
        raise ValueError(f"{f}: {name} must have at least one dimension, got a 0-d array")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(
            f"{f}: axis={axis} is out of range for {name} with {a.ndim} dimension(s) "
            f"(shape {a.shape})")
    axis %= a.ndim
    return axis, a.shape[axis]


def minibatches(X: np.ndarray, Y: Optional[np.ndarray] = None, batch_size: int = 64, *,
                axis: int = 0, shuffle: bool = True,
                seed: Seed = None) -> Iterator:
    """Yield the mini-batches of one epoch: ``(X_t, Y_t)``, or ``X_t`` alone when ``Y`` is None.

    Examples are indexed along ``axis`` (the course stores them as columns: ``axis=1``).
    With ``shuffle=True`` one random permutation of the ``m`` examples, shared by X and Y,
    orders the epoch; every example appears exactly once, in ``ceil(m / batch_size)``
    batches of ``batch_size`` and a shorter last one when ``m % batch_size != 0``.
    ``shuffle=False`` keeps the data's order.

    Each batch is gathered on its own (``np.take`` of the batch's indices), so the extra
    memory is one batch (plus the ``m`` permutation indices), never a shuffled copy of
    the data set. The batches are new arrays.

    Parameters
    ----------
    X : ndarray
        Inputs, ``m`` examples along ``axis``.
    Y : ndarray, optional
        Targets with the same number of examples along ``axis``.
    batch_size : int, default 64
        ``>= 1``.
    axis : int, default 0
        The example axis of X and Y (negative counts from the end).
    shuffle : bool, default True
    seed : None, int, SeedSequence or numpy.random.Generator
        Passed to ``np.random.default_rng``: the same int gives the same order (pass the
        epoch number, or one Generator reused across epochs, for a new order each epoch).

    Examples
    --------
    >>> for epoch in range(1, num_epochs + 1):                    # doctest: +SKIP
    ...     for X_t, Y_t in minibatches(X, Y, 64, axis=1, seed=epoch):
    ...         ...
    """
    f = "minibatches"
    if isinstance(axis, bool) or not isinstance(axis, Integral):
        raise TypeError(f"{f}: axis must be an integer, got {type(axis).__name__} {axis!r}")
    axis_x, m = _examples(f, "X", X, axis)
    axis_y = None
    if Y is not None:
        axis_y, m_y = _examples(f, "Y", Y, axis)
        if m_y != m:
            raise ValueError(
                f"{f}: X and Y must have the same number of examples along axis {axis}, "
                f"got {m} (X shape {X.shape}) and {m_y} (Y shape {Y.shape})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral):
        raise TypeError(
            f"{f}: batch_size must be an integer, got {type(batch_size).__name__} "
            f"{batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{f}: batch_size must be >= 1, got {batch_size!r}")
    if type(shuffle) is not bool and not isinstance(shuffle, np.bool_):
        raise TypeError(f"{f}: shuffle must be a bool, got {type(shuffle).__name__} {shuffle!r}")
    order = np.random.default_rng(seed).permutation(m) if shuffle else np.arange(m)
    return _batches(X, Y, int(batch_size), axis_x, axis_y, order)


def _batches(X, Y, batch_size, axis_x, axis_y, order):
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        if Y is None:
            yield np.take(X, idx, axis=axis_x)
        else:
            yield np.take(X, idx, axis=axis_x), np.take(Y, idx, axis=axis_y)
