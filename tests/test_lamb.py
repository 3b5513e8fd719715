"""LAMB (``lamb_step``, :class:`fastoptim.LAMB`): not a registry kernel (its trust ratio is
a per-array reduction), so the generic tests do not cover it and this file does: parity
with the reference and with optax's formula over many steps, every backend, both dtypes,
shapes through the eight-lane body and the tail and over several chunks; results that do
not depend on the thread count or the SIMD level (bitwise); error paths that change
nothing; the class."""
import tracemalloc

import numpy as np
import pytest
from testing_settings import DTYPES, TOLERANCE

import fastoptim as fo
from fastoptim import _lamb, reference

STEPS = 50
# 1-D sizes through the 8-lane body and the tail, and over several chunks (>= 16384 each)
SIZES = [1, 7, 8, 9, 31, 1000, 50_003]
SHAPES = [(n,) for n in SIZES] + [(13, 17)]
OPTIONS = [
    dict(lr=0.01),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.02, beta1=0.0, beta2=0.99, eps=1e-4, eps_root=1e-8, maximize=True),
    dict(lr=0.01, weight_decay=0.05, eps_root=1e-6),
]
BACKENDS = ["cython", "numba"]


def _needs(backend):
    if backend == "numba":
        pytest.importorskip("numba")


def _arrays(shape, dtype, order, rng):
    param = np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
    return param, np.zeros_like(param), np.zeros_like(param)


def _grads(shape, dtype, order, rng, steps=STEPS):
    return [np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
            for _ in range(steps)]


def _run(backend, param, m, v, grads, opts, threads=None):
    for t, g in enumerate(grads, start=1):
        fo.lamb_step(param, g, m, v, step=t, backend=backend, **opts)


