r"""Learning-rate schedules: plain callables of a count ``0, 1, 2, ...``.

Each schedule is a small object ``lr = schedule(count)`` with a readable ``repr``. The count
is whatever the caller chooses:

* **per epoch**, the course's way (``epoch_num`` starts at 1)::

      decay = fastoptim.schedules.inverse_time_decay(0.2, decay_rate=1.0)
      for epoch in range(1, num_epochs + 1):
          opt.lr = decay(epoch)
          for X_t, Y_t in fastoptim.minibatches(X, Y, 64, axis=1, seed=epoch):
              ...

* **per step**: pass the schedule itself as ``lr``; the optimizer calls it with its step
  count ``t = 1, 2, ...`` (the same ``t`` as Adam's bias correction)::

      opt = fastoptim.Adam(parameters, lr=fastoptim.schedules.cosine_decay(1e-3, total=10_000))

* **from 0**, as a ``for epoch in range(num_epochs)`` loop counts (optax's and Keras's
  convention): every schedule is defined at count 0 and gives its starting value there
  (``inverse_time_decay(0.2, 1.0)(0) == 0.2``), except :class:`inverse_sqrt_decay`, whose
  formula divides by ``sqrt(count)`` and raises.

Arguments are checked when the schedule is made; a count must be an integer ``>= 0``.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from numbers import Integral
from typing import Sequence

from . import _validation as _v

__all__ = ["Schedule", "inverse_time_decay", "exponential_decay", "inverse_sqrt_decay",
           "step_decay", "linear_decay", "piecewise_constant", "cosine_decay"]


class Schedule:
    """Base class: validates the count, then calls :meth:`value`; ``repr`` shows the arguments."""

    _args: dict

    #: the smallest count the formula is defined at
    first_count = 0

    def __call__(self, count: int) -> float:
        f = type(self).__name__
        if isinstance(count, Integral) and not isinstance(count, bool) and count == 0:
            if self.first_count > 0:
                raise ValueError(f"{f}: count must be >= {self.first_count} (the formula "
                                 f"divides by sqrt(count)), got 0")
            return float(self.value(0))
        count = _v.step_count(f, "count", count)
        return float(self.value(count))

    def value(self, count: int) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other._args == self._args

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self._args.items())))


def _count(f: str, name: str, value) -> int:
    """A positive integer argument (decay_steps, every, total, tau...)."""
    return _v.step_count(f, name, value)


class _RateDecay(Schedule):
    """Shared arguments of the decays by ``decay_rate`` every ``decay_steps`` counts."""

    def __init__(self, lr0: float, decay_rate: float, decay_steps: int = 1,
                 staircase: bool = False) -> None:
        f = type(self).__name__
        rate = (_v.positive if self._positive_rate else _v.nonnegative)(
            f, "decay_rate", decay_rate)
        self._args = dict(lr0=_v.nonnegative(f, "lr0", lr0), decay_rate=rate,
                          decay_steps=_count(f, "decay_steps", decay_steps),
                          staircase=_v.flag(f, "staircase", staircase))

    def _progress(self, count: int) -> float:
        """``p = count / decay_steps``, floored with ``staircase``."""
        a = self._args
        return count // a["decay_steps"] if a["staircase"] else count / a["decay_steps"]


class inverse_time_decay(_RateDecay):
    r"""``lr0 / (1 + decay_rate * p)`` with ``p = count / decay_steps`` (``floor`` if staircase).

    The course's decay ``lr0 / (1 + decay_rate * epoch_num)``; with ``staircase=True`` and
    ``decay_steps=time_interval`` it is its ``schedule_lr_decay``. With lr0 0.2 and
    decay_rate 1, epochs 1-4 give 0.1, 0.0667, 0.05, 0.04. ``decay_rate >= 0``.
    """

    _positive_rate = False

    def value(self, count):
        return self._args["lr0"] / (1.0 + self._args["decay_rate"] * self._progress(count))


class exponential_decay(_RateDecay):
    r"""``lr0 * decay_rate ** p`` with ``p = count / decay_steps`` (``floor`` if staircase).

    The course's ``0.95**epoch_num * lr0`` is ``exponential_decay(lr0, 0.95)``.
    ``decay_rate > 0``.
    """

    _positive_rate = True

    def value(self, count):
        return self._args["lr0"] * self._args["decay_rate"] ** self._progress(count)


class inverse_sqrt_decay(Schedule):
    r"""``k / sqrt(count) * lr0`` (the course's ``k / sqrt(epoch_num) * lr0``); counts
    from 1 (count 0 raises)."""

    first_count = 1

    def __init__(self, lr0: float, k: float = 1.0) -> None:
        f = "inverse_sqrt_decay"
        self._args = dict(lr0=_v.nonnegative(f, "lr0", lr0), k=_v.positive(f, "k", k))

    def value(self, count):
        return self._args["k"] / math.sqrt(count) * self._args["lr0"]


class step_decay(Schedule):
    r"""``lr0 * factor ** floor(count / every)``: a staircase, dropping when the count
    reaches ``every``, ``2 * every``, ... (``factor=0.5`` halves it each time)."""

    def __init__(self, lr0: float, factor: float = 0.5, *, every: int) -> None:
        f = "step_decay"
        self._args = dict(lr0=_v.nonnegative(f, "lr0", lr0),
                          factor=_v.positive(f, "factor", factor),
                          every=_count(f, "every", every))

    def value(self, count):
        a = self._args
        return a["lr0"] * a["factor"] ** (count // a["every"])


class linear_decay(Schedule):
    r"""Linear from ``lr0`` to ``lr_final`` at ``count = tau``, then constant (Goodfellow et
    al., *Deep Learning*, 8.3.1): ``(1 - a) * lr0 + a * lr_final`` with
    ``a = min(count / tau, 1)``."""

    def __init__(self, lr0: float, lr_final: float, tau: int) -> None:
        f = "linear_decay"
        self._args = dict(lr0=_v.nonnegative(f, "lr0", lr0),
                          lr_final=_v.nonnegative(f, "lr_final", lr_final),
                          tau=_count(f, "tau", tau))

    def value(self, count):
        a = self._args
        alpha = min(count / a["tau"], 1.0)
        return (1.0 - alpha) * a["lr0"] + alpha * a["lr_final"]


class piecewise_constant(Schedule):
    r"""``values[i]`` for ``boundaries[i-1] <= count < boundaries[i]``: starts at
    ``values[0]`` and switches to ``values[i+1]`` when the count reaches ``boundaries[i]``.

    ``boundaries`` are strictly increasing integers ``>= 1``; ``len(values) ==
    len(boundaries) + 1``.
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        f = "piecewise_constant"
        if isinstance(boundaries, (str, bytes)) or not hasattr(boundaries, "__len__"):
            raise TypeError(f"{f}: boundaries must be a sequence of integers, got {boundaries!r}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(f"{f}: values must be a sequence of numbers, got {values!r}")
        bounds = tuple(_count(f, f"boundaries[{i}]", b) for i, b in enumerate(boundaries))
        vals = tuple(_v.nonnegative(f, f"values[{i}]", x) for i, x in enumerate(values))
        if len(vals) != len(bounds) + 1:
            raise ValueError(
                f"{f}: values must have one more entry than boundaries, got "
                f"{len(vals)} values for {len(bounds)} boundaries")
        for i in range(1, len(bounds)):
            if bounds[i] <= bounds[i - 1]:
                raise ValueError(
                    f"{f}: boundaries must be strictly increasing, got {bounds!r}")
        self._args = dict(boundaries=bounds, values=vals)

    def value(self, count):
        return self._args["values"][bisect_right(self._args["boundaries"], count)]


class cosine_decay(Schedule):
    r"""Linear warmup to ``lr0`` over ``warmup`` counts, then a half cosine down to ``lr_min``
    at ``count = total``, constant after.

    ``lr0 * count / warmup`` for ``count <= warmup``; otherwise
    ``lr_min + (lr0 - lr_min) * (1 + cos(pi * p)) / 2`` with
    ``p = min((count - warmup) / (total - warmup), 1)``.
    """

    def __init__(self, lr0: float, total: int, lr_min: float = 0.0, warmup: int = 0) -> None:
        f = "cosine_decay"
        lr0 = _v.nonnegative(f, "lr0", lr0)
        total = _count(f, "total", total)
        lr_min = _v.nonnegative(f, "lr_min", lr_min)
        if isinstance(warmup, (bool,)) or not isinstance(warmup, Integral) or warmup < 0:
            raise ValueError(f"{f}: warmup must be an integer >= 0, got {warmup!r}")
        if lr_min > lr0:
            raise ValueError(f"{f}: lr_min must be <= lr0, got lr_min={lr_min!r}, lr0={lr0!r}")
        if warmup >= total:
            raise ValueError(
                f"{f}: warmup must be < total, got warmup={warmup!r}, total={total!r}")
        self._args = dict(lr0=lr0, total=total, lr_min=lr_min, warmup=int(warmup))

    def value(self, count):
        a = self._args
        if a["warmup"] and count <= a["warmup"]:
            return a["lr0"] * count / a["warmup"]
        p = min((count - a["warmup"]) / (a["total"] - a["warmup"]), 1.0)
        return a["lr_min"] + (a["lr0"] - a["lr_min"]) * 0.5 * (1.0 + math.cos(math.pi * p))
