"""Adam with bias correction (AdamW, AMSGrad): ``adam_step``, :class:`Adam` and
:class:`AdamW`."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import _dispatch
from .._optimizer import LR, Optimizer, Params
from ._half_params import HalfParams
from ._state_dtype import StateDtype


__all__ = ["adam_step", "Adam", "AdamW"]

_ADAM = _dispatch.call("adam")


def adam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
              exp_avg_sq: np.ndarray, *, step: int, lr: float = 1e-3, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
              decoupled_weight_decay: bool = False, amsgrad: bool = False,
              max_exp_avg_sq: Optional[np.ndarray] = None, maximize: bool = False,
              backend: str = "auto", eps_root: float = 0.0) -> None:
    r"""Adam with bias correction (AdamW, AMSGrad), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} \;(+\, \lambda\theta \text{ unless decoupled}) \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) \quad\text{(decoupled, AdamW)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \hat v_{\max} &\leftarrow \max(\hat v_{\max}, v) \quad\text{(AMSGrad; used for } v
            \text{ below)} \\
        \theta &\leftarrow \theta - \text{lr}\, \frac{m / (1-\beta_1^t)}
            {\sqrt{v / (1-\beta_2^t) + \epsilon_r} + \epsilon}

    ``eps`` is added outside the square root of the bias-corrected second moment (torch and
    optax; TF/Keras use the "eps-hat" form), ``eps_root`` (:math:`\epsilon_r`, optax's name,
    0 by default) inside it. The course writes the denominator both ways:
    ``sqrt(v_hat) + eps`` is the default, ``sqrt(v_hat + eps)`` is ``eps=0, eps_root=1e-8``.

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
        ``> 0``; or ``>= 0`` when ``eps_root > 0``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`: an L2 term added to the gradient, or with
        ``decoupled_weight_decay=True`` the AdamW decay of the parameters.
    decoupled_weight_decay : bool, default False
    amsgrad : bool, default False
        Use the running maximum of :math:`v`; requires ``max_exp_avg_sq``.
    max_exp_avg_sq : ndarray, optional
        :math:`\hat v_{\max}` (start at zero), only with ``amsgrad``.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    eps_root : float, default 0
        Added inside the square root, ``>= 0`` (torch has no such term).
    """
    _ADAM((param, grad, exp_avg, exp_avg_sq), (max_exp_avg_sq,),
          (step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, amsgrad,
           maximize, eps_root), backend)



class Adam(HalfParams, StateDtype, Optimizer):
    r"""Adam with bias correction (optionally AMSGrad); L2 weight decay added to the gradient,
    or decoupled from it (AdamW) with ``decoupled_weight_decay=True``.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta \;\text{(L2)}, \qquad
        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda) \;\text{(decoupled)} \\
        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \theta &\leftarrow \theta - \text{lr}\, \frac{m / (1-\beta_1^t)}
            {\sqrt{v / (1-\beta_2^t) + \epsilon_r} + \epsilon}

    with :math:`v` replaced by its running maximum ``max_exp_avg_sq`` under AMSGrad and
    :math:`\epsilon_r` = ``eps_root`` (0 by default: torch's form; the course's
    ``sqrt(v_hat + eps)`` is ``eps=0, eps_root=1e-8``). State:
    ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``), all starting at zero; ``t`` is the
    step count, also the argument of an ``lr`` schedule.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``; or ``>= 0`` when ``eps_root > 0``.
    weight_decay : float, default 0
    amsgrad : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    decoupled_weight_decay : bool, default False
        Decay the parameters by ``lr * weight_decay`` instead of adding the L2 term to the
        gradient (torch's keyword; :class:`AdamW` is ``Adam`` with it on).
    eps_root : float, default 0
        Added inside the square root (optax's name), ``>= 0``; keyword-only, torch has no
        such term.
    state_dtype : {None, "float32", "float64", "bfloat16", "int8"}, default None
        How the moments are stored (keyword-only). ``None``: the parameters' dtype.
        ``"bfloat16"``: 2 bytes per moment, computed in float32 and stored rounded to
        nearest even. ``"int8"``: bitsandbytes' blockwise 8-bit code, 1 byte per moment
        plus one float32 scale per block of 256 (arrays under 4,096 elements keep float32
        moments). Compressed moments need float32 parameters, do not combine with
        ``amsgrad`` or ``eps_root``, and step through :func:`fastoptim.lowmem.adam_lowmem_step`
        (the same update; :math:`m` is clamped to :math:`\pm C_t\sqrt{v}`, a bound exact
        arithmetic never crosses, so that a quantized moment cannot blow up). The state
        then holds the codes (``exp_avg``, ``exp_avg_sq``) and, for ``"int8"``, the scales
        (``exp_avg_absmax``, ``exp_avg_sq_absmax``).
    master_weights : bool, default False
        For float16 / bfloat16 parameters (keyword-only): keep a float32 master copy of
        each (state ``master``) that takes the update, the parameter receiving it rounded
        to nearest even. Half parameters (all of one half dtype, gradients of the same)
        are stepped in float32 with float32 moments by
        :func:`fastoptim.halfparams.adam_half_step`; without this option or
        ``stochastic_rounding`` the half parameter itself is updated (updates under half
        its last place are lost, as in torch.optim).
    stochastic_rounding : bool, default False
        For bfloat16 parameters (keyword-only): round each new parameter up or down with
        probability proportional to the distance (unbiased), no master copy; array ``k``
        uses the seed ``seed + k``, the noise a function of seed, step and element.
    seed : int, default 0
        The stochastic rounding's seed, in ``[0, 2**64)`` (keyword-only).
    """

    _kernels = ("adam",)
    _compressed = ("bfloat16", "int8")
    _fused = ("bfloat16", "int8")
    _moments = ("exp_avg", "exp_avg_sq")
    # checkpoints of fastoptim 0.1 lack these hyperparameters: the class's value then
    _ADDED_HYPERPARAMETERS = {"decoupled_weight_decay": False, "eps_root": 0.0}

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *, decoupled_weight_decay: bool = False,
                 eps_root: float = 0.0, state_dtype: Optional[str] = None,
                 master_weights: bool = False, stochastic_rounding: bool = False,
                 seed: int = 0) -> None:
        self._set_state_dtype(state_dtype)
        self._set_half_options(master_weights, stochastic_rounding, seed)
        super().__init__(params, lr, dict(
            betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
            eps_root=eps_root), backend, skip_nonfinite)

    def _check_compressible(self, f: str, hyper: dict) -> None:
        for name, off in (("amsgrad", False), ("eps_root", 0.0)):
            if hyper.get(name, off) != off:
                raise ValueError(f"{f}: {name}={hyper[name]!r} needs float state; "
                                 f"state_dtype {self._state_dtype!r} has no {name}")

    def _lowmem_state(self, param, kind):
        from .. import lowmem
        return lowmem.adam_state(param, kind)

    def _lowmem_steps(self, params, grads, columns, t, lr, hyper, backend):
        from .. import lowmem
        lowmem._adam_apply_many(
            params, grads, columns, step=t, lr=lr, beta1=hyper["beta1"], beta2=hyper["beta2"],
            eps=hyper["eps"], weight_decay=hyper["weight_decay"],
            decoupled_weight_decay=hyper["decoupled_weight_decay"],
            maximize=hyper["maximize"], backend=backend)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter).

    .. math::

        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda), \quad\text{then the Adam update
        of } \theta \text{ with } g = \pm\,\text{grad}

    Same arguments as :class:`Adam`, with ``weight_decay`` (:math:`\lambda`) defaulting to
    ``1e-2`` as in torch; ``eps_root`` (keyword-only, default 0) is added inside the square
    root of the Adam update (the course's ``sqrt(v_hat + eps)``: ``eps=0, eps_root=1e-8``);
    ``state_dtype`` (keyword-only: ``None``, ``"bfloat16"``, ``"int8"``, ...) and the
    half-parameter options ``master_weights``, ``stochastic_rounding``, ``seed`` as in
    :class:`Adam`.
    """

    _ADDED_HYPERPARAMETERS = {"decoupled_weight_decay": True, "eps_root": 0.0}

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False, *, eps_root: float = 0.0,
                 state_dtype: Optional[str] = None, master_weights: bool = False,
                 stochastic_rounding: bool = False, seed: int = 0) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, backend,
                         skip_nonfinite, decoupled_weight_decay=True, eps_root=eps_root,
                         state_dtype=state_dtype, master_weights=master_weights,
                         stochastic_rounding=stochastic_rounding, seed=seed)
