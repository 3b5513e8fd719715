"""ASGD (averaged stochastic gradient descent): ``asgd_step`` and :class:`ASGD`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["asgd_step", "ASGD"]

_ASGD = _dispatch.call("asgd")


def asgd_step(param: np.ndarray, grad: np.ndarray, ax: np.ndarray, *, step: int,
              lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6,
              weight_decay: float = 0.0, maximize: bool = False,
              backend: str = "auto") -> None:
    r"""ASGD (averaged stochastic gradient descent), in place.

    .. math::

        \eta_t &= \text{lr} / (1 + \lambda_\eta\, \text{lr}\, (t-1))^\alpha, \qquad
        \mu_t = 1 / \max(1,\, t - 1 - t_0) \\
        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        \theta &\leftarrow \theta\,(1 - \lambda_\eta \eta_t) - \eta_t\, g \\
        \bar\theta &\leftarrow \theta \;\text{ if } \mu_t = 1, \text{ else }
            \bar\theta + \mu_t (\theta - \bar\theta)

    (:math:`\lambda_\eta` is ``lambd``, :math:`\lambda` is ``weight_decay``). As in torch,
    step :math:`t` uses the :math:`\eta` and :math:`\mu` computed after step :math:`t-1`
    (:math:`\eta_1 = \text{lr}`, :math:`\mu_1 = 1`), rounded to float32 as torch keeps them
    (0-dim tensors of its default dtype), and the decay multiplies :math:`\theta` before the
    gradient step is subtracted.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    ax : ndarray
        The averaged parameters :math:`\bar\theta`, updated in place (start at zero: the
        first step, with :math:`\mu_1 = 1`, overwrites them).
    step : int
        The 1-based step count :math:`t`.
    lr : float, default 1e-2
    lambd : float, default 1e-4
        Decay term, ``>= 0``.
    alpha : float, default 0.75
        Power of the :math:`\eta` decay, ``>= 0``.
    t0 : float, default 1e6
        The step after which averaging starts, ``>= 0``.
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _ASGD((param, grad, ax), (),
          (step, lr, lambd, alpha, t0, weight_decay, maximize), backend)


class ASGD(StateDtype, Optimizer):
    r"""ASGD (averaged stochastic gradient descent), torch.optim.ASGD.

    .. math::

        \eta_t &= \text{lr} / (1 + \lambda_\eta\, \text{lr}\, (t-1))^\alpha, \qquad
        \mu_t = 1 / \max(1,\, t - 1 - t_0) \\
        \theta &\leftarrow \theta\,(1 - \lambda_\eta \eta_t) - \eta_t\,
            (\pm\,\text{grad} + \lambda\,\theta) \\
        \bar\theta &\leftarrow \theta \;\text{ if } \mu_t = 1, \text{ else }
            \bar\theta + \mu_t (\theta - \bar\theta)

    State: ``ax`` (:math:`\bar\theta`, torch's name), starting at zero (the first step
    copies the parameters into it). torch's per-array ``eta`` and ``mu`` depend only on the
    step count and are computed per step (float32-rounded, as torch keeps them). With a
    constant ``lr`` the steps are torch's; with a schedule, step :math:`t` uses the
    schedule's value at :math:`t` in :math:`\eta_t` (torch computes :math:`\eta_t` at the
    end of step :math:`t-1` with that step's lr).

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
    lambd : float, default 1e-4
    alpha : float, default 0.75
    t0 : float, default 1e6
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    state_dtype : {None, "float32", "float64", "bfloat16"}, default None
        How the state is stored (keyword-only). ``None``: the parameters' dtype.
        ``"bfloat16"`` (float32 parameters): every state buffer in 2 bytes per element, the
        step computed in float32 by the same kernel, chunk by chunk in cache, and the state
        rounded to nearest even after it.
    """

    _kernels = ("asgd",)
    _compressed = ("bfloat16",)

    def __init__(self, params: Params, lr: LR = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(lambd=lambd, alpha=alpha, t0=t0,
                                          weight_decay=weight_decay, maximize=maximize),
                         backend, skip_nonfinite)
