"""Muon (torch.optim.Muon of torch 2.13): ``muon_step``, :class:`MuonWorkspace` and
:class:`Muon`.

Muon orthogonalizes the momentum of a 2-D array with a Newton-Schulz iteration, which is
matrix products, not an element-wise loop: it is therefore not a registry kernel. A step
of one array is

1. one fused pass over ``grad`` and ``momentum_buffer`` (the compiled kernel of
   :mod:`fastoptim._muon`, ``csrc/muon.h``, or its Numba twin ``numba_kernels/muon.py``):
   the momentum in place, the Newton-Schulz input written to the workspace, and the sum of
   its squares (fixed order, double precision) for the Frobenius norm;
2. ``ns_steps`` Newton-Schulz iterations, three BLAS matrix products each
   (``np.matmul(..., out=)``) and a few in-place scalings, in the workspace: arrays
   allocated once per shape and dtype (:class:`MuonWorkspace`; the class keeps one per
   shape), so a step allocates no array;
3. one fused pass over ``param`` and the result: decoupled weight decay and the update.

The oracle is :func:`fastoptim.reference.muon_step`.

Threads: the element-wise passes give the same bits on any fastoptim thread count
(fixed-order sum). The matrix products are the BLAS library's, which uses its own thread
pool: OpenBLAS's products differ in the last bits between its thread counts (measured
here: up to 2.4e-7 after three float32 steps of a 300x200 matrix), so a step is
reproducible bit for bit for a fixed BLAS thread count (``threadpoolctl`` sets it).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .. import _groups
from .. import _muon
from .. import _validation as _v
from .. import reference as _reference
from .._backends import numba_backend as _numba_backend
from .._backends import select as _select
from .._optimizer import LR, Optimizer, Params
from .._rule import Rule

__all__ = ["muon_step", "MuonWorkspace", "Muon"]

NS_COEFFICIENTS = (3.4445, -4.775, 2.0315)      # torch's DEFAULT_A, DEFAULT_B, DEFAULT_C
ADJUST_LR_FNS = (None, "original", "match_rms_adamw")
MAX_NS_STEPS = 100                              # torch: "must be less than 100"
_ARRAYS = ("param", "grad", "momentum_buffer")
_HYPER = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps",
          "adjust_lr_fn")


# ---- validation --------------------------------------------------------------------------
def _ns_coefficients(f: str, value) -> Tuple[float, float, float]:
    if isinstance(value, (str, bytes, np.ndarray)) or not isinstance(value, Sequence) \
            or len(value) != 3:
        raise TypeError(f"{f}: ns_coefficients must be a tuple of three floats (a, b, c), "
                        f"got {value!r}")
    return tuple(_v.real(f, f"ns_coefficients[{i}]", x) for i, x in enumerate(value))


def _ns_steps(f: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{f}: ns_steps must be an integer, got {value!r}")
    if not 0 <= value < MAX_NS_STEPS:
        raise ValueError(f"{f}: ns_steps must be in [0, {MAX_NS_STEPS}), got {value}")
    return int(value)


def _adjust_lr_fn(f: str, value) -> Optional[str]:
    if not (value is None or type(value) is str) or value not in ADJUST_LR_FNS:
        raise ValueError(f"{f}: adjust_lr_fn must be None, 'original' or 'match_rms_adamw', "
                         f"got {value!r}")
    return value


def _check_hyper(f: str, hyper: dict) -> dict:
    """Each hyperparameter (not lr) checked and normalised; raises naming the bad one."""
    checks = dict(weight_decay=_v.nonnegative, momentum=_v.nonnegative, nesterov=_v.flag,
                  eps=_v.positive)
    out = {}
    for name, value in hyper.items():
        if name == "ns_coefficients":
            out[name] = _ns_coefficients(f, value)
        elif name == "ns_steps":
            out[name] = _ns_steps(f, value)
        elif name == "adjust_lr_fn":
            out[name] = _adjust_lr_fn(f, value)
        else:
            out[name] = checks[name](f, name, value)
    return out


def _canonical_shape(param: np.ndarray) -> Tuple[int, int]:
    """The shape of ``param``'s memory read as a C-ordered matrix (its own shape when it is
    C-contiguous, the transpose when it is F-contiguous): the workspace's shape. The
    Newton-Schulz iteration commutes with transposition, so the step can work on it."""
    return param.shape if param.flags.c_contiguous else param.shape[::-1]


def adjusted_lr(lr: float, adjust_lr_fn: Optional[str], shape: Tuple[int, int]) -> float:
    """torch's ``_adjust_lr``: ``lr * sqrt(max(1, A/B))`` (``None``, ``"original"``) or
    ``lr * 0.2 * sqrt(max(A, B))`` (``"match_rms_adamw"``), ``(A, B)`` the array's shape."""
    rows, cols = shape
    if adjust_lr_fn == "match_rms_adamw":
        return lr * (0.2 * math.sqrt(max(rows, cols)))
    return lr * math.sqrt(max(1, rows / cols))


