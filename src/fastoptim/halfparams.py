r"""Adam / AdamW on float16 and bfloat16 parameters and gradients, computed in float32.

A half-precision parameter loses updates smaller than half its last place: Adam's steps
of ``lr`` = 1e-4 vanish on a bfloat16 weight near 1 (8 mantissa bits). Two ways to keep
them, one per call:

* **master weights** (``half_state(param, master_weights=True)``): a float32 copy of the
  parameters takes the update; the half parameter receives it rounded to nearest even.
  State: 12 bytes per parameter (master, :math:`m`, :math:`v`);
* **stochastic rounding** (``stochastic_rounding=True``, bfloat16 only, no master): the
  float32 result is rounded up or down with probability proportional to its distance, so
  the expected parameter is exact. The noise is a counter-based hash of
  ``(seed, step, element index)`` (:func:`fastoptim.half_reference.rounding_noise`): the
  result is reproducible and independent of the thread count. State: 8 bytes per
  parameter.

.. math::

    g = \pm\,\mathrm{f32}(\text{grad}), \quad w = \text{master or } \mathrm{f32}(\theta),
    \quad w \leftarrow w(1 - \text{lr}\,\lambda) \text{ (decoupled) or }
    g \leftarrow g + \lambda w \text{ (L2)} \\
    m \leftarrow \beta_1 m + (1-\beta_1) g, \quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,
    \quad w \leftarrow w - \frac{\text{lr}}{1-\beta_1^t}\,
    \frac{m}{\sqrt v / \sqrt{1-\beta_2^t} + \epsilon}, \quad \theta = \mathrm{round}(w)

One fused pass (``csrc/adam_mixed.h``, OpenMP chunks; its Numba twin in
:mod:`fastoptim.numba_kernels.halfparams`); the NumPy reference is
:func:`fastoptim.half_reference.adam_step_mixed`, which the compiled kernel matches bit for
bit. Functions: :func:`half_state`, :func:`adam_half_step`.
"""
from __future__ import annotations

from numbers import Integral
from typing import Dict

import numpy as np

from . import _threads, _validation
from .half_reference import HALF_DTYPES, bfloat16
from .lowmem import _check_hyper, _order

__all__ = ["HALF_DTYPES", "half_state", "adam_half_step"]

BACKENDS = ("auto", "cython", "numba", "numpy")
_F = "adam_half_step"


def half_state(param: np.ndarray, master_weights: bool = True) -> Dict[str, np.ndarray]:
    """A new Adam state for the float16 / bfloat16 ``param``: ``exp_avg``, ``exp_avg_sq``
    (float32 zeros of ``param``'s shape and order) and, with ``master_weights``, ``master``
    (a float32 copy of ``param``). Without master weights, step with
    ``stochastic_rounding=True`` (bfloat16) or the half parameter itself is updated."""
    f = "half_state"
    if not isinstance(param, np.ndarray) or param.dtype not in HALF_DTYPES:
        raise TypeError(f"{f}: param must be a float16 or bfloat16 ndarray, got "
                        f"{getattr(param, 'dtype', type(param).__name__)}")
    _validation.flag(f, "master_weights", master_weights)
    state = {"exp_avg": np.zeros_like(param, np.float32),
             "exp_avg_sq": np.zeros_like(param, np.float32)}
    if master_weights:
        state["master"] = param.astype(np.float32, order="K")
    return state


def _coefficients(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize) -> tuple:
    """The kernel's scalars, once per call, rounded to float32 as the reference rounds them."""
    f32 = np.float32
    wd_mode = 2 if decoupled else (1 if weight_decay != 0 else 0)
    return (f32(beta1), f32(1 - beta1), f32(beta2), f32(1 - beta2),
            f32(lr / (1 - beta1 ** step)), f32(1 / np.sqrt(1 - beta2 ** step)), f32(eps),
            f32(weight_decay), f32(1 - lr * weight_decay), wd_mode, int(maximize))


