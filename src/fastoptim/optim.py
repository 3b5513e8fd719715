"""Optimizer classes: torch.optim's names and defaults, on NumPy arrays, updated in place.

::

    parameters = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}      # the course's dict
    opt = fastoptim.Adam(parameters, lr=1e-3)
    ...
    opt.step({"W1": dW1, "b1": db1, "W2": dW2, "b2": db2})      # same keys

Each class keeps its parameters, and each of its state buffers, as **parallel lists in one
fixed order** (list order or the dict's insertion order). A step

1. checks every gradient against its parameter (structure, shape, dtype, layout) before
   touching anything, so a bad gradient raises naming its key and nothing is updated;
2. computes the learning rate (a float, or a schedule called with the step count
   ``t = 1, 2, ...``) and the kernel's per-call coefficients **once**
   (:mod:`fastoptim._coefficients`);
3. runs :meth:`Optimizer._apply`, the one place that walks the arrays and calls the backend.

Hyperparameters are validated once, at construction (and when ``opt.lr`` is set by hand).
Every state buffer starts at zero, with its parameter's dtype and layout (Adagrad: at
``initial_accumulator_value``).
"""
from __future__ import annotations

import threading
from operator import is_ as _is
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from . import _coefficients as _coef
from . import _params
from . import _reductions
from . import _validation as _v
from . import reference as _reference
from . import _cython_parallel
from . import arena as _arena
from . import kernels as _cython
from ._backends import select as _select

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad"]

Params = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]
LR = Union[float, Callable[[int], float]]


