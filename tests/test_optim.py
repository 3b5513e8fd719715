"""Optimizer classes: parity with the functional reference over many steps, errors, lr."""
import numpy as np
import pytest

import fastoptim
from fastoptim import functional as F
from fastoptim import reference as R
from fastoptim.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from testing_settings import ALL_BACKENDS, DTYPES, TOLERANCE

SHAPES = {"W1": (5, 7), "b1": (5, 1), "W2": (1, 5), "b2": (1, 1), "v": (33,), "e": (0,)}

# (class, options, functional reference step run per array with its states)
CASES = [
    (SGD, dict(lr=0.05)),
    (SGD, dict(lr=0.05, weight_decay=0.01, maximize=True)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.9, dampening=0.9, weight_decay=0.1)),
    (SGD, dict(lr=0.05, momentum=0.8, nesterov=True)),
    (RMSprop, dict()),
    (RMSprop, dict(lr=1e-3, momentum=0.9, weight_decay=0.01)),
    (RMSprop, dict(lr=1e-3, centered=True, alpha=0.9)),
    (RMSprop, dict(lr=1e-3, centered=True, momentum=0.5, maximize=True)),
    (Adam, dict()),
    (Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)),
    (Adam, dict(lr=1e-2, amsgrad=True, maximize=True)),
    (AdamW, dict(lr=1e-2)),
    (AdamW, dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
    (Adagrad, dict()),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
]
IDS = [f"{c.__name__}-{i}" for i, (c, _) in enumerate(CASES)]


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


def functional_run(cls, opts, params, grads_seq, backend):
    """The same training run written with the functional step functions, one array at a time."""
    opts = dict(opts)
    lr = opts.pop("lr", cls.__init__.__defaults__[0])
    out = [p.copy(order="K") for p in params]
    if cls is SGD:
        mom = opts.get("momentum", 0.0)
        state = [[np.zeros_like(p)] if mom else [] for p in out]
    elif cls is RMSprop:
        state = [[np.zeros_like(p)] for p in out]
        extra = [{"momentum_buffer": np.zeros_like(p) if opts.get("momentum") else None,
                  "grad_avg": np.zeros_like(p) if opts.get("centered") else None} for p in out]
    elif cls in (Adam, AdamW):
        state = [[np.zeros_like(p), np.zeros_like(p)] for p in out]
        extra = [{"max_exp_avg_sq": np.zeros_like(p) if opts.get("amsgrad") else None}
                 for p in out]
        beta1, beta2 = opts.pop("betas", (0.9, 0.999))
        opts.update(beta1=beta1, beta2=beta2,
                    decoupled_weight_decay=cls is AdamW,
                    weight_decay=opts.get("weight_decay", 1e-2 if cls is AdamW else 0.0))
    else:
        init = opts.pop("initial_accumulator_value", 0.0)
        state = [[np.full_like(p, init)] for p in out]
    for t, grads in enumerate(grads_seq, start=1):
        lr_t = lr(t) if callable(lr) else lr
        for i, (p, g) in enumerate(zip(out, grads)):
            if cls is SGD:
                if state[i]:
                    F.momentum_step(p, g, *state[i], lr=lr_t, backend=backend, **opts)
                else:
                    F.sgd_step(p, g, lr=lr_t, backend=backend, **opts)
            elif cls is RMSprop:
                F.rmsprop_step(p, g, *state[i], lr=lr_t, backend=backend, **opts, **extra[i])
            elif cls in (Adam, AdamW):
                o = {k: v for k, v in opts.items() if k != "amsgrad"}
                F.adam_step(p, g, *state[i], step=t, lr=lr_t, backend=backend,
                            amsgrad=opts.get("amsgrad", False), **o, **extra[i])
            else:
                F.adagrad_step(p, g, *state[i], step=t, lr=lr_t, backend=backend, **opts)
    return out


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("as_dict", [True, False], ids=["dict", "list"])
@pytest.mark.parametrize("cls,opts", CASES, ids=IDS)
def test_parity_with_functional_reference(cls, opts, as_dict, dtype, backend, rng):
    params = make_params(rng, dtype, as_dict)
    start = [p.copy() for p in values(params)]
    grads_seq = [make_grads(rng, params) for _ in range(60)]
    opt = cls(params, backend=backend, **opts)
    ptrs = [p.ctypes.data for p in values(params)]
    for grads in grads_seq:
        opt.step(grads)
    assert opt.t == 60
    got = values(params)
    assert [p.ctypes.data for p in got] == ptrs          # in place
    seq = [values(g) for g in grads_seq]
    expected = functional_run(cls, opts, start, seq, "numpy")
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, **TOLERANCE[np.dtype(dtype)])
    # same backend through the functional API: identical arithmetic, identical bits
    same = functional_run(cls, opts, start, seq, backend)
    for a, b in zip(got, same):
        np.testing.assert_array_equal(a, b)
    assert not any(np.array_equal(a, b) for a, b in zip(got, start) if a.size)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("cls,opts", [CASES[2], CASES[9], CASES[15]], ids=["SGD", "Adam", "Adagrad"])
