"""RAdam, the rectified Adam of Liu et al. (2020): ``radam_step`` and :class:`RAdam`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["radam_step", "RAdam"]

_RADAM = _dispatch.call("radam")


def radam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
               exp_avg_sq: np.ndarray, *, step: int, lr: float = 1e-3, beta1: float = 0.9,
               beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
               decoupled_weight_decay: bool = False, maximize: bool = False,
               backend: str = "auto") -> None:
    r"""RAdam (rectified Adam; L2 or decoupled weight decay), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} \;(+\, \lambda\theta \text{ unless decoupled}) \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) \quad\text{(decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        \hat m = m / (1-\beta_1^t) \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t} \\
        \theta &\leftarrow \theta - \text{lr}\,\hat m\,
            \frac{\sqrt{1-\beta_2^t}}{\sqrt{v} + \epsilon}\, r_t, \quad
            r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}
                             {(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
            \qquad\text{if } \rho_t > 5 \\
        \theta &\leftarrow \theta - \text{lr}\,\hat m \qquad\text{otherwise (the first
            steps: SGD with momentum)}

    Whether :math:`\rho_t > 5` depends on the step only, so it is decided once per call.
    The update is evaluated in the order of torch's for-loop implementation.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    exp_avg, exp_avg_sq : ndarray
        First and second moments :math:`m, v` (start at zero), updated in place.
    step : int
        The 1-based step count :math:`t` of this update (1 on the first call).
    lr : float, default 1e-3
    beta1, beta2 : float, default 0.9, 0.999
        Decay rates of the moments, in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`: an L2 term added to the gradient, or with
        ``decoupled_weight_decay=True`` a decay of the parameters (as AdamW).
    decoupled_weight_decay : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _RADAM((param, grad, exp_avg, exp_avg_sq), (),
           (step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize),
           backend)


class RAdam(StateDtype, Optimizer):
    r"""RAdam, the rectified Adam (Liu et al., 2020), with L2 or decoupled weight decay.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta \;\text{(L2)}, \qquad
        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda) \;\text{(decoupled)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        \hat m = m / (1-\beta_1^t) \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1, \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t} \\
        \theta &\leftarrow \theta - \text{lr}\,\hat m\,
            \frac{\sqrt{1-\beta_2^t}}{\sqrt{v} + \epsilon}\, r_t \quad\text{if }
            \rho_t > 5, \quad \theta - \text{lr}\,\hat m \text{ otherwise}

    with :math:`r_t = \sqrt{(\rho_t-4)(\rho_t-2)\rho_\infty /
    ((\rho_\infty-4)(\rho_\infty-2)\rho_t)}`. State: ``exp_avg``, ``exp_avg_sq``, starting
    at zero; ``t`` is the step count, also the argument of an ``lr`` schedule.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-8
    weight_decay : float, default 0
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

    _kernels = ("radam",)
    _compressed = ("bfloat16", "int8")
    _int8_bounds = (("exp_avg", "exp_avg_sq", "beta1", "beta2"),)

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            betas=betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize), backend,
            skip_nonfinite)
