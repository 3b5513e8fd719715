"""The :class:`DistributedOptimizer` of :mod:`fastoptim.distributed` (see the package's
docstring for how a step communicates)."""
from __future__ import annotations

import math
import threading
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _params
from .. import _reductions
from .. import _registry
from .. import _validation as _v
from .. import checkpoint as _checkpoint
from .. import clip as _clip
from .._optimizer import Optimizer
from ._layout import _Flat, _describe_arrays, _flat, _view_like
from ._mpi import MPI, _MPI_TYPES, _agree, _code, _first_difference, _world

__all__ = ["DistributedOptimizer"]

Params = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]

DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024     # torch DDP's bucket_cap_mb


# update rules whose step of an element reads other elements of its array (norms, factored
# or matrix-wide statistics): never cut inside an array, whatever their class looks like
_SPANNING = {"lamb", "adafactor", "muon"}


def _elementwise(cls) -> bool:
    """Whether optimizer class ``cls`` updates each element from that element alone: it
    runs registry kernels (element-wise by construction) through the base class's step."""
    kernels = tuple(getattr(cls, "_kernels", ()))
    return (bool(kernels) and cls.__name__.lower() not in _SPANNING
            and not any(k in _SPANNING or k not in _registry.KERNELS for k in kernels)
            and cls._apply is Optimizer._apply and cls.step is Optimizer.step)


def _by_whole_arrays(opt: Optimizer) -> bool:
    """Whether ``opt`` can be sharded by whole arrays though its rule is not element-wise
    (LAMB's trust ratio, Muon's orthogonalization): every state buffer has its parameter's
    shape (Adafactor's factored moments do not), so a rank's state is its arrays' buffers."""
    return all(buf is None or buf.shape == p.shape
               for bufs in opt._state.values() for buf, p in zip(bufs, opt._params))


class _ShardedState(list):
    """The wrapped optimizer's state lists under ``shard_state=True``: reading them (its
    ``state_dict``, ``save_state``, a direct ``step``) raises, as the state lives in the
    ranks' shards."""

    def __iter__(self):
        raise RuntimeError(
            "this optimizer's state is sharded over the ranks by a DistributedOptimizer "
            "(shard_state=True); step, save and load it through the DistributedOptimizer "
            "(its state_dict(), save_state(), load_state())")


