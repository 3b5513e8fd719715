"""NAdam, Adam with Nesterov momentum (Dozat, 2016): ``nadam_step`` and :class:`NAdam`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["nadam_step", "NAdam"]

_NADAM = _dispatch.call("nadam")


def nadam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
               exp_avg_sq: np.ndarray, *, step: int, mu_product: float, lr: float = 2e-3,
               beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
               weight_decay: float = 0.0, momentum_decay: float = 4e-3,
               decoupled_weight_decay: bool = False, maximize: bool = False,
               backend: str = "auto") -> float:
    r"""NAdam (Adam with Nesterov momentum; L2 or decoupled weight decay), in place.

    **Returns the updated** ``mu_product``: the one functional step that returns a value.
    NAdam's momentum schedule needs the running product of :math:`\mu_1 \dots \mu_t`, a
    scalar state that cannot be recomputed cheaply from :math:`t`; pass ``mu_product=1.0``
    on the first step and the returned value on the next::

        mu_product = 1.0
        for t in range(1, n_steps + 1):
            mu_product = nadam_step(param, grad, m, v, step=t, mu_product=mu_product)

    .. math::

        g &\leftarrow \pm\,\text{grad} \;(+\, \lambda\theta \text{ unless decoupled}) \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) \quad\text{(decoupled)} \\
        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{\,t\,\psi}\right), \qquad
        P_t = P_{t-1}\,\mu_t \quad (P_0 = 1) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        d = \sqrt{v / (1-\beta_2^t)} + \epsilon \\
        \theta &\leftarrow \theta - \text{lr}\,\frac{1-\mu_t}{1-P_t}\,\frac{g}{d}
            - \text{lr}\,\frac{\mu_{t+1}}{1-P_t\,\mu_{t+1}}\,\frac{m}{d}

    with :math:`\psi` the ``momentum_decay``. The update is evaluated in the order of
    torch's for-loop implementation. (torch keeps :math:`P_t` in its default dtype,
    float32 unless changed; here it is a Python float, a double.)

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    exp_avg, exp_avg_sq : ndarray
        First and second moments :math:`m, v` (start at zero), updated in place.
    step : int
        The 1-based step count :math:`t` of this update (1 on the first call).
    mu_product : float
        :math:`P_{t-1}`, the product of the earlier steps' :math:`\mu` (``1.0`` before the
        first step), in ``[0, 1]``: the value the previous call returned.
    lr : float, default 2e-3
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of the moments, in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`: an L2 term added to the gradient, or with
        ``decoupled_weight_decay=True`` a decay of the parameters (as AdamW).
    momentum_decay : float, default 4e-3
        :math:`\psi \ge 0`.
    decoupled_weight_decay : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}

    Returns
    -------
    float
        :math:`P_t = P_{t-1}\,\mu_t`, the ``mu_product`` of the next call.
    """
    return _NADAM((param, grad, exp_avg, exp_avg_sq), (),
                  (step, mu_product, lr, beta1, beta2, eps, weight_decay, momentum_decay,
                   decoupled_weight_decay, maximize), backend)


class NAdam(StateDtype, Optimizer):
    r"""NAdam, Adam with Nesterov momentum (Dozat, 2016), with L2 or decoupled weight decay.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta \;\text{(L2)}, \qquad
        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda) \;\text{(decoupled)} \\
        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{\,t\,\psi}\right), \qquad
        P_t = P_{t-1}\,\mu_t \quad (P_0 = 1) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        d = \sqrt{v / (1-\beta_2^t)} + \epsilon \\
        \theta &\leftarrow \theta - \text{lr}\,\frac{1-\mu_t}{1-P_t}\,\frac{g}{d}
            - \text{lr}\,\frac{\mu_{t+1}}{1-P_t\,\mu_{t+1}}\,\frac{m}{d}

    with :math:`\psi` the ``momentum_decay``. State: ``exp_avg``, ``exp_avg_sq`` (starting
    at zero) and, per array, the running product ``mu_product`` :math:`P_t` (starting at
    1, as torch's; a double here, torch's default dtype there), saved by
    :meth:`state_dict` under ``"scalars"``. ``t`` is the step count, also the argument of
    an ``lr`` schedule.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 2e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum_decay : float, default 4e-3
    decoupled_weight_decay : bool, default False
        Decay the parameters by ``lr * weight_decay`` instead of adding the L2 term to the
        gradient.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps`.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How the state is stored (keyword-only). ``None``: the parameters' dtype.
        ``"bfloat16"`` (float32 parameters): every state buffer in 2 bytes per element, the
        step computed in float32 by the same kernel on the state decoded in cache, and the
        state rounded to nearest even after it. ``"int8"``: both moments as bitsandbytes'
        blockwise 8-bit code (about 1.02 bytes per element each; the unsigned code for
        ``exp_avg_sq``), decoded, stepped and requantized the same way; arrays under 4,096
        elements keep float32 state. Quantized separately, an element's ``exp_avg_sq`` can
        round to 0 while its ``exp_avg`` does not (the zero-gradient trap), so the decoded
        ``exp_avg`` is first clamped to :math:`C_{t-1} \sqrt{v}`, the bound exact arithmetic
        keeps (:func:`fastoptim.lowmem.moment_bound`).
    """

    _kernels = ("nadam",)
    _compressed = ("bfloat16", "int8")
    _int8_bounds = (("exp_avg", "exp_avg_sq", "beta1", "beta2"),)

    def __init__(self, params: Params, lr: LR = 2e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize), backend,
            skip_nonfinite)
