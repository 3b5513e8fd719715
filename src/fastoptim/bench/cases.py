"""The competitors of ``fastoptim bench`` and of the ``bench/`` pytest-benchmark suite.

A *competitor* turns the arrays of one step into a zero-argument callable that makes that
step in place. They are:

* ``numpy``: the naive reference (:mod:`fastoptim.reference`), the baseline;
* ``cython``, ``numba``, ``auto``: the fastoptim backends, through the public functions;
* ``numpy-careful`` (Adam): the best a skilled NumPy user writes, one preallocated scratch
  array and ``out=`` everywhere;
* ``numexpr`` (Adam), ``torch-foreach`` and ``torch-fused`` (``torch.optim``): peers, when
  installed;
* ``traffic``: the memory-traffic loop with the kernel's access pattern
  (:mod:`fastoptim.bench.bandwidth`), the speed limit.

The kernels, the step each one times (its registry entry's typical example,
:mod:`fastoptim._registry`), its arrays and its ``torch.optim`` peer all come from the kernel
registry: a kernel added there is benchmarked without an edit here.

A competitor that cannot run here (package missing, backend not built yet, option not
supported) raises :class:`Unavailable` from :func:`build`, with the reason; one that has
no version of a kernel by design (careful NumPy for SGD) raises :class:`NotApplicable`.
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence

import numpy as np

from .. import functional as F
from .._registry import KERNELS as _SPECS
from .bandwidth import traffic_call

# The step count of a timed step of a kernel that takes one (bias corrections away from 1).
BENCH_STEP = 10


def step_hyperparameters(kernel: str) -> dict:
    """The functional hyperparameters of one timed step: the registry's typical example of
    ``kernel``, with ``step=BENCH_STEP`` when it takes a step count."""
    spec = _SPECS[kernel]
    hyper = dict(spec.typical)
    if spec.takes_step:
        hyper["step"] = BENCH_STEP
    return hyper


# kernel -> (number of state arrays, keyword arguments of one step), from the registry
KERNELS = {name: (len(spec.active_states(spec.typical)), step_hyperparameters(name))
           for name, spec in _SPECS.items()}
# Rules that are not registry kernels (their own compiled modules), the same way: LAMB,
# through lamb_step (its two passes: bandwidth.PASSES); no torch.optim peer.
RULES = {"lamb": (2, dict(step=BENCH_STEP, lr=1e-3, weight_decay=0.01))}
KERNELS.update(RULES)

FASTOPTIM_BACKENDS = ("cython", "numba", "auto")
PEERS = ("numpy-careful", "numexpr", "torch-foreach", "torch-fused")
# table order: the baseline first, then the peers, ours, and the speed limit last
COMPETITORS = ("numpy",) + PEERS + FASTOPTIM_BACKENDS + ("traffic",)
BASELINE = "numpy"


class Unavailable(Exception):
    """This competitor cannot run on this machine (the message says why)."""


class NotApplicable(Unavailable):
    """This competitor has no version of this kernel (by design, not a missing package)."""


def make_arrays(kernel: str, n: int, dtype, seed: int = 0) -> list:
    """``[param, grad, *state]`` of one step: random param and grad, zero state."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    param = rng.standard_normal(n, dtype=dtype)
    grad = rng.standard_normal(n, dtype=dtype)
    n_state, _ = KERNELS[kernel]
    return [param, grad] + [np.zeros(n, dtype) for _ in range(n_state)]


def state_names(kernel: str) -> tuple:
    """The state buffers of one timed step of ``kernel``, in the order of its arrays."""
    spec = _SPECS[kernel]
    return tuple(s.name for s in spec.active_states(KERNELS[kernel][1]))