# ---- the workspace and the Newton-Schulz iteration ------------------------------------------
class MuonWorkspace:
    """The scratch arrays of one Muon step of a matrix: allocated once, reused by every
    step of every array with the same memory shape and dtype.

    Two ``(rows, cols)`` arrays (the iterate and the next one) and two ``(s, s)`` arrays
    (the Gram matrix and its polynomial), ``s = min(rows, cols)``; with ``(rows, cols)``
    the array's shape when it is C-contiguous, its transpose when it is F-contiguous.
    Make one with :meth:`for_param`.
    """

    def __init__(self, shape: Tuple[int, int], dtype) -> None:
        rows, cols = shape
        side = min(rows, cols)
        self.shape = (int(rows), int(cols))
        self.dtype = np.dtype(dtype)
        self.tall = rows > cols             # torch transposes these: X^T X is the Gram
        pair = (np.empty(self.shape, self.dtype), np.empty(self.shape, self.dtype))
        self._pairs = tuple((x, x.T) for x in pair)      # views made once
        self.gram = np.empty((side, side), self.dtype)
        self.poly = np.empty((side, side), self.dtype)

    @classmethod
    def for_param(cls, param: np.ndarray) -> "MuonWorkspace":
        """A workspace for steps of ``param`` (a 2-D float32 or float64 array)."""
        return cls(_canonical_shape(param), param.dtype)

    @property
    def update(self) -> np.ndarray:
        """Where the momentum pass writes the Newton-Schulz input."""
        return self._pairs[0][0]

    def fits(self, param: np.ndarray) -> bool:
        return self.shape == _canonical_shape(param) and self.dtype == param.dtype

    def newton_schulz(self, sum_of_squares: float, eps: float,
                      coefficients: Tuple[float, float, float], steps: int) -> np.ndarray:
        """Orthogonalize :attr:`update` (whose squares sum to ``sum_of_squares``) in place:
        ``X = U / max(||U||_F, eps)``, then ``steps`` times ``A = X X^T`` (``X^T X`` for a
        tall matrix), ``X = a X + (b A + c A A) X`` (``X (b A + c A A)`` when tall).
        Returns the array holding the result (one of the two iterates)."""
        a, b, c = coefficients
        (x, xt), (y, yt) = self._pairs
        gram, poly = self.gram, self.poly
        np.divide(x, max(math.sqrt(sum_of_squares), eps), out=x)
        for _ in range(steps):
            if self.tall:
                np.matmul(xt, x, out=gram)
            else:
                np.matmul(x, xt, out=gram)
            np.matmul(gram, gram, out=poly)
            poly *= c                       # torch.addmm(A, A, A, beta=b, alpha=c)
            gram *= b
            poly += gram
            if self.tall:
                np.matmul(x, poly, out=y)
            else:
                np.matmul(poly, x, out=y)
            x *= a                          # torch.addmm(X, B, X, beta=a)
            y += x
            (x, xt), (y, yt) = (y, yt), (x, xt)
        return x


def _lerp_coefficients(dtype, momentum: float) -> tuple:
    """The momentum pass's scalars, in the element type as torch computes them: the
    weights ``w = 1 - momentum`` (of ``buf.lerp_(grad, w)``) and ``momentum`` (of
    ``grad.lerp(buf, momentum)``), each with ``1 - weight`` and whether ``|weight| < 0.5``."""
    t = np.dtype(dtype).type
    w, mu = t(1 - momentum), t(momentum)
    one_minus_w, one_minus_mu = t(1) - w, t(1) - mu
    return (float(w), float(one_minus_w), bool(abs(w) < 0.5), float(mu), float(one_minus_mu),
            bool(abs(mu) < 0.5))


def _step_one(impl, param, grad, buf, workspace, lr, weight_decay, momentum, nesterov,
              ns_coefficients, eps, ns_steps, adjust_lr_fn) -> None:
    """One validated step of one array on backend ``impl`` (``None``: the reference)."""
    if param.size == 0:         # nothing to update (torch divides by the width 0 here)
        return
    if impl is None:
        _reference.muon_step(param, grad, buf, lr=lr, weight_decay=weight_decay,
                             momentum=momentum, nesterov=nesterov,
                             ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                             adjust_lr_fn=adjust_lr_fn)
        return
    w, one_minus_w, w_small, mu, one_minus_mu, mu_small = _lerp_coefficients(param.dtype,
                                                                             momentum)
    param_scale = 1 - lr * weight_decay
    neg_lr = -adjusted_lr(lr, adjust_lr_fn, param.shape)
    if impl == "numba":
        from ..numba_kernels.muon import muon_apply_kernel, muon_momentum_kernel
        run = _numba_backend()._run
        total = run(muon_momentum_kernel, grad.ravel(order="K"), buf.ravel(order="K"),
                    workspace.update.ravel(), w, one_minus_w, w_small, nesterov, mu,
                    one_minus_mu, mu_small)
        out = workspace.newton_schulz(total, eps, ns_coefficients, ns_steps)
        run(muon_apply_kernel, param.ravel(order="K"), out.ravel(), param_scale, neg_lr)
        return
    total = _muon.momentum(grad, buf, workspace.update, w, one_minus_w, w_small, nesterov,
                           mu, one_minus_mu, mu_small)
    out = workspace.newton_schulz(total, eps, ns_coefficients, ns_steps)
    _muon.apply(param, out, param_scale, neg_lr)


