"""float16 / bfloat16 parameters in :class:`~fastoptim.Adam` and :class:`~fastoptim.AdamW`.

A class that mixes in :class:`HalfParams` (first, before
:class:`~fastoptim.optimizers._state_dtype.StateDtype` and the base) accepts arrays of
float16 or ``ml_dtypes.bfloat16`` as parameters (all of one half dtype), with gradients of
the same dtype, and steps them with :func:`fastoptim.halfparams.adam_half_step`: the update
computed in float32 with float32 moments, and

* ``master_weights=True``: a float32 master copy of each parameter (state ``master``) takes
  the update; the parameter receives it rounded to nearest even;
* ``stochastic_rounding=True`` (bfloat16): the new parameter rounded stochastically, array
  ``k`` of the optimizer with seed ``seed + k`` (noise per step and element: the result does
  not depend on the thread count);
* neither: the parameter itself, rounded to nearest (small updates are lost, as with
  torch.optim on half parameters).

Float parameters are unaffected (``master_weights`` and ``stochastic_rounding`` are then
refused: they concern half parameters only).
"""
from __future__ import annotations

import sys
from numbers import Integral
from typing import List, Optional, Sequence

import numpy as np

from .. import _validation as _v
from ._state_dtype import _backend_name


def _is_bfloat16(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is ``ml_dtypes.bfloat16``, without importing ml_dtypes (about half a
    second): an array of it exists only once ml_dtypes has been imported."""
    ml_dtypes = sys.modules.get("ml_dtypes")
    return ml_dtypes is not None and dtype == np.dtype(ml_dtypes.bfloat16)


def _is_half(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is float16 or bfloat16 (half_reference.HALF_DTYPES)."""
    return dtype == np.float16 or _is_bfloat16(dtype)


class HalfParams:
    """The half-parameter options (module docstring)."""

    _master_weights = False
    _stochastic_rounding = False
    _seed = 0

    def _set_half_options(self, master_weights: bool, stochastic_rounding: bool,
                          seed: int) -> None:
        """Check the options (before the base class's constructor adds the parameters)."""
        f = type(self).__name__
        _v.flag(f, "master_weights", master_weights)
        _v.flag(f, "stochastic_rounding", stochastic_rounding)
        if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2 ** 64:
            raise ValueError(f"{f}: seed must be an integer in [0, 2**64), got {seed!r}")
        if master_weights and stochastic_rounding:
            raise ValueError(f"{f}: master_weights and stochastic_rounding exclude each other "
                             f"(a master copy keeps every update already)")
        self._master_weights = bool(master_weights)
        self._stochastic_rounding = bool(stochastic_rounding)
        self._seed = int(seed)

    @property
    def skip_nonfinite(self) -> bool:
        """Whether a step whose gradients hold an inf or a NaN is skipped (float parameters
        only); may be changed between steps."""
        return self._skip_nonfinite

    @skip_nonfinite.setter
    def skip_nonfinite(self, value: bool) -> None:
        value = _v.flag(type(self).__name__, "skip_nonfinite", value)
        if value and self._half:
            raise ValueError(f"{type(self).__name__}: skip_nonfinite is for float parameters "
                             f"(these are {self._params[0].dtype})")
        self._skip_nonfinite = value

    @property
    def _half(self) -> bool:
        return bool(self._params) and _is_half(self._params[0].dtype)

    # ---- the base class's hooks -----------------------------------------------------------
    def _check_param(self, f: str, name: str, param):
        half = isinstance(param, np.ndarray) and _is_half(param.dtype)
        wants_half = self._master_weights or self._stochastic_rounding
        if self._params and half != self._half:
            raise ValueError(f"{f}: {name} is {param.dtype}, the other parameters "
                             f"{self._params[0].dtype}: one optimizer steps half or float "
                             f"parameters, not both")
        if not half:
            if wants_half:
                option = "master_weights" if self._master_weights else "stochastic_rounding"
                raise ValueError(f"{f}: {option}=True needs float16 or bfloat16 parameters, "
                                 f"{name} is {getattr(param, 'dtype', type(param).__name__)}")
            return super()._check_param(f, name, param)
        if self._params and param.dtype != self._params[0].dtype:
            raise ValueError(f"{f}: {name} is {param.dtype}, the other parameters "
                             f"{self._params[0].dtype}")
        if self._stochastic_rounding and not _is_bfloat16(param.dtype):
            raise ValueError(f"{f}: stochastic_rounding needs bfloat16 parameters, {name} is "
                             f"{param.dtype}")
        if self._skip_nonfinite:
            raise ValueError(f"{f}: skip_nonfinite is for float parameters ({name} is "
                             f"{param.dtype})")
        if type(param) is not np.ndarray:
            raise TypeError(f"{f}: {name} must be a plain numpy.ndarray of a half dtype, got "
                            f"{type(param).__name__}")
        if not (param.flags.c_contiguous or param.flags.f_contiguous):
            raise ValueError(f"{f}: {name} must be C- or F-contiguous (a copy would lose the "
                             f"update)")
        if not param.flags.aligned or not param.flags.writeable:
            raise ValueError(f"{f}: {name} must be aligned and writeable")
        return None

    def _compute_dtype(self, param: np.ndarray) -> np.dtype:
        if _is_half(param.dtype):
            return np.dtype(np.float32)
        return super()._compute_dtype(param)

    def _plan(self, hyper: dict):
        kernel, call, slots, values = super()._plan(hyper)
        if self._master_weights:
            slots = tuple(slots) + ("master",)
        return kernel, call, slots, values

    def _new_states(self, name: str, params: List[np.ndarray], hyper: dict
                    ) -> List[np.ndarray]:
        f = type(self).__name__
        dtypes = {p.dtype for p in params}
        half = {d for d in dtypes if _is_half(d)}
        if half and len(dtypes) > 1:
            what = ("half or float parameters, not both" if dtypes - half
                    else "one half dtype")
            raise ValueError(f"{f}: the parameters mix {sorted(map(str, dtypes))}: one "
                             f"optimizer steps {what}")
        if not half:
            return super()._new_states(name, params, hyper)
        for option, off in (("amsgrad", False), ("eps_root", 0.0)):
            if hyper.get(option, off) != off:
                raise ValueError(f"{f}: {option}={hyper[option]!r} is for float parameters; "
                                 f"half parameters step without it")
        if self._state_dtype is not None:
            raise ValueError(f"{f}: state_dtype is for float32 parameters; half parameters "
                             f"keep float32 moments")
        self._elementwise = False         # steps by _apply_bucket, one call per array
        if name == "master":
            return [p.astype(np.float32, order="K") for p in params]
        return [np.zeros_like(p, np.float32) for p in params]

    def _check_grads(self, f: str, grads: list) -> None:
        if not self._half:
            return super()._check_grads(f, grads)
        for (pname, gname), param, grad in zip(self._check_names, self._params, grads):
            if grad is None:
                continue
            if type(grad) is not np.ndarray or grad.dtype != param.dtype:
                raise TypeError(f"{f}: {gname} must be a numpy.ndarray of {param.dtype} (as "
                                f"{pname}), got {getattr(grad, 'dtype', type(grad).__name__)}")
            if grad.shape != param.shape:
                raise ValueError(f"{f}: {gname} has shape {grad.shape}, {pname} {param.shape}")
            order_ok = grad.flags.c_contiguous if param.flags.c_contiguous or param.ndim < 2 \
                else grad.flags.f_contiguous
            if not order_ok or not grad.flags.aligned:
                raise ValueError(f"{f}: {gname} must be aligned and contiguous in the memory "
                                 f"order of {pname}")

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        if not self._half:
            return super()._apply_bucket(impl, group, t, lr, idx, grads)
        from ..halfparams import _coefficients, _compiled_steps, adam_half_step
        h = self._functional(group.hyper)
        backend = _backend_name(impl)
        if backend == "cython":     # the group's arrays in one call, checked by the class
            state = self._state
            _compiled_steps(
                [self._params[i] for i in idx], [grads[i] for i in idx],
                [state["master"][i] for i in idx] if "master" in group.slots else None,
                [state["exp_avg"][i] for i in idx], [state["exp_avg_sq"][i] for i in idx],
                _coefficients(int(t), float(lr), float(h["beta1"]), float(h["beta2"]),
                              float(h["eps"]), float(h["weight_decay"]),
                              bool(h["decoupled_weight_decay"]), bool(h["maximize"])),
                self._stochastic_rounding, [(self._seed + i) % 2 ** 64 for i in idx], t)
            return
        for i in idx:
            state = {name: self._state[name][i] for name in group.slots if name is not None}
            adam_half_step(self._params[i], grads[i], state, step=t, lr=lr,
                           beta1=h["beta1"], beta2=h["beta2"], eps=h["eps"],
                           weight_decay=h["weight_decay"],
                           decoupled_weight_decay=h["decoupled_weight_decay"],
                           maximize=h["maximize"],
                           stochastic_rounding=self._stochastic_rounding,
                           seed=(self._seed + i) % 2 ** 64, backend=backend)
