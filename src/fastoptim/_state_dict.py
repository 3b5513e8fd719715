"""Checking a state dict against an optimizer before :meth:`Optimizer.load_state_dict`
copies anything: type, keys, hyperparameters, state names, every array's shape and dtype.

:func:`checked` returns what to restore, or raises with the optimizer unchanged.
"""
from __future__ import annotations

from typing import List, Mapping, NamedTuple, Tuple

import numpy as np

from . import _validation as _v

REQUIRED_KEYS = ("optimizer", "step", "param_keys", "hyperparameters", "params", "state")

# State names of fastoptim 0.1 -> today's (the functional API's): read from old checkpoints.
RENAMED_STATES = {"sum": "state_sum"}


class Restore(NamedTuple):
    """What a checked state dict restores: hyperparameters (``lr`` apart, ``None`` when the
    checkpoint's was a schedule), step counts, and (destination, source) array lists."""

    hyper: dict
    lr: object
    step: int
    skipped_steps: int
    copies: List[Tuple[list, list]]


def checked(opt, sd: Mapping) -> Restore:
    """Check ``sd`` against optimizer ``opt``; raise (``TypeError``/``ValueError``) on any
    mismatch, before anything is copied."""
    name = type(opt).__name__
    f = f"{name}.load_state_dict"
    if not isinstance(sd, Mapping):
        raise TypeError(f"{f}: state_dict must be a dict, got {type(sd).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in sd]
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
    hyper, lr = _hyperparameters(f, opt, sd["hyperparameters"])
    state = _state(f, opt, dict(sd["state"]))
    copies = [("params", opt._params, sd["params"])]
    copies += [(f"state[{n!r}]", opt._state[n], state[n]) for n in opt._state]
    for what, dst_list, src_list in copies:
        _check_arrays(f, what, opt._keys, dst_list, src_list)
    return Restore(hyper, lr, step, skipped, [(d, s) for _, d, s in copies])


def _hyperparameters(f: str, opt, saved) -> Tuple[dict, object]:
    saved = dict(saved)
    lr = saved.pop("lr", None)
    if set(saved) != set(opt._hyper):
        raise ValueError(
            f"{f}: the state_dict's hyperparameters {sorted(saved)} differ from "
            f"{type(opt).__name__}'s {sorted(opt._hyper)}")
    hyper = opt._validate(f, saved)
    if lr is not None:
        lr = _v.nonnegative(f, "lr", lr)
    slots = opt._plan(hyper)[2]
    if slots != opt._slot_names:
        raise ValueError(
            f"{f}: the state_dict has state {[s for s in slots if s]}, this optimizer "
            f"has {[s for s in opt._slot_names if s]}; construct it with the saved "
            f"options {hyper}")
    return hyper, lr


def _state(f: str, opt, state: dict) -> dict:
    for old, new in RENAMED_STATES.items():     # checkpoints of fastoptim 0.1
        if old in state and new in opt._state and new not in state:
            state[new] = state.pop(old)
    if set(state) != set(opt._state):
        raise ValueError(
            f"{f}: the state_dict has state {sorted(state)}, expected {sorted(opt._state)}")
    return state


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