class Optimizer:
    """Base class: parameters, state buffers, the step count and the per-array loop.

    Subclasses define

    * ``_kernel``: the backend entry point (``"adam"``...) and reference ``<_kernel>_step``;
    * ``_validate(func, hyper) -> dict``: check and normalise the hyperparameters (not lr);
    * ``_slots(hyper) -> tuple``: the state names in the order of the entry point's state
      arguments, ``None`` for an unused optional one; the first ``_n_positional`` are
      positional in the reference, the others are its keyword arguments of the same name;
    * ``_coefficients(t, lr)``: the entry point's scalars (from :mod:`fastoptim._coefficients`);
    * ``_reference_kwargs(t, lr)``: the reference's keyword hyperparameters.
    """

    _kernel: str = ""
    _n_positional: int = 0

    def __init__(self, params: Params, lr: LR, hyper: dict, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        f = type(self).__name__
        self._hyper = self._validate(f, hyper)
        keys, arrays, is_dict = _params.flatten(f, "params", params)
        if not arrays:
            raise ValueError(f"{f}: params is empty; pass the arrays to optimize")
        names = _params.labels("params", keys)
        plain_arrays = []
        for name, p in zip(names, arrays):
            plain = _v.check_arrays(f, (name,), (p,))
            plain_arrays.append(p if plain is None else plain[0])
            if "eps" in self._hyper and isinstance(self._hyper["eps"], float):
                _v.eps_for_dtype(f, "eps", self._hyper["eps"], p.dtype)
        _params.check_disjoint(f, names, plain_arrays)
        _select(f, backend, 0)          # a bad backend name fails here, not at the first step
        self._lock = threading.Lock()
        # the user's container and array objects, to detect a key rebound to a new array
        self._container = params if isinstance(params, (dict, list)) else None
        self._given = arrays
        self._keys: List = keys
        self._is_dict = is_dict
        self._params: List[np.ndarray] = plain_arrays
        self._param_names = names
        self._grad_names = _params.labels("grads", keys)
        self._backend = backend
        self.lr = lr
        self._t = 0
        self._last_lr = None
        self._skipped_steps = 0
        self._skip_nonfinite = _v.flag(f, "skip_nonfinite", skip_nonfinite)
        self._set_slots(self._slots(self._hyper))
        self._state: Dict[str, List[np.ndarray]] = {
            name: self._new_states(name, plain_arrays)
            for name in self._slot_names if name is not None}
        self._bind_state()

    # ---- hooks ---------------------------------------------------------------------------
    @classmethod
    def _validate(cls, f: str, hyper: dict) -> dict:
        raise NotImplementedError

    @staticmethod
    def _slots(hyper: dict) -> Tuple:
        raise NotImplementedError

    def _new_states(self, name: str, params: List[np.ndarray]) -> List[np.ndarray]:
        """One zeroed buffer per parameter (its shape, dtype and layout), all views of one
        aligned buffer (:func:`fastoptim.arena.zeros_like_all`): a step over many arrays
        then touches fewer memory pages, and runs as fast as on one flat array."""
        return _arena.zeros_like_all(params)

    def _coefficients(self, t: int, lr: float) -> tuple:
        raise NotImplementedError

    def _reference_kwargs(self, t: int, lr: float) -> dict:
        raise NotImplementedError

    # ---- public --------------------------------------------------------------------------
    @property
    def lr(self) -> LR:
        """The learning rate: a float ``>= 0``, or a schedule called with the step count t."""
        return self._lr

    @lr.setter
    def lr(self, value: LR) -> None:
        if callable(value):
            self._lr = value
        else:
            self._lr = _v.nonnegative(type(self).__name__, "lr", value)

    @property
    def t(self) -> int:
        """Number of steps taken (the next step uses ``t + 1``); skipped steps not counted."""
        return self._t

    @property
    def last_lr(self):
        """The learning rate the last step used (a float; ``None`` before the first step).
        With a schedule as ``lr``, ``opt.lr`` is the schedule and this is its value."""
        return self._last_lr

    @property
    def backend(self) -> str:
        """The backend chosen at construction."""
        return self._backend

    @property
    def skipped_steps(self) -> int:
        """Steps skipped because a gradient held an inf or a NaN (``skip_nonfinite``)."""
        return self._skipped_steps

    @property
    def skip_nonfinite(self) -> bool:
        """Whether a step whose gradients hold an inf or a NaN is skipped (nothing changes
        but :attr:`skipped_steps`); may be changed between steps."""
        return self._skip_nonfinite

    @skip_nonfinite.setter
    def skip_nonfinite(self, value: bool) -> None:
        self._skip_nonfinite = _v.flag(type(self).__name__, "skip_nonfinite", value)

    @property
    def params(self) -> Params:
        """The parameters, in the structure they were given (the same array objects)."""
        if self._is_dict:
            return dict(zip(self._keys, self._given))
        return list(self._given)

    # Attributes that may be assigned; every other public name is read-only or a typo.
    _SETTABLE = ("lr", "skip_nonfinite")

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name in hyper:
            return hyper[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if name.startswith("_") or name in self._SETTABLE:
            object.__setattr__(self, name, value)
            return
        cls = type(self).__name__
        hyper = self.__dict__.get("_hyper") or {}
        if name in hyper:
            raise AttributeError(
                f"{cls}.{name} is fixed at construction (it was validated then); only "
                f"{' and '.join(self._SETTABLE)} can be changed between steps")
        readonly = sorted(set(hyper) | {"t", "last_lr", "backend", "skipped_steps",
                                        "params", "param_groups"} - {"param_groups"})
        raise AttributeError(
            f"{cls} has no attribute {name!r} to set; settable: {', '.join(self._SETTABLE)}; "
            f"read-only: {', '.join(readonly)}")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._hyper.items())
        return (f"{type(self).__name__}({len(self._params)} arrays, lr={self._lr!r}, {opts}, "
                f"backend={self._backend!r})")

    def step(self, grads: Params) -> None:
        """Update every parameter in place from ``grads`` (the structure of ``params``).

        Every gradient is checked first (keys, shape, dtype, layout, no shared memory with
        any parameter or state buffer); on any error nothing is updated and the step count
        is unchanged. With ``skip_nonfinite=True`` a step whose gradients hold an inf or a
        NaN changes nothing but :attr:`skipped_steps`. Safe to call from several threads:
        steps are serialized by a lock, none is lost.
        """
        f = f"{type(self).__name__}.step"
        with self._lock:
            self._check_bindings(f)
            grads = _params.match(f, "grads", grads, self._keys, self._is_dict, "params")
            check = _v.check_arrays
            for i, (names, param, grad) in enumerate(zip(self._check_names, self._params,
                                                         grads)):
                if check(f, names, (param, grad)) is not None:
                    grads[i] = grad.view(np.ndarray)     # a subclass: its plain view
            if self._t >= _v.MAX_STEP:
                raise ValueError(f"{f}: the step count would exceed 2**63 - 1")
            t = self._t + 1
            lr = self._lr_at(f, t)
            if self._skip_nonfinite and not _reductions.all_finite(grads):
                self._skipped_steps += 1
                return
            self._apply(f, grads, t, lr)
            self._t = t
            self._last_lr = lr

    def state_dict(self) -> dict:
        """A copy of everything a resumed run needs, as plain NumPy arrays and Python scalars.

        Keys: ``"optimizer"`` (class name), ``"step"`` and ``"skipped_steps"``
        (``np.int64``), ``"param_keys"``,
        ``"hyperparameters"`` (``lr`` is ``None`` when it is a schedule), ``"params"`` (list
        of arrays in ``param_keys`` order) and ``"state"`` (state name -> list of arrays).
        """
        hyper = dict(self._hyper)
        hyper["lr"] = None if callable(self._lr) else self._lr
        return {
            "optimizer": type(self).__name__,
            "step": np.int64(self._t),
            "skipped_steps": np.int64(self._skipped_steps),
            "param_keys": list(self._keys),
            "hyperparameters": hyper,
            "params": [p.copy(order="K") for p in self._params],
            "state": {name: [s.copy(order="K") for s in bufs]
                      for name, bufs in self._state.items()},
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore :meth:`state_dict` output in place (params, state, step, hyperparameters).

        Checks the optimizer type, the parameter keys, the hyperparameters, the state names
        and every array's shape and dtype before copying anything; the arrays are copied
        into the existing buffers, so references to them stay valid.
        """
        f = f"{type(self).__name__}.load_state_dict"
        sd = state_dict
        if not isinstance(sd, Mapping):
            raise TypeError(f"{f}: state_dict must be a dict, got {type(sd).__name__}")
        required = ("optimizer", "step", "param_keys", "hyperparameters", "params", "state")
        missing = [k for k in required if k not in sd]
        if missing:
            raise ValueError(f"{f}: state_dict is missing {missing}")
        if sd["optimizer"] != type(self).__name__:
            raise ValueError(
                f"{f}: the state_dict is from a {sd['optimizer']!r} optimizer, not "
                f"{type(self).__name__!r}")
        step = _v.steps_taken(f, "step", sd["step"])
        skipped = _v.steps_taken(f, "skipped_steps", sd.get("skipped_steps", 0))
        keys = list(sd["param_keys"])
        if keys != self._keys:
            raise ValueError(
                f"{f}: the state_dict's param_keys {keys} differ from this optimizer's "
                f"{self._keys}")
        saved = dict(sd["hyperparameters"])
        lr = saved.pop("lr", None)
        if set(saved) != set(self._hyper):
            raise ValueError(
                f"{f}: the state_dict's hyperparameters {sorted(saved)} differ from "
                f"{type(self).__name__}'s {sorted(self._hyper)}")
        hyper = self._validate(f, saved)
        if lr is not None:
            lr = _v.nonnegative(f, "lr", lr)
        slots = self._slots(hyper)
        if slots != self._slot_names:
            raise ValueError(
                f"{f}: the state_dict has state {[s for s in slots if s]}, this optimizer "
                f"has {[s for s in self._slot_names if s]}; construct it with the saved "
                f"options {hyper}")
        state = dict(sd["state"])
        for old, new in _RENAMED_STATES.items():     # checkpoints of fastoptim 0.1
            if old in state and new in self._state and new not in state:
                state[new] = state.pop(old)
        if set(state) != set(self._state):
            raise ValueError(
                f"{f}: the state_dict has state {sorted(state)}, expected "
                f"{sorted(self._state)}")
        pairs = [("params", self._params, sd["params"])]
        pairs += [(f"state[{n!r}]", self._state[n], state[n]) for n in self._state]
        for what, dst_list, src_list in pairs:
            if len(src_list) != len(dst_list):
                raise ValueError(
                    f"{f}: {what} has {len(src_list)} arrays, expected {len(dst_list)}")
            for key, dst, src in zip(self._keys, dst_list, src_list):
                if not isinstance(src, np.ndarray):
                    raise TypeError(
                        f"{f}: {what}[{key!r}] must be a numpy.ndarray, got "
                        f"{type(src).__name__}")
                if src.shape != dst.shape or src.dtype != dst.dtype:
                    raise ValueError(
                        f"{f}: {what}[{key!r}] has shape {src.shape} and dtype {src.dtype}, "
                        f"expected {dst.shape} and {dst.dtype}")
        for _, dst_list, src_list in pairs:
            for dst, src in zip(dst_list, src_list):
                np.copyto(dst, src, casting="no")
        self._hyper = hyper
        if lr is not None:
            self._lr = lr
        self._t = step
        self._skipped_steps = skipped

    # ---- internals -----------------------------------------------------------------------
    def _set_slots(self, slots: Tuple) -> None:
        self._slot_names = slots
        self._check_names = list(zip(self._param_names, self._grad_names))

    def _bind_state(self) -> None:
        """The state lists in the entry point's argument order (``None`` for unused slots),
        and the same regrouped per array (``self._array_states[i]``) for the loop."""
        self._state_lists = [None if s is None else self._state[s] for s in self._slot_names]
        self._array_states = [tuple(None if s is None else s[i] for s in self._state_lists)
                              for i in range(len(self._params))]

    def _check_bindings(self, f: str) -> None:
        """Refuse a step after a key of the user's dict (or an entry of their list) was
        rebound to another array: the optimizer updates the arrays it was given in place,
        and would silently go on updating the old one. O(number of arrays)."""
        container = self._container
        if container is None:
            return
        if self._is_dict:
            try:
                same = all(map(_is, map(container.__getitem__, self._keys), self._given))
            except KeyError:
                same = False
            if not same:
                key = next(k for k, given in zip(self._keys, self._given)
                           if container.get(k) is not given)
                raise ValueError(
                    f"{f}: params[{key!r}] was replaced by another array after the "
                    f"optimizer was created; it updates the arrays it was given in "
                    f"place. Assign into the array instead (params[{key!r}][...] = "
                    f"new_values), or create a new optimizer (load_state to resume)")
        elif len(container) != len(self._given) or not all(
                map(_is, container, self._given)):
            raise ValueError(
                f"{f}: the params list was changed after the optimizer was created; it "
                f"updates the arrays it was given in place. Assign into them instead "
                f"(params[i][...] = new_values), or create a new optimizer")

    def _lr_at(self, f: str, t: int) -> float:
        lr = self._lr
        if callable(lr):
            return _v.nonnegative(f, f"lr (the schedule's value at t={t})", lr(t))
        return lr

    def _apply(self, f: str, grads: List[np.ndarray], t: int, lr: float) -> None:
        """Update every array, with the coefficients computed once for the step.

        ``self._params``, ``grads`` and each list of ``self._state_lists`` are parallel lists
        in one fixed order. On the Cython backend (what "auto" picks) the whole list is one
        compiled call, ``kernels.<kernel>_multi``: one OpenMP parallel region over all the
        arrays when the step moves enough memory for threads to pay, one thread otherwise.
        Other backends get one call per array.
        """
        impl = _select(f, self._backend, 0)
        coefficients = self._coefficients(t, lr)
        if impl is _cython or impl is _cython_parallel:
            # the multi-tensor kernel refuses a gradient sharing memory with any parameter
            # or state buffer (one sort of the byte extents) before it touches anything
            multi = getattr(_cython, self._kernel + "_multi")
            multi(self._params, grads, *self._state_lists, coefficients,
                  labels=self._keys)
            return
        _params.check_grads_apart(f, self._grad_names, grads,
                                  self._param_names, self._written_arrays())
        if impl is None:
            self._apply_reference(grads, t, lr)
            return
        kernel = getattr(impl, self._kernel)
        for param, grad, states in zip(self._params, grads, self._array_states):
            kernel(param, grad, *states, coefficients)

    def _written_arrays(self) -> List[np.ndarray]:
        """Every parameter and state buffer (what a step writes), parameters first."""
        out = list(self._params)
        for states in self._state.values():
            out.extend(states)
        return out

    def _apply_reference(self, grads: List[np.ndarray], t: int, lr: float) -> None:
        """The same loop on the NumPy reference, which takes user-level hyperparameters."""
        reference = getattr(_reference, self._kernel + "_step")
        kwargs = self._reference_kwargs(t, lr)
        slots, n_pos = self._slot_names, self._n_positional
        for param, grad, states in zip(self._params, grads, self._array_states):
            optional = {slots[j]: states[j] for j in range(n_pos, len(slots))
                        if slots[j] is not None}
            reference(param, grad, *states[:n_pos], **optional, **kwargs)


# State names of fastoptim 0.1 -> today's (the functional API's): read from old checkpoints.
_RENAMED_STATES = {"sum": "state_sum"}


def _betas(f: str, betas) -> Tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{f}: betas must be a pair (beta1, beta2), got {betas!r}")
    return (_v.unit_interval(f, "betas[0]", betas[0]),
            _v.unit_interval(f, "betas[1]", betas[1]))


class SGD(Optimizer):
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
    """

    def __init__(self, params: Params, lr: LR, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, maximize: bool = False,
                 backend: str = "auto", skip_nonfinite: bool = False) -> None:
        super().__init__(params, lr, dict(
            momentum=momentum, dampening=dampening, nesterov=nesterov,
            weight_decay=weight_decay, maximize=maximize), backend, skip_nonfinite)
        self._kernel = "momentum" if self._hyper["momentum"] > 0.0 else "sgd"
        self._n_positional = len(self._slot_names)

    @classmethod
    def _validate(cls, f, h):
        out = dict(momentum=_v.nonnegative(f, "momentum", h["momentum"]),
                   dampening=_v.closed_unit_interval(f, "dampening", h["dampening"]),
                   nesterov=_v.flag(f, "nesterov", h["nesterov"]),
                   weight_decay=_v.nonnegative(f, "weight_decay", h["weight_decay"]),
                   maximize=_v.flag(f, "maximize", h["maximize"]))
        if out["nesterov"] and (out["momentum"] <= 0.0 or out["dampening"] != 0.0):
            raise ValueError(
                f"{f}: nesterov=True needs momentum > 0 and dampening == 0, got "
                f"momentum={out['momentum']!r}, dampening={out['dampening']!r}")
        return out

    @staticmethod
    def _slots(h):
        return ("momentum_buffer",) if h["momentum"] > 0.0 else ()

    def _coefficients(self, t, lr):
        h = self._hyper
        if self._kernel == "sgd":
            return _coef.sgd(lr, h["weight_decay"], h["maximize"])
        return _coef.momentum(lr, h["momentum"], h["dampening"], h["nesterov"],
                              h["weight_decay"], h["maximize"])

    def _reference_kwargs(self, t, lr):
        kw = dict(self._hyper, lr=lr)
        if self._kernel == "sgd":
            for k in ("momentum", "dampening", "nesterov"):
                del kw[k]
        return kw


class RMSprop(Optimizer):
    r"""RMSprop (optionally centered and with momentum).

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta, \qquad
        s \leftarrow \alpha\, s + (1-\alpha)\, g^2 \\
        \text{avg} &= \sqrt{s - a^2} + \epsilon \text{ with }
            a \leftarrow \alpha a + (1-\alpha) g \text{ (centered)},
            \quad\text{else } \sqrt{s} + \epsilon \\
        b &\leftarrow \mu\, b + g / \text{avg},\ \theta \leftarrow \theta - \text{lr}\, b
            \ (\mu > 0) \qquad\text{else}\quad \theta \leftarrow \theta - \text{lr}\, g/\text{avg}

    State: ``square_avg`` (:math:`s`), ``momentum_buffer`` (:math:`b`, when
    ``momentum > 0``), ``grad_avg`` (:math:`a`, when ``centered``), all starting at zero.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
    alpha : float, default 0.99
        In ``[0, 1)``.
    eps : float, default 1e-8
        ``> 0``.
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    """

    _kernel = "rmsprop"
    _n_positional = 1

    def __init__(self, params: Params, lr: LR = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        super().__init__(params, lr, dict(
            alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize), backend, skip_nonfinite)

    @classmethod
    def _validate(cls, f, h):
        return dict(alpha=_v.unit_interval(f, "alpha", h["alpha"]),
                    eps=_v.positive(f, "eps", h["eps"]),
                    weight_decay=_v.nonnegative(f, "weight_decay", h["weight_decay"]),
                    momentum=_v.nonnegative(f, "momentum", h["momentum"]),
                    centered=_v.flag(f, "centered", h["centered"]),
                    maximize=_v.flag(f, "maximize", h["maximize"]))

    @staticmethod
    def _slots(h):
        return ("square_avg", "momentum_buffer" if h["momentum"] > 0.0 else None,
                "grad_avg" if h["centered"] else None)

    def _coefficients(self, t, lr):
        h = self._hyper
        return _coef.rmsprop(lr, h["alpha"], h["eps"], h["weight_decay"], h["momentum"],
                             h["maximize"])

    def _reference_kwargs(self, t, lr):
        return dict(self._hyper, lr=lr)


class Adam(Optimizer):
    r"""Adam with bias correction (optionally AMSGrad); L2 weight decay added to the gradient.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\theta, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        \theta &\leftarrow \theta - \text{lr}\, \frac{m / (1-\beta_1^t)}
            {\sqrt{v / (1-\beta_2^t)} + \epsilon}

    with :math:`v` replaced by its running maximum ``max_exp_avg_sq`` under AMSGrad. State:
    ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``), all starting at zero; ``t`` is the
    step count, also the argument of an ``lr`` schedule.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Each in ``[0, 1)``.
    eps : float, default 1e-8
    weight_decay : float, default 0
    amsgrad : bool, default False
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    """

    _kernel = "adam"
    _n_positional = 2
    _decoupled = False

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        super().__init__(params, lr, dict(
            betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize), backend, skip_nonfinite)

    @classmethod
    def _validate(cls, f, h):
        return dict(betas=_betas(f, h["betas"]),
                    eps=_v.positive(f, "eps", h["eps"]),
                    weight_decay=_v.nonnegative(f, "weight_decay", h["weight_decay"]),
                    amsgrad=_v.flag(f, "amsgrad", h["amsgrad"]),
                    maximize=_v.flag(f, "maximize", h["maximize"]))

    @staticmethod
    def _slots(h):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if h["amsgrad"] else None)

    def _coefficients(self, t, lr):
        h = self._hyper
        beta1, beta2 = h["betas"]
        return _coef.adam(t, lr, beta1, beta2, h["eps"], h["weight_decay"], self._decoupled,
                          h["maximize"])

    def _reference_kwargs(self, t, lr):
        h = self._hyper
        beta1, beta2 = h["betas"]
        return dict(step=t, lr=lr, beta1=beta1, beta2=beta2, eps=h["eps"],
                    weight_decay=h["weight_decay"], decoupled_weight_decay=self._decoupled,
                    amsgrad=h["amsgrad"], maximize=h["maximize"])


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter).

    .. math::

        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda), \quad\text{then the Adam update
        of } \theta \text{ with } g = \pm\,\text{grad}

    Same arguments as :class:`Adam`, with ``weight_decay`` (:math:`\lambda`) defaulting to
    ``1e-2`` as in torch.
    """

    _decoupled = True

    def __init__(self, params: Params, lr: LR = 1e-3, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, backend,
                         skip_nonfinite)


class Adagrad(Optimizer):
    r"""Adagrad.

    .. math::

        g &\leftarrow \pm\,\text{grad} + \lambda\,\theta, \qquad
        \tilde\eta = \text{lr} / (1 + (t-1)\,\text{lr\_decay}) \\
        G &\leftarrow G + g^2, \qquad
        \theta \leftarrow \theta - \tilde\eta\, g / (\sqrt{G} + \epsilon)

    State: ``state_sum`` (:math:`G`; ``sum`` in fastoptim 0.1 checkpoints, still read),
    starting at ``initial_accumulator_value``.

    Parameters
    ----------
    params : list or dict of ndarray
    lr : float or callable, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
        ``>= 0``.
    eps : float, default 1e-10
    maximize : bool, default False
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
        Skip a step whose gradients hold an inf or a NaN: nothing changes (parameters,
        state, step count) but :attr:`skipped_steps` (torch's ``found_inf``, optax's
        ``apply_if_finite``). Costs one read-only pass over the gradients.
    """

    _kernel = "adagrad"
    _n_positional = 1

    def __init__(self, params: Params, lr: LR = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False, backend: str = "auto",
                 skip_nonfinite: bool = False) -> None:
        super().__init__(params, lr, dict(
            lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps,
            maximize=maximize), backend, skip_nonfinite)

    @classmethod
    def _validate(cls, f, h):
        return dict(lr_decay=_v.nonnegative(f, "lr_decay", h["lr_decay"]),
                    weight_decay=_v.nonnegative(f, "weight_decay", h["weight_decay"]),
                    initial_accumulator_value=_v.nonnegative(
                        f, "initial_accumulator_value", h["initial_accumulator_value"]),
                    eps=_v.positive(f, "eps", h["eps"]),
                    maximize=_v.flag(f, "maximize", h["maximize"]))

    @staticmethod
    def _slots(h):
        return ("state_sum",)

    def _new_states(self, name, params):
        states = super()._new_states(name, params)
        for state in states:
            state.fill(self._hyper["initial_accumulator_value"])
        return states

    def _coefficients(self, t, lr):
        h = self._hyper
        return _coef.adagrad(t, lr, h["lr_decay"], h["weight_decay"], h["eps"], h["maximize"])

    def _reference_kwargs(self, t, lr):
        h = self._hyper
        return dict(step=t, lr=lr, lr_decay=h["lr_decay"], weight_decay=h["weight_decay"],
                    eps=h["eps"], maximize=h["maximize"])
