"""Optimizer classes: parity with the functional reference over many steps, errors, lr.

The classes and their option sets come from the kernel registry (kernel_cases.CLASS_CASES:
each class entry's examples); a test that names a class tests something specific to it."""
import inspect

import numpy as np
import pytest

import fastoptim
from fastoptim import functional as F
from fastoptim._registry import KERNELS
from fastoptim.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from kernel_cases import (CLASS_CASES, CLASS_FULL_CASES, CLASS_NAMES, CLASS_TYPICAL_CASES,
                          class_case_id, class_state_names, entry, functional_run,
                          optimizer_class)
from testing_settings import ALL_BACKENDS, DTYPES, TOLERANCE

SHAPES = {"W1": (5, 7), "b1": (5, 1), "W2": (1, 5), "b2": (1, 1), "v": (33,), "e": (0,)}
# constructor keywords of every class that are not hyperparameters of a formula
# options of the class with tests of their own (test_state_dtype, test_half_params_class)
COMMON = {"self", "params", "backend", "skip_nonfinite", "state_dtype", "master_weights",
          "stochastic_rounding", "seed"}


def make_params(rng, dtype, as_dict, fortran=False):
    arrays = {}
    for k, shape in SHAPES.items():
        a = rng.standard_normal(shape).astype(dtype)
        arrays[k] = np.asfortranarray(a) if fortran else a
    return arrays if as_dict else list(arrays.values())


def make_grads(rng, params):
    if isinstance(params, dict):
        return {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def values(x):
    return list(x.values()) if isinstance(x, dict) else list(x)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "list"])
@pytest.mark.parametrize("case", CLASS_CASES, ids=class_case_id)
def test_parity_with_functional_reference(case, as_dict, dtype, backend, rng):
    name, kernel, opts = case
    params = make_params(rng, dtype, as_dict)
    start = [p.copy() for p in values(params)]
    grads_seq = [make_grads(rng, params) for _ in range(60)]
    opt = optimizer_class(name)(params, backend=backend, **opts)
    ptrs = [p.ctypes.data for p in values(params)]
    for grads in grads_seq:
        opt.step(grads)
    assert opt.t == 60
    got = values(params)
    assert [p.ctypes.data for p in got] == ptrs          # in place
    seq = [values(g) for g in grads_seq]
    expected, _ = functional_run(name, kernel, opts, start, seq, "numpy")
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.dtype(dtype)])
    # same backend through the functional API: identical arithmetic, identical bits
    same, same_states = functional_run(name, kernel, opts, start, seq, backend)
    for a, b in zip(got, same):
        np.testing.assert_array_equal(a, b)
    state = opt.state_dict()["state"]
    assert list(state) == list(class_state_names(name, kernel, opts))
    for s, buffers in same_states.items():
        for a, b in zip(state[s], buffers):
            np.testing.assert_array_equal(a, b, err_msg=s)
    assert not any(np.array_equal(a, b) for a, b in zip(got, start) if a.size)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_fortran_params_and_schedule(case, backend, rng):
    name, kernel, opts = case
    params = make_params(rng, np.float64, True, fortran=True)
    start = [p.copy(order="K") for p in values(params)]
    grads_seq = [{k: np.asfortranarray(g) for k, g in make_grads(rng, params).items()}
                 for _ in range(20)]
    opts = dict(opts, lr=lambda t: 0.1 / (1 + 0.5 * t))
    opt = optimizer_class(name)(params, backend=backend, **opts)
    for grads in grads_seq:
        opt.step(grads)
    expected, _ = functional_run(name, kernel, opts, start, [values(g) for g in grads_seq],
                                 backend)
    for a, b in zip(values(params), expected):
        np.testing.assert_array_equal(a, b)
        assert a.flags.f_contiguous
    assert opt.last_lr == pytest.approx(0.1 / 11)


