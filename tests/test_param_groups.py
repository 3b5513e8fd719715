"""Parameter groups (torch's semantics), ``None`` gradients and per-array step counts.

The oracle for groups is one optimizer per group (each group's arrays with that group's
hyperparameters): a grouped step must give the same bits. For ``None`` gradients it is an
optimizer stepped only on the steps the array had a gradient. torch (a test extra) checks
the semantics themselves: groups, ``None`` gradients, per-array bias correction.
"""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import kernels

BACKENDS = ["cython", "numba", "numpy"]


def arrays(rng, sizes, dtype=np.float64):
    return [rng.standard_normal(n).astype(dtype) for n in sizes]


def grads_like(rng, params):
    # sizes through the SIMD body and the tail; no zero element
    return [(rng.standard_normal(p.shape) + 0.1).astype(p.dtype) for p in params]


def copy(xs):
    return [x.copy() for x in xs]


GROUP_CASES = [
    (fo.Adam, {}, [dict(lr=0.01), dict(lr=0.002, betas=(0.8, 0.99), amsgrad=True)]),
    (fo.Adam, dict(weight_decay=0.1), [dict(decoupled_weight_decay=True), dict(eps=1e-6)]),
    (fo.AdamW, {}, [dict(weight_decay=0.0), dict(lr=0.05)]),
    (fo.SGD, dict(lr=0.1), [dict(momentum=0.9, nesterov=True), dict(), dict(momentum=0.5)]),
    (fo.RMSprop, {}, [dict(centered=True), dict(momentum=0.9, alpha=0.9)]),
    (fo.Adagrad, {}, [dict(lr_decay=0.01), dict(initial_accumulator_value=0.5)]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,defaults,overrides", GROUP_CASES,
                         ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_groups_step_like_one_optimizer_per_group(cls, defaults, overrides, backend):
    rng = np.random.default_rng(0)
    sizes = [[37, 5], [70, 1], [8]][:len(overrides)]
    groups = [arrays(rng, s) for s in sizes]
    alone = [cls(copy(g), **dict(defaults, **o), backend=backend)
             for g, o in zip(groups, overrides)]
    opt = cls([dict(params=g, **o) for g, o in zip(groups, overrides)], **defaults,
              backend=backend)
    for _ in range(20):
        gs = [grads_like(rng, g) for g in groups]
        opt.step([x for g in gs for x in g])
        for a, g in zip(alone, gs):
            a.step(g)
    for a, g in zip(alone, groups):
        for x, y in zip(a.params, g):
            np.testing.assert_array_equal(x, y)
    assert len(opt.param_groups) == len(overrides)


def test_dict_groups_take_one_dict_and_names_must_be_unique():
    rng = np.random.default_rng(1)
    a, b, c = arrays(rng, [5, 6, 7])
    opt = fo.Adam([{"params": {"a": a, "b": b}}, {"params": {"c": c}, "lr": 0.1}])
    opt.step({"a": a * 0 + 1, "b": b * 0 + 1, "c": c * 0 + 1})
    assert list(opt.params) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        opt.step({"a": a, "b": b})
    with pytest.raises(ValueError, match=r"names \['a'\] appear in more than one group"):
        fo.Adam([{"params": {"a": a}}, {"params": {"a": b}}])
    with pytest.raises(TypeError, match="every one a list; got both"):
        fo.Adam([{"params": {"a": a}}, {"params": [b]}])


@pytest.mark.parametrize("bad,exc,msg", [
    ([{"params": [np.zeros(3)], "betas2": 0.9}], TypeError, r"unknown hyperparameters \['betas2'\]"),
    ([{"params": [np.zeros(3)], "eps": -1.0}], ValueError, "eps must be >= 0"),
    ([{"params": [np.zeros(3)], "lr": -1.0}], ValueError, "lr must be"),
    ([{"params": [np.zeros(3)]}, {"params": []}], ValueError, "has no arrays"),
])
def test_bad_groups_raise(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        fo.Adam(bad)


def test_arrays_shared_across_groups_are_refused():
    x = np.zeros(10)
    with pytest.raises(ValueError, match="share memory"):
        fo.Adam([{"params": [x[:6]]}, {"params": [x[4:]]}])


def test_a_gradient_that_is_another_groups_parameter_is_refused_before_anything_changes():
    rng = np.random.default_rng(2)
    a, b = arrays(rng, [9, 9])
    opt = fo.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    before = copy([a, b])
    with pytest.raises(ValueError, match=r"shares memory with params\[0\]"):
        opt.step([np.ones(9), a])
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])
    assert opt.t == 0


def test_setting_group_hyperparameters_takes_effect_at_the_next_step():
    rng = np.random.default_rng(3)
    p = arrays(rng, [33])
    ref = fo.Adam(copy(p), lr=0.01)
    opt = fo.Adam(p, lr=0.01)
    g = grads_like(rng, p)
    opt.step(g)
    ref.step(g)
    opt.param_groups[0]["lr"] = 0.2
    opt.param_groups[0]["betas"] = (0.5, 0.9)
    ref2 = fo.Adam(ref.params, lr=0.2, betas=(0.5, 0.9))
    ref2.load_state_dict(dict(ref.state_dict(), param_groups=[
        dict(ref.state_dict()["param_groups"][0], lr=0.2, betas=(0.5, 0.9))]))
    opt.step(g)
    ref2.step(g)
    np.testing.assert_array_equal(opt.params[0], ref2.params[0])
    assert opt.lr == 0.2 and opt.betas == (0.5, 0.9)


def test_bad_group_values_raise_and_change_nothing():
    opt = fo.Adam([np.zeros(4)], lr=0.01)
    group = opt.param_groups[0]
    with pytest.raises(ValueError, match="betas"):
        group["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match="lr must be"):
        group["lr"] = -1
    with pytest.raises(ValueError, match="would change the group's state buffers"):
        group["amsgrad"] = True
    with pytest.raises(KeyError, match="no hyperparameter 'momentum'"):
        group["momentum"] = 0.9
    with pytest.raises(TypeError, match="fixed"):
        group["params"] = [np.zeros(4)]
    assert dict((k, v) for k, v in group.items() if k != "params") == dict(
        lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
        maximize=False, decoupled_weight_decay=False, eps_root=0.0)


def test_add_param_group_starts_its_own_step_count():
    rng = np.random.default_rng(4)
    a, b = arrays(rng, [40, 13])
    opt = fo.Adam([a], lr=0.01)
    fresh = fo.Adam([b.copy()], lr=0.05)
    for _ in range(3):
        opt.step(grads_like(rng, [a]))
    opt.add_param_group({"params": [b], "lr": 0.05})
    for _ in range(4):
        ga, gb = grads_like(rng, [a, b])
        opt.step([ga, gb])
        fresh.step([gb])
    np.testing.assert_array_equal(b, fresh.params[0])
    assert opt.state_dict()["steps"] == [7, 4]
    with pytest.raises(ValueError, match="share memory"):
        opt.add_param_group({"params": [a[:3]]})
    with pytest.raises(TypeError, match="'params' entry"):
        opt.add_param_group([a])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,opts", [(fo.Adam, dict(amsgrad=True)), (fo.SGD, dict(lr=0.1, momentum=0.9)),
                                      (fo.RMSprop, dict(centered=True)), (fo.Adagrad, {})],
                         ids=lambda x: x.__name__ if isinstance(x, type) else None)
