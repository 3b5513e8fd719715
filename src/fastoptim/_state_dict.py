"""An optimizer's state dict: :func:`build` makes it, :func:`checked` compares one with an
optimizer before :meth:`Optimizer.load_state_dict` copies anything (type, keys, groups,
hyperparameters, state names, step counts, every array's shape and dtype).

Keys of a state dict:

* ``"optimizer"``: the class name; ``"step"``: the optimizer's step count ``t``;
  ``"skipped_steps"``; ``"param_keys"``: every array's key, flat, in group order;
* ``"param_groups"``: one dict per group, its hyperparameters, ``"lr"`` (``None`` when it
  is a schedule) and ``"params"`` (the flat indices of its arrays);
* ``"hyperparameters"``: the first group's, ``lr`` included (what a one-group file of
  fastoptim 0.1 holds; read when ``"param_groups"`` is absent);
* ``"steps"``: each array's own step count (``"step"`` for all when absent);
* ``"scalars"``: carried scalar state name -> its value per array (NAdam's
  ``"mu_product"``; only for a class whose kernel has such state);
* ``"params"``: the arrays; ``"state"``: state name -> the buffers of the arrays that
  have it, and ``"state_params"``: state name -> their flat indices (all when absent).
"""
from __future__ import annotations

from typing import List, Mapping, NamedTuple, Tuple

import numpy as np

from . import _registry
from ._groups import check_eps as _check_eps
from . import _validation as _v

REQUIRED_KEYS = ("optimizer", "step", "param_keys", "params", "state")

# State names of fastoptim 0.1 -> today's (the functional API's): read from old checkpoints.
RENAMED_STATES = {"sum": "state_sum"}


def build(opt) -> dict:
    """A copy of everything a resumed run needs, as plain NumPy arrays and Python scalars."""
    groups = [dict(g.hyper, lr=None if callable(g.lr) else g.lr,
                   params=list(range(g.start, g.stop))) for g in opt._groups]
    first = {k: v for k, v in groups[0].items() if k != "params"}
    return {
        "optimizer": type(opt).__name__,
        "step": np.int64(opt._n.t),
        "skipped_steps": np.int64(opt._n.skipped),
        "param_keys": list(opt._keys),
        "hyperparameters": first,
        "param_groups": groups,
        "steps": opt._step_counts(),
        "params": [p.copy(order="K") for p in opt._params],
        "state": {name: [s.copy(order="K") for s in bufs if s is not None]
                  for name, bufs in opt._state.items()},
        "state_params": state_params(opt),
        **({"scalars": {name: list(values) for name, values in opt._scalars.items()}}
           if opt._scalars else {}),
    }


def state_params(opt) -> dict:
    """State name -> the flat indices of the arrays that have that buffer."""
    return {name: [i for i, s in enumerate(bufs) if s is not None]
            for name, bufs in opt._state.items()}


class Restore(NamedTuple):
    """What a checked state dict restores: each group's hyperparameters and lr (``None``:
    keep the current one, the checkpoint's was a schedule), the step counts, and
    (destination, source) array lists."""

    hypers: List[dict]
    lrs: list
    step: int
    skipped_steps: int
    steps: List[int]
    copies: List[Tuple[list, list]]
    scalars: dict = {}