def _backend(f: str, backend: str):
    """``None`` (the reference), ``"numba"``, or ``"cython"`` (also what "auto" runs)."""
    impl = _select(f, backend, 0)
    if impl is None:
        return None
    return "numba" if backend == "numba" else "cython"


def _check_2d(f: str, name: str, array) -> None:
    if isinstance(array, np.ndarray) and array.ndim != 2:
        raise ValueError(f"{f}: {name} has shape {array.shape}; Muon updates 2-D arrays only "
                         f"(torch.optim.Muon's rule): optimize other arrays with AdamW or "
                         f"another optimizer")


# ---- the functional step -----------------------------------------------------------------
def muon_step(param: np.ndarray, grad: np.ndarray, momentum_buffer: np.ndarray, *,
              lr: float = 1e-3, weight_decay: float = 0.1, momentum: float = 0.95,
              nesterov: bool = True,
              ns_coefficients: Tuple[float, float, float] = NS_COEFFICIENTS,
              eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: Optional[str] = None,
              workspace: Optional[MuonWorkspace] = None, backend: str = "auto") -> None:
    r"""Muon (torch.optim.Muon), in place, for a 2-D ``param`` of shape :math:`(A, B)`.

    .. math::

        B &\leftarrow B + (1-\mu)(g - B), \qquad
        U = \begin{cases} g + \mu (B - g) & \text{nesterov} \\ B & \text{otherwise}
            \end{cases} \\
        X_0 &= U / \max(\|U\|_F, \epsilon), \qquad
        X_{k+1} = a X_k + (b\, X_k X_k^\top + c\, (X_k X_k^\top)^2)\, X_k
            \quad (k < \text{ns\_steps}) \\
        \theta &\leftarrow \theta\,(1 - \text{lr}\,\lambda) - \text{lr}\cdot r\; X

    with :math:`r = \sqrt{\max(1, A/B)}` (``adjust_lr_fn=None`` or ``"original"``) or
    :math:`r = 0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``). For :math:`A > B` the
    iteration runs on :math:`U^\top` (as torch does; the result is the same up to
    rounding). The momentum is torch's ``buf.lerp_(grad, 1 - momentum)`` and the Nesterov
    direction ``grad.lerp(buf, momentum)`` (torch's lerp formulas); the buffer starts at
    zero.

    One difference from torch, deliberate: torch runs the Newton-Schulz iteration in
    bfloat16 (fast on GPUs); here it runs in the array's dtype (BLAS has no bfloat16), which
    is more accurate, so the update differs from torch's by about bfloat16's rounding.

    Parameters
    ----------
    param, grad : ndarray
        2-D parameters (updated in place) and their gradient.
    momentum_buffer : ndarray
        :math:`B`, starts at zero, updated in place.
    lr : float, default 1e-3
    weight_decay : float, default 0.1
        :math:`\lambda \ge 0`, decoupled.
    momentum : float, default 0.95
        :math:`\mu \ge 0`.
    nesterov : bool, default True
    ns_coefficients : (float, float, float), default (3.4445, -4.775, 2.0315)
        :math:`(a, b, c)`.
    eps : float, default 1e-7
        ``> 0``, the floor of the norm.
    ns_steps : int, default 5
        In ``[0, 100)``.
    adjust_lr_fn : {None, "original", "match_rms_adamw"}, default None
    workspace : MuonWorkspace, optional
        Scratch arrays for this shape and dtype (:meth:`MuonWorkspace.for_param`); pass
        the same one to every call to allocate nothing. ``None``: a new one per call.
    backend : {"auto", "cython", "numba", "numpy"}
        The element-wise passes' backend (the matrix products are NumPy's BLAS).
    """
    f = "muon_step"
    lr = _v.nonnegative(f, "lr", lr)
    hyper = _check_hyper(f, dict(weight_decay=weight_decay, momentum=momentum,
                                 nesterov=nesterov, ns_coefficients=ns_coefficients, eps=eps,
                                 ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn))
    arrays = (param, grad, momentum_buffer)
    for name, array in zip(_ARRAYS, arrays):
        _check_2d(f, name, array)
    plain = _v.check_arrays(f, _ARRAYS, arrays)
    if plain is not None:
        arrays = plain
    param = arrays[0]
    _v.eps_for_dtype(f, "eps", hyper["eps"], param.dtype)
    if workspace is not None and (not isinstance(workspace, MuonWorkspace)
                                  or not workspace.fits(param)):
        raise ValueError(f"{f}: workspace must be a MuonWorkspace for this param (memory "
                         f"shape {_canonical_shape(param)}, dtype {param.dtype}); make one "
                         f"with MuonWorkspace.for_param(param)")
    impl = _backend(f, backend)
    if impl is not None and workspace is None:
        workspace = MuonWorkspace.for_param(param)
    _step_one(impl, *arrays, workspace, lr, *[hyper[n] for n in _HYPER[1:]])


