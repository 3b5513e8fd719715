r"""Gradient clipping, in place, over a list or dict of gradients.

Both functions check every gradient first (float32/float64, contiguous, writeable, not
sharing memory with another), then make one compiled call over the whole list
(:mod:`fastoptim._reductions`). A failed check or a non-finite norm changes nothing.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

import numpy as np

from . import _params
from . import _reductions
from . import _validation as _v

__all__ = ["clip_grad_norm", "clip_grad_value"]

Grads = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]

# as torch.nn.utils.clip_grad_norm_: the scale is max_norm / (norm + 1e-6)
_NORM_EPS = 1e-6


def _checked(f: str, grads: Grads) -> list:
    keys, arrays, _ = _params.flatten(f, "grads", grads)
    names = _params.labels("grads", keys)
    for name, g in zip(names, arrays):
        _v.check_arrays(f, (name,), (g,))
    _params.check_disjoint(f, names, arrays)
    return names, arrays


def clip_grad_norm(grads: Grads, max_norm: float, *, error_if_nonfinite: bool = True,
                   comm=None) -> float:
    r"""Scale all gradients in place so that their global L2 norm is at most ``max_norm``.

    .. math::

        \|g\| = \sqrt{\textstyle\sum_k \sum_i g_{k,i}^2}, \qquad
        g \leftarrow g \cdot \frac{\text{max\_norm}}{\|g\| + 10^{-6}}
        \quad\text{when this factor is} < 1

    (torch's ``clip_grad_norm_`` rule). The norm is computed in a fixed order, so it is the
    same on every run and thread count: each array's sum of squares is accumulated in double
    precision in memory order, then the per-array sums are added in list (or dict) order.

    Parameters
    ----------
    grads : list or dict of ndarray
        Updated in place.
    max_norm : float
        ``> 0``.
    error_if_nonfinite : bool, default True
        What to do when the norm is ``inf`` or ``nan`` (a gradient holds inf/nan, or float64
        values so large that their squares overflow): ``True`` raises ``ValueError`` naming
        the first such gradient; ``False`` returns the non-finite norm so that the caller
        can skip the step. Either way no gradient is changed (unlike torch, which would
        scale them to nan).
    comm : mpi4py communicator, optional
        Each rank holds a disjoint part of the gradients: clip them to the norm over every
        rank's (:func:`fastoptim.distributed.clip_grad_norm`, a collective).

    Returns
    -------
    float
        The global norm before clipping.
    """
    if comm is not None:
        from .distributed import clip_grad_norm as distributed
        return distributed(grads, max_norm, comm=comm, error_if_nonfinite=error_if_nonfinite)
    f = "clip_grad_norm"
    max_norm = _v.positive(f, "max_norm", max_norm)
    error_if_nonfinite = _v.flag(f, "error_if_nonfinite", error_if_nonfinite)
    names, arrays = _checked(f, grads)
    sums = _reductions.sums_of_squares(arrays)
    total = 0.0
    for s in sums:
        total += s
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            culprit = next((n for n, s in zip(names, sums) if not math.isfinite(s)), names[0])
            raise ValueError(
                f"{f}: the gradient norm is {norm} (non-finite), first in {culprit}; "
                f"nothing was scaled. Pass error_if_nonfinite=False to get the norm back "
                f"and skip the step yourself")
        return norm
    factor = max_norm / (norm + _NORM_EPS)
    if factor < 1.0:
        _reductions.scale(arrays, factor)
    return norm


def clip_grad_value(grads: Grads, clip_value: float) -> None:
    r"""Clip every gradient element to ``[-clip_value, clip_value]``, in place.

    .. math::

        g_i \leftarrow \min(\max(g_i, -c), c)

    NaN elements stay NaN (as ``np.clip`` and torch).

    Parameters
    ----------
    grads : list or dict of ndarray
        Updated in place.
    clip_value : float
        :math:`c > 0`.
    """
    f = "clip_grad_value"
    clip_value = _v.positive(f, "clip_value", clip_value)
    _, arrays = _checked(f, grads)
    _reductions.clip(arrays, clip_value)
