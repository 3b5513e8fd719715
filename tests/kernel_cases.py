"""Builders shared by the kernel tests: one place that knows each kernel's arrays.

A *case* is a kernel name plus the options that change its formula. :func:`make_arrays`
creates a parameter, a gradient generator and zero-initialised state for a case, and
:func:`step` makes one call of the public function with them.
"""
import numpy as np

import fastoptim as fo

# Every option and combination that changes a formula, with non-default hyperparameters.
CASES = [
    ("sgd", dict(lr=0.05)),
    ("sgd", dict(lr=0.05, weight_decay=0.1)),
    ("sgd", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("momentum", dict(lr=0.05, momentum=0.9)),                      # classical
    ("momentum", dict(lr=0.05, momentum=0.9, dampening=0.9)),       # the course's EWA form
    ("momentum", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("momentum", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.05, maximize=True)),
    ("momentum", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01, centered=True)),
    ("rmsprop", dict(lr=0.01, momentum=0.9)),
    ("rmsprop", dict(lr=0.01, momentum=0.9, centered=True, maximize=True)),
    ("adam", dict(lr=0.01)),
    ("adam", dict(lr=0.01, beta1=0.0, beta2=0.99, eps=1e-6)),
    ("adam", dict(lr=0.01, weight_decay=0.1)),                      # L2
    ("adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),   # AdamW
    ("adam", dict(lr=0.01, amsgrad=True)),
    ("adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, decoupled_weight_decay=True,
                  maximize=True)),
    ("adagrad", dict(lr=0.05)),
    ("adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1)),
    ("adagrad", dict(lr=0.05, maximize=True, eps=1e-8)),
    ("ewa", dict(beta=0.9)),
    ("ewa", dict(beta=0.0)),
]


def case_id(case):
    kernel, opts = case
    return kernel + "".join(f"-{k}={v}" for k, v in opts.items())


def state_names(kernel, opts):
    """(positional state names, keyword state names) of a kernel call with these options."""
    if kernel == "momentum":
        return ("momentum_buffer",), ()
    if kernel == "rmsprop":
        kw = ()
        if opts.get("momentum", 0.0) > 0:
            kw += ("momentum_buffer",)
        if opts.get("centered", False):
            kw += ("grad_avg",)
        return ("square_avg",), kw
    if kernel == "adam":
        return ("exp_avg", "exp_avg_sq"), ("max_exp_avg_sq",) if opts.get("amsgrad") else ()
    if kernel == "adagrad":
        return ("state_sum",), ()
    return (), ()


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


def step(kernel, opts, param, grad, states, kw_states, t, backend):
    """One call of the public function of ``kernel``."""
    if kernel == "ewa":
        return fo.ewa_update(param, grad, backend=backend, **opts)
    kwargs = dict(opts, backend=backend, **kw_states)
    if kernel in ("adam", "adagrad"):
        kwargs["step"] = t
    return getattr(fo, f"{kernel}_step")(param, grad, *states, **kwargs)
