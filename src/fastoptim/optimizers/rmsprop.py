"""RMSprop (centered, with momentum): ``rmsprop_step`` and :class:`RMSprop`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["rmsprop_step", "RMSprop"]

_RMSPROP = _dispatch.call("rmsprop")


def rmsprop_step(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, *,
                 lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 momentum_buffer: Optional[np.ndarray] = None, centered: bool = False,
                 grad_avg: Optional[np.ndarray] = None, maximize: bool = False,
                 backend: str = "auto", eps_root: float = 0.0) -> None:
    r"""RMSprop, in place (optionally centered and with momentum).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        s &\leftarrow \alpha\, s + (1-\alpha)\, g^2 \\
        a &\leftarrow \alpha\, a + (1-\alpha)\, g, \quad
            \text{avg} = \sqrt{s - a^2 + \epsilon_r} + \epsilon \quad\text{(centered)}
            \qquad \text{else}\quad \text{avg} = \sqrt{s + \epsilon_r} + \epsilon \\
        b &\leftarrow \mu\, b + g / \text{avg}, \quad \theta \leftarrow \theta - \text{lr}\, b
            \quad (\mu > 0) \qquad
            \text{else}\quad \theta \leftarrow \theta - \text{lr}\, g / \text{avg}

    with :math:`\epsilon_r` = ``eps_root`` (0 by default: torch's form). The course writes
    the denominator both ways: ``sqrt(s) + eps`` is the default, ``sqrt(s + eps)`` is
    ``eps=0, eps_root=1e-8``.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    square_avg : ndarray
        Running average of squared gradients :math:`s` (start at zero), updated in place.
    lr : float, default 1e-2
    alpha : float, default 0.99
        Smoothing constant, in ``[0, 1)``.
    eps : float, default 1e-8
        Added to the denominator outside the square root, ``> 0``; or ``>= 0`` when
        ``eps_root > 0``.
    weight_decay : float, default 0
    momentum : float, default 0
        :math:`\mu \ge 0`; when ``> 0``, ``momentum_buffer`` is required.
    momentum_buffer : ndarray, optional
        :math:`b` (start at zero), only with ``momentum > 0``.
    centered : bool, default False
        Normalize by the estimated variance; requires ``grad_avg``.
    grad_avg : ndarray, optional
        Running average of gradients :math:`a` (start at zero), only with ``centered``.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    eps_root : float, default 0
        Added inside the square root (optax's name), ``>= 0``; torch has no such term.
    """
    _RMSPROP((param, grad, square_avg), (momentum_buffer, grad_avg),
             (lr, alpha, eps, weight_decay, momentum, centered, maximize, eps_root), backend)


class RMSprop(StateDtype, Optimizer):
    r"""RMSprop (optionally centered and with momentum).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta, \qquad
        s \leftarrow \alpha\, s + (1-\alpha)\, g^2 \\
        \text{avg} &= \sqrt{s - a^2 + \epsilon_r} + \epsilon \text{ with }
            a \leftarrow \alpha a + (1-\alpha) g \text{ (centered)},
            \quad\text{else } \sqrt{s + \epsilon_r} + \epsilon \\
        b &\leftarrow \mu\, b + g / \text{avg},\ \theta \leftarrow \theta - \text{lr}\, b
            \ (\mu > 0) \qquad\text{else}\quad \theta \leftarrow \theta - \text{lr}\, g/\text{avg}

    with :math:`\epsilon_r` = ``eps_root`` (0 by default: torch's form; the course's
    ``sqrt(s + eps)`` is ``eps=0, eps_root=1e-8``). State: ``square_avg`` (:math:`s`), ``momentum_buffer`` (:math:`b`, when
    ``momentum > 0``), ``grad_avg`` (:math:`a`, when ``centered``), all starting at zero.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
    alpha : float, default 0.99
        In ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``; or ``>= 0`` when ``eps_root > 0``.
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    eps_root : float, default 0
        Added inside the square root (optax's name), ``>= 0``; keyword-only, torch has no
        such term.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How the state is stored (keyword-only). ``None``: the parameters' dtype.
        ``"bfloat16"`` (float32 parameters): every state buffer in 2 bytes per element,
        computed in float32 and stored rounded to nearest even, in one fused pass
        (:func:`fastoptim.lowmem.rmsprop_lowmem_step`). ``"int8"``: every state buffer as
        bitsandbytes' blockwise 8-bit code (about 1.02 bytes per element: one code each, one
        float32 absmax per block of 256; the unsigned code for ``square_avg``), the step
        computed in float32 by the RMSprop kernel chunk by chunk in cache and requantized
        after it; arrays under 4,096 elements keep float32 state. ``centered``: quantized
        separately, ``square_avg - grad_avg**2`` could go negative, so the decoded
        ``grad_avg`` is first clamped to :math:`C_{t-1} \sqrt{\text{square\_avg}}`
        (:func:`fastoptim.lowmem.moment_bound` with both decays ``alpha``: below 1).
    """

    _kernels = ("rmsprop",)
    _compressed = ("bfloat16", "int8")
    _fused = ("bfloat16",)
    _moments = ("square_avg", "momentum_buffer", "grad_avg")
    _int8_bounds = (("grad_avg", "square_avg", "alpha", "alpha"),)
    # checkpoints without this hyperparameter: torch's form
    _ADDED_HYPERPARAMETERS = {"eps_root": 0.0}

    def __init__(self, params: Params, lr: LR = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *, eps_root: float = 0.0,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(
            alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize, eps_root=eps_root), backend,
            skip_nonfinite)

    def _lowmem_state(self, param, kind):
        from .. import lowmem
        return lowmem.rmsprop_state(param, kind, momentum=True, centered=True)

    def _lowmem_steps(self, params, grads, columns, t, lr, hyper, backend):
        from .. import lowmem
        lowmem._rmsprop_apply_many(params, grads, columns, lr=lr, alpha=hyper["alpha"],
                                   eps=hyper["eps"], weight_decay=hyper["weight_decay"],
                                   momentum=hyper["momentum"], centered=hyper["centered"],
                                   maximize=hyper["maximize"], eps_root=hyper["eps_root"],
                                   backend=backend)
