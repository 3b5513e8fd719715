r"""Exponentially weighted (moving) averages of scalars or arrays."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from . import _validation as _v
from ._backends import select as _select
from .functional import ewa_update

__all__ = ["ExponentialMovingAverage"]


class ExponentialMovingAverage:
    r"""Running exponentially weighted average of a stream of scalars or arrays.

    .. math::

        v_0 = 0, \qquad v_t = \beta\, v_{t-1} + (1 - \beta)\, \theta_t, \qquad
        \text{value} = \frac{v_t}{1 - \beta^t} \text{ (bias-corrected) or } v_t

    The course's temperature example: with :math:`\beta = 0.98` the bias-corrected average
    after two values is :math:`v_2 / (1 - 0.98^2) = v_2 / 0.0396`. It averages roughly the
    last :math:`1 / (1 - \beta)` values.

    For arrays the average is a buffer owned by this object, created at the first update
    (zeros of the value's dtype, shape and layout) and then updated in place by the fused
    :func:`fastoptim.ewa_update` kernel; every later value must have the same dtype, shape
    and layout. Use one instance per array for an EMA of model weights::

        ema = {k: ExponentialMovingAverage(0.999) for k in parameters}
        ...  # after each optimizer step
        for k, W in parameters.items():
            ema[k].update(W)

    Parameters
    ----------
    beta : float, default 0.9
        In ``[0, 1)``.
    bias_correction : bool, default True
        Divide by :math:`1 - \beta^t` in :attr:`value`.
    backend : {"auto", "cython", "numba", "numpy"}
        Backend of the array updates.
    """

    def __init__(self, beta: float = 0.9, bias_correction: bool = True, *,
                 backend: str = "auto") -> None:
        f = "ExponentialMovingAverage"
        self.beta = _v.unit_interval(f, "beta", beta)
        self.bias_correction = _v.flag(f, "bias_correction", bias_correction)
        _select(f, backend, 0)
        self.backend = backend
        self._average: Union[None, float, np.ndarray] = None
        self._t = 0

    @property
    def t(self) -> int:
        """Number of values averaged so far."""
        return self._t

    def update(self, value: Union[float, np.ndarray]) -> None:
        """Fold one value (a real number, or an array updated into the buffer in place) in."""
        f = "ExponentialMovingAverage.update"
        if isinstance(value, np.ndarray):
            if self._average is None:
                plain = _v.check_arrays(f, ("value",), (value,), 0)
                if plain is not None:
                    value = plain[0]    # a subclass: average into a plain array
                average = np.zeros_like(value)
                ewa_update(average, value, beta=self.beta, backend=self.backend)
                self._average = average
            elif isinstance(self._average, np.ndarray):
                ewa_update(self._average, value, beta=self.beta, backend=self.backend)
            else:
                raise TypeError(
                    f"{f}: this average holds scalars, got an array of shape {value.shape}")
        else:
            value = _v.real(f, "value", value)
            if isinstance(self._average, np.ndarray):
                raise TypeError(f"{f}: this average holds arrays, got the scalar {value!r}")
            previous = 0.0 if self._average is None else self._average
            self._average = self.beta * previous + (1.0 - self.beta) * value
        self._t += 1

    @property
    def value(self) -> Optional[Union[float, np.ndarray]]:
        """The (bias-corrected) average: a float, a new array, or ``None`` before any update."""
        if self._average is None:
            return None
        if self.bias_correction:
            correction = 1.0 - self.beta ** self._t
            if isinstance(self._average, np.ndarray):
                return self._average / self._average.dtype.type(correction)
            return self._average / correction
        if isinstance(self._average, np.ndarray):
            return self._average.copy(order="K")
        return self._average

    def __repr__(self) -> str:
        return (f"ExponentialMovingAverage(beta={self.beta!r}, "
                f"bias_correction={self.bias_correction!r}, t={self._t})")