def test_fortran_params_and_schedule(cls, opts, backend, rng):
    params = make_params(rng, np.float64, True, fortran=True)
    start = [p.copy(order="K") for p in values(params)]
    grads_seq = [{k: np.asfortranarray(g) for k, g in make_grads(rng, params).items()}
                 for _ in range(20)]
    opts = dict(opts, lr=lambda t: 0.1 / (1 + 0.5 * t))
    opt = cls(params, backend=backend, **opts)
    for grads in grads_seq:
        opt.step(grads)
    expected = functional_run(cls, opts, start, [values(g) for g in grads_seq], backend)
    for a, b in zip(values(params), expected):
        np.testing.assert_array_equal(a, b)
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


def test_schedule_gets_the_step_count(rng):
    seen = []
    params = [rng.standard_normal(3)]
    opt = Adam(params, lr=lambda t: seen.append(t) or 1e-3)
    for _ in range(3):
        opt.step([np.ones(3)])
    assert seen == [1, 2, 3]


def test_bad_schedule_value_changes_nothing(rng):
    params = [rng.standard_normal(3)]
    before = params[0].copy()
    opt = Adam(params, lr=lambda t: -1.0)
    with pytest.raises(ValueError, match=r"lr \(the schedule's value at t=1\) must be >= 0"):
        opt.step([np.ones(3)])
    np.testing.assert_array_equal(params[0], before)
    assert opt.t == 0
    assert not opt._state["exp_avg"][0].any()


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


@pytest.mark.parametrize("case", range(9))
@pytest.mark.parametrize("cls", [SGD, RMSprop, Adam, AdamW, Adagrad])
def test_bad_grads_change_nothing(cls, case, rng):
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal((3, 1))}
    grads, exc, msg = _bad_grads(params)[case]
    opt = cls(params, lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
    opt.step({"W1": np.ones((3, 4)), "b1": np.ones((3, 1))})
    snapshot = opt.state_dict()
    with pytest.raises(exc, match=msg):
        opt.step(grads)
    after = opt.state_dict()
    assert after["step"] == snapshot["step"] == 1
    for a, b in zip(after["params"], snapshot["params"]):
        np.testing.assert_array_equal(a, b)
    for name in snapshot["state"]:
        for a, b in zip(after["state"][name], snapshot["state"][name]):
            np.testing.assert_array_equal(a, b)


def test_list_grads_errors(rng):
    params = [rng.standard_normal(3), rng.standard_normal(2)]
    opt = SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="grads must have 2 arrays"):
        opt.step([np.ones(3)])
    with pytest.raises(ValueError, match=r"grads\[1\] must have the shape"):
        opt.step([np.ones(3), np.ones(3)])


def test_gradient_key_hint_for_course_names(rng):
    params = {"W1": rng.standard_normal((2, 2))}
    with pytest.raises(ValueError, match=r"found \['dW1'\]"):
        SGD(params, lr=0.1).step({"dW1": np.ones((2, 2))})


@pytest.mark.parametrize("params,exc,msg", [
    (np.ones(3), TypeError, "wrap it in a list"),
    ("W", TypeError, "params must be a list or dict"),
    ({"W": np.ones(3, dtype=np.int64)}, TypeError, r"params\['W'\] must have dtype float32 or float64"),
    ({"W": np.ones((4, 4))[:, ::2]}, ValueError, r"params\['W'\] must be C- or F-contiguous"),
    ({1: np.ones(3)}, TypeError, "keys of params must be strings"),
    ([], ValueError, "params is empty"),
    ({}, ValueError, "params is empty"),
])
def test_bad_params(params, exc, msg):
    with pytest.raises(exc, match=msg):
        SGD(params, lr=0.1)


def test_params_sharing_memory_or_readonly():
    buf = np.zeros(10)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        Adam([buf[:6], buf[4:]])
    Adam([buf[:5], buf[5:]])                     # adjacent, disjoint: fine
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\] is read-only"):
        Adam({"w": ro})


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
    with pytest.raises(exc, match=msg):
        cls([np.zeros(3)], **kw)


