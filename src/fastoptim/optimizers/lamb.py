"""LAMB (You et al., as optax's ``lamb``): ``lamb_step`` and :class:`LAMB`.

LAMB is not element-wise: each array's Adam direction is scaled by the array's trust ratio
``||param|| / ||r||``. Its kernels are therefore not registry kernels (the registry's glue,
dispatch and multi-tensor chunking assume element-wise loops): the compiled one is
:mod:`fastoptim._lamb` (``csrc/lamb.h``), the Numba twin ``numba_kernels/lamb.py``, the
oracle :func:`fastoptim.reference.lamb_step`; validation and backend choice follow the same
rules as every other step (:mod:`fastoptim._validation`, :mod:`fastoptim._backends`).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .. import _cython_parallel
from .. import _lamb
from .. import _params
from .. import _reductions
from .. import _threads
from .. import _validation as _v
from .. import arena as _arena
from .. import kernels as _cython
from .. import reference as _reference
from .._backends import numba_backend as _numba_backend
from .._backends import select as _select
from .._dispatch import reference_call as _reference_call
from .._optimizer import LR, Params, _lr_at, _lr_value

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


class LAMB:
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

    with :math:`g = \pm\,\text{grad}`. State: ``exp_avg`` and ``exp_avg_sq``, both starting
    at zero; ``t`` is the step count, also the argument of an ``lr`` schedule. A step is one
    compiled call over all the arrays (:func:`fastoptim._lamb.lamb_multi`), two passes over
    each; results do not depend on the thread count.

    Not a registry optimizer: no parameter groups (``params`` is a list or dict of
    arrays); ``state_dict`` / ``load_state_dict`` are its own (not ``fastoptim.save_state``'s
    format).

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-6
    weight_decay : float, default 0
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes but
        :attr:`skipped_steps`.
    eps_root : float, default 0
        Added inside the square root (optax's ``eps_root``).
    """

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6, weight_decay: float = 0.0, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False, *,
                 eps_root: float = 0.0) -> None:
        f = "LAMB"
        self._hyper = dict(betas=_v.betas(f, betas), eps=_v.positive(f, "eps", eps),
                           weight_decay=_v.nonnegative(f, "weight_decay", weight_decay),
                           maximize=_v.flag(f, "maximize", maximize),
                           eps_root=_v.nonnegative(f, "eps_root", eps_root))
        self._lr = _lr_value(f, lr)
        _select(f, backend, 0)
        self._backend = backend
        self.skip_nonfinite = skip_nonfinite
        keys, arrays, is_dict = _params.flatten(f, "params", params)
        if not arrays:
            raise ValueError(f"{f}: params is empty; pass the arrays to optimize")
        names = _params.labels("params", keys)
        for name, p in zip(names, arrays):
            if _v.check_arrays(f, (name,), (p,)) is not None:
                raise TypeError(f"{f}: {name} must be a plain numpy.ndarray (it is updated "
                                f"in place), got {type(p).__name__}")
            _v.eps_for_dtype(f, "eps", self._hyper["eps"], p.dtype)
        _params.check_disjoint(f, names, arrays)
        self._keys, self._is_dict, self._params, self._names = keys, is_dict, arrays, names
        self._state = {"exp_avg": _arena.zeros_like_all(arrays),
                       "exp_avg_sq": _arena.zeros_like_all(arrays)}
        self._steps = [0] * len(arrays)
        self._t = 0
        self._skipped = 0
        self._last_lr: Optional[float] = None

    # ---- public --------------------------------------------------------------------------
    @property
    def lr(self) -> LR:
        """The learning rate: a float ``>= 0`` or a schedule called with the step count."""
        return self._lr

    @lr.setter
    def lr(self, value: LR) -> None:
        self._lr = _lr_value("LAMB", value)

    @property
    def skip_nonfinite(self) -> bool:
        return self._skip_nonfinite

    @skip_nonfinite.setter
    def skip_nonfinite(self, value: bool) -> None:
        self._skip_nonfinite = _v.flag("LAMB", "skip_nonfinite", value)

    betas = property(lambda self: self._hyper["betas"])
    eps = property(lambda self: self._hyper["eps"])
    eps_root = property(lambda self: self._hyper["eps_root"])
    weight_decay = property(lambda self: self._hyper["weight_decay"])
    maximize = property(lambda self: self._hyper["maximize"])
    backend = property(lambda self: self._backend, doc="The backend chosen at construction.")
    t = property(lambda self: self._t, doc="Number of steps taken (skipped ones not counted).")
    last_lr = property(lambda self: self._last_lr, doc="The lr of the last step.")
    skipped_steps = property(lambda self: self._skipped,
                             doc="Steps skipped by ``skip_nonfinite``.")

    @property
    def params(self) -> Params:
        """The parameters, in the structure they were given (the same array objects)."""
        return dict(zip(self._keys, self._params)) if self._is_dict else list(self._params)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return (f"LAMB({len(self._params)} arrays, lr={self._lr!r}, {opts}, "
                f"backend={self._backend!r})")

    def step(self, grads: Params) -> None:
        """Update every parameter in place from ``grads`` (the structure of ``params``).

        Every gradient is checked first (keys, shape, dtype, layout, no shared memory with a
        parameter or a state buffer); on any error nothing changes. A ``None`` gradient
        skips its array (its state and step count stay).
        """
        f = "LAMB.step"
        grads = _params.match(f, "grads", grads, self._keys, self._is_dict, "params")
        gnames = _params.labels("grads", self._keys)
        for i, (pname, gname, param, grad) in enumerate(zip(self._names, gnames,
                                                            self._params, grads)):
            if grad is not None and _v.check_arrays(f, (pname, gname), (param, grad)) \
                    is not None:
                grads[i] = grad.view(np.ndarray)
        idx = [i for i, g in enumerate(grads) if g is not None]
        written = self._params + self._state["exp_avg"] + self._state["exp_avg_sq"]
        written_names = self._names + [f"the {s} of {n}" for s in self._state
                                       for n in self._names]
        _params.check_grads_apart(f, [gnames[i] for i in idx], [grads[i] for i in idx],
                                  written_names, written)
        if self._t >= _v.MAX_STEP:
            raise ValueError(f"{f}: the step count would exceed 2**63 - 1")
        t = self._t + 1
        lr = _lr_at(f, self._lr, t)
        if self._skip_nonfinite and not _reductions.all_finite([grads[i] for i in idx]):
            self._skipped += 1
            return
        by_count: Dict[int, List[int]] = {}
        for i in idx:
            by_count.setdefault(self._steps[i], []).append(i)
        h = self._hyper
        impl = _select(f, self._backend, 0)
        for count, which in sorted(by_count.items()):
            hyper = (count + 1, lr, h["betas"][0], h["betas"][1], h["eps"], h["eps_root"],
                     h["weight_decay"], h["maximize"])
            arrays = ([self._params[i] for i in which], [grads[i] for i in which],
                      [self._state["exp_avg"][i] for i in which],
                      [self._state["exp_avg_sq"][i] for i in which])
            self._apply(impl, arrays, hyper)
            for i in which:
                self._steps[i] = count + 1
        self._t = t
        self._last_lr = lr

    def _apply(self, impl, arrays, hyper) -> None:
        if impl is None:
            for p, g, m, v in zip(*arrays):
                _reference_call(_reference.lamb_step, p, g, m, v, **dict(zip(_NAMES, hyper)))
            return
        coefficients = _lamb.coefficients(*hyper)
        if impl is _cython or impl is _cython_parallel:
            largest = max(arrays[0], key=lambda a: a.size)
            _lamb.lamb_multi(*arrays, coefficients, _threads_for(largest))
        else:
            for four in zip(*arrays):
                _numba(four, coefficients)

    def state_dict(self) -> dict:
        """A copy of everything a resumed run needs: plain arrays and Python scalars."""
        return {"optimizer": "LAMB", "t": self._t, "steps": list(self._steps),
                "skipped_steps": self._skipped, "lr": self._lr if not callable(self._lr)
                else None, "hyper": dict(self._hyper),
                "params": [p.copy() for p in self._params],
                "exp_avg": [a.copy() for a in self._state["exp_avg"]],
                "exp_avg_sq": [a.copy() for a in self._state["exp_avg_sq"]]}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict` output in place, after checking the optimizer, the
        number of arrays and every array's shape and dtype (nothing is copied otherwise)."""
        f = "LAMB.load_state_dict"
        if not isinstance(state_dict, Mapping) or state_dict.get("optimizer") != "LAMB":
            raise ValueError(f"{f}: not a LAMB state_dict")
        for key in ("params", "exp_avg", "exp_avg_sq"):
            arrays = state_dict.get(key)
            if not isinstance(arrays, (list, tuple)) or len(arrays) != len(self._params):
                raise ValueError(f"{f}: {key} must hold {len(self._params)} arrays")
            for name, src, dst in zip(self._names, arrays, self._params):
                if not isinstance(src, np.ndarray) or src.shape != dst.shape \
                        or src.dtype != dst.dtype:
                    raise ValueError(f"{f}: {key} of {name} must be a {dst.dtype} array of "
                                     f"shape {dst.shape}")
        steps = [_v.steps_taken(f, "steps", s) for s in state_dict["steps"]]
        if len(steps) != len(self._params):
            raise ValueError(f"{f}: steps must hold {len(self._params)} counts")
        t = _v.steps_taken(f, "t", state_dict["t"])
        skipped = _v.steps_taken(f, "skipped_steps", state_dict["skipped_steps"])
        checked = LAMB([np.zeros(1)], 1.0, **dict(state_dict["hyper"]))._hyper  # validated
        lr = state_dict.get("lr")
        lr = self._lr if lr is None else _lr_value(f, lr)
        for key, dsts in (("params", self._params), ("exp_avg", self._state["exp_avg"]),
                          ("exp_avg_sq", self._state["exp_avg_sq"])):
            for dst, src in zip(dsts, state_dict[key]):
                np.copyto(dst, src, casting="no")
        self._hyper, self._lr = checked, lr
        self._steps, self._t, self._skipped = steps, t, skipped
