"""Validation and backend dispatch of one kernel call, derived from the registry.

:class:`KernelCall` turns a registry entry (:mod:`fastoptim._registry`) into what a call
needs, computed once at import: the compiled scalar spec of its hyperparameters, the array
names of every combination of optional states, the coefficient helper with the positions of
its arguments among the hyperparameters, the NumPy reference. The functional API
(``<kernel>_step``) and the optimizer classes both go through it, so the rules live in one
place for every backend:

1. hyperparameters checked in one compiled call (:func:`fastoptim._validation.check_scalars`)
   and by the kernel's rules (Nesterov's);
2. each optional state present exactly when its flag enables it;
3. arrays checked (:func:`fastoptim._checks.check_arrays`: dtype, shape, layout,
   writeable, aliasing, byte order, alignment; an ndarray subclass becomes its plain view,
   a masked array is refused), ``eps`` a normal number of the dtype (or 0 where a rule
   allows it, with ``eps_root`` a normal number instead);
4. the backend picked (:func:`fastoptim._backends.select`), then one call: the compiled
   entry point with the coefficients computed once, or the NumPy reference.

A failed check raises before any array is touched.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from . import _coefficients as _coef
from . import _registry
from . import _validation as _v
from . import kernels as _cython
from . import reference as _reference
from ._backends import select as _select

__all__ = ["KernelCall", "CALLS", "reference_call"]

# Every eps >= this is a normal number of both dtypes: the per-dtype rule
# (_validation.eps_for_dtype) runs only below it.
_TINY32 = float(np.finfo(np.float32).tiny)


def reference_call(reference, *arrays, **hyperparameters):
    """Run a NumPy reference step with floating-point errors ignored, as the compiled kernels
    do: under a user's ``np.seterr(all="raise")`` an overflow in a temporary would otherwise
    raise after some state array was already written (a half-done update). Returns what the
    reference returns: ``None``, or the new value of a carried scalar (NAdam's
    ``mu_product``)."""
    with np.errstate(all="ignore"):
        return reference(*arrays, **hyperparameters)


class KernelCall:
    """Everything one call of kernel ``name`` needs, derived from its registry entry."""

    def __init__(self, name: str) -> None:
        k = _registry.kernel(name)
        self.kernel = k
        self.name = name
        self.function = k.function
        self.hyper_names: Tuple[str, ...] = tuple(h.name for h in k.hyperparameters)
        self.spec = _v.scalar_spec(**{h.name: h.kind for h in k.hyperparameters})
        # rules that can only fail when eps is 0 run only when eps is below tiny (rare)
        self.rules = tuple(r for r in k.rules if not getattr(r, "eps_zero", False))
        self.eps_rules = tuple(r for r in k.rules if getattr(r, "eps_zero", False))
        self._rule_inputs = tuple(i for i, h in enumerate(k.hyperparameters)
                                  if h.kind != "step_count")
        self._rules_passed = None       # the last rule inputs that passed every rule
        self.eps_root_index = (self.hyper_names.index("eps_root")
                               if "eps_root" in self.hyper_names else None)
        self.coefficients = getattr(_coef, name)
        self.coefficient_index = tuple(self.hyper_names.index(a) for a in k.coefficient_args)
        self.coefficients_of = getattr(_cython, f"coefficients_{name}_of")
        self.eps_index = self.hyper_names.index(k.eps) if k.eps else None
        self.fixed_names: Tuple[str, ...] = k.inputs + tuple(
            s.name for s in k.states if s.enabled_by is None)
        self.optional = tuple(s for s in k.states if s.enabled_by is not None)
        self._switches = tuple(self._switch(s) for s in self.optional)
        # the enabling hyperparameters (registry order): checked values are >= 0 or bools,
        # so each state is enabled exactly when its value is true
        self._flag_indices = tuple(i for i, _ in self._switches)
        # (name, index of the enabling hyperparameter, "> 0" rule?, the condition in words)
        self._optional_rules = tuple(
            (s.name, i, positive, f"{self.hyper_names[i]} > 0" if positive
             else f"{self.hyper_names[i]}=True")
            for s, (i, positive) in zip(self.optional, self._switches))
        self.reference = getattr(_reference, k.function)
        self._call = self._make_call()

    def _switch(self, state) -> Tuple[int, bool]:
        """(index of the enabling hyperparameter, whether the rule is ``> 0``)."""
        positive = state.enabled_by.endswith(" > 0")
        flag = state.enabled_by[:-4] if positive else state.enabled_by
        return self.hyper_names.index(flag), positive

    def enabled(self, hyper: tuple) -> Tuple[bool, ...]:
        """Whether each optional state takes part, for checked ``hyper`` (registry order)."""
        return tuple(hyper[i] > 0.0 if positive else bool(hyper[i])
                     for i, positive in self._switches)

    def check_hyper(self, func: str, hyper: tuple) -> tuple:
        """The checked and normalised hyperparameters (registry order); raises otherwise.
        (The rules about ``eps == 0`` run in :meth:`_small_eps`, only when it can be 0.)"""
        hyper = _v.check_scalars(func, self.spec, hyper)
        if self.rules:
            # the rules are pure functions of the hyperparameters other than the step: a
            # loop that passes the same values again (the common case) skips them
            key = tuple([hyper[i] for i in self._rule_inputs])
            if key != self._rules_passed:
                named = dict(zip(self.hyper_names, hyper))
                for rule in self.rules:
                    rule(func, named)
                self._rules_passed = key
        return hyper

    def __call__(self, arrays: tuple, optional: tuple, hyper: tuple, backend: str):
        """One checked call: ``arrays`` are the inputs and the always-used states (registry
        order), ``optional`` the optional states as given (``None`` when absent), ``hyper``
        the raw hyperparameters in registry order. Returns ``None``, or for a kernel with
        carried scalar state (the registry's ``carried``) its value after the step (a tuple
        when there are several). (Replaced per instance by the faster closure of
        :meth:`_make_call`; this is its readable form.)"""
        return self._call(arrays, optional, hyper, backend)

    def _make_call(self):
        """The body of :meth:`__call__`, as a closure over this kernel's constants: a small
        call's cost is mostly attribute lookups and calls, so everything is bound once."""
        f, spec, fixed_names = self.function, self.spec, self.fixed_names
        check_hyper = self.check_hyper if self.rules else None
        check_scalars, check_arrays, select = _v.check_scalars, _v.check_arrays, _select
        with_optional, regroup = self._with_optional, self._regroup
        eps_name = self.kernel.eps
        # an eps below tiny gets the per-dtype check; no eps: a comparison that never holds
        eps_index, tiny = (self.eps_index, _TINY32) if eps_name else (0, -math.inf)
        coefficients_of, name = self.coefficients_of, self.name
        flag_indices = self._flag_indices
        n_fixed = len(fixed_names)
        reference = self._reference
        small_eps = self._small_eps
        carried = bool(self.kernel.carried)

        def call(arrays, optional, hyper, backend):
            if check_hyper is None:
                hyper = check_scalars(f, spec, hyper)
            else:
                hyper = check_hyper(f, hyper)
            names = fixed_names
            if optional:
                used = False        # (plain loops: cheaper than any() on a small call)
                for i in flag_indices:
                    if hyper[i]:
                        used = True
                for value in optional:
                    if value is not None:
                        used = True
                if used:
                    arrays, names, optional = with_optional(f, arrays, optional, hyper)
            plain = check_arrays(f, names, arrays)
            if plain is not None:
                arrays = plain
                if optional:
                    optional = regroup(arrays, optional)
            param = arrays[0]
            if hyper[eps_index] < tiny:
                small_eps(f, hyper, param.dtype)
            impl = select(f, backend, param.size, param.itemsize, len(arrays))
            if len(arrays) != n_fixed:
                arrays = arrays[:n_fixed]
            if impl is None:
                out = reference(arrays, optional, hyper)
                if carried:
                    return out
            elif carried:
                c = coefficients_of(hyper)
                getattr(impl, name)(*arrays, *optional, c)
                out = c.carried()
                return out[0] if len(out) == 1 else out
            else:
                getattr(impl, name)(*arrays, *optional, coefficients_of(hyper))
        return call

    def _small_eps(self, f: str, hyper: tuple, dtype) -> None:
        """Checks of an ``eps`` below the smallest normal float32 (checked hyperparameters
        ``hyper``): the rules that concern ``eps == 0`` (with a positive ``eps_root``), then
        the one that must keep the denominator away from zero a normal number of ``dtype``."""
        eps = hyper[self.eps_index]
        root = None if self.eps_root_index is None else hyper[self.eps_root_index]
        if eps == 0.0 and self.eps_rules:       # they can only fail when eps == 0
            named = {self.kernel.eps: eps, "eps_root": root}     # all they read
            for rule in self.eps_rules:
                rule(f, named)
        if eps == 0.0 and root is not None:
            if root < _TINY32:                  # else a normal number of every dtype
                _v.eps_for_dtype(f, "eps_root", root, dtype)
        else:
            _v.eps_for_dtype(f, self.kernel.eps, eps, dtype)

    def _reference(self, arrays: tuple, optional: tuple, hyper: tuple):
        kwargs = dict(zip(self.hyper_names, hyper))
        for state, value in zip(self.optional, optional):
            if value is not None:
                kwargs[state.name] = value
        return reference_call(self.reference, *arrays, **kwargs)

    def _with_optional(self, f: str, arrays: tuple, optional: tuple, hyper: tuple):
        """Append the enabled optional states to ``arrays`` (and their names); refuse a
        missing one and one passed where the formula does not use it."""
        names = self.fixed_names
        used = ()
        for (name, i, positive, when), value in zip(self._optional_rules, optional):
            if hyper[i] > 0.0 if positive else hyper[i]:
                if value is None:
                    shown = f"{self.hyper_names[i]}={hyper[i]!r} > 0" if positive else when
                    raise ValueError(f"{f}: {shown} needs a {name} array")
                arrays += (value,)
                names += (name,)
            elif value is not None:
                _v.forbid_unused(f, name, value, when)
            used += (value,)
        return arrays, names, used

    def _regroup(self, arrays: tuple, optional: tuple) -> tuple:
        """The optional states again (``None`` where unused), taken from checked ``arrays``
        (plain views of subclasses)."""
        rest = iter(arrays[len(self.fixed_names):])
        return tuple(None if value is None else next(rest) for value in optional)


CALLS: Dict[str, KernelCall] = {name: KernelCall(name) for name in _registry.KERNELS}


def call(name: str):
    """The call of registry kernel ``name``: ``call(arrays, optional, hyper, backend)`` (see
    :meth:`KernelCall.__call__`)."""
    return CALLS[name]._call


def renamed(func: str, old: str, old_value, new: str, new_value) -> Optional[np.ndarray]:
    """A state array passed under its old keyword name: still accepted for one release, with
    a ``DeprecationWarning`` (the functional API and the optimizer classes share the state
    names of the registry)."""
    import warnings
    if old_value is None:
        raise TypeError(f"{func}: missing the state array {new}")
    if new_value is not None:
        raise TypeError(f"{func}: pass {new} only (its old name {old} is deprecated)")
    warnings.warn(f"{func}: the keyword {old}= is deprecated, use {new}= (the name the "
                  f"optimizer classes use)", DeprecationWarning, stacklevel=3)
    return old_value