def fastoptim_call(kernel: str, arrays: Sequence[np.ndarray], backend: str) -> Callable:
    """One public ``fastoptim`` call (validation included) on ``arrays``: the inputs and
    the buffers every call updates positionally, the optional buffers by keyword."""
    _, kwargs = KERNELS[kernel]
    if kernel in RULES:
        fn = getattr(F, f"{kernel}_step")
        return lambda: fn(*arrays, backend=backend, **kwargs)
    spec = _SPECS[kernel]
    required = {s.name for s in spec.required_states}
    names = state_names(kernel)
    positional = list(arrays[:2]) + [a for name, a in zip(names, arrays[2:])
                                     if name in required]
    keyword = {name: a for name, a in zip(names, arrays[2:]) if name not in required}
    fn = getattr(F, spec.function)
    return lambda: fn(*positional, backend=backend, **kwargs, **keyword)


def entry_arrays(kernel: str, arrays: Sequence[np.ndarray]) -> list:
    """``arrays`` (those of :func:`make_arrays`) in the order of the unvalidated entry point
    ``kernels.<kernel>``: the inputs, then every state, ``None`` for an unused one."""
    by_name = dict(zip(state_names(kernel), arrays[2:]))
    return list(arrays[:2]) + [by_name.get(s.name) for s in _SPECS[kernel].states]


def coefficients(kernel: str, hyper: Optional[dict] = None):
    """The per-call :class:`fastoptim.kernels.Coefficients` of one step of ``kernel`` with
    ``hyper`` (default: the timed step's)."""
    from .. import _coefficients
    spec = _SPECS[kernel]
    full = spec.complete(KERNELS[kernel][1] if hyper is None else hyper)
    return getattr(_coefficients, kernel)(*[full[a] for a in spec.coefficient_args])


def entry_call(kernel: str, arrays: Sequence[np.ndarray], module=None) -> Callable:
    """One call of the unvalidated entry point ``kernel`` of ``module`` (default
    :mod:`fastoptim.kernels`, the serial Cython kernels) on ``arrays``, coefficients
    computed once."""
    if kernel == "lamb":
        from .. import _lamb
        hyper = dict(beta1=0.9, beta2=0.999, eps=1e-6, eps_root=0.0, maximize=False,
                     **KERNELS[kernel][1])
        c = _lamb.coefficients(*[hyper[k] for k in ("step", "lr", "beta1", "beta2", "eps",
                                                    "eps_root", "weight_decay", "maximize")])
        return lambda: _lamb.lamb(*arrays, c, 1)
    if module is None:
        from .. import kernels as module
    fn, c, args = getattr(module, kernel), coefficients(kernel), entry_arrays(kernel, arrays)
    return lambda: fn(*args, c)


def careful_numpy_adam(param, grad, exp_avg, exp_avg_sq, scratch, *, step, lr=1e-3,
                       beta1=0.9, beta2=0.999, eps=1e-8) -> None:
    """Adam the way a careful NumPy user writes it: no temporaries, one scratch array.

    Still about a dozen passes over memory (each ufunc call is one), against one for a fused
    kernel, but no allocation.
    """
    bc1 = 1.0 - beta1**step
    bc2_sqrt = np.sqrt(1.0 - beta2**step)
    exp_avg *= beta1                                    # m = b1 m + (1 - b1) g
    np.multiply(grad, 1.0 - beta1, out=scratch)
    exp_avg += scratch
    exp_avg_sq *= beta2                                 # v = b2 v + (1 - b2) g^2
    np.multiply(grad, grad, out=scratch)
    scratch *= 1.0 - beta2
    exp_avg_sq += scratch
    np.sqrt(exp_avg_sq, out=scratch)                    # sqrt(v / bc2) + eps
    scratch *= 1.0 / bc2_sqrt
    scratch += eps
    np.divide(exp_avg, scratch, out=scratch)            # p -= lr / bc1 * m / (...)
    scratch *= lr / bc1
    param -= scratch


def _careful(kernel, arrays):
    if kernel != "adam":
        raise NotApplicable("numpy-careful is written for adam only")
    scratch = np.empty_like(arrays[0])
    _, kwargs = KERNELS[kernel]
    return lambda: careful_numpy_adam(*arrays, scratch, **kwargs)


