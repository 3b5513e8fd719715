"""Adamax (Adam with the infinity norm): ``adamax_step`` and :class:`Adamax`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["adamax_step", "Adamax"]

_ADAMAX = _dispatch.call("adamax")


def adamax_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                exp_inf: np.ndarray, *, step: int, lr: float = 2e-3, beta1: float = 0.9,
                beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
                maximize: bool = False, backend: str = "auto") -> None:
    r"""Adamax (Adam with the infinity norm), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        u \leftarrow \max(\beta_2 u,\; |g| + \epsilon) \\
        \theta &\leftarrow \theta - \frac{\text{lr}}{1-\beta_1^t}\, \frac{m}{u}

    As in torch, ``eps`` is added to :math:`|g|` inside the maximum (so :math:`u \ge
    \epsilon`), and a NaN in either operand of the maximum gives NaN (``torch.maximum``).

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    exp_avg, exp_inf : ndarray
        First moment :math:`m` and infinity norm :math:`u` (start at zero), updated in place.
    step : int
        The 1-based step count :math:`t` of this update (1 on the first call).
    lr : float, default 2e-3
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of :math:`m` and :math:`u`, in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, an L2 term added to the gradient.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _ADAMAX((param, grad, exp_avg, exp_inf), (),
            (step, lr, beta1, beta2, eps, weight_decay, maximize), backend)


class Adamax(StateDtype, Optimizer):
    r"""Adamax, the variant of Adam based on the infinity norm (Kingma & Ba, section 7.1).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        u \leftarrow \max(\beta_2 u,\; |g| + \epsilon) \\
        \theta &\leftarrow \theta - \frac{\text{lr}}{1-\beta_1^t}\, \frac{m}{u}

    State: ``exp_avg`` (:math:`m`) and ``exp_inf`` (:math:`u`), both starting at zero, as
    in torch; ``t`` is the step count, also the argument of an ``lr`` schedule.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 2e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-8
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

    _kernels = ("adamax",)
    _compressed = ("bfloat16", "int8")

    def __init__(self, params: Params, lr: LR = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False, *,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize), backend,
            skip_nonfinite)
