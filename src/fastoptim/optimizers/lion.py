"""Lion (evolved sign momentum): ``lion_step`` and :class:`Lion`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["lion_step", "Lion"]

_LION = _dispatch.call("lion")


def lion_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, *,
              lr: float = 1e-4, beta1: float = 0.9, beta2: float = 0.99,
              weight_decay: float = 0.0, maximize: bool = False,
              backend: str = "auto") -> None:
    r"""Lion (evolved sign momentum, Chen et al. 2023), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} \\
        u &= \operatorname{sign}(\beta_1 m + (1-\beta_1)\, g) \\
        \theta &\leftarrow \theta - \text{lr}\,(u + \lambda\theta) \\
        m &\leftarrow \beta_2 m + (1-\beta_2)\, g

    The weight decay is decoupled (part of the step, not of :math:`g`), as in optax's
    ``lion`` and the paper. ``sign`` is ``np.sign``: 0 for a zero argument (that element
    then moves by the decay alone), NaN for NaN. There is no ``torch.optim`` peer.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    exp_avg : ndarray
        The momentum :math:`m` (starts at zero), updated in place.
    lr : float, default 1e-4
    beta1 : float, default 0.9
        Interpolation of the momentum and the gradient in the sign, in ``[0, 1)``.
    beta2 : float, default 0.99
        Decay rate of the momentum, in ``[0, 1)``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, decoupled.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _LION((param, grad, exp_avg), (), (lr, beta1, beta2, weight_decay, maximize), backend)


class Lion(StateDtype, Optimizer):
    r"""Lion (evolved sign momentum, Chen et al. 2023; optax's ``lion``).

    .. math::

        u = \operatorname{sign}(\beta_1 m + (1-\beta_1)\, g), \qquad
        \theta \leftarrow \theta - \text{lr}\,(u + \lambda\theta), \qquad
        m \leftarrow \beta_2 m + (1-\beta_2)\, g

    with :math:`g = \pm\,\text{grad}` and decoupled weight decay :math:`\lambda`. State:
    ``exp_avg`` (:math:`m`), starting at zero. Not in ``torch.optim``; the signed update has
    unit size per element, so a typical ``lr`` is 3-10x smaller than AdamW's.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-4
    betas : (float, float), default (0.9, 0.99)
        Each in ``[0, 1)``.
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How :math:`m` is stored (keyword-only). ``None``: the parameters' dtype;
        ``"bfloat16"``: 2 bytes per element, computed in float32 and stored rounded to
        nearest even (float32 parameters). ``"int8"``: bitsandbytes' blockwise signed 8-bit
        code (about 1.02 bytes per element), dequantized, updated and requantized per block;
        arrays under 4,096 elements keep float32 state. Both in one fused pass
        (:func:`fastoptim.lowmem.lion_lowmem_step`).
    """

    _kernels = ("lion",)
    _compressed = ("bfloat16", "int8")
    _fused = ("bfloat16", "int8")
    _moments = ("exp_avg",)

    def __init__(self, params: Params, lr: LR = 1e-4, betas: Tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *, state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            betas=betas, weight_decay=weight_decay, maximize=maximize), backend,
            skip_nonfinite)

    def _lowmem_state(self, param, kind):
        from .. import lowmem
        return lowmem.lion_state(param, kind)

    def _lowmem_steps(self, params, grads, columns, t, lr, hyper, backend):
        from .. import lowmem
        lowmem._lion_apply_many(params, grads, columns, lr=lr, beta1=hyper["beta1"],
                                beta2=hyper["beta2"], weight_decay=hyper["weight_decay"],
                                maximize=hyper["maximize"], backend=backend)
