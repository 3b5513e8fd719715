"""The optimizer base class: parameters, state buffers, the step count and the step loop.

Each class keeps its parameters, and each of its state buffers, as **parallel lists in one
fixed order** (list order or the dict's insertion order). A step

1. checks every gradient against its parameter (structure, shape, dtype, layout) before
   touching anything, so a bad gradient raises naming its key and nothing is updated;
2. computes the learning rate (a float, or a schedule called with the step count
   ``t = 1, 2, ...``) and the kernel's per-call coefficients **once**;
3. runs :meth:`Optimizer._apply`, the one place that walks the arrays and calls the backend.

What a class runs is described by the registry (:mod:`fastoptim._registry`): a subclass
names its kernels and maps its hyperparameters to the kernel's (``betas`` to ``beta1``,
``beta2``); validation, the state buffers, the coefficients and the reference call follow.
Hyperparameters are validated once, at construction (and when ``opt.lr`` is set by hand).
Every state buffer starts at zero, with its parameter's dtype and layout.
"""
from __future__ import annotations

import threading
from operator import is_ as _is
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from . import _dispatch
from . import _params
from . import _reductions
from . import _registry
from . import _state_dict
from . import _validation as _v
from . import _cython_parallel
from . import arena as _arena
from . import kernels as _cython
from ._backends import select as _select

__all__ = ["Optimizer", "Params", "LR"]

Params = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]
LR = Union[float, Callable[[int], float]]


