"""The exponentially weighted average ``ewa_update`` (the kernel of
:class:`fastoptim.ExponentialMovingAverage`)."""
from __future__ import annotations

import numpy as np

from .. import _dispatch

__all__ = ["ewa_update"]

_EWA = _dispatch.call("ewa")


def ewa_update(average: np.ndarray, value: np.ndarray, *, beta: float,
               backend: str = "auto") -> None:
    r"""Exponentially weighted average, in place.

    .. math::

        v \leftarrow \beta\, v + (1 - \beta)\, \theta

    Started at :math:`v_0 = 0`, the bias-corrected average after :math:`t` updates is
    :math:`v_t / (1 - \beta^t)` (see :class:`fastoptim.ExponentialMovingAverage`).

    Parameters
    ----------
    average : ndarray
        :math:`v`, updated in place.
    value : ndarray
        The new observation :math:`\theta` (may be read-only).
    beta : float
        In ``[0, 1)``.
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _EWA((average, value), (), (beta,), backend)