def test_manual_lr_decay_between_steps(rng):
    params = {"W": rng.standard_normal((4, 3))}
    W0 = params["W"].copy()
    g = rng.standard_normal((4, 3))
    opt = SGD(params, lr=0.2)
    opt.step({"W": g})
    opt.lr = 0.1
    opt.step({"W": g})
    np.testing.assert_allclose(params["W"], W0 - 0.3 * g)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.lr = -1.0
    with pytest.raises(TypeError, match="lr must be a real number"):
        opt.lr = "0.1"
    assert opt.lr == 0.1


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_schedule_gets_the_step_count(case, rng):
    name, _, opts = case
    seen = []
    params = [rng.standard_normal(3)]
    opt = optimizer_class(name)(params, **dict(opts, lr=lambda t: seen.append(t) or 1e-3))
    for _ in range(3):
        opt.step([np.ones(3)])
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("case", CLASS_FULL_CASES, ids=class_case_id)
def test_bad_schedule_value_changes_nothing(case, rng):
    name, _, opts = case
    params = [rng.standard_normal(3)]
    opt = optimizer_class(name)(params, **dict(opts, lr=lambda t: -1.0))
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"lr \(the schedule's value at t=1\) must be >= 0"):
        opt.step([np.ones(3)])
    after = opt.state_dict()
    np.testing.assert_array_equal(after["params"][0], before["params"][0])
    assert opt.t == 0 and list(after["state"]) == list(before["state"])
    for s, buffers in before["state"].items():
        np.testing.assert_array_equal(after["state"][s][0], buffers[0])


def _bad_grads(params):
    W, b = params["W1"], params["b1"]
    ok = {"W1": np.ones_like(W), "b1": np.ones_like(b)}
    return [
        ({"W1": ok["W1"]}, ValueError, r"missing \['b1'\]"),
        (dict(ok, W2=ok["W1"]), ValueError, r"unexpected \['W2'\]"),
        ({"W1": ok["W1"], "b1": np.ones((4, 1))}, ValueError, r"grads\['b1'\] must have the shape"),
        ({"W1": ok["W1"], "b1": ok["b1"].astype(np.float32)}, TypeError, r"grads\['b1'\] must have the dtype"),
        ({"W1": np.ones((6, 8))[::2, ::2], "b1": ok["b1"]}, ValueError, r"grads\['W1'\] must be C- or F-contiguous"),
        ({"W1": np.asfortranarray(ok["W1"]), "b1": ok["b1"]}, ValueError, "all arrays must be C-contiguous or all F"),
        ({"W1": W, "b1": ok["b1"]}, ValueError, r"params\['W1'\] and grads\['W1'\] share memory"),
        ({"W1": [[1.0]], "b1": ok["b1"]}, TypeError, r"grads\['W1'\] must be a numpy.ndarray"),
        ([ok["W1"], ok["b1"]], TypeError, "grads must be a dict"),
    ]


