"""Stochastic gradient descent, with momentum (classical, the course's EWA form, Nesterov):
the functional steps ``sgd_step`` and ``momentum_step`` and the class :class:`SGD`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["sgd_step", "momentum_step", "SGD"]

_SGD = _dispatch.call("sgd")
_MOMENTUM = _dispatch.call("momentum")


def sgd_step(param: np.ndarray, grad: np.ndarray, *, lr: float, weight_decay: float = 0.0,
             maximize: bool = False, backend: str = "auto") -> None:
    r"""Mini-batch gradient descent, in place.

    .. math::

        g \leftarrow \pm\,\text{grad} + \lambda\,\theta, \qquad
        \theta \leftarrow \theta - \text{lr}\; g

    Parameters
    ----------
    param : ndarray
        Parameters :math:`\theta`, updated in place.
    grad : ndarray
        Gradient of the loss with respect to ``param`` (may be read-only).
    lr : float
        Learning rate, ``>= 0``.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda`, ``>= 0``.
    maximize : bool, default False
        Ascend instead of descend (:math:`g = -\text{grad}`).
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _SGD((param, grad), (), (lr, weight_decay, maximize), backend)


def momentum_step(param: np.ndarray, grad: np.ndarray,
                  momentum_buffer: Optional[np.ndarray] = None, *, lr: float,
                  momentum: float = 0.9, dampening: float = 0.0, nesterov: bool = False,
                  weight_decay: float = 0.0, maximize: bool = False, backend: str = "auto",
                  velocity: Optional[np.ndarray] = None) -> None:
    r"""Gradient descent with momentum (classical, EWA or Nesterov), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        v &\leftarrow \mu\, v + (1 - \tau)\, g \\
        \theta &\leftarrow \theta - \text{lr}\,(g + \mu v) \quad\text{(Nesterov)}
        \qquad\text{or}\qquad \theta \leftarrow \theta - \text{lr}\; v

    with :math:`\mu` = ``momentum`` and :math:`\tau` = ``dampening``. The course's
    exponentially weighted form :math:`v = \beta v + (1-\beta)\,dW` is
    ``momentum=beta, dampening=beta``; the classical form is ``dampening=0`` (torch's SGD).
    ``momentum_buffer`` starts at zero, so the first step is :math:`v = (1-\tau)\,g`.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    momentum_buffer : ndarray
        The momentum buffer :math:`v`, updated in place; start it at zero.
    lr : float
        Learning rate, ``>= 0``.
    momentum : float, default 0.9
        :math:`\mu \ge 0`.
    dampening : float, default 0
        :math:`\tau \in [0, 1]`.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda \ge 0`.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    velocity : ndarray, optional
        Deprecated name of ``momentum_buffer`` (a ``DeprecationWarning``; removed in 0.3).
    """
    if velocity is not None or momentum_buffer is None:
        momentum_buffer = _dispatch.renamed("momentum_step", "velocity", velocity,
                                            "momentum_buffer", momentum_buffer)
    _MOMENTUM((param, grad, momentum_buffer), (),
              (lr, momentum, dampening, nesterov, weight_decay, maximize), backend)


class SGD(StateDtype, Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (classical, EWA or Nesterov).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        v &\leftarrow \mu\, v + (1 - \tau)\, g \\
        \theta &\leftarrow \theta - \text{lr}\,(g + \mu v) \quad\text{(Nesterov)}
        \qquad\text{or}\qquad \theta \leftarrow \theta - \text{lr}\; v

    and plain :math:`\theta \leftarrow \theta - \text{lr}\, g` when ``momentum == 0``. The
    buffer ``momentum_buffer`` starts at zero. The course's EWA momentum
    :math:`v = \beta v + (1-\beta)\,dW` is ``momentum=beta, dampening=beta``.

    Parameters
    ----------
    params : list or dict of ndarray
        float32/float64, contiguous, writeable, not sharing memory; updated in place.
    lr : float or callable
        Learning rate ``>= 0``, or a schedule ``lr(t)`` of the step count ``t = 1, 2, ...``.
    momentum : float, default 0
        :math:`\mu \ge 0`.
    dampening : float, default 0
        :math:`\tau \in [0, 1]`.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda \ge 0`.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How the momentum buffer is stored (keyword-only; ``momentum == 0`` has none).
        ``None``: the parameters' dtype. ``"bfloat16"`` (float32 parameters): 2 bytes per
        element, computed in float32 and stored rounded to nearest even. ``"int8"``:
        bitsandbytes' blockwise signed 8-bit code (about 1.02 bytes per element: one code
        each, one float32 absmax per block of 256), dequantized, updated and requantized
        per block; arrays under 4,096 elements keep float32 state. Both in one fused pass
        (:func:`fastoptim.lowmem.momentum_lowmem_step`).
    """

    _kernels = ("sgd", "momentum")
    _compressed = ("bfloat16", "int8")
    _fused = ("bfloat16", "int8")
    _moments = ("momentum_buffer",)

    def __init__(self, params: Params, lr: LR, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False, *,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay, maximize=maximize), backend, skip_nonfinite)

    @classmethod
    def _choose(cls, hyper):
        return "momentum" if hyper["momentum"] > 0.0 else "sgd"

    def _lowmem_state(self, param, kind):
        from .. import lowmem
        return lowmem.momentum_state(param, kind)

    def _lowmem_steps(self, params, grads, columns, t, lr, hyper, backend):
        from .. import lowmem
        lowmem._momentum_apply_many(params, grads, columns, lr=lr, momentum=hyper["momentum"],
                                    dampening=hyper["dampening"], nesterov=hyper["nesterov"],
                                    weight_decay=hyper["weight_decay"],
                                    maximize=hyper["maximize"], backend=backend)