def test_a_none_gradient_skips_its_array_and_its_step_count(cls, opts, backend):
    rng = np.random.default_rng(5)
    params = arrays(rng, [50, 3, 17], np.float32)
    alone = [cls([p.copy()], backend=backend, **opts) for p in params]
    opt = cls(params, backend=backend, **opts)
    for step in range(12):
        gs = grads_like(rng, params)
        gs = [None if (i + step) % 3 == 0 else g for i, g in enumerate(gs)]
        before = [p.copy() for p, g in zip(params, gs) if g is None]
        opt.step(gs)
        for a, g in zip(alone, gs):
            if g is not None:
                a.step([g])
        for p, b in zip([p for p, g in zip(params, gs) if g is None], before):
            np.testing.assert_array_equal(p, b)
    for a, p in zip(alone, params):
        np.testing.assert_array_equal(a.params[0], p)
    assert opt.state_dict()["steps"] == [a.t for a in alone]
    assert opt.t == 12


def test_equal_counts_step_in_one_compiled_call_per_group(monkeypatch):
    rng = np.random.default_rng(6)
    params = arrays(rng, [10, 20, 30, 40], np.float32)
    opt = fo.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}])
    calls = []
    multi = kernels.adam_multi
    monkeypatch.setattr(kernels, "adam_multi",
                        lambda *a, **k: calls.append(len(a[0])) or multi(*a, **k))
    opt.step(grads_like(rng, params))
    assert calls == [2, 2]
    calls.clear()
    opt.step([None, *grads_like(rng, params[1:])])     # counts now 1, 2, 2, 2
    opt.step(grads_like(rng, params))
    assert calls[-3:] == [1, 1, 2]