class Optimizer:
    """Base class: parameters, state buffers, the step count and the per-array loop.

    Subclasses define

    * ``_kernels``: the registry kernels the class runs (the first unless :meth:`_choose`
      picks another, as SGD picks ``"momentum"`` when ``momentum > 0``);
    * ``_extra_kinds``: the validation kind of each hyperparameter the kernels do not have
      (Adagrad's ``initial_accumulator_value``);
    * :meth:`_functional` when the class's hyperparameters are not the kernel's by name
      (Adam's ``betas``), and :meth:`_new_states` when a buffer does not start at zero.
    """

    _kernels: Tuple[str, ...] = ()
    _extra_kinds: Dict[str, str] = {}

    def __init__(self, params: Params, lr: LR, hyper: dict, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        f = type(self).__name__
        self._hyper = self._validate(f, hyper)
        keys, arrays, is_dict = _params.flatten(f, "params", params)
        if not arrays:
            raise ValueError(f"{f}: params is empty; pass the arrays to optimize")
        names = _params.labels("params", keys)
        plain_arrays = []
        for name, p in zip(names, arrays):
            plain = _v.check_arrays(f, (name,), (p,))
            plain_arrays.append(p if plain is None else plain[0])
            if "eps" in self._hyper and isinstance(self._hyper["eps"], float):
                _v.eps_for_dtype(f, "eps", self._hyper["eps"], p.dtype)
        _params.check_disjoint(f, names, plain_arrays)
        _select(f, backend, 0)          # a bad backend name fails here, not at the first step
        self._lock = threading.Lock()
        # the user's container and array objects, to detect a key rebound to a new array
        self._container = params if isinstance(params, (dict, list)) else None
        self._given = arrays
        self._keys: List = keys
        self._is_dict = is_dict
        self._params: List[np.ndarray] = plain_arrays
        self._param_names = names
        self._grad_names = _params.labels("grads", keys)
        self._check_names = list(zip(names, self._grad_names))
        self._backend = backend
        self.lr = lr
        self._t = 0
        self._last_lr = None
        self._skipped_steps = 0
        self._skip_nonfinite = _v.flag(f, "skip_nonfinite", skip_nonfinite)
        self._kernel, self._call, self._slot_names, values = self._plan(self._hyper)
        self._values = list(values)
        self._state: Dict[str, List[np.ndarray]] = {
            name: self._new_states(name, plain_arrays)
            for name in self._slot_names if name is not None}
        self._bind_state()

    # ---- hooks ---------------------------------------------------------------------------
    @classmethod
    def _validate(cls, f: str, hyper: dict) -> dict:
        """Check and normalise the hyperparameters (not lr), then apply the registry's
        rules (Nesterov's) to them; raises naming the bad one."""
        out = cls._check(f, hyper)
        functional = cls._functional(out)
        for name in cls._kernels:
            for rule in _registry.kernel(name).rules:
                rule(f, functional)
        return out

    @classmethod
    def _check(cls, f: str, hyper: dict) -> dict:
        """Each hyperparameter checked by its registry kind (or ``_extra_kinds``)."""
        kinds = {}
        for name in cls._kernels:
            kinds.update((h.name, h.kind) for h in _registry.kernel(name).hyperparameters)
        kinds.update(cls._extra_kinds)
        return {name: _v.SCALAR_KINDS[kinds[name]](f, name, value)
                for name, value in hyper.items()}

    @classmethod
    def _functional(cls, hyper: dict) -> dict:
        """The kernel's hyperparameters (registry names) from the class's."""
        return hyper

    @classmethod
    def _choose(cls, hyper: dict) -> str:
        """The registry kernel a step runs with these hyperparameters."""
        return cls._kernels[0]

    def _new_states(self, name: str, params: List[np.ndarray]) -> List[np.ndarray]:
        """One zeroed buffer per parameter (its shape, dtype and layout), all views of one
        aligned buffer (:func:`fastoptim.arena.zeros_like_all`): a step over many arrays
        then touches fewer memory pages, and runs as fast as on one flat array."""
        return _arena.zeros_like_all(params)

    # ---- public --------------------------------------------------------------------------
    @property
    def lr(self) -> LR:
        """The learning rate: a float ``>= 0``, or a schedule called with the step count t."""
        return self._lr

    @lr.setter
    def lr(self, value: LR) -> None:
        if callable(value):
            self._lr = value
        else:
            self._lr = _v.nonnegative(type(self).__name__, "lr", value)

    @property
    def t(self) -> int:
        """Number of steps taken (the next step uses ``t + 1``); skipped steps not counted."""
        return self._t

    @property
    def last_lr(self):
        """The learning rate the last step used (a float; ``None`` before the first step).
        With a schedule as ``lr``, ``opt.lr`` is the schedule and this is its value."""
        return self._last_lr

    @property
    def backend(self) -> str:
        """The backend chosen at construction."""
        return self._backend

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because a gradient held an inf or a NaN (``skip_nonfinite``)."""
        return self._skipped_steps

    @property
    def skip_nonfinite(self) -> bool:
        """Whether a step whose gradients hold an inf or a NaN is skipped (nothing changes
        but :attr:`skipped_steps`); may be changed between steps."""
        return self._skip_nonfinite

    @skip_nonfinite.setter
    def skip_nonfinite(self, value: bool) -> None:
        self._skip_nonfinite = _v.flag(type(self).__name__, "skip_nonfinite", value)

    @property
    def params(self) -> Params:
        """The parameters, in the structure they were given (the same array objects)."""
        if self._is_dict:
            return dict(zip(self._keys, self._given))
        return list(self._given)

    # Attributes that may be assigned; every other public name is read-only or a typo.
    _SETTABLE = ("lr", "skip_nonfinite")

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name in hyper:
            return hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name.startswith("_") or name in self._SETTABLE:
            object.__setattr__(self, name, value)
            return
        cls = type(self).__name__
        hyper = self.__dict__.get("_hyper") or {}
        if name in hyper:
            raise AttributeError(
                f"{cls}.{name} is fixed at construction (it was validated then); only "
                f"{' and '.join(self._SETTABLE)} can be changed between steps")
        readonly = sorted(set(hyper) | {"t", "last_lr", "backend", "skipped_steps",
                                        "params", "param_groups"} - {"param_groups"})
        raise AttributeError(
            f"{cls} has no attribute {name!r} to set; settable: {', '.join(self._SETTABLE)}; "
            f"read-only: {', '.join(readonly)}")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return (f"{type(self).__name__}({len(self._params)} arrays, lr={self._lr!r}, {opts}, "
                f"backend={self._backend!r})")


    def step(self, grads: Params) -> None:
        """Update every parameter in place from ``grads`` (the structure of ``params``).

        Every gradient is checked first (keys, shape, dtype, layout, no shared memory with
        any parameter or state buffer); on any error nothing is updated and the step count
        is unchanged. With ``skip_nonfinite=True`` a step whose gradients hold an inf or a
        NaN changes nothing but :attr:`skipped_steps`. Safe to call from several threads:
        steps are serialized by a lock, none is lost.
        """
        f = f"{type(self).__name__}.step"
        with self._lock:
            self._check_bindings(f)
            grads = _params.match(f, "grads", grads, self._keys, self._is_dict, "params")
            check = _v.check_arrays
            for i, (names, param, grad) in enumerate(zip(self._check_names, self._params,
                                                         grads)):
                if check(f, names, (param, grad)) is not None:
                    grads[i] = grad.view(np.ndarray)     # a subclass: its plain view
            if self._t >= _v.MAX_STEP:
                raise ValueError(f"{f}: the step count would exceed 2**63 - 1")
            t = self._t + 1
            lr = self._lr_at(f, t)
            if self._skip_nonfinite and not _reductions.all_finite(grads):
                self._skipped_steps += 1
                return
            self._apply(f, grads, t, lr)
            self._t = t
            self._last_lr = lr

    def state_dict(self) -> dict:
        """A copy of everything a resumed run needs, as plain NumPy arrays and Python scalars.

        Keys: ``"optimizer"`` (class name), ``"step"`` and ``"skipped_steps"``
        (``np.int64``), ``"param_keys"``,
        ``"hyperparameters"`` (``lr`` is ``None`` when it is a schedule), ``"params"`` (list
        of arrays in ``param_keys`` order) and ``"state"`` (state name -> list of arrays).
        """
        hyper = dict(self._hyper)
        hyper["lr"] = None if callable(self._lr) else self._lr
        return {
            "optimizer": type(self).__name__,
            "step": np.int64(self._t),
            "skipped_steps": np.int64(self._skipped_steps),
            "param_keys": list(self._keys),
            "hyperparameters": hyper,
            "params": [p.copy(order="K") for p in self._params],
            "state": {name: [s.copy(order="K") for s in bufs]
                      for name, bufs in self._state.items()},
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict` output in place (params, state, step, hyperparameters).

        Checks the optimizer type, the parameter keys, the hyperparameters, the state names
        and every array's shape and dtype before copying anything; the arrays are copied
        into the existing buffers, so references to them stay valid.
        """
        restore = _state_dict.checked(self, state_dict)
        for dst_list, src_list in restore.copies:
            for dst, src in zip(dst_list, src_list):
                np.copyto(dst, src, casting="no")
        self._hyper = restore.hyper
        self._values = list(self._plan(restore.hyper)[3])
        if restore.lr is not None:
            self._lr = restore.lr
        self._t = restore.step
        self._skipped_steps = restore.skipped_steps

    # ---- internals -----------------------------------------------------------------------
    def _plan(self, hyper: dict):
        """(kernel name, its :class:`~fastoptim._dispatch.KernelCall`, the state names in
        the entry point's argument order with ``None`` for an unused optional one, the
        kernel's hyperparameter values in registry order with ``step``/``lr`` unset)."""
        kernel = self._choose(hyper)
        call = _dispatch.CALLS[kernel]
        functional = self._functional(hyper)
        values = tuple(functional.get(name) for name in call.hyper_names)
        fixed = call.fixed_names[len(call.kernel.inputs):]
        slots = fixed + tuple(s.name if on else None
                              for s, on in zip(call.optional, call.enabled(values)))
        return kernel, call, slots, values

    def _bind_state(self) -> None:
        """The state lists in the entry point's argument order (``None`` for unused slots),
        and the same regrouped per array (``self._array_states[i]``) for the loop."""
        self._state_lists = [None if s is None else self._state[s] for s in self._slot_names]
        self._array_states = [tuple(None if s is None else s[i] for s in self._state_lists)
                              for i in range(len(self._params))]
        names = self._call.hyper_names
        self._step_index = names.index("step") if "step" in names else None
        self._lr_index = names.index("lr")

    def _coefficients(self, t: int, lr: float):
        """The entry points' coefficients of step ``t`` (computed once per step)."""
        values = self._values
        if self._step_index is not None:
            values[self._step_index] = t
        values[self._lr_index] = lr
        return self._call.coefficients_of(tuple(values))

    def _check_bindings(self, f: str) -> None:
        """Refuse a step after a key of the user's dict (or an entry of their list) was
        rebound to another array: the optimizer updates the arrays it was given in place,
        and would silently go on updating the old one. O(number of arrays)."""
        container = self._container
        if container is None:
            return
        if self._is_dict:
            try:
                same = all(map(_is, map(container.__getitem__, self._keys), self._given))
            except KeyError:
                same = False
            if not same:
                key = next(k for k, given in zip(self._keys, self._given)
                           if container.get(k) is not given)
                raise ValueError(
                    f"{f}: params[{key!r}] was replaced by another array after the "
                    f"optimizer was created; it updates the arrays it was given in "
                    f"place. Assign into the array instead (params[{key!r}][...] = "
                    f"new_values), or create a new optimizer (load_state to resume)")
        elif len(container) != len(self._given) or not all(
                map(_is, container, self._given)):
            raise ValueError(
                f"{f}: the params list was changed after the optimizer was created; it "
                f"updates the arrays it was given in place. Assign into them instead "
                f"(params[i][...] = new_values), or create a new optimizer")

    def _lr_at(self, f: str, t: int) -> float:
        lr = self._lr
        if callable(lr):
            return _v.nonnegative(f, f"lr (the schedule's value at t={t})", lr(t))
        return lr

    def _apply(self, f: str, grads: List[np.ndarray], t: int, lr: float) -> None:
        """Update every array, with the coefficients computed once for the step.

        ``self._params``, ``grads`` and each list of ``self._state_lists`` are parallel lists
        in one fixed order. On the Cython backend (what "auto" picks) the whole list is one
        compiled call, ``kernels.<kernel>_multi``: one OpenMP parallel region over all the
        arrays when the step moves enough memory for threads to pay, one thread otherwise.
        Other backends get one call per array.
        """
        impl = _select(f, self._backend, 0)
        coefficients = self._coefficients(t, lr)
        if impl is _cython or impl is _cython_parallel:
            # the multi-tensor kernel refuses a gradient sharing memory with any parameter
            # or state buffer (one sort of the byte extents) before it touches anything
            multi = getattr(_cython, self._kernel + "_multi")
            multi(self._params, grads, *self._state_lists, coefficients,
                  labels=self._keys)
            return
        _params.check_grads_apart(f, self._grad_names, grads,
                                  self._param_names, self._written_arrays())
        if impl is None:
            self._apply_reference(grads, t, lr)
            return
        kernel = getattr(impl, self._kernel)
        for param, grad, states in zip(self._params, grads, self._array_states):
            kernel(param, grad, *states, coefficients)

    def _written_arrays(self) -> List[np.ndarray]:
        """Every parameter and state buffer (what a step writes), parameters first."""
        out = list(self._params)
        for states in self._state.values():
            out.extend(states)
        return out

    def _apply_reference(self, grads: List[np.ndarray], t: int, lr: float) -> None:
        """The same loop on the NumPy reference, which takes user-level hyperparameters."""
        call = self._call
        self._coefficients(t, lr)                    # (sets step and lr in self._values)
        kwargs = dict(zip(call.hyper_names, self._values))
        n_fixed = len(call.fixed_names) - len(call.kernel.inputs)
        optional = [s.name for s in call.optional]
        for param, grad, states in zip(self._params, grads, self._array_states):
            extra = {name: s for name, s in zip(optional, states[n_fixed:]) if s is not None}
            _dispatch.reference_call(call.reference, param, grad, *states[:n_fixed],
                                     **extra, **kwargs)