# ---- the class ---------------------------------------------------------------------------
class Muon(Optimizer):
    r"""Muon (torch.optim.Muon of torch 2.13): momentum orthogonalized by a Newton-Schulz
    iteration, for 2-D arrays only (optimize biases and embeddings with AdamW).

    .. math::

        B \leftarrow B + (1-\mu)(g - B), \quad
        U = g + \mu (B - g) \;(\text{nesterov}) \text{ or } B, \quad
        O = \mathrm{NS}^{(a,b,c)}_{k}(U;\ \epsilon), \quad
        \theta \leftarrow \theta\,(1 - \text{lr}\,\lambda) - \text{lr}\cdot r\; O

    (:func:`muon_step` gives the iteration and the ratio :math:`r` of ``adjust_lr_fn``).
    State: ``momentum_buffer``, starting at zero. Parameter groups, ``None`` gradients,
    ``skip_nonfinite``, ``lr`` schedules and checkpoints work as in every other class. The
    arrays step one after another (the Newton-Schulz iteration is matrix products); each
    shape and dtype has one workspace, allocated at its first step, so later steps
    allocate no array.

    Like :func:`muon_step`, the iteration runs in the arrays' dtype where torch rounds to
    bfloat16. Results do not depend on fastoptim's thread count; the matrix products do
    depend, in the last bits, on the BLAS library's own (see the module's docstring).

    Parameters
    ----------
    params : list or dict of 2-D ndarray, or a list of parameter-group dicts
    lr : float or callable, default 1e-3
    weight_decay : float, default 0.1
    momentum : float, default 0.95
    nesterov : bool, default True
    ns_coefficients : (float, float, float), default (3.4445, -4.775, 2.0315)
    eps : float, default 1e-7
    ns_steps : int, default 5
    adjust_lr_fn : {None, "original", "match_rms_adamw"}, default None
    backend : {"auto", "cython", "numba", "numpy"}
    skip_nonfinite : bool, default False
    """

    _elementwise = False
    _rule = Rule("muon", _HYPER, tuple)

    def __init__(self, params: Params, lr: LR = 1e-3, weight_decay: float = 0.1,
                 momentum: float = 0.95, nesterov: bool = True,
                 ns_coefficients: Tuple[float, float, float] = NS_COEFFICIENTS,
                 eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: Optional[str] = None,
                 backend: str = "auto", skip_nonfinite: bool = False) -> None:
        self._workspaces: Dict[tuple, MuonWorkspace] = {}
        super().__init__(params, lr, dict(
            weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
            adjust_lr_fn=adjust_lr_fn), backend, skip_nonfinite)

    @classmethod
    def _check(cls, f: str, hyper: dict) -> dict:
        return _check_hyper(f, hyper)

    def _plan(self, hyper: dict):
        return "muon", self._rule, ("momentum_buffer",), self._rule.values(hyper)

    def _add_groups(self, f: str, groups) -> None:
        """Refuse an array that is not 2-D (naming it) before any is added."""
        keys, arrays, _, is_dict = _groups.flatten_groups(f, groups, len(self._params),
                                                          self._is_dict)
        for key, array in zip(keys, arrays):
            _check_2d(f, f"params[{key!r}]", array)
        super()._add_groups(f, groups)

    def _apply_bucket(self, impl, group, t: int, lr: float, idx: Sequence[int],
                      grads: list) -> None:
        """The arrays ``idx``, one after another, each with its shape's workspace."""
        values = group.coefficients(t, lr)
        which = _backend("Muon.step", self._backend)
        bufs = self._state["momentum_buffer"]
        for i in idx:
            param = self._params[i]
            workspace = None
            if which is not None:
                key = (_canonical_shape(param), param.dtype.str)
                workspace = self._workspaces.get(key)
                if workspace is None:
                    workspace = self._workspaces[key] = MuonWorkspace.for_param(param)
            _step_one(which, param, grads[i], bufs[i], workspace, *values)