# ---- parity with the NumPy reference ------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_matches_the_reference_over_many_steps(backend, dtype, shape, opts, rng):
    _needs(backend)
    order = "F" if len(shape) == 2 else "C"
    p, m, v = _arrays(shape, dtype, order, rng)
    grads = _grads(shape, dtype, order, rng)
    rp, rm, rv = p.copy(order="K"), m.copy(order="K"), v.copy(order="K")
    _run(backend, p, m, v, grads, opts)
    _run("numpy", rp, rm, rv, grads, opts)
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(m, rm, **tol)
    np.testing.assert_allclose(v, rv, **tol)
    # the trust ratio scales the whole step: compare the total displacement of param
    np.testing.assert_allclose(p, rp, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


def _optax(param, grads, *, lr, beta1=0.9, beta2=0.999, eps=1e-6, eps_root=0.0,
           weight_decay=0.0, maximize=False):
    """optax.lamb written out in float64: chain(scale_by_adam, add_decayed_weights,
    scale_by_trust_ratio, scale_by_learning_rate), then apply_updates."""
    mu, nu, p = np.zeros_like(param), np.zeros_like(param), param.copy()
    for count, g in enumerate(grads, start=1):
        g = -g if maximize else g
        mu = (1 - beta1) * g + beta1 * mu
        nu = (1 - beta2) * g**2 + beta2 * nu
        mu_hat = mu / (1 - beta1**count)
        nu_hat = nu / (1 - beta2**count)
        u = mu_hat / (np.sqrt(nu_hat + eps_root) + eps)
        u = u + weight_decay * p
        p_norm, u_norm = np.sqrt(np.sum(p * p)), np.sqrt(np.sum(u * u))
        ratio = np.where((p_norm == 0) | (u_norm == 0), 1.0, p_norm / u_norm)
        p = p + (-lr) * (u * ratio)
    return p


@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_matches_optax_formula(backend, opts, rng):
    _needs(backend)
    p, m, v = _arrays((1000,), np.float64, "C", rng)
    grads = _grads((1000,), np.float64, "C", rng)
    expected = _optax(p, grads, **opts)
    _run(backend, p, m, v, grads, opts)
    np.testing.assert_allclose(p, expected, rtol=1e-11, atol=1e-13)


def test_first_step_by_hand():
    """Step 1 with beta1 = beta2 = 0: m_hat = g, v_hat = g^2, so r = g / (|g| + eps)."""
    p = np.array([3.0, 4.0])            # ||p|| = 5
    g = np.array([2.0, -1.0])
    m, v = np.zeros(2), np.zeros(2)
    fo.lamb_step(p, g, m, v, step=1, lr=0.1, beta1=0.0, beta2=0.0, eps=1e-300)
    r = np.array([1.0, -1.0])           # ||r|| = sqrt(2)
    np.testing.assert_allclose(p, [3.0, 4.0] - 0.1 * (5 / np.sqrt(2)) * r, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
def test_trust_ratio_is_one_when_a_norm_is_zero(backend):
    _needs(backend)
    # zero param: ||p|| = 0, the step is lr * r
    p, g = np.zeros(20), np.linspace(-1, 1, 20)
    m, v = np.zeros(20), np.zeros(20)
    fo.lamb_step(p, g, m, v, step=1, lr=0.1, backend=backend)
    np.testing.assert_allclose(p, -0.1 * g / (np.abs(g) + 1e-6), rtol=1e-12)
    # zero gradient, no decay: r = 0, param unchanged (not 0 * inf)
    p = np.linspace(1, 2, 20)
    before = p.copy()
    fo.lamb_step(p, np.zeros(20), np.zeros(20), np.zeros(20), step=1, lr=0.1,
                 backend=backend)
    np.testing.assert_array_equal(p, before)


# ---- bitwise: threads, SIMD level, backends ------------------------------------------------
N_CHUNKED = 300_001          # many chunks, an odd tail


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("opts", OPTIONS[:2], ids=str)
def test_threads_do_not_change_the_result(dtype, opts, rng):
    p, m, v = _arrays((N_CHUNKED,), dtype, "C", rng)
    grads = _grads((N_CHUNKED,), dtype, "C", rng, steps=3)
    results = []
    for threads in (1, 2):
        q, mq, vq = p.copy(), m.copy(), v.copy()
        trusts = [_lamb.lamb(q, g, mq, vq, _lamb.coefficients(
            t, opts["lr"], 0.9, 0.999, 1e-6, 0.0, opts.get("weight_decay", 0.0), False),
            threads) for t, g in enumerate(grads, start=1)]
        results.append((q, mq, vq, trusts))
    assert _lamb.chunk_length(N_CHUNKED) * 2 < N_CHUNKED     # several chunks
    for a, b in zip(results[0][:3], results[1][:3]):
        np.testing.assert_array_equal(a, b)
    assert results[0][3] == results[1][3]


def test_auto_backend_thread_count_does_not_change_the_result(rng):
    p, m, v = _arrays((N_CHUNKED,), np.float32, "C", rng)
    g = _grads((N_CHUNKED,), np.float32, "C", rng, steps=1)[0]
    out = []
    previous = fo.get_num_threads()
    try:
        for n in (1, 2):
            fo.set_num_threads(n)
            q, mq, vq = p.copy(), m.copy(), v.copy()
            fo.lamb_step(q, g, mq, vq, step=1, lr=0.01, weight_decay=0.01)
            out.append(q)
    finally:
        fo.set_num_threads(previous)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_simd_level_does_not_change_the_result(dtype, rng):
    targets = _lamb.simd_targets()
    if len(targets) < 2:
        pytest.skip(f"only {targets} on this CPU")
    p, m, v = _arrays((50_003,), dtype, "C", rng)
    grads = _grads((50_003,), dtype, "C", rng, steps=3)
    out = []
    previous = _lamb.simd_target()
    try:
        for target in targets:
            _lamb._select_simd_target(target)
            q, mq, vq = p.copy(), m.copy(), v.copy()
            _run("cython", q, mq, vq, grads, dict(lr=0.01, weight_decay=0.1))
            out.append((q, mq, vq))
    finally:
        _lamb._select_simd_target(previous)
    for other in out[1:]:
        for a, b in zip(out[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n", [9, N_CHUNKED])
def test_numba_twin_matches_the_c_kernel_bitwise(dtype, n, rng):
    pytest.importorskip("numba")
    p, m, v = _arrays((n,), dtype, "C", rng)
    grads = _grads((n,), dtype, "C", rng, steps=3)
    out = []
    for backend in BACKENDS:
        q, mq, vq = p.copy(), m.copy(), v.copy()
        _run(backend, q, mq, vq, grads, dict(lr=0.01, weight_decay=0.1, maximize=True))
        out.append((q, mq, vq))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_numba_chunks_are_the_c_chunks():
    numba_lamb = pytest.importorskip("fastoptim.numba_kernels.lamb")
    for n in (0, 1, 8, 16383, 16385, 10**6, 10**7 + 3):
        assert numba_lamb.chunk_length(n) == _lamb.chunk_length(n), n


# ---- in place, no allocation -----------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS + ["numpy"])
def test_in_place(backend, rng):
    _needs(backend)
    p, m, v = _arrays((100,), np.float32, "C", rng)
    ptrs = [a.ctypes.data for a in (p, m, v)]
    before = p.copy()
    fo.lamb_step(p, np.ones(100, np.float32), m, v, step=1, backend=backend)
    assert [a.ctypes.data for a in (p, m, v)] == ptrs
    assert not np.array_equal(p, before) and m.any() and v.any()


def test_compiled_step_allocates_no_array(rng):
    n = 1_000_000
    p, m, v = _arrays((n,), np.float32, "C", rng)
    g = _grads((n,), np.float32, "C", rng, steps=1)[0]
    fo.lamb_step(p, g, m, v, step=1, backend="cython")
    tracemalloc.start()
    try:
        fo.lamb_step(p, g, m, v, step=2, backend="cython")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


# ---- errors: raised naming the argument, nothing changed ------------------------------------
BAD_HYPER = [
    (dict(step=0), "step"), (dict(step=1.5), "step"), (dict(lr=-1.0), "lr"),
    (dict(beta1=1.0), "beta1"), (dict(beta2=-0.1), "beta2"), (dict(eps=0.0), "eps"),
    (dict(eps_root=-1e-8), "eps_root"), (dict(weight_decay=-0.1), "weight_decay"),
    (dict(maximize="yes"), "maximize"), (dict(backend="fortran"), "backend"),
    (dict(eps=1e-40), "eps"),               # underflows float32
]


@pytest.mark.parametrize("bad,name", BAD_HYPER, ids=lambda x: str(x))
def test_bad_hyperparameter_raises_and_changes_nothing(bad, name, rng):
    p, m, v = _arrays((10,), np.float32, "C", rng)
    m[:] = 0.5
    g = np.ones(10, np.float32)
    copies = [a.copy() for a in (p, g, m, v)]
    kwargs = {**dict(step=1, lr=0.01), **bad}
    with pytest.raises((TypeError, ValueError), match=name):
        fo.lamb_step(p, g, m, v, **kwargs)
    for a, b in zip((p, g, m, v), copies):
        np.testing.assert_array_equal(a, b)


def _bad_arrays(rng):
    p = rng.standard_normal(10).astype(np.float32)
    good = dict(param=p, grad=np.ones(10, np.float32), exp_avg=np.zeros(10, np.float32),
                exp_avg_sq=np.zeros(10, np.float32))
    readonly = np.zeros(10, np.float32)
    readonly.flags.writeable = False
    return [
        (dict(good, grad=np.ones(10, np.float64)), "grad"),
        (dict(good, exp_avg=np.zeros(11, np.float32)), "exp_avg"),
        (dict(good, exp_avg_sq=readonly), "exp_avg_sq"),
        (dict(good, exp_avg=good["param"]), "exp_avg"),            # shares memory
        (dict(good, grad=[1.0] * 10), "grad"),
        (dict(good, exp_avg_sq=np.zeros(10, np.int32)), "exp_avg_sq"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_array_raises_naming_it_and_changes_nothing(case, rng):
    arrays, name = _bad_arrays(rng)[case]
    copies = {k: np.array(a, copy=True) for k, a in arrays.items()}
    with pytest.raises((TypeError, ValueError), match=name):
        fo.lamb_step(arrays["param"], arrays["grad"], arrays["exp_avg"],
                     arrays["exp_avg_sq"], step=1, lr=0.1)
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, copies[k])


# ---- the class ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["auto"] + BACKENDS + ["numpy"])
def test_class_matches_the_functional_step(backend, rng):
    _needs(backend)
    shapes = {"W1": (7, 5), "b1": (7, 1), "W2": (1, 7), "big": (40_000,)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    mine = {k: a.copy() for k, a in params.items()}
    opt = fo.LAMB(params, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01, eps_root=1e-9,
                  backend=backend)
    states = {k: (np.zeros_like(a), np.zeros_like(a)) for k, a in mine.items()}
    for t in range(1, 11):
        grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
        opt.step(grads)
        for k in mine:
            fo.lamb_step(mine[k], grads[k], *states[k], step=t, lr=0.01, beta1=0.8,
                         beta2=0.99, weight_decay=0.01, eps_root=1e-9, backend="numpy")
    assert opt.t == 10 and opt.last_lr == 0.01
    for k in mine:
        np.testing.assert_allclose(params[k], mine[k], **TOLERANCE[np.dtype(np.float64)])


def test_class_none_gradient_skips_its_array(rng):
    params = [rng.standard_normal(5), rng.standard_normal(5)]
    opt = fo.LAMB(params, lr=0.1)
    before = params[1].copy()
    opt.step([np.ones(5), None])
    np.testing.assert_array_equal(params[1], before)
    opt.step([np.ones(5), np.ones(5)])      # array 1 takes its first step (t = 1)
    ref, m, v = before.copy(), np.zeros(5), np.zeros(5)
    fo.lamb_step(ref, np.ones(5), m, v, step=1, lr=0.1)
    np.testing.assert_array_equal(params[1], ref)


def test_class_state_dict_resumes_bit_for_bit(rng):
    params = [rng.standard_normal((6, 4)).astype(np.float32)]
    grads = _grads((6, 4), np.float32, "C", rng, steps=6)
    opt = fo.LAMB(params, lr=lambda t: 0.01 / t, weight_decay=0.1)
    for g in grads[:3]:
        opt.step([g])
    sd = opt.state_dict()
    for g in grads[3:]:
        opt.step([g])
    final = params[0].copy()
    other = [np.zeros((6, 4), np.float32)]
    resumed = fo.LAMB(other, lr=lambda t: 0.01 / t, weight_decay=0.1)
    resumed.load_state_dict(sd)
    for g in grads[3:]:
        resumed.step([g])
    np.testing.assert_array_equal(other[0], final)
    before = other[0].copy()
    with pytest.raises(ValueError, match="exp_avg"):
        bad = dict(sd, state=dict(sd["state"], exp_avg=[np.zeros((4, 6), np.float32)]))
        resumed.load_state_dict(bad)
    np.testing.assert_array_equal(other[0], before)
    assert resumed.t == 6


def test_class_skip_nonfinite(rng):
    params = [rng.standard_normal(5)]
    opt = fo.LAMB(params, skip_nonfinite=True)
    before = params[0].copy()
    opt.step([np.array([1.0, np.nan, 0, 0, 0])])
    np.testing.assert_array_equal(params[0], before)
    assert opt.skipped_steps == 1 and opt.t == 0


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=-1.0), "lr"), (dict(betas=(0.9, 1.0)), "betas"), (dict(betas=0.9), "betas"),
    (dict(eps=0.0), "eps"), (dict(weight_decay=-1.0), "weight_decay"),
    (dict(eps_root=-1.0), "eps_root"), (dict(backend="x"), "backend"),
    (dict(maximize=2), "maximize"),
])
def test_class_bad_constructor_argument(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        fo.LAMB([np.zeros(3)], **kwargs)


def test_class_bad_gradient_changes_nothing(rng):
    params = {"a": rng.standard_normal(4), "b": rng.standard_normal(3)}
    opt = fo.LAMB(params, lr=0.1)
    before = {k: a.copy() for k, a in params.items()}
    with pytest.raises(ValueError, match="b"):
        opt.step({"a": np.ones(4), "b": np.ones(4)})
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    assert opt.t == 0


def test_exported_and_documented():
    assert fo.LAMB is fo.optim.LAMB and fo.lamb_step is fo.functional.lamb_step
    for doc in (fo.LAMB.__doc__, fo.lamb_step.__doc__, reference.lamb_step.__doc__):
        assert "trust" in doc


# ---- the class as an Optimizer: groups, counts, schedules, checkpoints, one call per bucket --
def _functional_run(p, grads, **hyper):
    """lamb_step over ``grads`` (``None`` skips), the array's own count as ``step``."""
    m, v, t = np.zeros_like(p), np.zeros_like(p), 0
    for g, lr in grads:
        if g is not None:
            t += 1
            fo.lamb_step(p, g, m, v, step=t, lr=lr, backend="numpy", **hyper)
    return p


@pytest.mark.parametrize("backend", ["auto", "numba", "numpy"])
def test_class_param_groups_match_the_functional_step(backend, rng):
    _needs(backend)
    shapes = {"W1": (7, 5), "b1": (7, 1), "W2": (3, 7), "head": (9,)}
    start = {k: rng.standard_normal(s) for k, s in shapes.items()}
    params = {k: a.copy() for k, a in start.items()}
    opt = fo.LAMB([{"params": {k: params[k] for k in ("W1", "b1")}, "weight_decay": 0.1},
                   {"params": {"W2": params["W2"]}, "lr": 0.05, "betas": (0.8, 0.99)}],
                  lr=0.01, eps_root=1e-9, backend=backend)
    history = {k: [] for k in shapes}
    for t in range(1, 31):
        if t == 10:
            opt.param_groups[0]["lr"] = 0.002
            opt.param_groups[1]["weight_decay"] = 0.3
        if t == 15:
            params["head"] = start["head"].copy()
            opt.add_param_group({"params": {"head": params["head"]}, "eps": 1e-4})
        grads = {k: rng.standard_normal(s) for k, s in shapes.items()
                 if k != "head" or t >= 15}
        if t % 4 == 0:
            grads["b1"] = None
        opt.step(grads)
        for k, g in grads.items():
            group = 0 if k in ("W1", "b1") else 1 if k == "W2" else 2
            history[k].append((g, opt.param_groups[group]["lr"]))
    want = {
        "W1": _functional_run(start["W1"].copy(), history["W1"], weight_decay=0.1,
                              eps_root=1e-9),
        "b1": _functional_run(start["b1"].copy(), history["b1"], weight_decay=0.1,
                              eps_root=1e-9),
        "head": _functional_run(start["head"].copy(), history["head"], eps=1e-4,
                                eps_root=1e-9),
    }
    w2 = start["W2"].copy()             # weight_decay changes at t = 10
    m, v = np.zeros_like(w2), np.zeros_like(w2)
    for t, (g, lr) in enumerate(history["W2"], start=1):
        fo.lamb_step(w2, g, m, v, step=t, lr=lr, beta1=0.8, beta2=0.99, eps_root=1e-9,
                     weight_decay=0.0 if t < 10 else 0.3, backend="numpy")
    want["W2"] = w2
    for k in shapes:
        np.testing.assert_allclose(params[k], want[k], rtol=1e-12, atol=1e-13)
    assert opt.state_dict()["steps"] == [30, 23, 30, 16]


def test_class_one_compiled_call_per_bucket(monkeypatch, rng):
    params = [rng.standard_normal(s) for s in ((5, 4), (8,), (3, 3))]
    opt = fo.LAMB([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}],
                  backend="cython")
    calls = []
    real = _lamb.lamb_multi
    monkeypatch.setattr(_lamb, "lamb_multi",
                        lambda *a: calls.append(len(a[0])) or real(*a))
    opt.step([rng.standard_normal(p.shape) for p in params])
    assert calls == [2, 1]                  # one call per group
    calls.clear()
    opt.step([rng.standard_normal((5, 4)), None, rng.standard_normal((3, 3))])
    opt.step([rng.standard_normal(p.shape) for p in params])
    assert calls == [1, 1, 1, 1, 1]         # counts now differ: (3, 2) apart in group 0


def test_class_thread_count_does_not_change_the_result(rng):
    start = [rng.standard_normal(N_CHUNKED).astype(np.float32),
             rng.standard_normal((300, 7)).astype(np.float32)]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start]
             for _ in range(3)]
    out = []
    previous = fo.get_num_threads()
    try:
        for n in (1, 2):
            fo.set_num_threads(n)
            params = [a.copy() for a in start]
            opt = fo.LAMB(params, lr=0.01, weight_decay=0.01)
            for g in grads:
                opt.step(g)
            out.append(params)
    finally:
        fo.set_num_threads(previous)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_class_save_state_resumes_bit_for_bit_with_groups(tmp_path, rng):
    shapes = [(6, 4), (5,), (3, 2)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(8)]
    grads[1][2] = None

    def make(params):
        return fo.LAMB([{"params": params[:2], "weight_decay": 0.1},
                        {"params": params[2:], "betas": (0.5, 0.9)}],
                       lr=fo.schedules.cosine_decay(0.01, total=20))

    full = [a.copy() for a in start]
    opt = make(full)
    for g in grads:
        opt.step(list(g))
    half = [a.copy() for a in start]
    opt = make(half)
    for g in grads[:5]:
        opt.step(list(g))
    fo.save_state(opt, tmp_path / "lamb.npz")
    other = [np.zeros(s, np.float32) for s in shapes]
    resumed = make(other)
    fo.load_state(resumed, tmp_path / "lamb.npz")
    for g in grads[5:]:
        resumed.step(list(g))
    for a, b in zip(other, full):
        np.testing.assert_array_equal(a, b)
    wrong = fo.LAMB([np.zeros(s, np.float32) for s in shapes])     # one group
    with pytest.raises(ValueError, match="group"):
        fo.load_state(wrong, tmp_path / "lamb.npz")
    assert wrong.t == 0 and not wrong.params[0].any()


