"""Rprop (resilient backpropagation): ``rprop_step`` and :class:`Rprop`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .. import _validation as _v
from .._optimizer import LR, Optimizer, Params
from ._state_dtype import StateDtype

__all__ = ["rprop_step", "Rprop"]

_RPROP = _dispatch.call("rprop")


def rprop_step(param: np.ndarray, grad: np.ndarray, prev: np.ndarray, step_size: np.ndarray,
               *, step: int, lr: float = 1e-2, etaminus: float = 0.5, etaplus: float = 1.2,
               step_size_min: float = 1e-6, step_size_max: float = 50.0,
               maximize: bool = False, backend: str = "auto") -> None:
    r"""Rprop (resilient backpropagation), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad}, \qquad
        \eta \leftarrow \text{lr} \quad\text{(at } t = 1\text{)} \\
        \eta &\leftarrow \operatorname{clip}\bigl(\eta \cdot
            \begin{cases} \eta_+ & g\,g_\text{prev} > 0 \\ \eta_- & g\,g_\text{prev} < 0 \\
            1 & \text{otherwise} \end{cases},\;
            \Gamma_\text{min}, \Gamma_\text{max}\bigr) \\
        g &\leftarrow 0 \text{ where } g\,g_\text{prev} < 0, \qquad
        \theta \leftarrow \theta - \eta\, \operatorname{sign}(g), \qquad
        g_\text{prev} \leftarrow g

    element-wise, with torch's sign semantics: the product :math:`g\,g_\text{prev}` is
    taken in the arrays' dtype (an underflow to 0 counts as 0), and the sign of NaN is 0
    (a NaN gradient leaves its parameter and step size as they are).

    torch fills the step sizes with ``lr`` when it creates the state; here the first step
    (``step=1``) starts from ``lr`` whatever ``step_size`` holds (it is only written), so
    both buffers may start at zero, and the result is torch's.

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    prev : ndarray
        The previous step's gradient :math:`g_\text{prev}` (0 where the sign flipped),
        updated in place; start at zero.
    step_size : ndarray
        Per-element step sizes :math:`\eta`, updated in place (read from ``step=2`` on).
    step : int
        The 1-based step count :math:`t`.
    lr : float, default 1e-2
        The initial step size (used at ``step=1`` only).
    etaminus, etaplus : float, default 0.5, 1.2
        :math:`0 < \eta_- < 1 < \eta_+` (torch's ``etas``).
    step_size_min, step_size_max : float, default 1e-6, 50
        :math:`0 \le \Gamma_\text{min} \le \Gamma_\text{max}` (torch's ``step_sizes``).
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    _RPROP((param, grad, prev, step_size), (),
           (step, lr, etaminus, etaplus, step_size_min, step_size_max, maximize), backend)


def _pair(f: str, name: str, value, kinds) -> Tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{f}: {name} must be a pair, got {value!r}")
    return tuple(_v.SCALAR_KINDS[kind](f, f"{name}[{i}]", v)
                 for i, (kind, v) in enumerate(zip(kinds, value)))


class Rprop(StateDtype, Optimizer):
    r"""Rprop (resilient backpropagation), torch.optim.Rprop.

    .. math::

        \eta &\leftarrow \operatorname{clip}\bigl(\eta \cdot
            \begin{cases} \eta_+ & g\,g_\text{prev} > 0 \\ \eta_- & g\,g_\text{prev} < 0 \\
            1 & \text{otherwise} \end{cases},\;
            \Gamma_\text{min}, \Gamma_\text{max}\bigr) \\
        g &\leftarrow 0 \text{ where } g\,g_\text{prev} < 0, \qquad
        \theta \leftarrow \theta - \eta\, \operatorname{sign}(g), \qquad
        g_\text{prev} \leftarrow g

    with :math:`g = \pm\,\text{grad}` and :math:`\eta` starting at ``lr`` (torch fills the
    step sizes with ``lr``). State: ``prev`` and ``step_size`` (torch's names), both zero
    before the first step, which starts from each array's group ``lr`` at that step, as
    torch creates its state at an array's first step; ``lr`` is not used after it.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
        The initial step size.
    etas : (float, float), default (0.5, 1.2)
        ``(etaminus, etaplus)``, ``0 < etaminus < 1 < etaplus``.
    step_sizes : (float, float), default (1e-6, 50)
        ``(step_size_min, step_size_max)``, ``0 <= min <= max``.
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

    _kernels = ("rprop",)
    _compressed = ("bfloat16", "int8")

    def __init__(self, params: Params, lr: LR = 1e-2,
                 etas: Tuple[float, float] = (0.5, 1.2),
                 step_sizes: Tuple[float, float] = (1e-6, 50), *, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False,
                 state_dtype: Optional[str] = None) -> None:
        self._set_state_dtype(state_dtype)
        super().__init__(params, lr, dict(etas=etas, step_sizes=step_sizes,
                                          maximize=maximize), backend, skip_nonfinite)

    @classmethod
    def _check(cls, f, hyper):
        hyper = dict(hyper)
        etas = _pair(f, "etas", hyper.pop("etas"), ("positive", "positive"))
        step_sizes = _pair(f, "step_sizes", hyper.pop("step_sizes"),
                           ("nonnegative", "nonnegative"))
        return dict(etas=etas, step_sizes=step_sizes, **super()._check(f, hyper))

    @classmethod
    def _functional(cls, hyper):
        (etaminus, etaplus), (step_size_min, step_size_max) = hyper["etas"], hyper["step_sizes"]
        return dict(hyper, etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min,
                    step_size_max=step_size_max)
