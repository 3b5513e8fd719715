"""Parameter groups, torch.optim's way: each group is a set of arrays with its own
hyperparameters, and ``opt.param_groups`` lists them as dict-like :class:`ParamGroup`\\ s
whose hyperparameters (``lr`` included) may be changed between steps.

``params`` given to an optimizer is either one list or dict of arrays (one group), or a
list of dicts ``{"params": <list or dict of arrays>, <hyperparameter>: value, ...}``, each
overriding the constructor's values for its arrays. With dict groups every array has a
name, unique across groups, and ``step`` takes one dict keyed by all of them; with list
groups ``step`` takes one flat list, in group order.
"""
from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Iterator, List, Tuple

from . import _dispatch
from . import _params
from . import _validation as _v

__all__ = ["ParamGroup", "split"]


def is_group_list(params) -> bool:
    """Whether ``params`` is a list of group dicts (rather than arrays)."""
    return (isinstance(params, (list, tuple)) and len(params) > 0
            and all(isinstance(g, Mapping) and "params" in g for g in params))


def split(func: str, params) -> List[Tuple[object, dict]]:
    """``[(arrays of the group, its overrides), ...]`` for ``params`` (one group or many)."""
    if not is_group_list(params):
        if isinstance(params, (list, tuple)) and any(isinstance(g, Mapping) for g in params):
            raise TypeError(f"{func}: a list of parameter groups must hold dicts with a "
                            f"'params' entry only")
        return [(params, {})]
    return [(g["params"], {k: v for k, v in g.items() if k != "params"}) for g in params]


def flatten_groups(func: str, groups, first_index: int = 0, is_dict=None):
    """Keys, arrays and the (start, stop) range of each group in the flat order.

    List groups number their arrays ``first_index, first_index + 1, ...`` across groups;
    dict groups keep their names, which must be unique. All groups must be of one kind."""
    keys, arrays, ranges = [], [], []
    for obj, _ in groups:
        what = "params" if len(groups) == 1 else "a group's params"
        k, a, d = _params.flatten(func, what, obj)
        if is_dict is None:
            is_dict = d
        elif d != is_dict:
            raise TypeError(f"{func}: every parameter group must hold a dict of arrays, "
                            f"or every one a list; got both")
        start = first_index + len(arrays)
        keys.extend(k if d else range(start, start + len(a)))
        arrays.extend(a)
        ranges.append((start, start + len(a)))
    if is_dict and len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"{func}: the array names {dup} appear in more than one group; "
                         f"names must be unique across groups (step takes one dict)")
    return keys, arrays, ranges, bool(is_dict)


