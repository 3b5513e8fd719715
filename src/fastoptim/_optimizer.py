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
Hyperparameters are validated when set: at construction, in ``opt.lr = ...`` and in
``opt.param_groups[i][name] = ...`` (torch's parameter groups, :mod:`fastoptim._groups`).
Every state buffer starts at zero, with its parameter's dtype and layout. Each array keeps
its own step count (a ``None`` gradient skips the array: its state and count stay), and
the arrays of a group with equal counts step together, in one compiled call. A kernel's
carried scalar state (the registry's ``carried``: NAdam's ``mu_product``) is kept per array
as well (``_scalars``), passed to the coefficients and updated from them; arrays with equal
counts and equal values step together, and state dicts save it under ``"scalars"``.
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _dispatch
from . import _groups
from . import _params
from . import _reductions
from . import _registry
from . import _state_dict
from . import _validation as _v
from . import _cython_parallel
from . import arena as _arena
from ._checks import has_none as _has_none
from . import kernels as _cython
from ._backends import select as _select

__all__ = ["Optimizer", "Params", "LR"]

Params = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]
LR = Union[float, Callable[[int], float]]


class _Counters:
    """The counts a step changes (plain attributes: the optimizer's own ``__setattr__``
    guards its public names and would cost on every small step)."""

    __slots__ = ("t", "step_all", "last_lr", "skipped")

    def __init__(self) -> None:
        self.t = 0              # steps taken
        self.step_all = 0       # every array's step count, while they are all equal
        self.last_lr = None     # the first group's lr at the last step
        self.skipped = 0        # steps skipped by skip_nonfinite


