"""LAMB (You et al., as optax's ``lamb``): ``lamb_step`` and :class:`LAMB`.

LAMB is not element-wise: each array's Adam direction is scaled by the array's trust ratio
``||param|| / ||r||``. Its kernels are therefore not registry kernels (the registry's glue,
dispatch and multi-tensor chunking assume element-wise loops): the compiled one is
:mod:`fastoptim._lamb` (``csrc/lamb.h``), the Numba twin ``numba_kernels/lamb.py``, the
oracle :func:`fastoptim.reference.lamb_step`; validation and backend choice follow the same
rules as every other step (:mod:`fastoptim._validation`, :mod:`fastoptim._backends`).
The class is an :class:`~fastoptim._optimizer.Optimizer` (groups, step counts, checkpoints)
that overrides the base's per-bucket hook, ``_apply_bucket``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .. import _cython_parallel
from .. import _lamb
from .. import _threads
from .. import _validation as _v
from .. import kernels as _cython
from .. import reference as _reference
from .._backends import numba_backend as _numba_backend
from .._backends import select as _select
from .._dispatch import reference_call as _reference_call
from .._optimizer import LR, Optimizer, Params
from .._rule import Rule

__all__ = ["lamb_step", "LAMB"]

_NAMES = ("step", "lr", "beta1", "beta2", "eps", "eps_root", "weight_decay", "maximize")
_SPEC = _v.scalar_spec(step="step_count", lr="nonnegative", beta1="unit_interval",
                       beta2="unit_interval", eps="positive", eps_root="nonnegative",
                       weight_decay="nonnegative", maximize="flag")
_ARRAYS = ("param", "grad", "exp_avg", "exp_avg_sq")


def _threads_for(param: np.ndarray) -> int:
    """fastoptim's thread count where threads pay for an array of this size, else 1 (the
    result is the same either way)."""
    if _cython.threads_pay(param.nbytes, 4):
        return _threads.get_num_threads()
    return 1


def _numba(arrays, coefficients) -> float:
    from ..numba_kernels.lamb import lamb_kernel
    backend = _numba_backend()
    return backend._run(lamb_kernel, *[a.ravel(order="K") for a in arrays], *coefficients)


def lamb_step(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
              exp_avg_sq: np.ndarray, *, step: int, lr: float = 1e-3, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-6, eps_root: float = 0.0,
              weight_decay: float = 0.0, maximize: bool = False,
              backend: str = "auto") -> None:
    r"""LAMB (layer-wise adaptive moments, optax's ``lamb``), in place.

    .. math::

        g &\leftarrow \pm\,\text{grad}, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        r &= \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}
             + \lambda\theta \\
        \theta &\leftarrow \theta - \text{lr}\,\frac{\|\theta\|}{\|r\|}\, r
        \qquad (\text{the ratio is 1 when } \|\theta\| = 0 \text{ or } \|r\| = 0)

    The norms are those of the whole array. Two passes over memory, no temporary array: the
    first updates :math:`m, v` and sums :math:`\theta^2` and :math:`r^2` (``r`` is not
    stored), the second recomputes ``r`` and updates :math:`\theta`. The sums are taken in
    double precision in a fixed order, so the result is the same, bit for bit, on any thread
    count and SIMD level (and on the ``"cython"`` and ``"numba"`` backends).

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
    eps : float, default 1e-6
        ``> 0``, added outside the square root (optax's default for LAMB).
    eps_root : float, default 0
        ``>= 0``, added inside the square root (optax's ``eps_root``).
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, added to the direction :math:`r` (decoupled from the moments)
        before the trust ratio.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    f = "lamb_step"
    hyper = _v.check_scalars(f, _SPEC, (step, lr, beta1, beta2, eps, eps_root, weight_decay,
                                        maximize))
    arrays = (param, grad, exp_avg, exp_avg_sq)
    plain = _v.check_arrays(f, _ARRAYS, arrays)
    if plain is not None:
        arrays = plain
    param = arrays[0]
    _v.eps_for_dtype(f, "eps", hyper[4], param.dtype)
    impl = _select(f, backend, param.size, param.itemsize, 4)
    if impl is None:
        _reference_call(_reference.lamb_step, *arrays, **dict(zip(_NAMES, hyper)))
    elif impl is _cython:
        _lamb.lamb(*arrays, _lamb.coefficients(*hyper), 1)
    elif impl is _cython_parallel:
        _lamb.lamb(*arrays, _lamb.coefficients(*hyper), _threads.get_num_threads())
    else:
        _numba(arrays, _lamb.coefficients(*hyper))


class LAMB(Optimizer):
    r"""LAMB: Adam's direction with decoupled weight decay, scaled per array by its trust
    ratio (You et al. 2019; optax's ``lamb``). There is no LAMB in ``torch.optim``; the
    names follow torch's Adam, the defaults optax's (``eps=1e-6``).

    .. math::

        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2, \qquad
        r = \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t) + \epsilon_{root}} + \epsilon}
            + \lambda\theta \\
        \theta \leftarrow \theta - \text{lr}\,\frac{\|\theta\|}{\|r\|}\, r
        \quad\text{(per array; the ratio is 1 when either norm is 0)}

    with :math:`g = \pm\,\text{grad}` and :math:`t` the array's own step count. State:
    ``exp_avg`` and ``exp_avg_sq``, both starting at zero. Everything a torch.optim user
    expects of the other classes holds: parameter groups (``param_groups``,
    ``add_param_group``, per-group hyperparameters changeable between steps), ``None``
    gradients, ``skip_nonfinite``, ``lr`` schedules, ``state_dict`` and
    ``fastoptim.save_state`` / ``load_state`` with bit-exact resume. The arrays of a group
    with equal step counts step in one compiled call (:func:`fastoptim._lamb.lamb_multi`),
    two passes over each; the norms are summed in a fixed order, so results do not depend
    on the thread count.

    Parameters
    ----------
    params : list or dict of ndarray, or a list of parameter-group dicts
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-6
        ``> 0``, added outside the square root.
    weight_decay : float, default 0
        :math:`\lambda \ge 0`, added to the direction before the trust ratio.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes but
        :attr:`skipped_steps`.
    eps_root : float, default 0
        Added inside the square root (optax's ``eps_root``), ``>= 0``.
    """

    _elementwise = False
    _extra_kinds = dict(eps="positive", eps_root="nonnegative", weight_decay="nonnegative",
                        maximize="flag")
    _rule = Rule("lamb", _NAMES, lambda values: _lamb.coefficients(*values))

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False, *,
                 eps_root: float = 0.0) -> None:
        super().__init__(params, lr, dict(betas=betas, eps=eps, weight_decay=weight_decay,
                                          maximize=maximize, eps_root=eps_root),
                         backend, skip_nonfinite)

    def _plan(self, hyper: dict):
        return "lamb", self._rule, ("exp_avg", "exp_avg_sq"), \
            self._rule.values(self._functional(hyper))

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        """The arrays ``idx`` at step count ``t``: one compiled call over all of them, or
        one call per array on the other backends."""
        arrays = ([self._params[i] for i in idx], [grads[i] for i in idx],
                  [self._state["exp_avg"][i] for i in idx],
                  [self._state["exp_avg_sq"][i] for i in idx])
        coefficients = group.coefficients(t, lr)
        if impl is None:
            kwargs = dict(zip(_NAMES, group.values))      # (t and lr set by coefficients)
            for p, g, m, v in zip(*arrays):
                _reference_call(_reference.lamb_step, p, g, m, v, **kwargs)
        elif impl is _cython or impl is _cython_parallel:
            largest = max(arrays[0], key=lambda a: a.size)
            _lamb.lamb_multi(*arrays, coefficients, _threads_for(largest))
        else:
            for four in zip(*arrays):
                _numba(four, coefficients)
