"""The validation layer: every check of every public kernel, shared by all backends.

Array checks live in the compiled :func:`fastoptim._checks.check_arrays`; this module checks
hyperparameters. Every failure raises ``TypeError`` (wrong kind of value) or ``ValueError``
(right kind, wrong value) whose message names the function, the argument, what was expected
and what was given. Nothing here touches array data, so a failed check leaves every array as
it was.
"""
import math
from numbers import Integral, Real

import numpy as np

from ._checks import check_arrays, check_scalars

__all__ = [
    "check_arrays", "check_scalars", "scalar_spec", "real", "nonnegative", "positive",
    "unit_interval", "closed_unit_interval", "flag", "step_count", "steps_taken",
    "forbid_unused", "MAX_STEP", "eps_for_dtype",
]


def real(func: str, name: str, value) -> float:
    """A finite real number (not a bool), returned as a Python float."""
    if type(value) is not float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
            raise TypeError(
                f"{func}: {name} must be a real number, got {type(value).__name__} {value!r}")
        try:
            value = float(value)
        except OverflowError:           # an int or Fraction beyond float's range: 10**400
            raise ValueError(f"{func}: {name} must be finite, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{func}: {name} must be finite, got {value!r}")
    return value


def nonnegative(func: str, name: str, value) -> float:
    value = real(func, name, value)
    if value < 0.0:
        raise ValueError(f"{func}: {name} must be >= 0, got {value!r}")
    return value


def positive(func: str, name: str, value) -> float:
    value = real(func, name, value)
    if value <= 0.0:
        raise ValueError(f"{func}: {name} must be > 0, got {value!r}")
    return value


def unit_interval(func: str, name: str, value) -> float:
    """0 <= value < 1 (a decay rate such as beta)."""
    value = real(func, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{func}: {name} must be in [0, 1), got {value!r}")
    return value


def closed_unit_interval(func: str, name: str, value) -> float:
    """0 <= value <= 1 (dampening)."""
    value = real(func, name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{func}: {name} must be in [0, 1], got {value!r}")
    return value


def flag(func: str, name: str, value) -> bool:
    if type(value) is bool:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{func}: {name} must be a bool, got {type(value).__name__} {value!r}")


# Step counts are C ``long long`` in the compiled kernels and int64 in checkpoints.
MAX_STEP = 2**63 - 1


def step_count(func: str, name: str, value) -> int:
    """An integer ``1 <= t <= 2**63 - 1`` (the 1-based step count t)."""
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
            raise TypeError(
                f"{func}: {name} must be an integer, got {type(value).__name__} {value!r}")
        value = int(value)
    if value < 1:
        raise ValueError(f"{func}: {name} must be >= 1 (steps count from 1), got {value!r}")
    if value > MAX_STEP:
        raise ValueError(
            f"{func}: {name} must fit in 63 bits (<= 2**63 - 1), got {value!r}")
    return value


def steps_taken(func: str, name: str, value) -> int:
    """A count of steps already taken: an integer ``0 <= t <= 2**63 - 1``.

    Integral values only: a float, even ``3.0``, is refused (a checkpoint holding 3.7 must
    not silently become 3). Raises ``ValueError`` for every unusable value, so that a
    checkpoint reader can report one kind of error.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(
            f"{func}: {name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if not 0 <= value <= MAX_STEP:
        raise ValueError(f"{func}: {name} must be in [0, 2**63 - 1], got {value!r}")
    return value


def eps_for_dtype(func: str, name: str, value: float, dtype) -> float:
    """``value`` (already checked ``> 0``) must be a positive *normal* number of ``dtype``:
    ``eps=1e-50`` is 0 in float32 and would divide zero by zero on a zero gradient."""
    tiny = _TINY.get(np.dtype(dtype).char)
    if tiny is None:
        tiny = float(np.finfo(dtype).tiny)
    if value < tiny:
        raise ValueError(
            f"{func}: {name}={value!r} underflows {np.dtype(dtype).name} (the smallest "
            f"normal {np.dtype(dtype).name} is {tiny!r}); use a larger {name}")
    return value


_TINY = {"f": float(np.finfo(np.float32).tiny), "d": float(np.finfo(np.float64).tiny)}


def forbid_unused(func: str, name: str, value, needed_when: str) -> None:
    """An optional state array passed where the formula does not use it is a mistake."""
    if value is not None:
        raise ValueError(
            f"{func}: {name} is only used when {needed_when}; pass {name}=None "
            f"or set {needed_when}")


# Kind name -> check, in the order of the enum in _checks.pyx.
SCALAR_KINDS = {
    "real": real, "nonnegative": nonnegative, "positive": positive,
    "unit_interval": unit_interval, "closed_unit_interval": closed_unit_interval,
    "flag": flag, "step_count": step_count,
}


def scalar_spec(**kinds: str) -> tuple:
    """The ``spec`` of :func:`check_scalars` for hyperparameters ``name=kind`` (kind: a key
    of :data:`SCALAR_KINDS`), checked in the order given. Build it once per function::

        _ADAM = scalar_spec(step="step_count", lr="nonnegative", beta1="unit_interval")
        step, lr, beta1 = check_scalars("adam_step", _ADAM, (step, lr, beta1))

    Equivalent to calling each kind's check in turn, in one compiled call.
    """
    order = list(SCALAR_KINDS)
    return tuple((name, order.index(kind), SCALAR_KINDS[kind]) for name, kind in kinds.items())


def betas(func: str, value) -> tuple:
    """torch's ``betas=(beta1, beta2)``: a pair, each in ``[0, 1)``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{func}: betas must be a pair (beta1, beta2), got {value!r}")
    return (unit_interval(func, "betas[0]", value[0]),
            unit_interval(func, "betas[1]", value[1]))
