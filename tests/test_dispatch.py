"""The functional API's calls into fastoptim._dispatch pass every hyperparameter in the
registry's order, and every optional state: read from each function's source, so a
reordered or forgotten argument fails here, not as a wrong coefficient."""
import ast
import inspect

import numpy as np
import pytest

import fastoptim.functional as F
from fastoptim import _dispatch, _registry

KERNELS = list(_registry.KERNELS.values())


def _dispatch_call(fn):
    tree = ast.parse(inspect.getsource(fn).lstrip())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id.startswith("_")
             and node.func.id.isupper()]
    assert len(calls) == 1, f"{fn.__name__}: expected one dispatch call"
    return calls[0]


def _names(node):
    return tuple(elt.id for elt in node.elts)


@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.name)
def test_functional_passes_arrays_and_hyperparameters_in_registry_order(k):
    arrays, optional, hyper, backend = _dispatch_call(getattr(F, k.function)).args
    call = _dispatch.CALLS[k.name]
    assert _names(arrays) == call.fixed_names
    assert _names(optional) == tuple(s.name for s in call.optional)
    assert _names(hyper) == tuple(h.name for h in k.hyperparameters)
    assert backend.id == "backend"


@pytest.mark.parametrize("k", KERNELS, ids=lambda k: k.name)
def test_coefficients_of_the_tuple_equal_the_named_helper(k):
    """kernels.coefficients_<k>_of(hyper tuple) == coefficients_<k>(named arguments)."""
    from fastoptim import kernels
    rng = np.random.default_rng(0)
    values = []
    for h in k.hyperparameters:
        values.append({"step_count": 7, "flag": True}.get(h.kind, float(rng.uniform(0.1, 0.9))))
    named = dict(zip([h.name for h in k.hyperparameters], values))
    expect = getattr(kernels, f"coefficients_{k.name}")(*[named[a] for a in k.coefficient_args])
    got = getattr(kernels, f"coefficients_{k.name}_of")(tuple(values))
    assert got.values() == expect.values()


@pytest.mark.parametrize("k", [k for k in KERNELS if k.rules], ids=lambda k: k.name)
def test_rules_still_run_after_a_passing_call(k):
    """The dispatch skips a kernel's rules when the rule inputs equal the last ones that
    passed; a different (bad) value must still be refused, before anything changes."""
    from kernel_cases import make_arrays, make_grad, step
    rng = np.random.default_rng(0)
    opts = dict(k.examples[0])
    bad = {"momentum": dict(opts, nesterov=True, dampening=0.5),
           "rmsprop": dict(opts, eps=0.0, eps_root=0.0),
           "adam": dict(opts, eps=0.0, eps_root=0.0),
           "rprop": dict(opts, etaminus=1.5)}[k.name]
    for t, o in ((1, opts), (2, opts)):
        param, states, kw = make_arrays(k.name, o, (40,), np.float64, "C", rng)
        step(k.name, o, param, make_grad((40,), np.float64, "C", rng), states, kw, t, "cython")
    param, states, kw = make_arrays(k.name, bad, (40,), np.float64, "C", rng)
    before = param.copy()
    with pytest.raises(ValueError):
        step(k.name, bad, param, make_grad((40,), np.float64, "C", rng), states, kw, 3, "cython")
    np.testing.assert_array_equal(param, before)