def checked(opt, sd: Mapping) -> Restore:
    """Check ``sd`` against optimizer ``opt``; raise (``TypeError``/``ValueError``) on any
    mismatch, before anything is copied."""
    name = type(opt).__name__
    f = f"{name}.load_state_dict"
    if not isinstance(sd, Mapping):
        raise TypeError(f"{f}: state_dict must be a dict, got {type(sd).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in sd]
    if "param_groups" not in sd and "hyperparameters" not in sd:
        missing.append("param_groups")
    if missing:
        raise ValueError(f"{f}: state_dict is missing {missing}")
    if sd["optimizer"] != name:
        raise ValueError(
            f"{f}: the state_dict is from a {sd['optimizer']!r} optimizer, not {name!r}")
    step = _v.steps_taken(f, "step", sd["step"])
    skipped = _v.steps_taken(f, "skipped_steps", sd.get("skipped_steps", 0))
    keys = list(sd["param_keys"])
    if keys != opt._keys:
        raise ValueError(
            f"{f}: the state_dict's param_keys {keys} differ from this optimizer's "
            f"{opt._keys}")
    hypers, lrs = _groups(f, opt, sd)
    n = len(opt._params)
    steps = sd.get("steps", [step] * n)
    if len(steps) != n:
        raise ValueError(f"{f}: steps has {len(steps)} counts, expected {n}")
    steps = [_v.steps_taken(f, f"steps[{i}]", s) for i, s in enumerate(steps)]
    copies = [("params", opt._keys, opt._params, sd["params"])]
    for state, (where, dst, src) in _state(f, opt, sd).items():
        copies.append((f"state[{state!r}]", [opt._keys[i] for i in where], dst, src))
    for what, keys, dst_list, src_list in copies:
        _check_arrays(f, what, keys, dst_list, src_list)
    scalars = _scalars(f, opt, sd)
    return Restore(hypers, lrs, step, skipped, steps, [(d, s) for _, _, d, s in copies],
                   scalars)


def _scalars(f: str, opt, sd) -> dict:
    """Carried scalar state name -> its checked value per array."""
    if not opt._scalars:
        if sd.get("scalars"):
            raise ValueError(f"{f}: the state_dict has scalar state {sorted(sd['scalars'])}, "
                             f"{type(opt).__name__} has none")
        return {}
    saved = sd.get("scalars")
    if not isinstance(saved, Mapping) or set(saved) != set(opt._scalars):
        raise ValueError(f"{f}: the state_dict's scalars must hold "
                         f"{sorted(opt._scalars)}, got {saved!r:.200}")
    kinds = {h.name: h.kind for k in opt._kernels
             for h in _registry.kernel(k).hyperparameters}
    out = {}
    for name, values in saved.items():
        values = list(values)
        if len(values) != len(opt._params):
            raise ValueError(f"{f}: scalars[{name!r}] has {len(values)} values, expected "
                             f"{len(opt._params)}")
        check = _v.SCALAR_KINDS[kinds[name]]
        out[name] = [check(f, f"scalars[{name!r}][{i}]", v) for i, v in enumerate(values)]
    return out


def _groups(f: str, opt, sd) -> Tuple[List[dict], list]:
    """Each group's checked hyperparameters and lr; the groups must be this optimizer's
    (same arrays, same state buffers)."""
    saved = sd.get("param_groups")
    if saved is None:       # one group, fastoptim 0.1
        saved = [dict(sd["hyperparameters"], params=list(range(len(opt._params))))]
    if len(saved) != len(opt._groups):
        raise ValueError(f"{f}: the state_dict has {len(saved)} parameter groups, this "
                         f"optimizer has {len(opt._groups)}")
    hypers, lrs = [], []
    for i, (group, g) in enumerate(zip(saved, opt._groups)):
        group = dict(group)
        if list(group.pop("params", [])) != list(range(g.start, g.stop)):
            raise ValueError(f"{f}: parameter group {i} holds other arrays than this "
                             f"optimizer's group {i}")
        lr = group.pop("lr", None)
        for key, default in getattr(opt, "_ADDED_HYPERPARAMETERS", {}).items():
            group.setdefault(key, default)      # (saved before the option existed)
        if set(group) != set(g.hyper):
            raise ValueError(
                f"{f}: the state_dict's hyperparameters {sorted(group)} differ from "
                f"{type(opt).__name__}'s {sorted(g.hyper)}")
        hyper = opt._validate(f, group)
        _check_eps(opt, f, hyper, opt._params[g.start:g.stop])
        slots = opt._plan(hyper)[2]
        if slots != g.slots:
            raise ValueError(
                f"{f}: the state_dict has state {[s for s in slots if s]}, this optimizer "
                f"has {[s for s in g.slots if s]}; construct it with the saved "
                f"options {hyper}")
        hypers.append(hyper)
        lrs.append(None if lr is None else _v.nonnegative(f, "lr", lr))
    return hypers, lrs


def _state(f: str, opt, sd) -> dict:
    """State name -> (flat indices, this optimizer's buffers, the state dict's list)."""
    state = dict(sd["state"])
    where = dict(sd.get("state_params") or {})
    for old, new in RENAMED_STATES.items():     # checkpoints of fastoptim 0.1
        if old in state and new in opt._state and new not in state:
            state[new] = state.pop(old)
            if old in where:
                where[new] = where.pop(old)
    if set(state) != set(opt._state):
        raise ValueError(
            f"{f}: the state_dict has state {sorted(state)}, expected {sorted(opt._state)}")
    mine = state_params(opt)
    for name in state:
        if list(where.get(name, mine[name])) != mine[name]:
            raise ValueError(f"{f}: the state_dict's {name!r} buffers belong to other "
                             f"arrays than this optimizer's")
    return {name: (mine[name], [opt._state[name][i] for i in mine[name]], state[name])
            for name in state}


def _check_arrays(f: str, what: str, keys: list, dst_list: list, src_list) -> None:
    if len(src_list) != len(dst_list):
        raise ValueError(f"{f}: {what} has {len(src_list)} arrays, expected {len(dst_list)}")
    for key, dst, src in zip(keys, dst_list, src_list):
        if not isinstance(src, np.ndarray):
            raise TypeError(
                f"{f}: {what}[{key!r}] must be a numpy.ndarray, got {type(src).__name__}")
        if src.shape != dst.shape or src.dtype != dst.dtype:
            raise ValueError(
                f"{f}: {what}[{key!r}] has shape {src.shape} and dtype {src.dtype}, "
                f"expected {dst.shape} and {dst.dtype}")
