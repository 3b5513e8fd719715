"""``eps`` must be a normal number of the dtype the update is computed in (``eps=1e-50`` is 0
in float32: a zero gradient then divides 0 by 0) on every path that sets it: construction,
``param_groups[i][key] = value``, ``load_state_dict``, the torch front end's
``param_groups`` and the low-memory functions and classes. Each refusal changes nothing."""
import copy

import numpy as np
import pytest

import fastoptim as fo
from fastoptim import halfparams, lowmem

EPS_CLASSES = ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "LAMB", "NAdam", "RAdam",
               "RMSprop"]


def make(name, dtype=np.float32, **kw):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((6, 7)).astype(dtype), rng.standard_normal(9).astype(dtype)]
    return getattr(fo, name)(params, lr=1e-2, **kw), params


def grads_of(params, zero=True):
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
    if zero:
        for g in gs:
            g.reshape(-1)[:3] = 0.0           # a zero gradient: 0/0 if eps were 0
    return gs


@pytest.mark.parametrize("name", EPS_CLASSES)
def test_setting_an_underflowing_eps_on_a_group_is_refused(name):
    opt, params = make(name)
    opt.step(grads_of(params))
    before = [p.copy() for p in params]
    with pytest.raises(ValueError, match="eps=1e-50 underflows float32"):
        opt.param_groups[0]["eps"] = 1e-50
    assert opt.param_groups[0]["eps"] != 1e-50
    opt.step(grads_of(params))
    assert all(np.isfinite(p).all() for p in params)
    assert not all(np.array_equal(a, b) for a, b in zip(params, before))


@pytest.mark.parametrize("name", EPS_CLASSES)
def test_float64_parameters_take_an_eps_normal_in_float64(name):
    opt, params = make(name, np.float64)
    opt.param_groups[0]["eps"] = 1e-50
    opt.step(grads_of(params))
    assert all(np.isfinite(p).all() for p in params)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_eps_root_is_the_guard_when_eps_is_zero(name):
    opt, _ = make(name, eps=0.0, eps_root=1e-8)
    with pytest.raises(ValueError, match="eps_root=1e-50 underflows float32"):
        opt.param_groups[0]["eps_root"] = 1e-50
    assert opt.param_groups[0]["eps_root"] == 1e-8


@pytest.mark.parametrize("name", EPS_CLASSES)
def test_load_state_dict_refuses_an_underflowing_eps_and_changes_nothing(name):
    opt, params = make(name)
    opt.step(grads_of(params))
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["param_groups"][0]["eps"] = 1e-50
    other, other_params = make(name)
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(ValueError, match="eps=1e-50 underflows float32"):
        other.load_state_dict(bad)
    after = other.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert after["steps"] == before["steps"]
    other.load_state_dict(sd)                   # the good one still loads


def test_low_memory_functions_and_classes_refuse_an_underflowing_eps():
    rng = np.random.default_rng(2)
    param = rng.standard_normal(5000).astype(np.float32)
    grad = np.zeros_like(param)
    for kind in ("bfloat16", "int8"):
        state = lowmem.adam_state(param, kind)
        before = param.copy(), {k: v.copy() for k, v in state.items()}
        with pytest.raises(ValueError, match="eps=1e-50 underflows float32"):
            lowmem.adam_lowmem_step(param, grad, state, step=1, lr=1e-3, eps=1e-50)
        assert np.array_equal(param, before[0])
        assert all(np.array_equal(state[k].view(np.uint8), before[1][k].view(np.uint8))
                   for k in state)
        with pytest.raises(ValueError, match="LowMemAdam: eps=1e-50 underflows float32"):
            lowmem.LowMemAdam([param], eps=1e-50, state_dtype=kind)
    half = param.astype(np.float16)
    with pytest.raises(ValueError, match="eps=1e-50 underflows float32"):
        halfparams.adam_half_step(half, half.copy(), halfparams.half_state(half), step=1,
                                  lr=1e-3, eps=1e-50)


def test_torch_front_refuses_an_underflowing_eps_set_on_its_groups():
    torch = pytest.importorskip("torch")
    import fastoptim.torch as ft
    model = torch.nn.Linear(4, 3)
    opt = ft.Adam(model.parameters(), lr=1e-2)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    opt.param_groups[0]["eps"] = 1e-50
    with pytest.raises(ValueError, match="eps=1e-50 underflows float32"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    opt.param_groups[0]["eps"] = 1e-8
    opt.step()
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