class Optimizer:
    """Base class: parameter groups, state buffers, step counts and the step loop.

    Subclasses define

    * ``_kernels``: the registry kernels the class runs (the first unless :meth:`_choose`
      picks another, as SGD picks ``"momentum"`` when ``momentum > 0``);
    * ``_extra_kinds``: the validation kind of each hyperparameter the kernels do not have
      (Adagrad's ``initial_accumulator_value``);
    * :meth:`_functional` when the class's hyperparameters are not the kernel's by name
      (Adam's ``betas``), and :meth:`_state_fill` when a buffer does not start at zero;
    * for a rule that is not a registry kernel (LAMB, Muon): ``_elementwise = False``,
      :meth:`_plan` returning a :class:`fastoptim._rule.Rule` in place of the kernel call,
      and :meth:`_apply_bucket`, which steps one bucket of arrays.
    """

    _kernels: Tuple[str, ...] = ()
    _extra_kinds: Dict[str, str] = {}
    # False for a rule that is not a registry kernel: it overrides _plan and _apply_bucket
    _elementwise = True

    def __init__(self, params: Params, lr: LR, hyper: dict, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        f = type(self).__name__
        self._lock = threading.Lock()
        self._defaults = self._validate(f, hyper)
        self._default_lr = _lr_value(f, lr)
        _select(f, backend, 0)          # a bad backend name fails here, not at the first step
        self._backend = backend
        self._n = _Counters()
        self._skip_nonfinite = _v.flag(f, "skip_nonfinite", skip_nonfinite)
        self._keys: List = []
        self._is_dict = None
        self._params: List[np.ndarray] = []
        self._given: List[np.ndarray] = []
        self._param_names: List[str] = []
        self._check_names: List[tuple] = []
        # each array's step count: None while all are _n.step_all (the common case)
        self._steps: Optional[List[int]] = None
        self._state: Dict[str, List[Optional[np.ndarray]]] = {}
        # carried scalar state (the registry's ``carried``: NAdam's mu_product) -> its
        # value per array; arrays with equal values (and step counts) step together
        self._scalar_initial: Dict[str, float] = {
            name: first for k in self._kernels
            for name, first in _registry.kernel(k).carried.items()}
        self._scalars: Dict[str, List[float]] = {name: [] for name in self._scalar_initial}
        self._groups: List[_groups.ParamGroup] = []
        self._containers: List[tuple] = []
        self._add_groups(f, _groups.split(f, params))
        if not self._params:
            raise ValueError(f"{f}: params is empty; pass the arrays to optimize")

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
        """Each hyperparameter checked by its registry kind (or ``_extra_kinds``); torch's
        ``betas`` pair by :func:`fastoptim._validation.betas`."""
        kinds = {}
        for name in cls._kernels:
            kinds.update((h.name, h.kind) for h in _registry.kernel(name).hyperparameters)
        kinds.update(cls._extra_kinds)
        return {name: _v.betas(f, value) if name == "betas"
                else _v.SCALAR_KINDS[kinds[name]](f, name, value)
                for name, value in hyper.items()}

    @classmethod
    def _functional(cls, hyper: dict) -> dict:
        """The kernel's hyperparameters (registry names) from the class's: torch's ``betas``
        pair is the kernel's ``beta1`` and ``beta2``."""
        if "betas" in hyper:
            beta1, beta2 = hyper["betas"]
            return dict(hyper, beta1=beta1, beta2=beta2)
        return hyper

    @classmethod
    def _choose(cls, hyper: dict) -> str:
        """The registry kernel a step runs with these hyperparameters."""
        return cls._kernels[0]

    def _check_param(self, f: str, name: str, param) -> Optional[tuple]:
        """Check a parameter array when it is added (raises naming it); returns what
        :func:`fastoptim._validation.check_arrays` returns (its plain view for a subclass)."""
        return _v.check_arrays(f, (name,), (param,))

    def _compute_dtype(self, param: np.ndarray) -> np.dtype:
        """The dtype the update of ``param`` is computed in (``eps`` must be normal in it)."""
        return param.dtype

    def _new_states(self, name: str, params: List[np.ndarray], hyper: dict
                    ) -> List[np.ndarray]:
        """One buffer per parameter (its shape, dtype and layout) at :meth:`_state_fill`,
        all views of one aligned buffer (:func:`fastoptim.arena.zeros_like_all`): a step
        over many arrays then touches fewer memory pages, and runs as fast as on one flat
        array."""
        states = _arena.zeros_like_all(params)
        fill = self._state_fill(name, hyper)
        if fill != 0:
            for state in states:
                state.fill(fill)
        return states

    def _state_fill(self, name: str, hyper: dict) -> float:
        """The value a new state buffer ``name`` starts at: 0 (Adagrad: its
        ``initial_accumulator_value``)."""
        return 0.0

    # ---- public --------------------------------------------------------------------------
    @property
    def lr(self) -> LR:
        """The learning rate (of the first parameter group): a float ``>= 0``, or a schedule
        called with the step count t. Setting it sets every group's."""
        return self._groups[0].lr

    @lr.setter
    def lr(self, value: LR) -> None:
        value = _lr_value(type(self).__name__, value)
        for group in self._groups:
            group.lr = value

    @property
    def param_groups(self) -> List[_groups.ParamGroup]:
        """The parameter groups (torch's ``param_groups``): dict-like, with ``"params"``,
        ``"lr"`` and every hyperparameter; set a value to change it from the next step."""
        return list(self._groups)

    def add_param_group(self, param_group: Mapping) -> None:
        """Add a group ``{"params": <list or dict of arrays>, <hyperparameter>: value}``
        (missing hyperparameters take the constructor's values), as torch does. Its arrays
        must not share memory with any array the optimizer holds; their step counts start
        at 0."""
        f = f"{type(self).__name__}.add_param_group"
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError(f"{f}: param_group must be a dict with a 'params' entry")
        with self._lock:
            self._add_groups(f, _groups.split(f, [param_group]))

    @property
    def t(self) -> int:
        """Number of steps taken (the next step uses ``t + 1``); skipped steps not counted."""
        return self._n.t

    @property
    def last_lr(self):
        """The learning rate the last step used (a float; ``None`` before the first step),
        of the first group. With a schedule as ``lr``, this is its value."""
        return self._n.last_lr

    @property
    def backend(self) -> str:
        """The backend chosen at construction."""
        return self._backend

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because a gradient held an inf or a NaN (``skip_nonfinite``)."""
        return self._n.skipped

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
        """The parameters of every group, flat, in the structure they were given (the same
        array objects)."""
        if self._is_dict:
            return dict(zip(self._keys, self._given))
        return list(self._given)

    # Attributes that may be assigned; every other public name is read-only or a typo.
    _SETTABLE = ("lr", "skip_nonfinite")

    def __getattr__(self, name):
        groups = self.__dict__.get("_groups")
        if groups and name in groups[0].hyper:
            return groups[0].hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name.startswith("_") or name in self._SETTABLE:
            object.__setattr__(self, name, value)
            return
        cls = type(self).__name__
        hyper = self.__dict__.get("_defaults") or {}
        if name in hyper:
            raise AttributeError(
                f"{cls}.{name} was validated at construction; change it between steps "
                f"with opt.param_groups[i][{name!r}] = value (only "
                f"{' and '.join(self._SETTABLE)} are attributes)")
        readonly = sorted(set(hyper) | {"t", "last_lr", "backend", "skipped_steps",
                                        "params", "param_groups"})
        raise AttributeError(
            f"{cls} has no attribute {name!r} to set; settable: {', '.join(self._SETTABLE)}; "
            f"read-only: {', '.join(readonly)}")

    def __repr__(self) -> str:
        g = self._groups[0]
        opts = ", ".join(f"{k}={v!r}" for k, v in g.hyper.items())
        groups = f" in {len(self._groups)} groups" if len(self._groups) > 1 else ""
        return (f"{type(self).__name__}({len(self._params)} arrays{groups}, lr={g.lr!r}, "
                f"{opts}, backend={self._backend!r})")

    def step(self, grads: Params) -> None:
        """Update every parameter in place from ``grads`` (the structure of ``params``).

        Every gradient is checked first (keys, shape, dtype, layout, no shared memory with
        any parameter or state buffer); on any error nothing is updated and the step count
        is unchanged. A gradient of ``None`` skips its array (its state and step count do
        not change), as in torch. With ``skip_nonfinite=True`` a step whose gradients hold
        an inf or a NaN changes nothing but :attr:`skipped_steps`. Safe to call from
        several threads: steps are serialized by a lock, none is lost.
        """
        f = f"{type(self).__name__}.step"
        with self._lock:
            self._check_bindings(f)
            grads = _params.match(f, "grads", grads, self._keys, self._is_dict, "params")
            missing = _has_none(grads)
            if missing or self._skip_nonfinite or not self._one_compiled_call():
                self._check_grads(f, grads)
            # else the one multi-tensor call of _apply checks every array by the same rules
            # (in C) before it writes anything, and _check_grads names a bad one
            if self._n.t >= _v.MAX_STEP:
                raise ValueError(f"{f}: the step count would exceed 2**63 - 1")
            t = self._n.t + 1
            lrs = [_lr_at(f, group.lr, t) for group in self._groups]
            if self._skip_nonfinite and not _reductions.all_finite(
                    [g for g in grads if g is not None] if missing else grads):
                self._n.skipped += 1
                return
            self._apply(f, grads, lrs, missing)
            self._n.t = t
            self._n.last_lr = lrs[0]

    def state_dict(self) -> dict:
        """A copy of everything a resumed run needs, as plain NumPy arrays and Python scalars
        (see :func:`fastoptim._state_dict.build` for the keys)."""
        return _state_dict.build(self)

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict` output in place (params, state, step counts, the
        groups' hyperparameters).

        Checks the optimizer type, the parameter keys and groups, the hyperparameters, the
        state names and every array's shape and dtype before copying anything; the arrays
        are copied into the existing buffers, so references to them stay valid.
        """
        with self._lock:
            restore = _state_dict.checked(self, state_dict)
            for dst_list, src_list in restore.copies:
                for dst, src in zip(dst_list, src_list):
                    np.copyto(dst, src, casting="no")
            for group, hyper, lr in zip(self._groups, restore.hypers, restore.lrs):
                group.hyper, group.plan = hyper, self._plan(hyper)
                group.values = list(group.plan[3])
                if lr is not None:
                    group.lr = lr
            self._n.t = restore.step
            self._n.skipped = restore.skipped_steps
            self._set_step_counts(list(restore.steps))
            for name, values in restore.scalars.items():
                self._scalars[name][:] = values

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

    def _add_groups(self, f: str, groups) -> None:
        _groups.add(self, f, groups)

    def _check_bindings(self, f: str) -> None:
        _params.check_bindings(f, self._containers)

    def _buckets(self, grads: list, missing: bool) -> list:
        """``(group, step count, indices)`` of the arrays that step together: one per group
        while every array has the same count, carried scalar state and a gradient, else one
        per group, count and carried state (only arrays with a gradient)."""
        if self._steps is None and not missing and self._uniform_scalars():
            return [(g, self._n.step_all, range(g.start, g.stop)) for g in self._groups
                    if g.stop > g.start]
        steps = self._step_counts()
        scalars = list(self._scalars.values())
        out = []
        for g in self._groups:
            by_count: Dict[tuple, List[int]] = {}
            for i in range(g.start, g.stop):
                if grads[i] is not None:
                    key = (steps[i], *[values[i] for values in scalars])
                    by_count.setdefault(key, []).append(i)
            out.extend((g, key[0], idx) for key, idx in sorted(by_count.items()))
        return out

    def _uniform_scalars(self) -> bool:
        """Whether every array has the same carried scalar state (always, without any)."""
        scalars = self._scalars
        return not scalars or all(len(set(values)) <= 1 for values in scalars.values())

    def _store_scalars(self, idx, values: tuple) -> None:
        """The carried scalar state after a step of the arrays ``idx``."""
        for name, value in zip(self._scalars, values):
            held = self._scalars[name]
            for i in idx:
                held[i] = value

    def _check_grads(self, f: str, grads: list) -> None:
        """Check every gradient against its parameter (raises naming it); a subclass is
        replaced by its plain view."""
        check = _v.check_arrays
        for i, (names, param, grad) in enumerate(zip(self._check_names, self._params,
                                                     grads)):
            if grad is not None and check(f, names, (param, grad)) is not None:
                grads[i] = grad.view(np.ndarray)     # a subclass: its plain view

    def _one_compiled_call(self) -> bool:
        """Whether a step with a gradient for every array is one compiled multi-tensor
        call (the common case of :meth:`_apply`)."""
        impl = _select("", self._backend, 0)
        return ((impl is _cython or impl is _cython_parallel) and self._elementwise
                and self._steps is None and len(self._groups) == 1
                and self._uniform_scalars())

    def _apply(self, f: str, grads: list, lrs: list, missing: bool) -> None:
        """Update every array with a gradient, with the coefficients computed once per
        bucket of :meth:`_buckets` (one in the common case).

        On the Cython backend (what "auto" picks) each bucket is one compiled call,
        ``kernels.<kernel>_multi``: one OpenMP parallel region over its arrays when the call
        moves enough memory for threads to pay. Other backends get one call per array.
        """
        impl = _select(f, self._backend, 0)
        compiled = impl is _cython or impl is _cython_parallel
        scalars = self._scalars
        if not missing and self._one_compiled_call():
            group = self._groups[0]         # the common case: one call, nothing to gather
            multi = getattr(_cython, group.kernel + "_multi")
            c = group.coefficients(self._n.step_all + 1, lrs[0],
                                   [values[0] for values in scalars.values()])
            try:
                multi(self._params, grads, *[None if s is None else self._state[s]
                                             for s in group.slots],
                      c, labels=self._keys)
            except (TypeError, ValueError):     # raised before any write
                self._check_grads(f, grads)     # the step's own message for a bad gradient
                raise
            if scalars:
                self._store_scalars(range(len(self._params)), c.carried())
            self._n.step_all += 1
            return
        buckets = self._buckets(grads, missing)
        if len(buckets) > 1 or not compiled or not self._elementwise:
            # one check of every gradient against every written array; (the multi-tensor
            # kernel makes it itself within one call)
            _params.check_grads_apart(f, *self._grads_and_written(grads))
        lr_of = {id(g): lr for g, lr in zip(self._groups, lrs)}
        for group, count, idx in buckets:
            self._apply_bucket(impl, group, count + 1, lr_of[id(group)], idx, grads)
        self._set_step_counts([s + 1 if g is not None else s
                               for s, g in zip(self._step_counts(), grads)])

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        """Step the arrays ``idx`` of ``group`` (all with a gradient and step count
        ``t - 1``, every check passed) at step count ``t`` with learning rate ``lr`` on
        backend module ``impl`` (``None``: the NumPy reference).

        The hook of a rule that is not a registry kernel (``_elementwise = False``: LAMB,
        Muon): it overrides this method; everything around it (groups, ``None`` gradients,
        step counts, ``skip_nonfinite``, schedules, checks, state dicts) is the base's."""
        scalars = self._scalars
        params = [self._params[i] for i in idx]
        gs = [grads[i] for i in idx]
        states = [None if s is None else [self._state[s][i] for i in idx]
                  for s in group.slots]
        carried = [values[idx[0]] for values in scalars.values()]
        c = group.coefficients(t, lr, carried)
        self._run_kernel(impl, group, t, lr, c, carried, params, gs, states,
                         [self._keys[i] for i in idx])
        if scalars:
            self._store_scalars(idx, c.carried())

    @staticmethod
    def _run_kernel(impl, group, t: int, lr: float, c, carried, params, grads, states,
                    labels) -> None:
        """Run ``group``'s registry kernel with coefficients ``c`` on the arrays (``states``:
        one list per slot, ``None`` for an unused one), on backend module ``impl``."""
        if impl is _cython or impl is _cython_parallel:
            multi = getattr(_cython, group.kernel + "_multi")
            multi(params, grads, *states, c, labels=labels)
        elif impl is None:
            group.apply_reference(t, lr, params, grads, states, carried)
        else:
            kernel = getattr(impl, group.kernel)
            for j, (param, grad) in enumerate(zip(params, grads)):
                kernel(param, grad, *[None if s is None else s[j] for s in states], c)

    def _step_counts(self) -> List[int]:
        """Each array's step count."""
        if self._steps is None:
            return [self._n.step_all] * len(self._params)
        return list(self._steps)

    def _set_step_counts(self, steps: List[int]) -> None:
        if len(set(steps)) <= 1:
            self._steps, self._n.step_all = None, steps[0] if steps else 0
        else:
            self._steps = steps

    def _grads_and_written(self, grads: list):
        """(gradient names, gradients, written names, written arrays), ``None`` skipped;
        the written names a sequence that makes a name when it is read (for a message)."""
        if not _has_none(grads):
            gn, ga = [n[1] for n in self._check_names], grads
        else:
            gn = [n[1] for n, g in zip(self._check_names, grads) if g is not None]
            ga = [g for g in grads if g is not None]
        wa = list(self._params)
        for bufs in self._state.values():
            wa += [b for b in bufs if b is not None]
        return gn, ga, _WrittenNames(self._param_names, self._state), wa


class _WrittenNames:
    """The names of an optimizer's written arrays (its parameters, then its state buffers
    that are not ``None``, in the order of ``_grads_and_written``), made only when one is
    read: a step checks the arrays apart on every call and names one only in an error."""

    def __init__(self, param_names: list, state: dict) -> None:
        self._param_names, self._state = param_names, state

    def __getitem__(self, i: int) -> str:
        names = self._param_names
        if i < len(names):
            return names[i]
        i -= len(names)
        for name, bufs in self._state.items():
            for j, buf in enumerate(bufs):
                if buf is not None:
                    if i == 0:
                        return f"the {name} of {names[j]}"
                    i -= 1
        raise IndexError(i)


def _lr_value(f: str, lr) -> LR:
    """A learning rate: a schedule (callable), or a float ``>= 0``."""
    return lr if callable(lr) else _v.nonnegative(f, "lr", lr)


def _lr_at(f: str, lr, t: int) -> float:
    if callable(lr):
        return _v.nonnegative(f, f"lr (the schedule's value at t={t})", lr(t))
    return lr