class ParamGroup(MutableMapping):
    """One parameter group: ``"params"`` (its arrays, as given), ``"lr"`` and every
    hyperparameter of the optimizer. A hyperparameter set here is validated at once and
    used from the next step; one that would change the group's state buffers (``amsgrad``,
    ``centered``, ``momentum`` to or from 0) raises, as the buffers were made for the
    group's first values."""

    def __init__(self, opt, start: int, stop: int, given, hyper: dict, lr) -> None:
        self._opt = opt
        self.start, self.stop = start, stop
        self._given = given
        self.lr = lr
        self.set_hyper(hyper, opt._plan(hyper))

    def set_hyper(self, hyper: dict, plan: tuple) -> None:
        """Use ``hyper`` (validated) and its plan (:meth:`Optimizer._plan`) from now on."""
        self.hyper, self.plan, self.values = hyper, plan, list(plan[3])
        names = plan[1].hyper_names
        self._step_index = names.index("step") if "step" in names else None
        self._lr_index = names.index("lr")
        self._carried_index = tuple(names.index(n) for n in plan[1].kernel.carried)

    @property
    def kernel(self) -> str:
        return self.plan[0]

    @property
    def slots(self) -> tuple:
        return self.plan[2]

    def __getitem__(self, key):
        if key == "params":
            return self._given
        if key == "lr":
            return self.lr
        return self.hyper[key]

    def __setitem__(self, key, value) -> None:
        opt = self._opt
        f = f"{type(opt).__name__}.param_groups"
        with opt._lock:
            if key == "params":
                raise TypeError(f"{f}: a group's arrays are fixed; use add_param_group to "
                                f"add arrays")
            if key == "lr":
                self.lr = value if callable(value) else _v.nonnegative(f, "lr", value)
                return
            if key not in self.hyper:
                raise KeyError(f"{f}: {type(opt).__name__} has no hyperparameter {key!r}; "
                               f"it has lr, {', '.join(self.hyper)}")
            hyper = opt._validate(f, dict(self.hyper, **{key: value}))
            check_eps(opt, f, hyper, opt._params[self.start:self.stop])
            plan = opt._plan(hyper)
            if plan[2] != self.slots:
                raise ValueError(
                    f"{f}: setting {key}={value!r} would change the group's state buffers "
                    f"({[s for s in self.slots if s]} -> {[s for s in plan[2] if s]}); "
                    f"create the optimizer with it instead")
            self.set_hyper(hyper, plan)

    def __delitem__(self, key) -> None:
        raise TypeError("a parameter group's entries cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        yield "params"
        yield "lr"
        yield from self.hyper

    def __len__(self) -> int:
        return 2 + len(self.hyper)

    def __repr__(self) -> str:
        items = ", ".join(f"{k!r}: {self[k]!r}" for k in self if k != "params")
        return f"ParamGroup({self.stop - self.start} arrays, {{{items}}})"

    def coefficients(self, t: int, lr: float, carried=()):
        """The entry points' coefficients of this group at step count ``t``, with the
        values of the kernel's carried scalar state before the step (NAdam's
        ``mu_product``)."""
        values = self.values
        if self._step_index is not None:
            values[self._step_index] = t
        values[self._lr_index] = lr
        for i, value in zip(self._carried_index, carried):
            values[i] = value
        return self.plan[1].coefficients_of(tuple(values))

    def reference_kwargs(self, t: int, lr: float, carried=()) -> dict:
        self.coefficients(t, lr, carried)   # (sets step, lr and carried in self.values)
        return dict(zip(self.plan[1].hyper_names, self.values))

    def apply_reference(self, t: int, lr: float, params, grads, states, carried=()) -> None:
        """Step ``params`` (arrays of this group, with their gradients and state lists) on
        the NumPy reference, which takes user-level hyperparameters."""
        call = self.plan[1]
        kwargs = self.reference_kwargs(t, lr, carried)
        n_fixed = len(call.fixed_names) - len(call.kernel.inputs)
        optional = [s.name for s in call.optional]
        for j, (param, grad) in enumerate(zip(params, grads)):
            mine = [None if s is None else s[j] for s in states]
            extra = {n: s for n, s in zip(optional, mine[n_fixed:]) if s is not None}
            _dispatch.reference_call(call.reference, param, grad, *mine[:n_fixed],
                                     **extra, **kwargs)


def _hyperparameters(opt, f: str, overrides: dict):
    """(validated hyperparameters, lr) of a group: the constructor's, overridden."""
    unknown = [k for k in overrides if k != "lr" and k not in opt._defaults]
    if unknown:
        raise TypeError(f"{f}: unknown hyperparameters {unknown} in a parameter group; "
                        f"{type(opt).__name__} has lr, {', '.join(opt._defaults)}")
    lr = overrides.get("lr", opt._default_lr)
    lr = lr if callable(lr) else _v.nonnegative(f, "lr", lr)
    hyper = opt._validate(f, dict(opt._defaults, **{k: v for k, v in overrides.items()
                                                   if k != "lr"}))
    return hyper, lr


def check_eps(opt, f: str, hyper: dict, params) -> None:
    """``eps`` (``eps_root`` where a rule let ``eps`` be 0) must be a normal number of the
    dtype each of ``params`` is computed in: ``eps=1e-50`` is 0 in float32. Every path that
    sets a group's hyperparameters runs this: construction, ``add_param_group``,
    ``param_groups[i][key] = value``, ``load_state_dict`` and the torch front end."""
    eps = hyper.get("eps")
    if not isinstance(eps, float):
        return
    name, value = ("eps_root", hyper["eps_root"]) if eps == 0.0 and "eps_root" in hyper \
        else ("eps", eps)
    for dtype in {opt._compute_dtype(p) for p in params}:
        _v.eps_for_dtype(f, name, value, dtype)


def add(opt, f: str, groups) -> None:
    """Validate ``groups`` (from :func:`split`) and append them to optimizer ``opt``: its
    arrays, keys, step counts and state buffers. Everything is checked before ``opt``
    changes."""
    parsed = [_hyperparameters(opt, f, overrides) for _, overrides in groups]
    first = len(opt._params)
    keys, arrays, ranges, is_dict = flatten_groups(f, groups, first, opt._is_dict)
    if is_dict and set(keys) & set(opt._keys):
        raise ValueError(f"{f}: the array names {sorted(set(keys) & set(opt._keys))} are "
                         f"already in a group; names must be unique across groups")
    if any(start == stop for start, stop in ranges) and (first or len(groups) > 1):
        raise ValueError(f"{f}: a parameter group has no arrays")
    names = _params.labels("params", keys)
    plain = []
    for (start, stop), (hyper, _) in zip(ranges, parsed):
        for i in range(start - first, stop - first):
            p = arrays[i]
            checked = opt._check_param(f, names[i], p)
            plain.append(p if checked is None else checked[0])
        check_eps(opt, f, hyper, plain[start - first:stop - first])
    held = [(n, a) for n, a in zip(opt._param_names, opt._params)]
    held += [(f"the {s} of {n}", b) for s, bufs in opt._state.items()
             for n, b in zip(opt._param_names, bufs) if b is not None]
    _params.check_disjoint(f, [n for n, _ in held] + names, [a for _, a in held] + plain)
    new = [ParamGroup(opt, start, stop, obj, hyper, lr)
           for (start, stop), (obj, _), (hyper, lr) in zip(ranges, groups, parsed)]
    states = [{name: opt._new_states(name, plain[g.start - first:g.stop - first], g.hyper)
               for name in g.slots if name is not None} for g in new]
    # nothing has changed so far; from here on, only appends that cannot fail
    opt._is_dict = is_dict
    opt._keys.extend(keys)
    opt._params.extend(plain)
    opt._given.extend(arrays)
    opt._param_names.extend(names)
    opt._check_names.extend(zip(names, _params.labels("grads", keys)))
    if plain and first and opt._steps is None and opt._n.step_all:
        opt._steps = [opt._n.step_all] * first        # new arrays start at 0: counts differ
    if opt._steps is not None:
        opt._steps.extend([0] * len(plain))
    for name, values in opt._scalars.items():
        values.extend([opt._scalar_initial[name]] * len(plain))
    for g, bufs in zip(new, states):
        for name in bufs:
            opt._state.setdefault(name, [None] * g.start)
        for name, lst in opt._state.items():
            lst.extend(bufs.get(name, [None] * (g.stop - g.start)))
    for (obj, _), (start, stop) in zip(groups, ranges):
        container = obj if isinstance(obj, (dict, list)) else None
        opt._containers.append((container, keys[start - first:stop - first],
                                arrays[start - first:stop - first], is_dict))
    opt._groups.extend(new)