def test_class_group_hyperparameters_are_validated(rng):
    opt = fo.LAMB([{"params": [np.ones(3)]}, {"params": [np.ones(2)], "eps": 1e-3}])
    with pytest.raises(ValueError, match="betas"):
        opt.param_groups[1]["betas"] = (0.9, 1.5)
    with pytest.raises(ValueError, match="lr"):
        opt.param_groups[0]["lr"] = -0.1
    with pytest.raises(ValueError, match="weight_decay"):
        fo.LAMB([{"params": [np.ones(3)], "weight_decay": -1.0}])
    with pytest.raises(TypeError, match="momentum"):
        fo.LAMB([{"params": [np.ones(3)], "momentum": 0.9}])
    assert opt.param_groups[1]["betas"] == (0.9, 0.999) and opt.param_groups[1]["eps"] == 1e-3


# ---- the cimport-able kernel, used the way a downstream library uses it ---------------------
CONSUMER = '''# cython: language_level=3
from fastoptim._lamb cimport lamb_kernel
from fastoptim.coefficients cimport LAMBCoefficients, lamb_coefficients


def lamb_step(float[::1] p, const float[::1] g, float[::1] m, float[::1] v, long long step,
              double lr, double weight_decay, int threads):
    cdef LAMBCoefficients c = lamb_coefficients(step, lr, 0.9, 0.999, 1e-6, 0.0,
                                                weight_decay, False)
    cdef double trust
    with nogil:
        trust = lamb_kernel(&p[0], &g[0], &m[0], &v[0], p.shape[0], c.grad_sign, c.beta1,
                            c.one_minus_beta1, c.beta2, c.one_minus_beta2,
                            c.inv_bias_correction1, c.inv_bias_correction2, c.eps_root,
                            c.eps, c.weight_decay, c.lr, threads)
    return trust
'''