def _validate(param, grad, state, stochastic_rounding):
    """Flat views (param, grad, master or None, exp_avg, exp_avg_sq); raises naming the bad
    argument before anything is written."""
    f = _F
    for name, a in (("param", param), ("grad", grad)):
        if not isinstance(a, np.ndarray) or a.dtype not in HALF_DTYPES:
            raise TypeError(f"{f}: {name} must be a float16 or bfloat16 ndarray, got "
                            f"{getattr(a, 'dtype', type(a).__name__)}")
    if grad.dtype != param.dtype:
        raise TypeError(f"{f}: grad is {grad.dtype}, param {param.dtype}: they must match")
    if grad.shape != param.shape:
        raise ValueError(f"{f}: grad has shape {grad.shape}, param {param.shape}")
    if not hasattr(state, "keys") or "exp_avg" not in state or "exp_avg_sq" not in state:
        raise TypeError(f"{f}: state must be a dict with exp_avg and exp_avg_sq (half_state)")
    master = state.get("master")
    if stochastic_rounding:
        if param.dtype != bfloat16:
            raise ValueError(f"{f}: stochastic_rounding needs bfloat16 param, got "
                             f"{param.dtype}")
        if master is not None:
            raise ValueError(f"{f}: stochastic_rounding and a master copy exclude each "
                             f"other: use half_state(param, master_weights=False)")
    order = _order(param)
    named = [("param", param), ("grad", grad), ("exp_avg", state["exp_avg"]),
             ("exp_avg_sq", state["exp_avg_sq"])] + ([("master", master)] if master is not None
                                                      else [])
    flat = []
    for name, a in named:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{f}: {name} must be a numpy.ndarray, got {type(a).__name__}")
        if name not in ("param", "grad") and a.dtype != np.float32:
            raise ValueError(f"{f}: {name} must be float32, got {a.dtype}")
        if a.shape != param.shape:
            raise ValueError(f"{f}: {name} has shape {a.shape}, param {param.shape}")
        if not (a.flags.c_contiguous if order == "C" else a.flags.f_contiguous):
            raise ValueError(f"{f}: {name} must be contiguous in param's order ({order}); "
                             f"a copy would lose the update")
        if not a.flags.aligned:
            raise ValueError(f"{f}: {name} is misaligned")
        if name != "grad" and not a.flags.writeable:
            raise ValueError(f"{f}: {name} is read-only")
        flat.append(a.reshape(-1, order=order))
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            if np.may_share_memory(flat[i], flat[j]):
                raise ValueError(f"{f}: {named[i][0]} and {named[j][0]} share memory")
    p, g, m, v = flat[:4]
    return p, g, (flat[4] if master is not None else None), m, v


def adam_half_step(param: np.ndarray, grad: np.ndarray, state: Dict[str, np.ndarray], *,
                   step: int, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                   eps: float = 1e-8, weight_decay: float = 0.0,
                   decoupled_weight_decay: bool = False, maximize: bool = False,
                   stochastic_rounding: bool = False, seed: int = 0,
                   backend: str = "auto") -> None:
    r"""One Adam (AdamW) step on float16 / bfloat16 ``param`` and ``grad``, in place (the
    formula in the module docstring).

    Parameters
    ----------
    param, grad : ndarray
        float16 or bfloat16 (``ml_dtypes.bfloat16``), the same dtype, shape and memory order
        (C- or F-contiguous).
    state : dict of ndarray
        :func:`half_state`: float32 ``exp_avg``, ``exp_avg_sq`` and, with master weights,
        ``master``; updated in place.
    step : int
        The 1-based step count (also the stochastic rounding's counter).
    lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize
        As :func:`fastoptim.adam_step`.
    stochastic_rounding : bool, default False
        Round the new bfloat16 parameters stochastically (no ``master`` in ``state``).
    seed : int, default 0
        The stochastic rounding's seed, in ``[0, 2**64)``.
    backend : {"auto", "cython", "numba", "numpy"}
        ``"numpy"``: :func:`fastoptim.half_reference.adam_step_mixed`; ``"numba"``:
        :mod:`fastoptim.numba_kernels.halfparams`, the compiled kernel's twin.
    """
    f = _F
    _check_hyper(step, lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay, maximize,
                 backend, f, BACKENDS)
    _validation.flag(f, "stochastic_rounding", stochastic_rounding)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2 ** 64:
        raise ValueError(f"{f}: seed must be an integer in [0, 2**64), got {seed!r}")
    p, g, w, m, v = _validate(param, grad, state, stochastic_rounding)
    if backend == "numpy":
        from .half_reference import adam_step_mixed
        adam_step_mixed(p, g, m, v, step=int(step), lr=float(lr), beta1=float(beta1),
                        beta2=float(beta2), eps=float(eps), weight_decay=float(weight_decay),
                        decoupled_weight_decay=bool(decoupled_weight_decay),
                        maximize=bool(maximize), master=w,
                        stochastic_rounding=bool(stochastic_rounding), seed=int(seed))
        return
    c = _coefficients(int(step), float(lr), float(beta1), float(beta2), float(eps),
                      float(weight_decay), bool(decoupled_weight_decay), bool(maximize))
    if backend == "numba":
        from .numba_kernels import halfparams as nb
        nb.adam_half_kernel(p.view(np.uint16), g.view(np.uint16),
                            w if w is not None else m, m, v, np.array(c[:9], np.float32),
                            0 if p.dtype == bfloat16 else 1, c[9], bool(c[10]), w is not None,
                            bool(stochastic_rounding),
                            np.uint64(nb.rounding_key(np.uint64(seed), np.uint64(step))))
        return
    _compiled_steps([p], [g], None if w is None else [w], [m], [v], c,
                    bool(stochastic_rounding), [int(seed)], int(step))


def _compiled_steps(params, grads, masters, exp_avgs, exp_avg_sqs, c,
                    stochastic_rounding: bool, seeds, step: int) -> None:
    """The "cython" step of arrays already checked (by :func:`adam_half_step`, or by an
    optimizer class for its group), all of one half dtype, each with its state laid out as
    it: one ``_lowmem.adam_half_many`` call on fastoptim's threads. ``masters``: ``None`` or
    one per array; ``c``: :func:`_coefficients`; ``seeds``: one per array."""
    from . import _lowmem
    _lowmem.adam_half_many(params, grads, masters, exp_avgs, exp_avg_sqs,
                           0 if params[0].dtype == bfloat16 else 1, c, stochastic_rounding,
                           seeds, step, _threads.get_num_threads())
