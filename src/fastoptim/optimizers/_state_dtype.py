"""``state_dtype=``: the optimizer classes that can keep their moments in fewer bytes.

A class that mixes in :class:`StateDtype` (before :class:`~fastoptim._optimizer.Optimizer`)
accepts ``state_dtype``:

* ``None`` (default), ``"float32"`` or ``"float64"``: the moments in the parameters' dtype,
  as before (a named float dtype must be every parameter's);
* one of the class's ``_compressed`` kinds: ``"bfloat16"`` (moments stored as
  ``ml_dtypes.bfloat16``, computed in float32) or ``"int8"`` (bitsandbytes' blockwise 8-bit
  code, one float32 absmax per block of 256; arrays under 4,096 elements keep float32
  moments) -- float32 parameters only.

Compressed moments step through :mod:`fastoptim.lowmem`'s kernels, one call per array; the
rest (groups, ``None`` gradients, ``skip_nonfinite``, schedules, every check before anything
is written, ``state_dict`` with the codes and scales as NumPy arrays, checkpoints) is the
base class's. The state names are the float ones (``exp_avg``, ``exp_avg_sq``) holding the
codes, plus ``exp_avg_absmax`` and ``exp_avg_sq_absmax`` (the per-block scales) for
``"int8"``; an array that keeps float32 moments under ``"int8"`` has empty scales.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .. import _cython_parallel
from .. import kernels as _cython

FLOAT_KINDS = ("float32", "float64")
_SCALES = {"exp_avg": "exp_avg_absmax", "exp_avg_sq": "exp_avg_sq_absmax"}


def _backend_name(impl) -> str:
    """The lowmem ``backend=`` of a backend module of :func:`fastoptim._backends.select`."""
    if impl is None:
        return "numpy"
    if impl is _cython or impl is _cython_parallel:
        return "cython"
    return "numba"


class StateDtype:
    """The ``state_dtype`` option (module docstring). A subclass sets ``_compressed`` (the
    compressed kinds it has), ``_moments`` (its float state names) and implements
    :meth:`_lowmem_state` and :meth:`_lowmem_step`."""

    _compressed: tuple = ()
    _moments: tuple = ()
    _state_dtype: Optional[str] = None

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
            self._elementwise = False     # steps by _apply_bucket, one lowmem call per array

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
    def _plan(self, hyper: dict):
        kernel, call, slots, values = super()._plan(hyper)
        if not self._is_compressed:
            return kernel, call, slots, values
        self._check_compressible(type(self).__name__, hyper)
        slots = self._moments
        if self._state_dtype == "int8":
            slots = tuple(s for m in self._moments for s in (m, _SCALES[m]))
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
        out = []
        for p in params:
            state = self._lowmem_state(p, kind)
            out.append(state[name] if name in state else np.zeros(0, np.float32))
        return out

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        if not self._is_compressed:
            return super()._apply_bucket(impl, group, t, lr, idx, grads)
        backend = _backend_name(impl)
        hyper = self._functional(group.hyper)
        for i in idx:
            state = {name: self._state[name][i] for name in group.slots
                     if name in self._moments or self._state[name][i].size}
            self._lowmem_step(self._params[i], grads[i], state, t, lr, hyper, backend)

    def _lowmem_state(self, param: np.ndarray, kind: str) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _lowmem_step(self, param, grad, state, t: int, lr: float, hyper: dict,
                     backend: str) -> None:
        raise NotImplementedError
