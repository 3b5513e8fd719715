"""Adafactor (Shazeer & Stern 2018, as torch 2.13's ``torch.optim.Adafactor``):
``adafactor_step`` and :class:`Adafactor`.

Adafactor is not element-wise: a >= 2-D array's second moment is factored into row and
column means of ``g**2`` over its last two dimensions, and each step is scaled by the RMS
of the parameter and clipped by the RMS of the whole update. Its kernels are therefore not
registry kernels: the compiled one is :mod:`fastoptim._adafactor` (``csrc/adafactor.h``;
public ``cdef`` kernels in ``_adafactor.pxd``), the Numba twin
``numba_kernels/adafactor.py``, the oracle :func:`fastoptim.reference.adafactor_step`.
"""
from __future__ import annotations

import types
from typing import List, Optional, Tuple

import numpy as np

from .. import _adafactor
from .. import _checks
from .. import _cython_parallel
from .. import _params
from .. import _threads
from .. import _validation as _v
from .. import kernels as _cython
from .. import reference as _reference
from .._backends import numba_backend as _numba_backend
from .._backends import select as _select
from .._dispatch import reference_call as _reference_call
from .._optimizer import LR, Optimizer, Params

__all__ = ["adafactor_step", "Adafactor"]

_STATES = ("row_var", "col_var", "variance")


# ---- validation ---------------------------------------------------------------------------
def _nonpositive(f: str, name: str, value) -> float:
    value = _v.real(f, name, value)
    if value > 0:
        raise ValueError(f"{f}: {name} must be <= 0, got {value!r}")
    return value


def _at_least_one(f: str, name: str, value) -> float:
    value = _v.real(f, name, value)
    if value < 1:
        raise ValueError(f"{f}: {name} (the clipping threshold) must be >= 1, got {value!r}")
    return value


def _eps1(f: str, name: str, value) -> Optional[float]:
    return None if value is None else _v.nonnegative(f, name, value)