class DistributedOptimizer:
    r"""Data-parallel training over MPI: average the gradients over the ranks, then step.

    .. math::

        \bar g = \frac{1}{N} \sum_{r=0}^{N-1} g_r, \qquad
        \theta \leftarrow \text{step}(\theta, \bar g)
        \quad\text{(the same on every rank)}

    Parameters
    ----------
    optimizer : fastoptim optimizer
        Any fastoptim optimizer class (param groups, schedules, ``skip_nonfinite``); the
        same parameters (keys, shapes, dtypes, order), groups and options on every rank,
        checked here by one collective fingerprint (a mismatch raises the same
        ``ValueError`` on every rank). Start every rank from the same parameters
        (:func:`broadcast_parameters`). Change hyperparameters through
        ``optimizer.param_groups`` / ``optimizer.lr`` (or this object's) between steps,
        the same on every rank. With ``shard_state=True`` the optimizer's own state
        buffers are released (reading them, by its ``state_dict``, ``save_state`` or
        ``step``, raises): step, save and load it through this object from then on.
    comm : mpi4py communicator, default ``MPI.COMM_WORLD``
    shard_state : bool, default False
        ZeRO stage 1: each rank keeps and updates only its contiguous ``1/N`` shard of the
        flattened parameters' state (reduce-scatter of the gradient, all-gather of the
        parameters). An element-wise rule (every registry kernel) is cut anywhere; a rule
        that needs whole arrays (LAMB's trust ratio, Muon's orthogonalization) is cut at
        array boundaries only (as torch's ``ZeroRedundancyOptimizer`` does), so a rank holds
        whole arrays, their state and their per-array statistics; Adafactor, whose factored
        state is not of its parameters' shapes, raises ``NotImplementedError``.
    bucket_bytes : int, default 25 MiB
        The largest message of one collective (the flat buffers are reduced in buckets).

    Notes
    -----
    Memory per rank: the parameters, one flat gradient buffer of their size (the packed
    gradients; sharded, also the buffer the parameters are all-gathered into) and the
    state: all of it, or (sharded) ``1/N`` of it plus this rank's averaged gradient shard.

    With 2 ranks the averaged gradient is ``(g_0 + g_1) / 2``, bit for bit, so training
    equals single-process training on the mean gradient exactly; with more ranks the order
    of MPI's additions may differ from ``((g_0 + g_1) + g_2) / 3`` by rounding.
    """

    def __init__(self, optimizer, comm=None, shard_state: bool = False,
                 bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> None:
        f = "DistributedOptimizer"
        self._comm = comm = _world(f, comm)
        self._control = np.zeros(3, np.int64)
        self._lock = threading.Lock()       # steps from several threads: one at a time
        error, code, desc = None, 0, []
        try:
            shard_state = _v.flag(f, "shard_state", shard_state)
            if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, (int, np.integer)) \
                    or bucket_bytes < 8:
                raise ValueError(f"{f}: bucket_bytes must be an integer >= 8, got "
                                 f"{bucket_bytes!r}")
            keys, params, names, is_dict = self._structure(f, optimizer, shard_state)
            desc = self._describe(optimizer, shard_state, int(bucket_bytes), names, params)
            code = _code("\n".join(desc))
        except (TypeError, ValueError, NotImplementedError) as exc:
            error = exc
        if not _agree(comm, f, error, code):
            raise ValueError(_first_difference(
                comm, f, desc, "the wrapped optimizers (parameters, groups or options)")
                + "; every rank must wrap the same parameters (keys, shapes, dtypes, order) "
                  "with the same optimizer and options")
        self.optimizer = optimizer
        self._shard = shard_state
        self._bucket_bytes = int(bucket_bytes)
        self._keys, self._params, self._names, self._is_dict = keys, params, names, is_dict
        self._check_names = list(zip(names, _params.labels("grads", keys)))
        self._size, self._rank = comm.size, comm.rank
        self.last_grad_norm: Optional[float] = None
        by_dtype: Dict[np.dtype, List[int]] = {}
        for i, p in enumerate(params):
            by_dtype.setdefault(p.dtype, []).append(i)
        # a rule that is not element-wise (LAMB, Muon) is sharded by whole arrays
        self._whole = shard_state and not _elementwise(type(optimizer))
        self._flats = [_Flat(dtype, index, params, comm.size, comm.rank,
                             max(1, self._bucket_bytes // dtype.itemsize), shard_state,
                             self._whole)
                       for dtype, index in by_dtype.items()]
        self._grad_views: List[Optional[np.ndarray]] = [None] * len(params)
        for flat in self._flats:
            for i, view in zip(flat.index, flat.views):
                self._grad_views[i] = view
        self._grad_struct = self._structured(self._grad_views)
        if shard_state:
            self._build_shards()

    # ---- construction ---------------------------------------------------------------------
    @staticmethod
    def _structure(f: str, opt, shard: bool):
        """(keys, plain arrays, names, is_dict) of the wrapped optimizer's parameters."""
        if isinstance(opt, DistributedOptimizer):
            raise TypeError(f"{f}: optimizer is already a DistributedOptimizer")
        if isinstance(opt, Optimizer):
            if shard and not _elementwise(type(opt)) and not _by_whole_arrays(opt):
                raise NotImplementedError(
                    f"{f}: shard_state=True needs an element-wise update rule or state "
                    f"buffers of the parameters' shapes; {type(opt).__name__}'s state is "
                    f"neither (its factored moments are not sharded); use "
                    f"shard_state=False")
            return list(opt._keys), list(opt._params), list(opt._param_names), opt._is_dict
        if not (hasattr(opt, "step") and hasattr(opt, "params")):
            raise TypeError(f"{f}: optimizer must be a fastoptim optimizer (SGD, Adam, ...), "
                            f"got {type(opt).__name__}")
        if shard:
            raise NotImplementedError(
                f"{f}: shard_state=True is not supported for {type(opt).__name__} (not a "
                f"fastoptim Optimizer subclass: its state cannot be split); use "
                f"shard_state=False")
        keys, arrays, is_dict = _params.flatten(f, "optimizer.params", opt.params)
        names = _params.labels("params", keys)
        plain = []
        for name, a in zip(names, arrays):
            checked = _v.check_arrays(f, (name,), (a,))
            plain.append(a if checked is None else checked[0])
        return keys, plain, names, is_dict

    @staticmethod
    def _describe(opt, shard: bool, bucket_bytes: int, names, params) -> List[str]:
        """What must be the same on every rank, one item per line."""
        desc = [f"optimizer {type(opt).__name__}", f"shard_state={shard}",
                f"bucket_bytes={bucket_bytes}", f"{len(params)} arrays"]
        desc += _describe_arrays(names, params)
        for g, group in enumerate(getattr(opt, "_groups", ())):
            lr = "a schedule" if callable(group.lr) else repr(group.lr)
            hyper = ", ".join(f"{k}={v!r}" for k, v in sorted(group.hyper.items()))
            desc.append(f"group {g}: arrays {group.start}..{group.stop - 1}, lr={lr}, {hyper}")
        if isinstance(opt, Optimizer):
            desc.append(f"skip_nonfinite={opt.skip_nonfinite}, step count {opt.t}")
        return desc

    def _structured(self, arrays: list):
        """``arrays`` in the structure of the parameters (a dict keyed like them, or a list)."""
        return dict(zip(self._keys, arrays)) if self._is_dict else list(arrays)

    def _build_shards(self) -> None:
        """The inner optimizer of this rank's shard: the same class and groups over the
        pieces of the parameters in the shard (1-D views of the user's arrays, empty where
        the shard does not reach an array), its state in one contiguous buffer per state
        name and dtype, and the wrapped optimizer's state and counts copied into it."""
        outer = self.optimizer
        n = len(self._params)
        pieces: List[Optional[np.ndarray]] = [None] * n
        grad_pieces: List[Optional[np.ndarray]] = [None] * n
        send_pieces = []                # (the parameter's piece, its place in the flat buffer)
        recv_pieces = []                # (the rest of a parameter, its place in the buffer)
        self._ranges: List[Tuple[int, int]] = [(0, 0)] * n
        for flat in self._flats:
            shard_off = 0
            for j, i in enumerate(flat.index):
                a, b = flat.piece(j)
                self._ranges[i] = (a, b)
                pieces[i] = self._piece(self._params[i], a, b)
                grad_pieces[i] = _view_like(flat.shard, shard_off, pieces[i])
                off = flat.offsets[j]
                send_pieces.append((_flat(pieces[i]), flat.buffer[off + a:off + b]))
                whole, size = _flat(self._params[i]), self._params[i].size
                for lo, hi in ((0, a), (b, size)) if b > a else ((0, size),):
                    if hi > lo:
                        recv_pieces.append((whole[lo:hi], flat.buffer[off + lo:off + hi]))
                shard_off += b - a
        self._pieces, self._send_pieces, self._recv_pieces = pieces, send_pieces, recv_pieces
        self._grad_pieces = grad_pieces
        self._shard_struct = self._structured(grad_pieces)
        groups = []
        for g in outer._groups:
            mine = pieces[g.start:g.stop]
            groups.append(dict(g.hyper, lr=g.lr, params=dict(zip(self._keys[g.start:g.stop],
                                                                 mine))
                               if self._is_dict else mine))
        inner = type(outer)(groups, lr=outer._default_lr, backend=outer.backend,
                            skip_nonfinite=False)
        # the state: contiguous per (name, dtype), filled from the wrapped optimizer
        self._state_flats: Dict[Tuple[str, np.dtype], tuple] = {}
        for name, bufs in outer._state.items():
            for flat in self._flats:
                have = [i for i in flat.index if bufs[i] is not None]
                if not have:
                    continue
                sizes = [self._ranges[i][1] - self._ranges[i][0] for i in have]
                local = np.zeros(sum(sizes), flat.dtype)
                off = 0
                for i, size in zip(have, sizes):
                    view = _view_like(local, off, pieces[i])
                    a, b = self._ranges[i]
                    np.copyto(_flat(view), _flat(bufs[i])[a:b])
                    inner._state[name][i] = view
                    off += size
                # every rank's count, for Gatherv/Scatterv of this state in checkpoints:
                # the overlaps of its shard with these arrays
                where = {i: j for j, i in enumerate(flat.index)}
                starts = np.array([flat.offsets[where[i]] for i in have], np.int64)
                stops = starts + np.array([self._params[i].size for i in have], np.int64)
                counts = [int(np.clip(np.minimum(stops, hi) - np.maximum(starts, lo), 0,
                                      None).sum()) for lo, hi in flat.bounds]
                self._state_flats[(name, flat.dtype)] = (local, have, counts)
        self._inner = inner
        self._copy_counts(outer, inner)
        self._state_slots = {name: [b is not None for b in bufs]
                             for name, bufs in outer._state.items()}
        self._release_outer_state()

    def _piece(self, param: np.ndarray, a: int, b: int) -> np.ndarray:
        """This rank's piece ``[a, b)`` of ``param`` (flat order): a 1-D view; sharded by
        whole arrays, ``param`` itself or an empty array of its number of dimensions."""
        if not self._whole:
            return _flat(param)[a:b]
        if b - a == param.size:
            return param
        return param[:0] if param.ndim else _flat(param)[:0]

    def _release_outer_state(self) -> None:
        """Replace the wrapped optimizer's full state buffers by read-only placeholders of
        the same shape and dtype that hold no memory, in lists that refuse to be read (its
        own ``state_dict`` or ``save_state`` would otherwise save zeros)."""
        outer = self.optimizer
        for name, slots in self._state_slots.items():
            shapes = [(p.shape, p.dtype) if has else None
                      for p, has in zip(self._params, slots)]
            outer._state[name] = _ShardedState(
                None if sh is None else np.broadcast_to(np.zeros((), sh[1]), sh[0])
                for sh in shapes)

    @staticmethod
    def _copy_counts(src: Optimizer, dst: Optimizer) -> None:
        """Step counts, skipped steps, last lr and carried scalars of ``src`` into ``dst``."""
        dst._n.t, dst._n.step_all = src._n.t, src._n.step_all
        dst._n.last_lr, dst._n.skipped = src._n.last_lr, src._n.skipped
        dst._steps = None if src._steps is None else list(src._steps)
        for name, values in src._scalars.items():
            dst._scalars[name][:] = values

    # ---- public ----------------------------------------------------------------------------
    @property
    def comm(self):
        """The communicator."""
        return self._comm

    @property
    def shard_state(self) -> bool:
        return self._shard

    @property
    def params(self):
        """The wrapped optimizer's parameters (the same on every rank)."""
        return self.optimizer.params

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    @property
    def lr(self):
        return self.optimizer.lr

    @lr.setter
    def lr(self, value) -> None:
        self.optimizer.lr = value

    @property
    def t(self) -> int:
        return self.optimizer.t

    @property
    def last_lr(self):
        return self.optimizer.last_lr

    @property
    def skipped_steps(self) -> int:
        return self.optimizer.skipped_steps

    @property
    def grad_buffers(self):
        """Views of the flat gradient buffer, in the structure and shapes of the parameters.

        Write this rank's gradients into them (``np.matmul(dZ, A.T, out=bufs["W1"])``) and
        pass this very structure to :meth:`step`: the gradients are then not copied. Their
        contents after a step are unspecified (the buffer is reused)."""
        return self._structured(self._grad_views)

    def state_bytes(self) -> int:
        """Bytes of optimizer state this rank holds (``≈ 1/N`` of the whole with
        ``shard_state=True``)."""
        if self._shard:
            return sum(local.nbytes for local, _, _ in self._state_flats.values())
        return sum(b.nbytes for bufs in getattr(self.optimizer, "_state", {}).values()
                   for b in bufs if b is not None)

    def __repr__(self) -> str:
        return (f"DistributedOptimizer({self.optimizer!r}, ranks={self._size}, "
                f"shard_state={self._shard}, bucket_bytes={self._bucket_bytes})")

    def step(self, grads: Params, *, max_norm: Optional[float] = None) -> None:
        r"""Average ``grads`` (this rank's, the structure of the parameters) over the ranks,
        then update the parameters in place, the same on every rank.

        Every rank must call it (a collective). Gradients are checked as by the wrapped
        optimizer's ``step``; an error on any rank raises the same error on every rank,
        before anything is communicated or changed. A ``None`` gradient skips its array and
        must be ``None`` on every rank.

        Parameters
        ----------
        grads : list or dict of ndarray
            This rank's gradients; read, never written.
        max_norm : float, optional
            Clip the **averaged** gradient to this global L2 norm first (the rule of
            :func:`fastoptim.clip_grad_norm`); the norm is kept in
            :attr:`last_grad_norm`. A non-finite norm skips the step under the optimizer's
            ``skip_nonfinite``, and otherwise raises ``ValueError`` (on every rank).
        """
        with self._lock:
            self._step(grads, max_norm)

    def _step(self, grads, max_norm) -> None:
        f = "DistributedOptimizer.step"
        error, code, present = None, 0, None
        try:
            if max_norm is not None:
                max_norm = _v.positive(f, "max_norm", max_norm)
            present = self._checked(f, grads)
            if present is not self._grad_views:
                code = 1 + _code(repr([i for i, g in enumerate(present) if g is None]))
        except (TypeError, ValueError) as exc:
            error = exc
        if not _agree(self._comm, f, error, code, self._control):
            nones = [self._keys[i] for i, g in enumerate(present) if g is None]
            mine = [f"None gradients at {nones}"]
            raise ValueError(_first_difference(self._comm, f, mine, "the None gradients"))
        if self._shard:
            self._step_sharded(f, present, max_norm)
        else:
            self._step_replicated(f, present, max_norm)

    def _checked(self, f: str, grads) -> list:
        """Check ``grads`` and pack them into the flat buffers; the list of this step's
        gradient views (``None`` where the gradient is ``None``)."""
        opt = self.optimizer
        if isinstance(opt, Optimizer):
            opt._check_bindings(f)
            if len(opt._params) != len(self._params):
                raise ValueError(f"{f}: the wrapped optimizer has {len(opt._params)} arrays, "
                                 f"it had {len(self._params)} when wrapped (add_param_group "
                                 f"after wrapping); wrap it again")
        grads = _params.match(f, "grads", grads, self._keys, self._is_dict, "params")
        check = _v.check_arrays
        missing = False
        for i, (names, param, grad) in enumerate(zip(self._check_names, self._params, grads)):
            if grad is None:
                missing = True
            elif check(f, names, (param, grad)) is not None:
                grads[i] = grad.view(np.ndarray)
        views = self._grad_views
        for view, grad in zip(views, grads):
            if grad is not None and grad is not view:     # (grad_buffers: already there)
                np.copyto(view, grad)
        if missing:
            return [None if g is None else v for v, g in zip(views, grads)]
        return views

    def _step_replicated(self, f: str, present: list, max_norm) -> None:
        comm, size = self._comm, self._size
        for flat in self._flats:
            if size > 1:
                for spec in flat.allreduce:
                    comm.Allreduce(MPI.IN_PLACE, spec, op=MPI.SUM)
                np.divide(flat.buffer, size, out=flat.buffer)
        struct = self._grad_struct if present is self._grad_views else \
            self._structured(present)
        if max_norm is not None:
            arrays = [g for g in present if g is not None]
            skip = getattr(self.optimizer, "skip_nonfinite", False)
            self.last_grad_norm = _clip.clip_grad_norm(arrays, max_norm,
                                                       error_if_nonfinite=not skip)
        self.optimizer.step(struct)

    def _step_sharded(self, f: str, present: list, max_norm) -> None:
        comm, size, outer, inner = self._comm, self._size, self.optimizer, self._inner
        for flat in self._flats:
            for send, recv, counts in flat.reduce_scatter:
                comm.Reduce_scatter(send, recv, counts, op=MPI.SUM)
            if size > 1:
                np.divide(flat.shard, size, out=flat.shard)
        if present is self._grad_views:
            pieces, struct = self._grad_pieces, self._shard_struct
        else:
            pieces = [None if g is None else p for p, g in zip(self._grad_pieces, present)]
            struct = self._structured(pieces)
        skip = outer.skip_nonfinite
        if skip or max_norm is not None:
            if self._global_decisions(f, pieces, skip, max_norm):
                inner._n.skipped += 1
                self._copy_counts(inner, outer)
                return
        for og, ig in zip(outer._groups, inner._groups):     # hyperparameters set since
            if ig.lr is not og.lr:
                ig.lr = og.lr
            if ig.hyper is not og.hyper:
                ig.set_hyper(og.hyper, og.plan)
        try:
            inner.step(struct)
        finally:
            self._copy_counts(inner, outer)
        if size == 1:
            return
        for piece, place in self._send_pieces:      # this rank's updated shard
            np.copyto(place, piece)
        for flat in self._flats:
            for spec in flat.allgather:
                comm.Allgatherv(MPI.IN_PLACE, spec)
        for piece, place in self._recv_pieces:      # the other ranks' shards
            np.copyto(piece, place)

    def _global_decisions(self, f: str, pieces: list, skip: bool, max_norm) -> bool:
        """Sharded: whether the step is skipped (a non-finite averaged gradient on any
        rank), after clipping the shard to the global norm. One ``Allgather`` of each rank's
        per-array sums of squares and its non-finite flag."""
        n = len(pieces)
        if not hasattr(self, "_sums"):
            self._sums = np.zeros(n + 1, np.float64)
            self._all_sums = np.zeros((self._size, n + 1), np.float64)
        local, everyone = self._sums, self._all_sums
        local[:] = 0.0
        arrays = [_flat(p) for p in pieces if p is not None and p.size]
        if max_norm is not None and arrays:
            sums = _reductions.sums_of_squares(arrays)
            k = 0
            for i, p in enumerate(pieces):
                if p is not None and p.size:
                    local[i] = sums[k]
                    k += 1
        local[n] = 0.0 if not arrays or _reductions.all_finite(arrays) else 1.0
        self._comm.Allgather([local, MPI.DOUBLE], [everyone, MPI.DOUBLE])
        nonfinite = bool(everyone[:, n].any())
        if max_norm is not None:
            total = 0.0
            for i in range(n):
                column = 0.0
                for r in range(self._size):
                    column += float(everyone[r, i])
                total += column
            norm = math.sqrt(total)
            self.last_grad_norm = norm
            if not math.isfinite(norm):
                if skip:
                    return True
                raise ValueError(
                    f"{f}: the norm of the averaged gradient is {norm} (non-finite); "
                    f"nothing was changed (set skip_nonfinite=True to skip such steps)")
            factor = max_norm / (norm + _clip._NORM_EPS)
            if factor < 1.0 and arrays:
                _reductions.scale(arrays, factor)
        return skip and nonfinite

    # ---- checkpoints -----------------------------------------------------------------------
    def _gather_state(self, root: int) -> Optional[Dict[str, list]]:
        """Collective (sharded): every state buffer, whole, on ``root`` (name -> list with
        ``None`` where an array has no such buffer); ``None`` on the other ranks."""
        comm, mine = self._comm, self._rank == root
        out = {name: [None] * len(self._params) for name in self._state_slots} if mine else None
        for (name, dtype), (local, have, counts) in self._state_flats.items():
            full = np.empty(sum(counts), dtype) if mine else None
            displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
            comm.Gatherv([local, _MPI_TYPES[dtype]],
                         [full, (counts, displs), _MPI_TYPES[dtype]] if mine else None,
                         root=root)
            if mine:
                off = 0
                for i in have:
                    p = self._params[i]
                    out[name][i] = _view_like(full, off, p)
                    off += p.size
        return out

    def _scatter_state(self, full: Optional[Dict[str, list]], root: int) -> None:
        """Collective (sharded): each rank's shard of ``root``'s whole state buffers."""
        comm, mine = self._comm, self._rank == root
        for (name, dtype), (local, have, counts) in self._state_flats.items():
            send = None
            if mine:
                send = np.empty(sum(counts), dtype)
                off = 0
                for i in have:
                    size = self._params[i].size
                    np.copyto(send[off:off + size], _flat(full[name][i]))
                    off += size
                displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
                send = [send, (counts, displs), _MPI_TYPES[dtype]]
            comm.Scatterv(send, [local, _MPI_TYPES[dtype]], root=root)

    def _with_full_state(self, full: Dict[str, list], action):
        """Run ``action()`` with the wrapped optimizer holding ``full`` state buffers, then
        release them again."""
        outer = self.optimizer
        for name, bufs in full.items():
            outer._state[name] = list(bufs)
        try:
            return action()
        finally:
            self._release_outer_state()

    def state_dict(self, root: int = 0) -> Optional[dict]:
        """Collective: the consolidated state dict (what a single-process optimizer's
        ``state_dict()`` holds: whole parameters and state buffers) on rank ``root``;
        ``None`` on the other ranks."""
        if not self._shard:
            return self.optimizer.state_dict() if self._rank == root else None
        full = self._gather_state(root)
        if self._rank != root:
            return None
        return self._with_full_state(full, self.optimizer.state_dict)

    def save_state(self, path, root: int = 0) -> None:
        """Collective: write one consolidated checkpoint (rank ``root`` writes it, with
        :func:`fastoptim.save_state`), loadable by a single-process optimizer of the same
        class and parameters, or by a :class:`DistributedOptimizer` on any number of
        ranks, sharded or not. Returns on every rank once the file is complete; an error
        (a missing folder, a full disk) raises the same exception on every rank."""
        f = "DistributedOptimizer.save_state"
        full = self._gather_state(root) if self._shard else None
        error = None
        if self._rank == root:
            try:
                if self._shard:
                    self._with_full_state(
                        full, lambda: _checkpoint.save_state(self.optimizer, path))
                else:
                    _checkpoint.save_state(self.optimizer, path)
            except Exception as exc:        # every rank must learn of it (no hang)
                error = exc
        _agree(self._comm, f, error)

    def load_state(self, path, root: int = 0) -> None:
        """Collective: restore a checkpoint of :func:`fastoptim.save_state` or
        :meth:`save_state` (single-process or consolidated, the same format): rank
        ``root`` reads and checks it (every check of :func:`fastoptim.load_state`), then
        every rank receives the parameters and its part of the state. Training resumes bit
        for bit. An unusable file raises the same error on every rank and changes nothing."""
        self._load("DistributedOptimizer.load_state", root,
                   lambda opt: _checkpoint.load_state(opt, path))

    def load_state_dict(self, state_dict: Optional[Mapping], root: int = 0) -> None:
        """Collective: restore a (single-process or consolidated) state dict given on rank
        ``root`` (other ranks may pass ``None``), checked there as by the wrapped
        optimizer's ``load_state_dict``; an unusable one raises the same error on every
        rank and changes nothing."""
        self._load("DistributedOptimizer.load_state_dict", root,
                   lambda opt: opt.load_state_dict(state_dict))

    def _load(self, f: str, root: int, loader) -> None:
        comm, mine, outer = self._comm, self._rank == root, self.optimizer
        error = None
        if mine:
            try:
                if self._shard:
                    full = {name: [np.zeros_like(p) if has else None
                                   for p, has in zip(self._params, slots)]
                            for name, slots in self._state_slots.items()}
                    self._with_full_state(full, lambda: loader(outer))
                else:
                    loader(outer)
            except Exception as exc:
                error = exc
        _agree(comm, f, error)
        if not self._shard:
            self._broadcast_optimizer(root)
            return
        # the counts and hyperparameters, then the parameters, then each rank's state shard
        meta = self._meta(outer) if mine else None
        meta = comm.bcast(meta, root=root)
        if not mine:
            self._apply_meta(outer, meta)
        self._apply_meta(self._inner, meta)
        for flat in self._flats:
            if mine:
                for i, view in zip(flat.index, flat.views):
                    np.copyto(view, self._params[i])
            for spec in flat.allreduce:
                comm.Bcast(spec, root=root)
            for i, view in zip(flat.index, flat.views):
                np.copyto(self._params[i], view)
        self._scatter_state(full if mine else None, root)

    @staticmethod
    def _meta(opt: Optimizer) -> dict:
        return dict(t=opt._n.t, step_all=opt._n.step_all, skipped=opt._n.skipped,
                    steps=None if opt._steps is None else list(opt._steps),
                    scalars={k: list(v) for k, v in opt._scalars.items()},
                    hypers=[g.hyper for g in opt._groups],
                    lrs=[None if callable(g.lr) else g.lr for g in opt._groups])

    @staticmethod
    def _apply_meta(opt: Optimizer, meta: dict) -> None:
        opt._n.t, opt._n.step_all, opt._n.skipped = meta["t"], meta["step_all"], meta["skipped"]
        opt._steps = None if meta["steps"] is None else list(meta["steps"])
        for name, values in meta["scalars"].items():
            opt._scalars[name][:] = values
        for group, hyper, lr in zip(opt._groups, meta["hypers"], meta["lrs"]):
            group.set_hyper(dict(hyper), opt._plan(hyper))
            if lr is not None:
                group.lr = lr

    def _broadcast_optimizer(self, root: int) -> None:
        """Replicated: every rank's optimizer made equal to ``root``'s (its state dict's
        scalars by pickle, its arrays by ``Bcast``)."""
        comm, mine = self._comm, self._rank == root
        sd = self.optimizer.state_dict() if mine else None
        arrays: List[np.ndarray] = []

        def strip(obj):
            if isinstance(obj, np.ndarray) and obj.dtype in _MPI_TYPES:
                arrays.append(obj)
                return ("__array__", obj.shape, obj.dtype.str,
                        "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C")
            if isinstance(obj, dict):
                return {k: strip(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [strip(v) for v in obj]
            return obj

        def fill(obj):
            if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == "__array__":
                a = np.empty(obj[1], np.dtype(obj[2]), order=obj[3])
                arrays.append(a)
                return a
            if isinstance(obj, dict):
                return {k: fill(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [fill(v) for v in obj]
            return obj

        skeleton = comm.bcast(strip(sd) if mine else None, root=root)
        if not mine:
            sd = fill(skeleton)
        for a in arrays:
            if a.size:
                comm.Bcast([_flat(a), _MPI_TYPES[a.dtype]], root=root)
        error = None
        if not mine:
            try:
                self.optimizer.load_state_dict(sd)
            except Exception as exc:
                error = exc
        _agree(comm, "DistributedOptimizer.load_state", error)