@pytest.mark.parametrize("bad", range(9))
@pytest.mark.parametrize("case", CLASS_FULL_CASES, ids=class_case_id)
def test_bad_grads_change_nothing(case, bad, rng):
    name, _, opts = case
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((3, 1))}
    grads, exc, msg = _bad_grads(params)[bad]
    opt = optimizer_class(name)(params, **opts)
    opt.step({"W1": np.ones((3, 4)), "b1": np.ones((3, 1))})
    snapshot = opt.state_dict()
    with pytest.raises(exc, match=msg):
        opt.step(grads)
    after = opt.state_dict()
    assert after["step"] == snapshot["step"] == 1
    for a, b in zip(after["params"], snapshot["params"]):
        np.testing.assert_array_equal(a, b)
    assert snapshot["state"] or not class_state_names(*case)
    for s in snapshot["state"]:
        for a, b in zip(after["state"][s], snapshot["state"][s]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_list_grads_errors(case, rng):
    name, _, opts = case
    params = [rng.standard_normal(3), rng.standard_normal(2)]
    opt = optimizer_class(name)(params, **opts)
    with pytest.raises(ValueError, match="grads must have 2 arrays"):
        opt.step([np.ones(3)])
    with pytest.raises(ValueError, match=r"grads\[1\] must have the shape"):
        opt.step([np.ones(3), np.ones(3)])


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_gradient_key_hint_for_course_names(case, rng):
    name, _, opts = case
    params = {"W1": rng.standard_normal((2, 2))}
    with pytest.raises(ValueError, match=r"found \['dW1'\]"):
        optimizer_class(name)(params, **opts).step({"dW1": np.ones((2, 2))})


@pytest.mark.parametrize("params,exc,msg", [
    (np.ones(3), TypeError, "wrap it in a list"),
    ("W", TypeError, "params must be a list or dict"),
    ({"W": np.ones(3, dtype=np.int64)}, TypeError, r"params\['W'\] must have dtype float32 or float64"),
    ({"W": np.ones((4, 4))[:, ::2]}, ValueError, r"params\['W'\] must be C- or F-contiguous"),
    ({1: np.ones(3)}, TypeError, "keys of params must be strings"),
    ([], ValueError, "params is empty"),
    ({}, ValueError, "params is empty"),
])
@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_bad_params(case, params, exc, msg):
    name, _, opts = case
    with pytest.raises(exc, match=msg):
        optimizer_class(name)(params, **opts)


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_params_sharing_memory_or_readonly(case):
    name, _, opts = case
    cls = optimizer_class(name)
    buf = np.zeros(10)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        cls([buf[:6], buf[4:]], **opts)
    cls([buf[:5], buf[5:]], **opts)              # adjacent, disjoint: fine
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\] is read-only"):
        cls({"w": ro}, **opts)