@pytest.mark.parametrize("via", ["state_dict", "file"])
def test_groups_counts_and_partial_state_resume_bit_for_bit(via, tmp_path):
    rng = np.random.default_rng(7)
    def make():
        p = arrays(np.random.default_rng(8), [30, 7, 12])
        return p, fo.Adam([{"params": p[:2], "amsgrad": True}, {"params": p[2:], "lr": 0.1}])
    p1, opt1 = make()
    stream = [grads_like(rng, p1) for _ in range(8)]
    stream[2][0] = None
    for g in stream[:4]:
        opt1.step(g)
    p2, opt2 = make()
    if via == "state_dict":
        opt2.load_state_dict(opt1.state_dict())
    else:
        fo.save_state(opt1, tmp_path / "c.npz")
        fo.load_state(opt2, tmp_path / "c.npz")
    assert opt2.state_dict()["steps"] == [3, 4, 4]
    for g in stream[4:]:
        opt1.step(g)
        opt2.step(g)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    assert opt1._state["max_exp_avg_sq"][2] is None


def test_adam_decoupled_weight_decay_is_adamw():
    rng = np.random.default_rng(9)
    p = arrays(rng, [21])
    a = fo.Adam(copy(p), weight_decay=0.1, decoupled_weight_decay=True)
    w = fo.AdamW(copy(p), weight_decay=0.1)
    l2 = fo.Adam(copy(p), weight_decay=0.1)
    for _ in range(5):
        g = grads_like(rng, p)
        a.step(g), w.step(g), l2.step(g)
    np.testing.assert_array_equal(a.params[0], w.params[0])
    assert not np.array_equal(a.params[0], l2.params[0])


torch = pytest.importorskip("torch")


@pytest.mark.parametrize("cls,tcls,defaults,groups", [
    (fo.Adam, "Adam", {}, [dict(lr=0.01), dict(lr=0.003, betas=(0.8, 0.99), amsgrad=True,
                                                weight_decay=0.1)]),
    (fo.Adam, "Adam", {}, [dict(decoupled_weight_decay=True, weight_decay=0.1), dict()]),
    (fo.SGD, "SGD", dict(lr=0.1), [dict(momentum=0.9), dict(momentum=0.5, nesterov=True)]),
    # (torch fills every group's state_sum with the constructor's initial_accumulator_value,
    # ignoring a group's own; fastoptim uses the group's: only the constructor's here)
    (fo.Adagrad, "Adagrad", dict(initial_accumulator_value=0.2), [dict(lr_decay=0.01), dict()]),
    (fo.RMSprop, "RMSprop", {}, [dict(centered=True), dict(momentum=0.5)]),
], ids=lambda x: x if isinstance(x, str) else None)
def test_groups_and_none_gradients_match_torch(cls, tcls, defaults, groups):
    rng = np.random.default_rng(10)
    sizes = [[33, 4], [17]]
    ours = [arrays(rng, s) for s in sizes]
    theirs = [[torch.from_numpy(x.copy()) for x in g] for g in ours]
    opt = cls([dict(params=g, **o) for g, o in zip(ours, groups)], **defaults)
    topt = getattr(torch.optim, tcls)([dict(params=g, **o) for g, o in zip(theirs, groups)],
                                      **defaults, foreach=False)
    flat_t = [t for g in theirs for t in g]
    for step in range(30):
        gs = grads_like(rng, [x for g in ours for x in g])
        gs = [None if (i * 7 + step) % 4 == 0 else g for i, g in enumerate(gs)]
        opt.step(gs)
        for t, g in zip(flat_t, gs):
            t.grad = None if g is None else torch.from_numpy(g.copy())
        topt.step()
    for x, t in zip([x for g in ours for x in g], flat_t):
        np.testing.assert_allclose(x, t.numpy(), rtol=1e-12, atol=1e-14)
