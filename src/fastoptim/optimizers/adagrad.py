"""Adagrad: ``adagrad_step`` and :class:`Adagrad`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["adagrad_step", "Adagrad"]

_ADAGRAD = _dispatch.call("adagrad")


def adagrad_step(param: np.ndarray, grad: np.ndarray, state_sum: np.ndarray, *, step: int,
                 lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False, backend: str = "auto") -> None:
    r"""Adagrad, in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        \tilde\eta &= \text{lr} / (1 + (t-1)\,\text{lr\_decay}) \\
        G &\leftarrow G + g^2, \qquad
        \theta \leftarrow \theta - \tilde\eta\, g / (\sqrt{G} + \epsilon)

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    state_sum : ndarray
        Sum of squared gradients :math:`G`, updated in place (start at zero, or at the
        optimizer's ``initial_accumulator_value``).
    step : int
        The 1-based step count :math:`t`.
    lr : float, default 1e-2
    lr_decay : float, default 0
        ``>= 0``.
    weight_decay : float, default 0
    eps : float, default 1e-10
        ``> 0``.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _ADAGRAD((param, grad, state_sum), (),
             (step, lr, lr_decay, weight_decay, eps, maximize), backend)


class Adagrad(StateDtype, Optimizer):
    r"""Adagrad.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta, \qquad
        \tilde\eta = \text{lr} / (1 + (t-1)\,\text{lr\_decay}) \\
        G &\leftarrow G + g^2, \qquad
        \theta \leftarrow \theta - \tilde\eta\, g / (\sqrt{G} + \epsilon)

    State: ``state_sum`` (:math:`G`; ``sum`` in fastoptim 0.1 checkpoints, still read),
    starting at ``initial_accumulator_value``.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
        ``>= 0``. A parameter group's own value fills that group's ``state_sum`` (torch
        2.13 fills every group's with the constructor's).
    eps : float, default 1e-10
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How the state is stored (keyword-only). ``None``: the parameters' dtype.
        ``"bfloat16"`` (float32 parameters): every state buffer in 2 bytes per element, the
        step computed in float32 by the same kernel, chunk by chunk in cache, and the state
        rounded to nearest even after it. ``"int8"``: every state buffer as bitsandbytes'
        blockwise 8-bit code (about 1.03 bytes per element: one code each, one float32
        absmax per block of 256; the unsigned code for a buffer kept ``>= 0``), stepped the
        same way and requantized after it; arrays under 4,096 elements keep float32 state.
    """

    _kernels = ("adagrad",)
    _compressed = ("bfloat16", "int8")
    _extra_kinds = {"initial_accumulator_value": "nonnegative"}

    def __init__(self, params: Params, lr: LR = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
            maximize=maximize), backend, skip_nonfinite)

    def _state_fill(self, name, hyper):
        return hyper["initial_accumulator_value"]
