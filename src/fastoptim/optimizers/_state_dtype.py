"""``state_dtype=``: the optimizer classes that can keep their moments in fewer bytes.

A class that mixes in :class:`StateDtype` (before :class:`~fastoptim._optimizer.Optimizer`)
accepts ``state_dtype``:

* ``None`` (default), ``"float32"`` or ``"float64"``: the moments in the parameters' dtype,
  as before (a named float dtype must be every parameter's);
* one of the class's ``_compressed`` kinds: ``"bfloat16"`` (moments stored as
  ``ml_dtypes.bfloat16``, computed in float32) or ``"int8"`` (bitsandbytes' blockwise 8-bit
  code, one float32 absmax per block of 256, the signed code or, for a buffer the formula
  keeps ``>= 0`` (the registry's ``State.nonnegative``), the unsigned one; arrays under
  4,096 elements keep float32 state) -- float32 parameters only.

The kinds in a class's ``_fused`` step through :mod:`fastoptim.lowmem`'s fused kernels, one
compiled call per encoding for a group's arrays (Adam's, Lion's and SGD's bfloat16 and int8,
RMSprop's bfloat16); the others (the *generic* state) step through the class's own float32
kernel, chunk by chunk (:meth:`StateDtype._apply_bucket_chunked`). The rest (groups,
``None`` gradients, ``skip_nonfinite``, schedules, every check before anything is written,
``state_dict`` with the codes and scales as NumPy arrays, checkpoints) is the base class's.
The state names are the float ones (``exp_avg``, ``exp_avg_sq``, ``momentum_buffer``)
holding the values or codes, plus ``<name>_absmax`` (the per-block scales) for ``"int8"``;
an array that keeps float32 state under ``"int8"`` has empty scales. The int8 codes are
1-D, in the parameter's memory order.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import _cython_parallel
from .. import kernels as _cython

FLOAT_KINDS = ("float32", "float64")
# elements per kernel call of the generic bfloat16 state: float32 scratch buffers of
# 256 KiB (at most three: RMSprop centered with momentum) stay in the L2 cache; measured
# best of 16384, 65536 and 262144 (bench/state_dtype.py: SGD 29.1, 24.0, 27.8 ms at 3e7)
CHUNK = 65536
_BLOCK = 256                # fastoptim.lowmem.BLOCK (CHUNK is a multiple of it)
_SCALE = "_absmax"          # the int8 state's per-block scales of a buffer: <name>_absmax


def _backend_name(impl) -> str:
    """The lowmem ``backend=`` of a backend module of :func:`fastoptim._backends.select`."""
    if impl is None:
        return "numpy"
    if impl is _cython or impl is _cython_parallel:
        return "cython"
    return "numba"


class StateDtype:
    """The ``state_dtype`` option (module docstring). A subclass sets ``_compressed`` (the
    compressed kinds it has); for those of them in ``_fused``, ``_moments`` (every float
    state name it may have) with :meth:`_lowmem_state` (all of them) and
    :meth:`_lowmem_steps` (a fused kernel of fastoptim.lowmem on a group's arrays, given the
    enabled buffers). The
    other kinds are generic, for any registry kernel: every state buffer stored compressed,
    stepped chunk by chunk by the class's own float32 kernel on a float32 copy of the
    chunk's state (in cache), which is stored back (bfloat16: rounded to nearest even; int8:
    requantized, block by block)."""

    _compressed: tuple = ()
    _fused: tuple = ()
    _moments: tuple = ()
    _state_dtype: Optional[str] = None
    # generic int8 state: (m, v, beta of m, beta of v) for each pair of buffers of which exact
    # arithmetic keeps |m| <= C sqrt(v) (fastoptim.lowmem.moment_bound) and the formula needs
    # it (NAdam's and RAdam's m / sqrt(v), centered RMSprop's v - m**2). Quantized
    # separately, an element's v can round to 0 while its m does not (the zero-gradient
    # trap), so the decoded m is clamped to C sqrt(v) before each step.
    _int8_bounds: tuple = ()

    def _set_state_dtype(self, state_dtype: Optional[str]) -> None:
        """Check ``state_dtype`` (before the base class's constructor, which makes the
        state)."""
        f = type(self).__name__
        kinds = FLOAT_KINDS + self._compressed
        if state_dtype is not None and (not isinstance(state_dtype, str)
                                        or state_dtype not in kinds):
            raise ValueError(f"{f}: state_dtype must be None or one of {kinds}, got "
                             f"{state_dtype!r}")
        self._state_dtype = state_dtype
        if state_dtype in self._compressed:
            self._elementwise = False     # steps by _apply_bucket: compiled calls per group

    @property
    def state_dtype(self) -> Optional[str]:
        """The ``state_dtype`` given to the constructor (``None``: the parameters' dtype);
        read-only, like ``backend``."""
        return self._state_dtype

    def state_nbytes(self) -> int:
        """Bytes held by the optimizer state (every buffer of every array)."""
        return sum(b.nbytes for bufs in self._state.values() for b in bufs if b is not None)

    @property
    def _is_compressed(self) -> bool:
        return self._state_dtype in self._compressed

    def _check_compressible(self, f: str, hyper: dict) -> None:
        """Raise when ``hyper`` asks for what compressed state cannot do."""

    # ---- the base class's hooks -----------------------------------------------------------
    @property
    def _is_generic(self) -> bool:
        return self._is_compressed and self._state_dtype not in self._fused

    def _plan(self, hyper: dict):
        kernel, call, slots, values = super()._plan(hyper)
        if not self._is_compressed or not any(slots):     # no state (SGD without momentum)
            return kernel, call, slots, values
        self._check_compressible(type(self).__name__, hyper)
        if self._is_generic:
            if self._state_dtype == "int8":     # each buffer, then its scales
                slots = tuple(x for s in slots for x in (s, None if s is None else s + _SCALE))
            return kernel, call, slots, values
        if self._state_dtype == "int8":     # the fused 8-bit moments and their scales
            slots = tuple(s for m in self._moments for s in (m, m + _SCALE))
        return kernel, call, slots, values

    def _new_states(self, name: str, params: List[np.ndarray], hyper: dict
                    ) -> List[np.ndarray]:
        f = type(self).__name__
        kind = self._state_dtype
        for p in params:
            wanted = np.float32 if self._is_compressed else kind
            if wanted is not None and p.dtype != np.dtype(wanted):
                raise ValueError(f"{f}: state_dtype {kind!r} needs {np.dtype(wanted)} "
                                 f"parameters, got a {p.dtype} array of shape {p.shape}")
        if not self._is_compressed:
            return super()._new_states(name, params, hyper)
        if self._is_generic and kind == "bfloat16":     # the class's initial values, rounded
            from ..lowmem import bfloat16
            return [b.astype(bfloat16) for b in super()._new_states(name, params, hyper)]
        if self._is_generic:                # int8: the initial values quantized
            from .. import lowmem
            scales = name.endswith(_SCALE)
            base = name[:-len(_SCALE)] if scales else name
            codec = _Int8Codec(not _nonnegative(self._plan(hyper)[0], base))
            out = []
            for p, b in zip(params, super()._new_states(base, params, hyper)):
                if p.size < lowmem.MIN_8BIT_SIZE:
                    out.append(np.zeros(0, np.float32) if scales else b)
                    continue
                # lowmem.quantize_blockwise's codes, compiled (its NumPy form took 3.6 s for
                # RMSprop's three buffers at 3e7 and a float32 temporary per step of it)
                flat = b.reshape(-1, order="A")
                codes = np.empty(flat.size, np.uint8)
                absmax = np.empty(-(-flat.size // _BLOCK), np.float32)
                codec.encode(np.ascontiguousarray(flat, np.float32), codes, absmax, 0,
                             flat.size)
                out.append(absmax if scales else codes)
            return out
        out = []
        for p in params:
            state = self._lowmem_state(p, kind)
            out.append(state[name] if name in state else np.zeros(0, np.float32))
        return out

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        if not self._is_compressed or not any(group.slots):
            return super()._apply_bucket(impl, group, t, lr, idx, grads)
        if self._is_generic:
            return self._apply_bucket_chunked(impl, group, t, lr, idx, grads)
        every = len(idx) == len(self._params)       # the common case: idx is all of them
        columns = {name: self._state[name] if every else [self._state[name][i] for i in idx]
                   for name in group.slots if name is not None}
        self._lowmem_steps(self._params if every else [self._params[i] for i in idx],
                           grads if every else [grads[i] for i in idx], columns, t, lr,
                           self._functional(group.hyper), _backend_name(impl))

    def _apply_bucket_chunked(self, impl, group, t: int, lr: float, idx: Sequence[int],
                              grads: list) -> None:
        """The generic compressed state: per array, per chunk of :data:`CHUNK` elements (whole
        blocks of 256), the state decoded into float32 scratch, the class's kernel run on the
        chunk (the coefficients computed once), the state encoded back (:func:`_codecs`). An
        int8 array under ``MIN_8BIT_SIZE`` (float32 state) runs the kernel on its state
        directly (all of them in one call). The "cython" backend runs all the arrays in one
        compiled call (``kernels.compressed_many``: one OpenMP parallel region over every
        array's rounds of 512 elements, decoded into per-thread scratch in the L1 cache); the
        others loop in :meth:`_chunk_loop`, on one thread (Python threads over the chunks
        were slower: 41 ms against 28 for bfloat16 SGD at 3e7 on 2 cores). Both give the same
        bits."""
        kind = self._state_dtype
        scalars = self._scalars
        carried = [values[idx[0]] for values in scalars.values()]
        c = group.coefficients(t, lr, carried)
        slots = group.slots[::2] if kind == "int8" else group.slots
        codecs = _codecs(kind, group.kernel, slots)
        clamps = self._int8_clamps(group, t, slots)
        floats, coded = [], []      # int8 arrays under MIN_8BIT_SIZE keep float32 state
        for i in idx:
            (floats if kind == "int8" and any(
                s is not None and self._state[s][i].dtype == self._params[i].dtype
                for s in slots) else coded).append(i)
        if floats:                  # no codec: the class's kernel, one call for all of them
            self._run_kernel(impl, group, t, lr, c, carried, [self._params[i] for i in floats],
                             [grads[i] for i in floats],
                             [None if s is None else [self._state[s][i] for i in floats]
                              for s in slots], [self._keys[i] for i in floats])
        if coded and (impl is _cython or impl is _cython_parallel):    # fused, compiled
            _cython.compressed_many(
                [self._params[i] for i in coded], [grads[i] for i in coded],
                tuple(None if s is None else [self._state[s][i] for i in coded]
                      for s in slots),
                tuple(None if s is None or kind != "int8"
                      else [self._state[s + _SCALE][i] for i in coded] for s in slots),
                tuple(None if k is None else k.tables for k in codecs), c, clamps=clamps)
        elif coded:
            self._chunk_loop(impl, group, t, lr, c, carried, coded, grads, slots, codecs,
                             clamps)
        if scalars:
            self._store_scalars(idx, c.carried())

    def _chunk_loop(self, impl, group, t: int, lr: float, c, carried, idx, grads, slots,
                    codecs, clamps) -> None:
        """The NumPy and Numba backends' generic compressed step of the arrays ``idx``: per
        array, per chunk of :data:`CHUNK` elements, decode, the class's kernel, encode."""
        kind = self._state_dtype
        size = min(CHUNK, max(self._params[i].size for i in idx))
        scratch = [None if s is None else np.empty(size, np.float32) for s in slots]
        for i in idx:
            p, key = self._params[i], [self._keys[i]]
            order = "F" if p.ndim > 1 and p.flags.f_contiguous and not p.flags.c_contiguous \
                else "C"
            flat_p, flat_g = p.reshape(-1, order=order), grads[i].reshape(-1, order=order)
            held = [None if s is None else _flat_view(self._state[s][i], order)
                    for s in slots]
            scales = [None if s is None or kind != "int8" else self._state[s + _SCALE][i]
                      for s in slots]
            for lo in range(0, flat_p.size, CHUNK):
                hi = min(flat_p.size, lo + CHUNK)
                work = [None if b is None else b[:hi - lo] for b in scratch]
                for w, h, a, codec in zip(work, held, scales, codecs):
                    if w is not None:
                        codec.decode(h, a, lo, hi, w)
                for m, v, bound in clamps:
                    clamp_moment(work[m], work[v], bound)
                self._run_kernel(impl, group, t, lr, c, carried, [flat_p[lo:hi]],
                                 [flat_g[lo:hi]], [None if w is None else [w] for w in work],
                                 key)
                for w, h, a, codec in zip(work, held, scales, codecs):
                    if w is not None:
                        codec.encode(w, h, a, lo, hi)

    def _int8_clamps(self, group, t: int, slots) -> tuple:
        """``(slot of m, slot of v, C)`` for each of :attr:`_int8_bounds` whose buffers the
        group steps (int8 state), ``C`` the float32 bound after the ``t - 1`` steps the state
        holds; none where ``C`` is infinite (no bound)."""
        if self._state_dtype != "int8" or not self._int8_bounds:
            return ()
        from ..lowmem import moment_bound
        hyper = self._functional(group.hyper)
        out = []
        for m, v, beta_m, beta_v in self._int8_bounds:
            if m in slots and v in slots:
                bound = moment_bound(t - 1, hyper[beta_m], hyper[beta_v])
                if bound != float("inf"):
                    out.append((slots.index(m), slots.index(v), float(np.float32(bound))))
        return tuple(out)

    def _lowmem_state(self, param: np.ndarray, kind: str) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _lowmem_steps(self, params, grads, columns, t: int, lr: float, hyper: dict,
                      backend: str) -> None:
        """One step of the fused kernel on a group's arrays (``lowmem._*_apply_many``: the
        compressed ones in one compiled call per encoding); ``columns``: the state by name,
        one buffer per array."""
        raise NotImplementedError


def clamp_moment(m: np.ndarray, v: np.ndarray, bound: float) -> None:
    """``m`` clamped to ``[-bound sqrt(v), bound sqrt(v)]`` in place, float32, NaN
    propagating (np.minimum, np.maximum): the generic int8 state's guard against the
    zero-gradient trap (``StateDtype._int8_bounds``; ``kernels.compressed`` the same in C)."""
    limit = np.sqrt(v)
    limit *= np.float32(bound)
    np.minimum(m, limit, out=m)
    np.maximum(m, np.negative(limit, out=limit), out=m)


def _flat_view(a: np.ndarray, order: str) -> np.ndarray:
    """``a`` (a state buffer, laid out as its parameter) as 1-D in memory ``order``: a view,
    never a copy (a copy would lose the update)."""
    flat = a.reshape(-1, order=order)
    if a.size and not np.may_share_memory(flat, a):
        raise ValueError(f"a {a.shape} state buffer is not laid out as its parameter "
                         f"({order} order)")
    return flat


def _nonnegative(kernel: str, name: str) -> bool:
    """Whether the registry says kernel ``kernel`` keeps state ``name`` ``>= 0``."""
    from .._registry import kernel as entry
    return any(st.name == name and st.nonnegative for st in entry(kernel).states)


class _Bf16Codec:
    """bfloat16 state (flattened in memory order, _flat_view) <-> a float32 chunk, compiled."""

    tables = None           # kernels.compressed: no code tables

    def __init__(self) -> None:
        from .. import _lowmem
        self._decode, self._encode = _lowmem.bf16_decode, _lowmem.bf16_encode

    def decode(self, held, scales, lo, hi, out) -> None:
        self._decode(held.view(np.uint16)[lo:hi], out)

    def encode(self, work, held, scales, lo, hi) -> None:
        self._encode(work, held.view(np.uint16)[lo:hi])


class _Int8Codec:
    """Blockwise 8-bit state (1-D codes in memory order, one absmax per block of 256) <-> a
    float32 chunk of whole blocks, compiled, with the signed or the unsigned code."""

    def __init__(self, signed: bool) -> None:
        from .. import _lowmem, lowmem
        t = lowmem.code_tables()
        k = 0 if signed else 1
        # (code values, bucket table, shift, zero code, signed, the arithmetic search's
        # table): what the codecs and kernels.compressed take for the code
        self.tables = (lowmem.dynamic_map(signed), t[6 + k], t[8 + k], t[4 + k], signed,
                       t[10 + k])
        self._decode, self._encode = _lowmem.q8_decode, _lowmem.q8_encode

    def decode(self, held, scales, lo, hi, out) -> None:
        self._decode(held[lo:hi], scales[lo // _BLOCK:], self.tables[0], out)

    def encode(self, work, held, scales, lo, hi) -> None:
        self._encode(work, held[lo:hi], scales[lo // _BLOCK:-(-hi // _BLOCK)],
                     *self.tables[1:])


def _codecs(kind: str, kernel: str, slots) -> list:
    """One codec per slot (``None`` for an unused one) of the generic ``kind`` state."""
    if kind == "bfloat16":
        return [None if s is None else _Bf16Codec() for s in slots]
    return [None if s is None else _Int8Codec(not _nonnegative(kernel, s)) for s in slots]
