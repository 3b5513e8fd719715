"""Structure helpers for the training-loop layer: a list or dict of arrays as parallel lists.

The optimizer classes and the clipping functions accept either a list of arrays or a dict
name -> array (the course's ``parameters["W1"]``). :func:`flatten` turns both into one fixed
order (list order, or the dict's insertion order) so that every later pass walks the arrays
in the same order; :func:`labels` names each array in error messages; :func:`check_disjoint`
rejects arrays that share memory (an in-place update would apply twice).
"""
from collections.abc import Mapping
from operator import is_ as _is

import numpy as np

from ._checks import grads_apart as _grads_apart

__all__ = ["flatten", "labels", "check_disjoint", "match", "check_grads_apart",
           "check_bindings"]


def flatten(func: str, what: str, obj):
    """``(keys, arrays, is_dict)`` for a dict or list/tuple of arrays (keys: names or indices)."""
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        for k in keys:
            if not isinstance(k, str):
                raise TypeError(f"{func}: the keys of {what} must be strings, got {k!r}")
        return keys, [obj[k] for k in keys], True
    if isinstance(obj, (list, tuple)):
        return list(range(len(obj))), list(obj), False
    if isinstance(obj, np.ndarray):
        raise TypeError(
            f"{func}: {what} must be a list or dict of arrays, got a single ndarray; "
            f"wrap it in a list: [array]")
    raise TypeError(
        f"{func}: {what} must be a list or dict of numpy arrays, got {type(obj).__name__}")


def labels(what: str, keys) -> list:
    """Names for messages: ``params['W1']`` or ``params[0]``."""
    return [f"{what}[{k!r}]" for k in keys]


def check_disjoint(func: str, names, arrays) -> None:
    """No two (contiguous) arrays may overlap in memory; O(k log k) by sorting their extents."""
    spans = []
    for name, a in zip(names, arrays):
        if a.size:
            lo = a.__array_interface__["data"][0]
            spans.append((lo, lo + a.nbytes, name))
    spans.sort(key=lambda s: s[0])
    for (lo_a, hi_a, name_a), (lo_b, _, name_b) in zip(spans, spans[1:]):
        if lo_b < hi_a:
            raise ValueError(
                f"{func}: {name_a} and {name_b} share memory; every array must be a "
                f"separate buffer")


def match(func: str, what: str, obj, keys, is_dict: bool, reference: str) -> list:
    """The arrays of ``obj`` in the order of ``keys`` (the structure of ``reference``).

    A dict must have exactly ``keys``; a list must have ``len(keys)`` entries. Errors name
    the missing or extra keys.
    """
    if is_dict:
        if not isinstance(obj, Mapping):
            raise TypeError(
                f"{func}: {what} must be a dict with the keys of {reference}, "
                f"got {type(obj).__name__}")
        missing = [k for k in keys if k not in obj]
        if missing or len(obj) != len(keys):
            extra = [k for k in obj if k not in set(keys)]
            msg = f"{func}: {what} must have exactly the keys of {reference}"
            if missing:
                msg += f"; missing {missing}"
                hinted = [k for k in missing if ("d" + k) in obj]
                if hinted:
                    msg += (f" (found {['d' + k for k in hinted]}: pass "
                            f"{{k: grads['d' + k] for k in {reference}}})")
            if extra:
                msg += f"; unexpected {extra}"
            raise ValueError(msg)
        return [obj[k] for k in keys]
    if not isinstance(obj, (list, tuple)):
        raise TypeError(
            f"{func}: {what} must be a list of {len(keys)} arrays like {reference}, "
            f"got {type(obj).__name__}")
    if len(obj) != len(keys):
        raise ValueError(
            f"{func}: {what} must have {len(keys)} arrays like {reference}, got {len(obj)}")
    return list(obj)


def check_grads_apart(func: str, grad_names, grads, written_names, written) -> None:
    """No gradient may share memory with a parameter or a state buffer (``written``, named
    by ``written_names``, a sequence read only for the message); gradients may share memory
    with each other (they are only read). One sort of the extents, O(k log k) in the number
    of arrays, independent of their sizes, compiled (``_checks.grads_apart``). (The
    compiled multi-tensor kernels make the same check themselves within one call; this
    serves the other backends and steps made of several calls.)"""
    _grads_apart(func, grad_names, grads if type(grads) is list else list(grads),
                 written_names, written if type(written) is list else list(written))


def check_bindings(func: str, containers) -> None:
    """Refuse a step after a key of the user's dict (or an entry of their list) was
    rebound to another array: the optimizer updates the arrays it was given in place,
    and would silently go on updating the old one. ``containers``: (the user's dict or
    list or None, the keys, the arrays given) per group. O(number of arrays)."""
    for container, keys, given, is_dict in containers:
        if container is None:
            continue
        if is_dict:
            try:
                same = all(map(_is, map(container.__getitem__, keys), given))
            except KeyError:
                same = False
            if not same:
                key = next(k for k, a in zip(keys, given) if container.get(k) is not a)
                raise ValueError(
                    f"{func}: params[{key!r}] was replaced by another array after the "
                    f"optimizer was created; it updates the arrays it was given in "
                    f"place. Assign into the array instead (params[{key!r}][...] = "
                    f"new_values), or create a new optimizer (load_state to resume)")
        elif len(container) != len(given) or not all(map(_is, container, given)):
            raise ValueError(
                f"{func}: the params list was changed after the optimizer was created; it "
                f"updates the arrays it was given in place. Assign into them instead "
                f"(params[i][...] = new_values), or create a new optimizer")