def _eps_pair(f: str, value) -> Tuple[Optional[float], float]:
    """torch's ``eps=(eps1, eps2)``: eps1 ``None`` (the dtype's eps) or ``>= 0``, eps2
    ``>= 0``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{f}: eps must be a pair (eps1, eps2), got {value!r}")
    return _eps1(f, "eps[0]", value[0]), _v.nonnegative(f, "eps[1]", value[1])


def _state_shapes(shape: tuple) -> dict:
    """Shape of each state buffer of an array of this shape (torch's): factored over the
    last two dimensions when it has two or more, else a full variance."""
    if len(shape) >= 2:
        return {"row_var": shape[:-1] + (1,), "col_var": shape[:-2] + (1, shape[-1])}
    return {"variance": shape}


def _check_layout(f: str, name: str, param: np.ndarray) -> None:
    if param.ndim > 2 and not param.flags.c_contiguous:
        raise ValueError(f"{f}: {name} must be C-contiguous: Adafactor factors the last two "
                         f"dimensions of a {param.ndim}-D array (a 2-D array may be "
                         f"F-contiguous)")


_DTYPE_EPS = {np.dtype(np.float32): float(np.finfo(np.float32).eps),
              np.dtype(np.float64): float(np.finfo(np.float64).eps)}


def _coefficients(step: int, lr: float, hyper: dict, dtype) -> tuple:
    eps1, eps2 = hyper["eps"]
    eps1 = _DTYPE_EPS[dtype] if eps1 is None else eps1
    return _adafactor.coefficients(step, lr, hyper["beta2_decay"], eps1, eps2, hyper["d"],
                                   hyper["weight_decay"], hyper["maximize"])


def _numba(param, grad, row_var, col_var, variance, work, c) -> None:
    from ..numba_kernels.adafactor import adafactor_kernel, adafactor_vector_kernel
    backend = _numba_backend()
    grad_sign, w, eps1, eps1_sq, eps2, rho, decay, use_wd, d = c
    flat = [a.ravel(order="K") for a in (param, grad)]
    if variance is not None:
        backend._run(adafactor_vector_kernel, *flat, variance.ravel(order="K"), grad_sign, w,
                     eps1_sq, eps2, rho, decay, bool(use_wd), d)
        return
    batches, rows, cols, transposed = _adafactor.geometry(
        param.shape, not param.flags.c_contiguous)
    rv, cv = (col_var, row_var) if transposed else (row_var, col_var)
    backend._run(adafactor_kernel, *flat, rv.reshape(-1), cv.reshape(-1), work, batches,
                 rows, cols, transposed, grad_sign, w, eps1, eps1_sq, eps2, rho, decay,
                 bool(use_wd), d)


def _workspace(arrays) -> np.ndarray:
    """One workspace for a step of these arrays, one after another (the largest need)."""
    size = max([_adafactor.workspace_size(p.shape, not p.flags.c_contiguous)
                for p in arrays] + [1])
    return np.empty(size)


def _small_or_new_workspace(param: np.ndarray):
    """``None`` (the kernel's stack buffer) when a step of ``param`` needs little, else a
    new workspace."""
    if param.ndim < 2 or _adafactor.workspace_size(
            param.shape, not param.flags.c_contiguous) <= _adafactor.SMALL_WORK_SIZE:
        return None
    return _workspace([param])


def _threads_for(param: np.ndarray) -> int:
    """fastoptim's thread count where threads pay for an array of this size, else 1 (the
    result is the same either way)."""
    if _cython.threads_pay(param.nbytes, 3):
        return _threads.get_num_threads()
    return 1


def _run(f: str, impl, params, grads, states, steps, lrs, hypers, work,
         threads: int = 1) -> None:
    """Step each array on backend ``impl`` (``steps``, ``lrs``, ``hypers``: per array);
    ``threads``: of the compiled kernel."""
    coefficients = [_coefficients(t, lr, h, p.dtype)
                    for p, t, lr, h in zip(params, steps, lrs, hypers)]
    if impl is _cython or impl is _cython_parallel:
        if len(params) == 1:
            _adafactor.adafactor(params[0], grads[0], states[0][0], states[1][0],
                                 states[2][0], work, coefficients[0], threads)
        else:
            _adafactor.adafactor_multi(params, grads, *states, work, coefficients, threads)
    elif impl is None:
        for p, g, rv, cv, v, t, lr, h in zip(params, grads, *states, steps, lrs, hypers):
            _reference_call(_reference.adafactor_step, p, g, rv, cv, v, step=t, lr=lr,
                            beta2_decay=h["beta2_decay"], eps1=h["eps"][0],
                            eps2=h["eps"][1], d=h["d"], weight_decay=h["weight_decay"],
                            maximize=h["maximize"])
    else:
        if work is None:
            work = _workspace(params)
        for p, g, rv, cv, v, c in zip(params, grads, *states, coefficients):
            _numba(p, g, rv, cv, v, work, c)


# ---- the functional step ------------------------------------------------------------------
# the last hyperparameters that passed validation (key: the values as given), and their
# checked form: a loop calling with the same values checks them once
_last: tuple = ((object(),) * 6, None)

def adafactor_step(param: np.ndarray, grad: np.ndarray, row_var: Optional[np.ndarray] = None,
                   col_var: Optional[np.ndarray] = None,
                   variance: Optional[np.ndarray] = None, *, step: int, lr: float = 1e-2,
                   beta2_decay: float = -0.8, eps1: Optional[float] = None,
                   eps2: float = 1e-3, d: float = 1.0, weight_decay: float = 0.0,
                   maximize: bool = False, backend: str = "auto") -> None:
    r"""Adafactor (torch 2.13's ``torch.optim.Adafactor``), in place.

    .. math::

        G &= \pm\,\text{grad}, \qquad \hat\beta_{2,t} = 1 - t^{\tau}, \qquad
        \rho_t = \min(\text{lr}, 1/\sqrt{t}), \qquad
        \alpha_t = \max(\epsilon_2, \text{RMS}(\theta))\,\rho_t \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) \\
        R &\leftarrow \hat\beta_{2,t} R + (1-\hat\beta_{2,t})\,\text{mean}_{-1}(G^2),
        \qquad
        C \leftarrow \hat\beta_{2,t} C + (1-\hat\beta_{2,t})\,\text{mean}_{-2}(G^2),
        \qquad
        \hat V = \frac{R\,C}{\max(\text{mean}_{-2}(R), \epsilon_1)}
        \quad (\text{array of} \ge 2 \text{ dims}) \\
        \hat V &\leftarrow \hat\beta_{2,t} \hat V + (1-\hat\beta_{2,t})\, G^2
        \quad (\text{1-D or 0-D: the full } \texttt{variance}) \\
        U &= \frac{G}{\sqrt{\max(\hat V, \epsilon_1^2)}}, \qquad
        \theta \leftarrow \theta - \frac{\alpha_t}{\max(1, \text{RMS}(U)/d)}\, U

    with :math:`\tau` = ``beta2_decay``; ``RMS`` is over the whole array, :math:`R` and
    :math:`C` (``row_var``, ``col_var``) are factored over the last two dimensions (leading
    dimensions are independent matrices); :math:`\alpha_t` uses :math:`\theta` before the
    weight decay. Every state starts at zero, as in torch. No temporary array: a factored
    array takes three passes over its gradient (the row and column sums of :math:`G^2`;
    the sum of :math:`U^2`, which the clipping needs before any element is written; the
    update), a 1-D one two. The sums are in double precision in a fixed order, so the
    result is the same, bit for bit, on any thread count and SIMD level. A workspace of
    O(rows + cols) doubles is allocated per call (:class:`Adafactor` allocates it once).

    Parameters
    ----------
    param, grad : ndarray
        Parameters (updated in place) and their gradient, of one dtype and shape. A 3-D or
        higher array must be C-contiguous; a 2-D one may be C- or F-contiguous.
    row_var, col_var : ndarray, optional
        For an array of shape ``(..., rows, cols)``: the factors :math:`R`, shape
        ``(..., rows, 1)``, and :math:`C`, shape ``(..., 1, cols)``, C-contiguous, updated in
        place. ``None`` for a 1-D or 0-D array.
    variance : ndarray, optional
        For a 1-D or 0-D array: the second moment :math:`\hat V`, param's shape.
        ``None`` otherwise.
    step : int
        The 1-based step count :math:`t` of this update.
    lr : float, default 1e-2
        ``>= 0``; caps the relative step size :math:`\rho_t` and scales the weight decay.
    beta2_decay : float, default -0.8
        :math:`\tau \le 0`.
    eps1 : float or None, default None
        ``>= 0``, floor of the variance estimate (squared) and of the row factor's mean;
        ``None``: the dtype's machine epsilon, as torch.
    eps2 : float, default 1e-3
        ``>= 0``, floor of :math:`\text{RMS}(\theta)`.
    d : float, default 1.0
        The update-clipping threshold, ``>= 1``.
    weight_decay : float, default 0
        :math:`\lambda \ge 0` (decoupled, scaled by ``lr``).
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    """
    f = "adafactor_step"
    global _last
    key = (beta2_decay, eps1, eps2, d, weight_decay, maximize)
    last_key, hyper = _last
    if key != last_key or tuple(map(type, key)) != tuple(map(type, last_key)):
        hyper = dict(beta2_decay=_nonpositive(f, "beta2_decay", beta2_decay),
                     eps=(_eps1(f, "eps1", eps1), _v.nonnegative(f, "eps2", eps2)),
                     d=_at_least_one(f, "d", d),
                     weight_decay=_v.nonnegative(f, "weight_decay", weight_decay),
                     maximize=_v.flag(f, "maximize", maximize))
        _last = (key, hyper)       # (validated: the same values of the same types pass)
    step = _v.step_count(f, "step", step)
    lr = _v.nonnegative(f, "lr", lr)
    plain = _v.check_arrays(f, ("param", "grad"), (param, grad))
    if plain is not None:
        param, grad = plain
    _check_layout(f, "param", param)
    states = _adafactor.check_states(f, param, _STATES, (row_var, col_var, variance))
    _adafactor.check_apart(f, ("param", "grad") + _STATES, (param, grad, *states))
    impl = _select(f, backend, param.size, param.itemsize, 3)
    if impl is _cython or impl is _cython_parallel:       # (the common case, directly)
        _adafactor.adafactor(param, grad, *states, _small_or_new_workspace(param),
                             _coefficients(step, lr, hyper, param.dtype),
                             _threads.get_num_threads() if impl is _cython_parallel else 1)
        return
    _run(f, impl, [param], [grad], [[s] for s in states], [step], [lr], [hyper],
         _small_or_new_workspace(param))


# ---- the class ----------------------------------------------------------------------------
# The stand-in of a registry KernelCall that ParamGroup reads (the names of the group's
# values, no carried scalar state): Adafactor is not a registry kernel.
_CALL = types.SimpleNamespace(
    hyper_names=("step", "lr", "beta2_decay", "eps", "d", "weight_decay", "maximize"),
    kernel=types.SimpleNamespace(carried={}))


class Adafactor(Optimizer):
    r"""Adafactor (Shazeer & Stern 2018), torch 2.13's ``torch.optim.Adafactor``: factored
    second moments for arrays of two or more dimensions, relative step size, update
    clipping; no first moment.

    .. math::

        \rho_t = \min(\text{lr}, 1/\sqrt{t}), \qquad
        \alpha_t = \max(\epsilon_2, \text{RMS}(\theta))\,\rho_t, \qquad
        \theta \leftarrow \theta(1 - \text{lr}\,\lambda) \\
        R \leftarrow \text{lerp}(R, \text{mean}_{-1} G^2, t^{\tau}), \quad
        C \leftarrow \text{lerp}(C, \text{mean}_{-2} G^2, t^{\tau}), \quad
        \hat V = \frac{R\,C}{\max(\text{mean}_{-2} R, \epsilon_1)}
        \ \ (\text{or } \hat V \leftarrow \text{lerp}(\hat V, G^2, t^{\tau})
        \text{ for a 1-D array}) \\
        U = G / \sqrt{\max(\hat V, \epsilon_1^2)}, \qquad
        \theta \leftarrow \theta - \frac{\alpha_t}{\max(1, \text{RMS}(U)/d)}\, U

    (:func:`adafactor_step` has the details). State, as torch's: ``row_var`` and
    ``col_var`` (shapes ``(..., rows, 1)`` and ``(..., 1, cols)``) for an array of two or
    more dimensions, ``variance`` for a 1-D or 0-D one, all starting at zero, and each
    array's own step count ``t`` (a ``None`` gradient leaves both). A step is one compiled
    call over all the arrays with a gradient (:func:`fastoptim._adafactor.adafactor_multi`);
    results do not depend on the thread count. Parameter groups, schedules,
    ``skip_nonfinite`` and state dicts are the base class's.

    Parameters
    ----------
    params : list or dict of ndarray, or a list of parameter-group dicts
    lr : float or callable, default 1e-2
    beta2_decay : float, default -0.8
        ``<= 0``.
    eps : (float or None, float), default (None, 1e-3)
        ``(eps1, eps2)``; eps1 ``None`` is the array's dtype's machine epsilon (torch takes
        the first array's dtype for the whole group; the two differ only in a group mixing
        float32 and float64 arrays).
    d : float, default 1.0
        Update clipping threshold, ``>= 1``.
    weight_decay : float, default 0
    foreach : None or bool, default None
        Accepted for torch compatibility; fastoptim always takes one compiled call.
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
    """

    _kernels = ()
    _elementwise = False    # not a registry kernel: its own _apply

    def __init__(self, params: Params, lr: LR = 1e-2, beta2_decay: float = -0.8,
                 eps: Tuple[Optional[float], float] = (None, 1e-3), d: float = 1.0,
                 weight_decay: float = 0.0, *, foreach: Optional[bool] = None,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        if foreach is not None:
            _v.flag("Adafactor", "foreach", foreach)
        self._work = np.empty(1)
        super().__init__(params, lr, dict(beta2_decay=beta2_decay, eps=eps, d=d,
                                          weight_decay=weight_decay, maximize=maximize),
                         backend, skip_nonfinite)

    @classmethod
    def _check(cls, f: str, hyper: dict) -> dict:
        checks = {"beta2_decay": _nonpositive, "d": _at_least_one,
                  "weight_decay": _v.nonnegative, "maximize": _v.flag}
        return {name: _eps_pair(f, value) if name == "eps" else checks[name](f, name, value)
                for name, value in hyper.items()}

    def _plan(self, hyper: dict):
        values = tuple(hyper.get(name) for name in _CALL.hyper_names)
        return "adafactor", _CALL, _STATES, values

    def _new_states(self, name: str, params: List[np.ndarray], hyper: dict) -> list:
        """torch's state: the factors of arrays of >= 2 dimensions, the variance of the
        others (``None`` where an array has no such buffer); zeros."""
        out = []
        for p in params:
            shape = _state_shapes(p.shape).get(name)
            out.append(None if shape is None else
                       np.zeros_like(p) if name == "variance" else np.zeros(shape, p.dtype))
        return out

    def _add_groups(self, f: str, groups) -> None:
        for obj, _ in groups:
            keys, arrays, _d = _params.flatten(f, "params", obj)
            for key, p in zip(_params.labels("params", keys), arrays):
                if isinstance(p, np.ndarray):
                    _check_layout(f, key, p)
        super()._add_groups(f, groups)
        self._work = _workspace(self._params)
        _, _, names, arrays = self._grads_and_written([None] * len(self._params))
        self._written = (names, arrays)      # the parameters and state buffers, named

    def _apply(self, f: str, grads: list, lrs: list, missing: bool) -> None:
        """One compiled call over every bucket (group, step count) of arrays with a
        gradient; then the step counts."""
        impl = _select(f, self._backend, 0)
        names = [n[1] for n, g in zip(self._check_names, grads) if g is not None] \
            if missing else [n[1] for n in self._check_names]
        _checks.grads_apart(f, names, [g for g in grads if g is not None]
                               if missing else grads, *self._written)
        lr_of = {id(g): lr for g, lr in zip(self._groups, lrs)}
        idx, steps, lrs_, hypers = [], [], [], []
        for group, count, which in self._buckets(grads, missing):
            idx.extend(which)
            steps.extend([count + 1] * len(which))
            lrs_.extend([lr_of[id(group)]] * len(which))
            hypers.extend([group.hyper] * len(which))
        params = [self._params[i] for i in idx]
        _run(f, impl, params, [grads[i] for i in idx],
             [[self._state[s][i] for i in idx] for s in _STATES], steps, lrs_, hypers,
             self._work, _threads_for(max(params, key=lambda a: a.size)) if params else 1)
        if self._steps is None and not missing:
            self._n.step_all += 1           # (every array stepped: the counts stay equal)
        else:
            self._set_step_counts([s + 1 if g is not None else s
                                   for s, g in zip(self._step_counts(), grads)])