def _numexpr(kernel, arrays):
    if kernel != "adam":
        raise NotApplicable("numexpr is benchmarked for adam only")
    try:
        ne = importlib.import_module("numexpr")
    except ImportError as exc:
        raise Unavailable(f"numexpr is not installed ({exc})") from None
    p, g, m, v = arrays
    hyper = _SPECS[kernel].complete(KERNELS[kernel][1])
    step, lr = hyper["step"], hyper["lr"]
    b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["eps"]
    t = p.dtype.type
    consts = dict(b1=t(b1), c1=t(1 - b1), b2=t(b2), c2=t(1 - b2), eps=t(eps),
                  lr_bc1=t(lr / (1 - b1**step)), rbc2=t(1 / np.sqrt(1 - b2**step)))

    def step_fn():
        ne.evaluate("b1 * m + c1 * g", local_dict=dict(m=m, g=g, **consts), out=m)
        ne.evaluate("b2 * v + c2 * g * g", local_dict=dict(v=v, g=g, **consts), out=v)
        ne.evaluate("p - lr_bc1 * m / (sqrt(v) * rbc2 + eps)",
                    local_dict=dict(p=p, m=m, v=v, **consts), out=p)
    return step_fn


def torch_optimizer(kernel: str) -> tuple:
    """``(torch.optim class name, its keyword arguments)`` of the timed step of ``kernel``
    (the registry's torch peer); raises :class:`NotApplicable` when it has none."""
    spec = _SPECS.get(kernel)
    if spec is None or spec.torch is None:
        raise NotApplicable(f"torch.optim has no {kernel}")
    return spec.torch.optimizer, spec.torch.kwargs(spec, KERNELS[kernel][1])


def _torch(kernel, arrays, fused: bool):
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise Unavailable(f"torch is not installed ({exc})") from None
    tensors = [torch.from_numpy(a) for a in arrays]   # shares memory, no copy
    if kernel == "ewa":   # not an optimizer: its torch peer is lerp_
        if fused:
            raise NotApplicable("torch has no fused EWA")
        average, value = tensors
        weight = 1.0 - KERNELS["ewa"][1]["beta"]
        return lambda: torch._foreach_lerp_([average], [value], weight)
    name, kwargs = torch_optimizer(kernel)
    param = tensors[0]
    param.grad = tensors[1]
    flag = dict(fused=True) if fused else dict(foreach=True)
    try:
        opt = getattr(torch.optim, name)([param], **kwargs, **flag)
        opt.step()   # creates the state; raises here if fused is unsupported
    except (RuntimeError, TypeError, ValueError) as exc:
        raise NotApplicable(f"torch.optim.{name}({', '.join(flag)}=True): {exc}") from None
    return opt.step


def _fastoptim(kernel, arrays, backend):
    call = fastoptim_call(kernel, arrays, backend)
    try:
        call()   # first call: imports (and compiles) the backend
    except ImportError as exc:
        raise Unavailable(str(exc)) from None
    return call


def _traffic(kernel, arrays):
    try:
        return traffic_call(kernel, arrays)
    except ImportError as exc:
        raise Unavailable(f"the traffic loop needs numba ({exc})") from None


def build(competitor: str, kernel: str, arrays: Sequence[np.ndarray]) -> Callable:
    """A zero-argument callable making one ``kernel`` step on ``arrays`` with ``competitor``.

    Raises :class:`Unavailable` when the competitor cannot run here.
    """
    if competitor == "numpy":
        return fastoptim_call(kernel, arrays, "numpy")
    if competitor in FASTOPTIM_BACKENDS:
        return _fastoptim(kernel, arrays, competitor)
    if competitor == "numpy-careful":
        return _careful(kernel, arrays)
    if competitor == "numexpr":
        return _numexpr(kernel, arrays)
    if competitor in ("torch-foreach", "torch-fused"):
        return _torch(kernel, arrays, fused=competitor == "torch-fused")
    if competitor == "traffic":
        return _traffic(kernel, arrays)
    raise ValueError(f"unknown competitor {competitor!r}; expected one of {COMPETITORS}")