@pytest.mark.parametrize("cls,kw,exc,msg", [
    (SGD, dict(lr=-0.1), ValueError, "SGD: lr must be >= 0"),
    (SGD, dict(lr=0.1, momentum=-1), ValueError, "momentum must be >= 0"),
    (SGD, dict(lr=0.1, dampening=2), ValueError, r"dampening must be in \[0, 1\]"),
    (SGD, dict(lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    (SGD, dict(lr=0.1, nesterov=1), TypeError, "nesterov must be a bool"),
    (RMSprop, dict(alpha=1.0), ValueError, r"alpha must be in \[0, 1\)"),
    (RMSprop, dict(eps=0.0), ValueError, "eps must be > 0"),
    (Adam, dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
    (Adam, dict(betas=0.9), TypeError, "betas must be a pair"),
    (AdamW, dict(weight_decay=float("nan")), ValueError, "weight_decay must be finite"),
    (Adagrad, dict(initial_accumulator_value=-1), ValueError, "initial_accumulator_value must be >= 0"),
    (Adam, dict(backend="torch"), ValueError, "backend must be one of"),
])
def test_bad_hyperparameters(cls, kw, exc, msg):
    """The exact messages of some refusals (every keyword of every class is in
    test_bad_constructor_value_is_refused_naming_it)."""
    with pytest.raises(exc, match=msg):
        cls([np.zeros(3)], **kw)


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_bad_backend_is_refused_at_construction(case):
    name, _, opts = case
    with pytest.raises(ValueError, match="backend must be one of"):
        optimizer_class(name)([np.zeros(3)], backend="torch", **opts)


# bad values of each validation kind: (value, exception)
BAD_VALUES = {
    "nonnegative": [(-0.1, ValueError), (float("nan"), ValueError), ("0.1", TypeError)],
    "positive": [(0.0, ValueError), (-1.0, ValueError), (float("inf"), ValueError)],
    "unit_interval": [(1.0, ValueError), (-0.1, ValueError), (None, TypeError)],
    "closed_unit_interval": [(1.5, ValueError), (-0.1, ValueError), ("0", TypeError)],
    "flag": [(1, TypeError), (None, TypeError)],
}


def _bad_constructor_values():
    """(class case, constructor keyword, value passed, name in the message, exception) for
    every hyperparameter a class takes, from the registry's kinds."""
    out = []
    for case in CLASS_TYPICAL_CASES:
        name, kernel, opts = case
        spec, e = KERNELS[kernel], entry(name, kernel)
        full = e.constructor_kwargs(spec, e.hyperparameters(spec, opts))
        for h in spec.hyperparameters:
            if h.name == "step" or h.name in e.fixed or h.name in spec.carried:
                continue            # (carried scalar state: the class keeps it)
            keyword = e.renames.get(h.name, h.name)
            for value, exc in BAD_VALUES[h.kind]:
                if "[" in keyword:          # an element of a tuple keyword (betas[1])
                    outer, i = keyword[:-1].split("[")
                    items = list(full[outer])
                    items[int(i)] = value
                    out.append((case, outer, tuple(items), keyword, exc))
                else:
                    out.append((case, keyword, value, keyword, exc))
    return out


@pytest.mark.parametrize("case,keyword,value,shown,exc", _bad_constructor_values(),
                         ids=lambda x: x if isinstance(x, str) else None)
def test_bad_constructor_value_is_refused_naming_it(case, keyword, value, shown, exc):
    name, _, opts = case
    with pytest.raises(exc) as info:
        optimizer_class(name)([np.zeros(3)], **dict(opts, **{keyword: value}))
    assert name in str(info.value) and shown in str(info.value), str(info.value)


# class name -> its torch.optim class (the same for every kernel the class runs)
TORCH_PEERS = {name: {e.torch for _, e in pairs}
               for name, pairs in fastoptim._registry.optimizer_classes().items()}


@pytest.mark.parametrize("name", [n for n, peers in TORCH_PEERS.items() if peers != {None}])
def test_defaults_follow_torch(name):
    """torch.optim's class of the same constructor has the same defaults (for the keywords
    both give a default; fastoptim's SGD requires lr)."""
    torch = pytest.importorskip("torch")
    (peer,) = TORCH_PEERS[name]
    ours = inspect.signature(optimizer_class(name).__init__).parameters
    theirs = inspect.signature(getattr(torch.optim, peer).__init__).parameters
    compared = 0
    for keyword, p in ours.items():
        if keyword in COMMON or p.default is p.empty or keyword not in theirs:
            continue
        assert p.default == theirs[keyword].default, keyword
        compared += 1
    assert compared >= 2


def test_sgd_requires_lr():
    with pytest.raises(TypeError):
        SGD([np.zeros(2)])                        # lr is required, as in the design


@pytest.mark.parametrize("case", CLASS_FULL_CASES, ids=class_case_id)
def test_state_buffers_created_once_with_param_dtype_and_layout(case, rng):
    name, kernel, opts = case
    params = {"W": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
              "b": np.zeros(3)}
    opt = optimizer_class(name)(params, **opts)
    initial = entry(name, kernel).initial_values(opts)
    names = class_state_names(name, kernel, opts)
    assert set(opt._state) == set(names)
    bufs = {n: [b.ctypes.data for b in lst] for n, lst in opt._state.items()}
    for s, lst in opt._state.items():
        assert lst[0].dtype == np.float32 and lst[0].flags.f_contiguous
        assert lst[1].dtype == np.float64
        assert all((b == initial.get(s, 0.0)).all() for b in lst)
    for _ in range(3):
        opt.step({"W": np.asfortranarray(np.ones((3, 4), np.float32)), "b": np.ones(3)})
    assert {n: [b.ctypes.data for b in lst] for n, lst in opt._state.items()} == bufs


def test_public_names():
    for name in CLASS_NAMES + ["Optimizer"]:
        assert getattr(fastoptim, name) is getattr(fastoptim.optim, name)


def _course_network(rng):
    X = rng.standard_normal((2, 400))
    Y = (X[0] * X[1] > 0).reshape(1, -1).astype(np.float64)
    parameters = {"W1": rng.standard_normal((16, 2)) * np.sqrt(2 / 2), "b1": np.zeros((16, 1)),
                  "W2": rng.standard_normal((1, 16)) * np.sqrt(2 / 16), "b2": np.zeros((1, 1))}
    return X, Y, parameters


def _forward_backward(parameters, X, Y):
    Z1 = parameters["W1"] @ X + parameters["b1"]
    A1 = np.maximum(Z1, 0)
    A2 = 1 / (1 + np.exp(-(parameters["W2"] @ A1 + parameters["b2"])))
    m = X.shape[1]
    cost = -np.mean(Y * np.log(A2 + 1e-12) + (1 - Y) * np.log(1 - A2 + 1e-12))
    dZ2 = A2 - Y
    dZ1 = (parameters["W2"].T @ dZ2) * (Z1 > 0)
    return cost, {"dW2": dZ2 @ A1.T / m, "db2": dZ2.sum(axis=1, keepdims=True) / m,
                  "dW1": dZ1 @ X.T / m, "db1": dZ1.sum(axis=1, keepdims=True) / m}


@pytest.mark.parametrize("case", CLASS_TYPICAL_CASES, ids=class_case_id)
def test_course_training_loop_learns(case):
    """The course's loop: dict of parameters, mini-batches (examples in columns), decay per
    epoch; with each class's typical options (the registry's first class example)."""
    from fastoptim import minibatches
    from fastoptim.schedules import inverse_time_decay
    name, _, opts = case
    cls = optimizer_class(name)
    X, Y, parameters = _course_network(np.random.default_rng(1))
    cost0, _ = _forward_backward(parameters, X, Y)
    opt = cls(parameters, **opts)
    lr0 = opts.get("lr", inspect.signature(cls.__init__).parameters["lr"].default)
    decay = inverse_time_decay(lr0, decay_rate=0.01)
    for epoch in range(1, 101):
        opt.lr = decay(epoch)
        for X_t, Y_t in minibatches(X, Y, 64, axis=1, seed=epoch):
            _, grads = _forward_backward(parameters, X_t, Y_t)
            opt.step({k: grads["d" + k] for k in parameters})
    cost, _ = _forward_backward(parameters, X, Y)
    assert opt.t == 100 * 7
    assert cost < 0.5 * cost0


@pytest.mark.parametrize("case", CLASS_FULL_CASES, ids=class_case_id)
def test_hyperparameters_are_read_only_except_lr(case):
    name, kernel, opts = case
    cls = optimizer_class(name)
    opt = cls([np.zeros(2)], **opts)
    given = {**{k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not p.empty}, **opts}
    checked = 0
    for keyword, value in given.items():
        if keyword in COMMON or keyword == "lr":
            continue
        assert getattr(opt, keyword) == value
        with pytest.raises(AttributeError, match=f"{keyword} was validated at construction; change it between steps"):
            setattr(opt, keyword, value)
        assert getattr(opt, keyword) == value
        checked += 1
    assert checked >= 1
    with pytest.raises(AttributeError, match="no attribute 'no_such_option'"):
        opt.no_such_option


@pytest.mark.parametrize("case", CLASS_CASES, ids=class_case_id)
def test_step_does_not_revalidate_hyperparameters_or_call_public_steps(case, monkeypatch, rng):
    name, _, opts = case
    params = make_params(rng, np.float64, True)
    opt = optimizer_class(name)(params, backend="cython", **opts)
    calls = []
    for kind in ("real", "nonnegative", "positive", "unit_interval", "closed_unit_interval",
                 "flag", "step_count"):
        real = getattr(fastoptim._validation, kind)
        monkeypatch.setattr(fastoptim._validation, kind,
                            lambda *a, _r=real, _n=kind: calls.append(_n) or _r(*a))
    for spec in KERNELS.values():
        monkeypatch.setattr(F, spec.function,
                            lambda *a, **k: pytest.fail("public step function called"))
    for _ in range(3):
        opt.step(make_grads(rng, params))
    assert calls == [] and opt.t == 3


@pytest.mark.parametrize("case", sorted(set(map(repr, CLASS_TYPICAL_CASES + CLASS_FULL_CASES)),
                                        key=repr), ids=lambda r: class_case_id(eval(r)))
def test_step_is_one_compiled_multi_tensor_call(case, monkeypatch, rng):
    """A step over many arrays is one kernels.<kernel>_multi call, not a per-array loop."""
    from fastoptim import kernels
    name, kernel, opts = eval(case)
    params = make_params(rng, np.float32, True)
    opt = optimizer_class(name)(params, **opts)  # backend "auto"
    calls = []
    multi = getattr(kernels, kernel + "_multi")
    monkeypatch.setattr(kernels, kernel + "_multi",
                        lambda *a, **k: calls.append(len(a[0])) or multi(*a, **k))
    monkeypatch.setattr(kernels, kernel, lambda *a: pytest.fail("per-array kernel called"))
    before = [p.copy() for p in params.values()]
    for _ in range(2):
        opt.step(make_grads(rng, params))
    assert calls == [len(params)] * 2
    assert all(p.size == 0 or not np.array_equal(p, b) for p, b in zip(params.values(), before))


@pytest.mark.parametrize("case", CLASS_FULL_CASES, ids=class_case_id)
def test_state_lives_in_one_arena_laid_out_like_the_params(case, rng):
    name, kernel, opts = case
    params = make_params(rng, np.float32, True, fortran=True)
    params["c64"] = rng.standard_normal(9)  # float64 next to float32
    opt = optimizer_class(name)(params, **opts)
    initial = entry(name, kernel).initial_values(opts)
    assert set(opt._state) == set(class_state_names(name, kernel, opts))
    for s, buffers in opt._state.items():
        base = buffers[0].base
        for p, b in zip(params.values(), buffers):
            assert b.base is base and b.shape == p.shape and b.dtype == p.dtype
            assert b.flags.f_contiguous == p.flags.f_contiguous
            assert (b == initial.get(s, 0.0)).all()
            assert b.ctypes.data % 64 == 0
        ends = sorted((b.ctypes.data, b.ctypes.data + b.nbytes) for b in buffers)
        assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))  # no overlap


def _torch_class_cases():
    """The class cases with a torch.optim class of the same constructor, where torch
    computes the same (the registry's TorchPeer.differs_when)."""
    out = []
    for name, kernel, opts in CLASS_CASES:
        spec, e = KERNELS[kernel], entry(name, kernel)
        if e.torch and spec.torch and spec.torch.agrees(spec, e.hyperparameters(spec, opts)):
            out.append((name, kernel, opts))
    return out


@pytest.mark.parametrize("case", _torch_class_cases(), ids=class_case_id)
def test_matches_torch_optim(case, rng):
    """The class against torch.optim's class of the same name and keywords (float64, many
    steps)."""
    torch = pytest.importorskip("torch")
    name, kernel, opts = case
    e = entry(name, kernel)
    params = make_params(rng, np.float64, False)
    start = [p.copy() for p in params]
    tensors = [torch.from_numpy(p.copy()) for p in params]
    opt = optimizer_class(name)(params, backend="numpy", **opts)
    # torch keeps NAdam's mu_product in its default dtype: float64 here, as ours is (ASGD's
    # eta and mu are rounded to torch's float32 default on our side, so it keeps float32)
    default = torch.get_default_dtype()
    if KERNELS[kernel].carried:
        torch.set_default_dtype(torch.float64)
    try:
        peer = getattr(torch.optim, e.torch)(tensors, **opts, foreach=False)
        for _ in range(30):
            grads = make_grads(rng, params)
            opt.step(grads)
            for t, g in zip(tensors, grads):
                t.grad = torch.from_numpy(g)
            peer.step()
    finally:
        torch.set_default_dtype(default)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p, t.numpy(), rtol=1e-10, atol=1e-12)
    assert not any(np.array_equal(p, q) for p, q in zip(params, start) if p.size)
