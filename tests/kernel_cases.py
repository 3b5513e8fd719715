"""Builders shared by the kernel tests, all derived from the kernel registry
(:mod:`fastoptim._registry`): no kernel or optimizer class is named here, so that a kernel
added to the registry is picked up by every generic test.

A *case* is a kernel name plus functional hyperparameters (one of the registry's
``examples``; ``step`` is supplied per call). :func:`make_arrays` creates a parameter and
zero-initialised state for a case, :func:`make_grad` a gradient, and :func:`step` makes one
call of the public function with them.

A *class case* is an optimizer class name, the kernel it runs and constructor keyword
arguments (one of the ``examples`` of the registry's :class:`OptimizerClass` entries).
"""
import weakref

import numpy as np

import fastoptim
from fastoptim import functional as F
from fastoptim._registry import KERNELS, optimizer_classes

SPECS = list(KERNELS.values())
KERNEL_NAMES = list(KERNELS)

# Every option and combination that changes a formula: the registry's examples.
CASES = [(spec.name, dict(example)) for spec in SPECS for example in spec.examples]


def full_example(spec):
    """The example of ``spec`` with the most state buffers (then the most options set)."""
    return dict(max(spec.examples, key=lambda e: (len(spec.active_states(e)), len(e))))


# One case per kernel, with as many optional state arrays as an example enables (every
# one: test_registry checks that one example enables them all at once).
FULL_CASES = [(spec.name, full_example(spec)) for spec in SPECS]
# The typical case of each kernel (what the benchmark times).
TYPICAL_CASES = [(spec.name, dict(spec.typical)) for spec in SPECS]


def case_id(case):
    kernel, opts = case
    return kernel + "".join(f"-{k}={v}" for k, v in opts.items())


def state_names(kernel, opts):
    """(positional state names, keyword state names) of a kernel call with these options:
    the buffers every call updates, then the optional ones ``opts`` enables."""
    spec = KERNELS[kernel]
    active = {s.name for s in spec.active_states(opts)}
    return (tuple(s.name for s in spec.required_states),
            tuple(s.name for s in spec.optional_states if s.name in active))


def arg_names(kernel, opts):
    """Every array argument of a call, in order: the inputs, then the states."""
    pos, kw = state_names(kernel, opts)
    return KERNELS[kernel].inputs + pos + kw


def make_arrays(kernel, opts, shape, dtype, order, rng):
    """param, positional state list and keyword state dict, state at zero."""
    param = np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
    pos, kw = state_names(kernel, opts)
    zeros = lambda: np.zeros(shape, dtype=dtype, order=order)  # noqa: E731
    return param, [zeros() for _ in pos], {name: zeros() for name in kw}


def make_grad(shape, dtype, order, rng):
    """A gradient with no zero element (so a skipped element always shows)."""
    g = rng.standard_normal(shape) + np.sign(rng.standard_normal(shape)) * 0.1
    return np.asarray(g, dtype=dtype, order=order)


def function(kernel):
    """The public function of ``kernel`` (``fastoptim.functional.<function>``)."""
    return getattr(F, KERNELS[kernel].function)


# param id -> (weak reference to the param, its carried scalars): see :func:`step`
_CARRIED = {}


def step(kernel, opts, param, grad, states, kw_states, t, backend):
    """One call of the public function of ``kernel`` (``step=t`` when it takes one).

    A kernel's carried scalar state (the registry's ``carried``, NAdam's ``mu_product``)
    is kept here per ``param`` array, like its state buffers: at ``t == 1`` it is the value
    of ``opts`` (the registry's initial value when ``opts`` has none), then what the
    previous call returned. Returns what the function returned, except the carried value."""
    spec = KERNELS[kernel]
    kwargs = dict(opts, backend=backend, **kw_states)
    if spec.takes_step:
        kwargs["step"] = t
    if not spec.carried:
        return function(kernel)(param, grad, *states, **kwargs)
    names = list(spec.carried)
    held = _CARRIED.get(id(param))
    if t > 1 and held is not None and held[0]() is param:
        kwargs.update(held[1])
    else:
        kwargs.update({n: opts.get(n, first) for n, first in spec.carried.items()})
    out = function(kernel)(param, grad, *states, **kwargs)
    values = (out,) if len(names) == 1 else out
    assert all(isinstance(v, float) for v in values), out
    _CARRIED[id(param)] = (weakref.ref(param), dict(zip(names, values)))
    return None


# ---- optimizer classes ---------------------------------------------------------------------
CLASSES = optimizer_classes()                 # class name -> ((kernel spec, entry), ...)
CLASS_NAMES = list(CLASSES)

CLASS_CASES = [(entry.name, spec.name, dict(example))
               for spec in SPECS for entry in spec.optimizers for example in entry.examples]


def class_case_id(case):
    name, kernel, opts = case
    return f"{name}[{kernel}]" + "".join(f"-{k}={v}" for k, v in opts.items())


def entry(name, kernel):
    """The registry's :class:`OptimizerClass` entry of class ``name`` running ``kernel``."""
    return next(e for e in KERNELS[kernel].optimizers if e.name == name)


def optimizer_class(name):
    return getattr(fastoptim, name)


def _full_class_example(spec, e):
    hyper = lambda ex: e.hyperparameters(spec, ex)  # noqa: E731
    return dict(max(e.examples, key=lambda ex: (len(spec.active_states(hyper(ex))), len(ex))))


# One case per (class, kernel): its typical example, and the one with the most state.
CLASS_TYPICAL_CASES = [(e.name, spec.name, dict(e.examples[0]))
                       for spec in SPECS for e in spec.optimizers]
CLASS_FULL_CASES = [(e.name, spec.name, _full_class_example(spec, e))
                    for spec in SPECS for e in spec.optimizers]


def class_state_names(name, kernel, opts):
    """The state buffers of class ``name`` constructed with ``opts`` (running ``kernel``):
    the kernel's buffers that the corresponding functional call enables, in order."""
    spec = KERNELS[kernel]
    return tuple(s.name for s in spec.active_states(entry(name, kernel).hyperparameters(spec, opts)))


def functional_run(name, kernel, opts, params, grads_seq, backend):
    """What class ``name`` constructed with ``opts`` does, written with the public
    functional step of ``kernel``, one array at a time: returns the params and, per state
    name, the list of buffers. ``opts["lr"]`` may be a schedule of the step count."""
    spec, e = KERNELS[kernel], entry(name, kernel)
    hyper = e.hyperparameters(spec, opts)
    lr = hyper.pop("lr")
    initial = e.initial_values(opts)
    out = [p.copy(order="K") for p in params]
    pos, kw = state_names(kernel, hyper)
    states = {s: [np.full_like(p, initial.get(s, 0.0)) for p in out] for s in pos + kw}
    for t, grads in enumerate(grads_seq, start=1):
        lr_t = lr(t) if callable(lr) else lr
        for i, (p, g) in enumerate(zip(out, grads)):
            step(kernel, dict(hyper, lr=lr_t), p, g, [states[s][i] for s in pos],
                 {s: states[s][i] for s in kw}, t, backend)
    return out, states
