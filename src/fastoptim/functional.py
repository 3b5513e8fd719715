"""The functional API: one optimizer step on NumPy arrays, fused, in place.

Every function here validates all of its arguments first (hyperparameters in one compiled
call, :func:`fastoptim._validation.check_scalars`, then arrays through
:func:`fastoptim._checks.check_arrays`), then computes the per-call coefficients once, picks the
backend and makes one kernel call. A failed check raises before any array is touched.

Common contract of every ``*_step`` function:

* arrays are ``numpy.ndarray`` of float32 or float64, all of one dtype and one shape, all
  C-contiguous or all F-contiguous, in native byte order; ``param`` and every state array are
  writeable (``grad`` may be read-only); no two share memory;
* they are updated **in place** and the function returns ``None``;
* state buffers start at zero (``np.zeros_like(param)``);
* ``maximize=True`` uses ``g = -grad``, otherwise ``g = grad``;
* ``backend`` is ``"auto"`` (default), ``"cython"``, ``"numba"`` or ``"numpy"`` (the naive
  reference in :mod:`fastoptim.reference`).

Formulas and defaults follow ``torch.optim`` (for-loop implementation).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from . import _coefficients as _coef
from . import _validation as _v
from . import reference as _reference
from ._backends import select as _select

__all__ = ["sgd_step", "momentum_step", "rmsprop_step", "adam_step", "adagrad_step",
           "ewa_update"]

_SGD_NAMES = ("param", "grad")
_MOMENTUM_NAMES = ("param", "grad", "momentum_buffer")
_ADAGRAD_NAMES = ("param", "grad", "state_sum")
_ADAM_NAMES = ("param", "grad", "exp_avg", "exp_avg_sq")
_ADAM_AMSGRAD_NAMES = _ADAM_NAMES + ("max_exp_avg_sq",)
_EWA_NAMES = ("average", "value")

# The hyperparameters of each function, checked in this order by one compiled call.
_SGD_SCALARS = _v.scalar_spec(lr="nonnegative", weight_decay="nonnegative", maximize="flag")
_MOMENTUM_SCALARS = _v.scalar_spec(
    lr="nonnegative", momentum="nonnegative", dampening="closed_unit_interval", nesterov="flag",
    weight_decay="nonnegative", maximize="flag")
_RMSPROP_SCALARS = _v.scalar_spec(
    lr="nonnegative", alpha="unit_interval", eps="positive", weight_decay="nonnegative",
    momentum="nonnegative", centered="flag", maximize="flag")
_ADAM_SCALARS = _v.scalar_spec(
    amsgrad="flag", step="step_count", lr="nonnegative", beta1="unit_interval",
    beta2="unit_interval", eps="positive", weight_decay="nonnegative",
    decoupled_weight_decay="flag", maximize="flag")
_ADAGRAD_SCALARS = _v.scalar_spec(
    step="step_count", lr="nonnegative", lr_decay="nonnegative", weight_decay="nonnegative",
    eps="positive", maximize="flag")
_EWA_SCALARS = _v.scalar_spec(beta="unit_interval")

# Every eps >= this is a normal number of both dtypes: the per-dtype rule
# (_validation.eps_for_dtype) runs only below it.
_TINY32 = float(np.finfo(np.float32).tiny)


def _renamed(func: str, old: str, old_value, new: str, new_value):
    """A state array passed under its old keyword name: still accepted for one release, with
    a ``DeprecationWarning`` (the functional API and the optimizer classes now share the
    state names of the registry)."""
    if old_value is None:
        raise TypeError(f"{func}: missing the state array {new}")
    if new_value is not None:
        raise TypeError(f"{func}: pass {new} only (its old name {old} is deprecated)")
    warnings.warn(f"{func}: the keyword {old}= is deprecated, use {new}= (the name the "
                  f"optimizer classes use)", DeprecationWarning, stacklevel=3)
    return old_value


def _reference_call(reference, *arrays, **hyperparameters) -> None:
    """Run a NumPy reference step with floating-point errors ignored, as the compiled kernels
    do: under a user's ``np.seterr(all="raise")`` an overflow in a temporary would otherwise
    raise after some state array was already written (a half-done update)."""
    with np.errstate(all="ignore"):
        reference(*arrays, **hyperparameters)


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
    f = "sgd_step"
    lr, weight_decay, maximize = _v.check_scalars(f, _SGD_SCALARS, (lr, weight_decay, maximize))
    plain = _v.check_arrays(f, _SGD_NAMES, (param, grad))
    if plain is not None:
        param, grad = plain
    impl = _select(f, backend, param.size, param.itemsize, 2)
    if impl is None:
        _reference_call(_reference.sgd_step, param, grad, lr=lr, weight_decay=weight_decay,
                        maximize=maximize)
    else:
        impl.sgd(param, grad, _coef.sgd(lr, weight_decay, maximize))


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
    f = "momentum_step"
    if velocity is not None or momentum_buffer is None:
        momentum_buffer = _renamed(f, "velocity", velocity, "momentum_buffer",
                                   momentum_buffer)
    lr, momentum, dampening, nesterov, weight_decay, maximize = _v.check_scalars(
        f, _MOMENTUM_SCALARS, (lr, momentum, dampening, nesterov, weight_decay, maximize))
    plain = _v.check_arrays(f, _MOMENTUM_NAMES, (param, grad, momentum_buffer))
    if plain is not None:
        param, grad, momentum_buffer = plain
    if nesterov and (momentum <= 0.0 or dampening != 0.0):
        raise ValueError(
            f"{f}: nesterov=True needs momentum > 0 and dampening == 0, got "
            f"momentum={momentum!r}, dampening={dampening!r}")
    impl = _select(f, backend, param.size, param.itemsize, 3)
    if impl is None:
        _reference_call(_reference.momentum_step, param, grad, momentum_buffer, lr=lr,
                        momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay, maximize=maximize)
    else:
        impl.momentum(param, grad, momentum_buffer, _coef.momentum(
            lr, momentum, dampening, nesterov, weight_decay, maximize))


def rmsprop_step(param: np.ndarray, grad: np.ndarray, square_avg: np.ndarray, *,
                 lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 momentum_buffer: Optional[np.ndarray] = None, centered: bool = False,
                 grad_avg: Optional[np.ndarray] = None, maximize: bool = False,
                 backend: str = "auto") -> None:
    r"""RMSprop, in place (optionally centered and with momentum).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        s &\leftarrow \alpha\, s + (1-\alpha)\, g^2 \\
        a &\leftarrow \alpha\, a + (1-\alpha)\, g, \quad
            \text{avg} = \sqrt{s - a^2} + \epsilon \quad\text{(centered)} \qquad
            \text{else}\quad \text{avg} = \sqrt{s} + \epsilon \\
        b &\leftarrow \mu\, b + g / \text{avg}, \quad \theta \leftarrow \theta - \text{lr}\, b
            \quad (\mu > 0) \qquad
            \text{else}\quad \theta \leftarrow \theta - \text{lr}\, g / \text{avg}

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
        Added to the denominator, ``> 0``.
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
    """
    f = "rmsprop_step"
    lr, alpha, eps, weight_decay, momentum, centered, maximize = _v.check_scalars(
        f, _RMSPROP_SCALARS, (lr, alpha, eps, weight_decay, momentum, centered, maximize))
    names = ["param", "grad", "square_avg"]
    arrays = [param, grad, square_avg]
    if momentum > 0.0:
        if momentum_buffer is None:
            raise ValueError(f"{f}: momentum={momentum!r} > 0 needs a momentum_buffer array")
        names.append("momentum_buffer")
        arrays.append(momentum_buffer)
    else:
        _v.forbid_unused(f, "momentum_buffer", momentum_buffer, "momentum > 0")
    if centered:
        if grad_avg is None:
            raise ValueError(f"{f}: centered=True needs a grad_avg array")
        names.append("grad_avg")
        arrays.append(grad_avg)
    else:
        _v.forbid_unused(f, "grad_avg", grad_avg, "centered=True")
    plain = _v.check_arrays(f, tuple(names), tuple(arrays))
    if plain is not None:
        param, grad, square_avg = plain[:3]
        momentum_buffer = plain[names.index("momentum_buffer")] if momentum > 0.0 else None
        grad_avg = plain[-1] if centered else None
    if eps < _TINY32:
        _v.eps_for_dtype(f, "eps", eps, param.dtype)
    impl = _select(f, backend, param.size, param.itemsize, len(arrays))
    if impl is None:
        _reference_call(_reference.rmsprop_step, param, grad, square_avg, lr=lr, alpha=alpha,
                        eps=eps, weight_decay=weight_decay, momentum=momentum,
                        momentum_buffer=momentum_buffer, centered=centered,
                        grad_avg=grad_avg, maximize=maximize)
    else:
        impl.rmsprop(param, grad, square_avg, momentum_buffer, grad_avg, _coef.rmsprop(
            lr, alpha, eps, weight_decay, momentum, maximize))


def adam_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
              exp_avg_sq: np.ndarray, *, step: int, lr: float = 1e-3, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0,
              decoupled_weight_decay: bool = False, amsgrad: bool = False,
              max_exp_avg_sq: Optional[np.ndarray] = None, maximize: bool = False,
              backend: str = "auto") -> None:
    r"""Adam with bias correction (AdamW, AMSGrad), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} \;(+\, \lambda\theta \text{ unless decoupled}) \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) \quad\text{(decoupled, AdamW)} \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \hat v_{\max} &\leftarrow \max(\hat v_{\max}, v) \quad\text{(AMSGrad; used for } v
            \text{ below)} \\
        \theta &\leftarrow \theta - \text{lr}\, \frac{m / (1-\beta_1^t)}
            {\sqrt{v / (1-\beta_2^t)} + \epsilon}

    ``eps`` is added outside the square root of the bias-corrected second moment (torch and
    optax; TF/Keras use the "eps-hat" form).

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
        ``decoupled_weight_decay=True`` the AdamW decay of the parameters.
    decoupled_weight_decay : bool, default False
    amsgrad : bool, default False
        Use the running maximum of :math:`v`; requires ``max_exp_avg_sq``.
    max_exp_avg_sq : ndarray, optional
        :math:`\hat v_{\max}` (start at zero), only with ``amsgrad``.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    f = "adam_step"
    (amsgrad, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay,
     maximize) = _v.check_scalars(f, _ADAM_SCALARS, (
         amsgrad, step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize))
    if amsgrad:
        if max_exp_avg_sq is None:
            raise ValueError(f"{f}: amsgrad=True needs a max_exp_avg_sq array")
        plain = _v.check_arrays(f, _ADAM_AMSGRAD_NAMES,
                                (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq))
        if plain is not None:
            param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq = plain
    else:
        _v.forbid_unused(f, "max_exp_avg_sq", max_exp_avg_sq, "amsgrad=True")
        plain = _v.check_arrays(f, _ADAM_NAMES, (param, grad, exp_avg, exp_avg_sq))
        if plain is not None:
            param, grad, exp_avg, exp_avg_sq = plain
    if eps < _TINY32:
        _v.eps_for_dtype(f, "eps", eps, param.dtype)
    impl = _select(f, backend, param.size, param.itemsize, 5 if amsgrad else 4)
    if impl is None:
        _reference_call(_reference.adam_step, param, grad, exp_avg, exp_avg_sq, step=step,
                        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad,
                        max_exp_avg_sq=max_exp_avg_sq, maximize=maximize)
        return
    impl.adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, _coef.adam(
        step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize))