def build_consumer(folder, name, source):
    """Build ``source`` as extension ``name`` in ``folder`` against the importable
    fastoptim (its .pxd files on Cython's include path), as tests/test_extending.py does;
    returns the module."""
    import importlib.util
    import os
    import subprocess
    import sys
    import sysconfig
    pytest.importorskip("Cython")
    from build_probe import require_build
    require_build()
    (folder / f"{name}.pyx").write_text(source, encoding="utf-8")
    (folder / "setup.py").write_text(
        "import fastoptim\nfrom Cython.Build import cythonize\nfrom setuptools import setup\n"
        "setup(ext_modules=cythonize('*.pyx', include_path=[fastoptim.get_include()]))\n",
        encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [fo.get_include()] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                            cwd=folder, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the consumer failed:\n{result.stdout}\n{result.stderr}")
    path = folder / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cimported_kernel_is_lamb_step(tmp_path, rng):
    consumer = build_consumer(tmp_path, "lamb_consumer", CONSUMER)
    n = N_CHUNKED
    p, m, v = _arrays((n,), np.float32, "C", rng)
    grads = _grads((n,), np.float32, "C", rng, steps=3)
    mine = [p.copy(), m.copy(), v.copy()]
    for t, g in enumerate(grads, start=1):
        g.flags.writeable = False
        trust = consumer.lamb_step(*mine[:1], g, *mine[1:], t, 0.01, 0.1, 2)
        fo.lamb_step(p, g, m, v, step=t, lr=0.01, weight_decay=0.1, backend="cython")
        assert trust > 0
    for a, b in zip(mine, (p, m, v)):
        np.testing.assert_array_equal(a, b)


def test_class_step_allocates_no_array(rng):
    params = {"W": rng.standard_normal((300, 200)).astype(np.float32),
              "b": rng.standard_normal(300).astype(np.float32)}
    grads = {k: rng.standard_normal(a.shape).astype(np.float32) for k, a in params.items()}
    opt = fo.LAMB([{"params": {"W": params["W"]}}, {"params": {"b": params["b"]}, "lr": 0.1}],
                  backend="cython")
    opt.step(grads)
    tracemalloc.start()
    try:
        opt.step(grads)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024, peak           # a few Python objects, no array