def test_defaults_follow_torch():
    p = [np.zeros(2)]
    assert (RMSprop(p).lr, RMSprop(p).alpha, RMSprop(p).eps) == (1e-2, 0.99, 1e-8)
    assert (Adam(p).lr, Adam(p).betas, Adam(p).eps, Adam(p).weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert AdamW(p).weight_decay == 1e-2
    assert (Adagrad(p).lr, Adagrad(p).eps) == (1e-2, 1e-10)
    with pytest.raises(TypeError):
        SGD(p)                                    # lr is required, as in the design


def test_state_buffers_created_once_with_param_dtype_and_layout(rng):
    params = {"W": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
              "b": np.zeros(3)}
    opt = Adam(params, amsgrad=True)
    bufs = {n: [b.ctypes.data for b in lst] for n, lst in opt._state.items()}
    assert set(bufs) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    for lst in opt._state.values():
        assert lst[0].dtype == np.float32 and lst[0].flags.f_contiguous and not lst[0].any()
        assert lst[1].dtype == np.float64
    for _ in range(3):
        opt.step({"W": np.asfortranarray(np.ones((3, 4), np.float32)), "b": np.ones(3)})
    assert {n: [b.ctypes.data for b in lst] for n, lst in opt._state.items()} == bufs
    assert Adagrad([np.zeros(2)], initial_accumulator_value=0.5)._state["state_sum"][0].tolist() == [0.5, 0.5]


def test_public_names():
    for name in ("SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Optimizer"):
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


@pytest.mark.parametrize("cls,opts", [
    (SGD, dict(lr=0.5, momentum=0.9, dampening=0.9)),        # the course's EWA momentum
    (RMSprop, dict(lr=0.01)),
    (Adam, dict(lr=0.02)),
    (AdamW, dict(lr=0.02)),
    (Adagrad, dict(lr=0.2)),
])
def test_course_training_loop_learns(cls, opts):
    """The course's loop: dict of parameters, mini-batches (examples in columns), decay per epoch."""
    from fastoptim import minibatches
    from fastoptim.schedules import inverse_time_decay
    X, Y, parameters = _course_network(np.random.default_rng(1))
    cost0, _ = _forward_backward(parameters, X, Y)
    opt = cls(parameters, **opts)
    decay = inverse_time_decay(opts["lr"], decay_rate=0.01)
    for epoch in range(1, 101):
        opt.lr = decay(epoch)
        for X_t, Y_t in minibatches(X, Y, 64, axis=1, seed=epoch):
            _, grads = _forward_backward(parameters, X_t, Y_t)
            opt.step({k: grads["d" + k] for k in parameters})
    cost, _ = _forward_backward(parameters, X, Y)
    assert opt.t == 100 * 7
    assert cost < 0.5 * cost0


def test_hyperparameters_are_read_only_except_lr():
    opt = SGD([np.zeros(2)], lr=0.1, momentum=0.9)
    assert opt.momentum == 0.9
    with pytest.raises(AttributeError, match=r"momentum was validated at construction; change it between steps with opt.param_groups"):
        opt.momentum = 0.5
    assert opt.momentum == 0.9
    with pytest.raises(AttributeError, match="no attribute 'betas'"):
        opt.betas


@pytest.mark.parametrize("cls,opts", CASES, ids=IDS)
def test_step_does_not_revalidate_hyperparameters_or_call_public_steps(cls, opts, monkeypatch, rng):
    params = make_params(rng, np.float64, True)
    opt = cls(params, backend="cython", **opts)
    calls = []
    for name in ("real", "nonnegative", "positive", "unit_interval", "closed_unit_interval",
                 "flag", "step_count"):
        real = getattr(fastoptim._validation, name)
        monkeypatch.setattr(fastoptim._validation, name,
                            lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    for name in ("sgd_step", "momentum_step", "rmsprop_step", "adam_step", "adagrad_step"):
        monkeypatch.setattr(F, name, lambda *a, **k: pytest.fail("public step function called"))
    for _ in range(3):
        opt.step(make_grads(rng, params))
    assert calls == [] and opt.t == 3


@pytest.mark.parametrize("cls,opts", [(SGD, dict(lr=0.1)), (SGD, dict(lr=0.1, momentum=0.9)),
                                      (RMSprop, dict(centered=True, momentum=0.5)),
                                      (Adam, dict(amsgrad=True)), (AdamW, {}), (Adagrad, {})],
                         ids=lambda x: x.__name__ if isinstance(x, type) else str(x))
def test_step_is_one_compiled_multi_tensor_call(cls, opts, monkeypatch, rng):
    """A step over many arrays is one kernels.<kernel>_multi call, not a per-array loop."""
    from fastoptim import kernels
    params = make_params(rng, np.float32, True)
    opt = cls(params, **opts)  # backend "auto"
    kernel = opt.param_groups[0].kernel
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


def test_state_lives_in_one_arena_laid_out_like_the_params(rng):
    params = make_params(rng, np.float32, True, fortran=True)
    params["c64"] = rng.standard_normal(9)  # float64 next to float32
    opt = Adam(params, amsgrad=True)
    for name, buffers in opt._state.items():
        base = buffers[0].base
        for p, s in zip(params.values(), buffers):
            assert s.base is base and s.shape == p.shape and s.dtype == p.dtype
            assert s.flags.f_contiguous == p.flags.f_contiguous and not s.any()
            assert s.ctypes.data % 64 == 0
        ends = sorted((s.ctypes.data, s.ctypes.data + s.nbytes) for s in buffers)
        assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:]))  # no overlap
    assert Adagrad(params, initial_accumulator_value=0.5)._state["state_sum"][0].min() == 0.5