def adagrad_step(param: np.ndarray, grad: np.ndarray, state_sum: np.ndarray, *, step: int,
                 lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False, backend: str = "auto") -> None:
    r"""Adagrad, in place.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta \\
        \tilde\eta &= \text{lr} / (1 + (t-1)\,\text{lr\_decay}) \\
        G &\leftarrow G + g^2, \qquad
        \theta \leftarrow \theta - \tilde\eta\, g / (\sqrt{G} + \epsilon)

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient.
    state_sum : ndarray
        Sum of squared gradients :math:`G`, updated in place (start at zero, or at the
        optimizer's ``initial_accumulator_value``).
    step : int
        The 1-based step count :math:`t`.
    lr : float, default 1e-2
    lr_decay : float, default 0
        ``>= 0``.
    weight_decay : float, default 0
    eps : float, default 1e-10
        ``> 0``.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    f = "adagrad_step"
    step, lr, lr_decay, weight_decay, eps, maximize = _v.check_scalars(
        f, _ADAGRAD_SCALARS, (step, lr, lr_decay, weight_decay, eps, maximize))
    plain = _v.check_arrays(f, _ADAGRAD_NAMES, (param, grad, state_sum))
    if plain is not None:
        param, grad, state_sum = plain
    if eps < _TINY32:
        _v.eps_for_dtype(f, "eps", eps, param.dtype)
    impl = _select(f, backend, param.size, param.itemsize, 3)
    if impl is None:
        _reference_call(_reference.adagrad_step, param, grad, state_sum, step=step, lr=lr,
                        lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                        maximize=maximize)
    else:
        impl.adagrad(param, grad, state_sum, _coef.adagrad(
            step, lr, lr_decay, weight_decay, eps, maximize))


def ewa_update(average: np.ndarray, value: np.ndarray, *, beta: float,
               backend: str = "auto") -> None:
    r"""Exponentially weighted average, in place.

    .. math::

        v \leftarrow \beta\, v + (1 - \beta)\, \theta

    Started at :math:`v_0 = 0`, the bias-corrected average after :math:`t` updates is
    :math:`v_t / (1 - \beta^t)` (see :class:`fastoptim.ExponentialMovingAverage`).

    Parameters
    ----------
    average : ndarray
        :math:`v`, updated in place.
    value : ndarray
        The new observation :math:`\theta` (may be read-only).
    beta : float
        In ``[0, 1)``.
    backend : {"auto", "cython", "numba", "numpy"}
    """
    f = "ewa_update"
    (beta,) = _v.check_scalars(f, _EWA_SCALARS, (beta,))
    plain = _v.check_arrays(f, _EWA_NAMES, (average, value))
    if plain is not None:
        average, value = plain
    impl = _select(f, backend, average.size, average.itemsize, 2)
    if impl is None:
        _reference_call(_reference.ewa_update, average, value, beta=beta)
    else:
        impl.ewa(average, value, _coef.ewa(beta))
