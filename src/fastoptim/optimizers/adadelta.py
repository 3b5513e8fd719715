"""Adadelta: ``adadelta_step`` and :class:`Adadelta`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["adadelta_step", "Adadelta"]

_ADADELTA = _dispatch.call("adadelta")


def adadelta_step(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray,
                  acc_delta: np.ndarray, *, lr: float = 1.0, rho: float = 0.9,
                  eps: float = 1e-6, weight_decay: float = 0.0, maximize: bool = False,
                  backend: str = "auto") -> None:
    r"""Adadelta (Zeiler 2012), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta \\
        v &\leftarrow \rho\, v + (1-\rho)\, g^2 \\
        \Delta &= \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
        u \leftarrow \rho\, u + (1-\rho)\, \Delta^2 \\
        \theta &\leftarrow \theta - \text{lr}\, \Delta

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    square_avg, acc_delta : ndarray
        The running averages :math:`v` of :math:`g^2` and :math:`u` of :math:`\Delta^2`
        (start at zero), updated in place.
    lr : float, default 1.0
        Scales :math:`\Delta` (the method itself has no learning rate).
    rho : float, default 0.9
        Decay rate of both averages, in ``[0, 1]``.
    eps : float, default 1e-6
        ``> 0``, inside both square roots.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, an L2 term added to the gradient.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _ADADELTA((param, grad, square_avg, acc_delta), (),
              (lr, rho, eps, weight_decay, maximize), backend)


class Adadelta(StateDtype, Optimizer):
    r"""Adadelta (Zeiler 2012).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta, \qquad
        v \leftarrow \rho\, v + (1-\rho)\, g^2 \\
        \Delta &= \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g, \qquad
        u \leftarrow \rho\, u + (1-\rho)\, \Delta^2, \qquad
        \theta \leftarrow \theta - \text{lr}\, \Delta

    State: ``square_avg`` (:math:`v`) and ``acc_delta`` (:math:`u`), both starting at
    zero, as in torch.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1.0
    rho : float, default 0.9
        In ``[0, 1]``.
    eps : float, default 1e-6
    weight_decay : float, default 0
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

    _kernels = ("adadelta",)
    _compressed = ("bfloat16", "int8")

    def __init__(self, params: Params, lr: LR = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize), backend,
            skip_nonfinite)
