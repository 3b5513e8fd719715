"""The functions of :mod:`fastoptim.distributed`: :func:`broadcast_parameters` and the
distributed :func:`clip_grad_norm`."""
from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

import numpy as np

from .. import _params
from .. import _reductions
from .. import _validation as _v
from .. import clip as _clip
from ._layout import _describe_arrays, _flat
from ._mpi import _MPI_TYPES, _agree, _code, _first_difference, _world

__all__ = ["broadcast_parameters", "clip_grad_norm"]

Params = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]


def broadcast_parameters(params: Params, root: int = 0, *, comm=None) -> None:
    """Copy rank ``root``'s arrays into every rank's, in place (``Bcast`` per array).

    Call it once after initialising the model, so that every rank starts from the same
    parameters (a :class:`DistributedOptimizer` keeps them equal from then on).

    Parameters
    ----------
    params : list or dict of ndarray
        Contiguous, writeable arrays; the same keys, shapes and dtypes on every rank
        (checked by one collective fingerprint: a mismatch raises the same ``ValueError``
        on every rank).
    root : int, default 0
    comm : mpi4py communicator, default ``MPI.COMM_WORLD``
    """
    f = "broadcast_parameters"
    comm = _world(f, comm)
    error, code, names, arrays = None, 0, [], []
    try:
        if not isinstance(root, (int, np.integer)) or isinstance(root, bool) \
                or not 0 <= root < comm.size:
            raise ValueError(f"{f}: root must be a rank in [0, {comm.size}), got {root!r}")
        keys, arrays, _ = _params.flatten(f, "params", params)
        names = _params.labels("params", keys)
        for i, (name, a) in enumerate(zip(names, arrays)):
            checked = _v.check_arrays(f, (name,), (a,))
            if checked is not None:
                arrays[i] = checked[0]
        _params.check_disjoint(f, names, arrays)
        desc = [f"root {root}"] + _describe_arrays(names, arrays)
        code = _code("\n".join(desc))
    except (TypeError, ValueError) as exc:
        error = exc
    if not _agree(comm, f, error, code):
        raise ValueError(_first_difference(comm, f, desc, "the parameters (or root)"))
    for a in arrays:
        if a.size:
            comm.Bcast([_flat(a), _MPI_TYPES[a.dtype]], root=root)


def clip_grad_norm(grads, max_norm: float, *, comm=None,
                   error_if_nonfinite: bool = True) -> float:
    r"""Scale the gradients in place so that the global L2 norm over **every rank's**
    gradients is at most ``max_norm``; return the global norm before clipping.

    Each rank holds a disjoint part of the gradient (its shard: a ZeRO or model-parallel
    split). With ``comm=None`` (or one rank) this is :func:`fastoptim.clip_grad_norm`.

    .. math::

        \|g\| = \sqrt{\textstyle\sum_{r} \sum_k \sum_i g_{r,k,i}^2}, \qquad
        g \leftarrow g \cdot \frac{\text{max\_norm}}{\|g\| + 10^{-6}}
        \quad\text{when this factor is} < 1

    Every rank's sum of squares (double precision, fixed order) is gathered and added in
    rank order, so every rank computes the same norm, bit for bit, and takes the same
    decision. A non-finite norm raises the same ``ValueError`` on every rank (or, with
    ``error_if_nonfinite=False``, is returned with nothing scaled).

    Parameters
    ----------
    grads : list or dict of ndarray
        This rank's gradients, updated in place (may be empty on a rank holding none).
    max_norm : float
        ``> 0``.
    comm : mpi4py communicator, optional
    error_if_nonfinite : bool, default True
    """
    f = "clip_grad_norm"
    if comm is None:
        return _clip.clip_grad_norm(grads, max_norm, error_if_nonfinite=error_if_nonfinite)
    comm = _world(f, comm)
    error, arrays, local, culprit = None, [], 0.0, None
    try:
        max_norm = _v.positive(f, "max_norm", max_norm)
        error_if_nonfinite = _v.flag(f, "error_if_nonfinite", error_if_nonfinite)
        keys, arrays, _ = _params.flatten(f, "grads", grads)
        names = _params.labels("grads", keys)
        for i, (name, g) in enumerate(zip(names, arrays)):
            checked = _v.check_arrays(f, (name,), (g,))
            if checked is not None:
                arrays[i] = checked[0]
        _params.check_disjoint(f, names, arrays)
        sums = _reductions.sums_of_squares(list(arrays)) if arrays else []
        for name, s in zip(names, sums):
            local += s
            if culprit is None and not math.isfinite(s):
                culprit = name
    except (TypeError, ValueError) as exc:
        error = exc
    _agree(comm, f, error)
    totals = comm.allgather((local, culprit))
    total = 0.0
    for s, _ in totals:
        total += s
    norm = math.sqrt(total)
    if not math.isfinite(norm):
        if error_if_nonfinite:
            rank, name = next(((r, c) for r, (_, c) in enumerate(totals) if c is not None),
                              (0, "?"))
            raise ValueError(
                f"{f}: the global gradient norm is {norm} (non-finite), first in {name} on "
                f"rank {rank}; nothing was scaled. Pass error_if_nonfinite=False to get the "
                f"norm back and skip the step yourself")
        return norm
    factor = max_norm / (norm + _clip._NORM_EPS)
    if factor < 1.0 and arrays:
        _reductions.scale(list(arrays), factor)
    return norm
