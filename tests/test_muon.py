"""Muon (``muon_step``, :class:`fastoptim.Muon`): not a registry kernel (the Newton-Schulz
iteration is matrix products), so the generic tests do not cover it and this file does.

Parity with torch.optim.Muon over 50 steps for every option, float32 and float64, wide,
tall, square and vector-like matrices, C and F order. Tolerances: torch runs the
Newton-Schulz iteration in bfloat16, fastoptim in the array's dtype (BLAS has no
bfloat16), so

* against torch's own Muon code with its one ``grad.bfloat16()`` replaced by a copy in the
  array's dtype (the source is read from torch and patched, nothing else changes), the
  results agree to rounding: float32 ``atol=2e-6, rtol=1e-5``, float64 ``atol=1e-13,
  rtol=1e-12`` (matrix products in another order, and torch's lerp uses a fused
  multiply-add);
* against torch.optim.Muon as shipped, the distance from torch's trajectory is below 2% of
  torch's total displacement (measured: about 0.4%, bfloat16's rounding).

Then: the element-wise kernels' backends agree bit for bit (Cython, Numba) and with the
reference; the fixed-order norm; error paths that change nothing; no allocation after the
first step (tracemalloc); the class with groups, ``None`` gradients, schedules and
checkpoints.
"""
import inspect
import tracemalloc

import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _muon, reference
from fastoptim.optimizers.muon import MuonWorkspace

torch = pytest.importorskip("torch")
from torch.optim import _muon as torch_muon  # noqa: E402

STEPS = 50
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(atol=2e-6, rtol=1e-5), np.float64: dict(atol=1e-13, rtol=1e-12)}
SHAPES = [(20, 33), (33, 20), (16, 16), (1, 7), (64, 1)]
OPTIONS = [
    dict(),
    dict(nesterov=False),
    dict(momentum=0.3, weight_decay=0.0),           # both lerp forms (|w| >= 0.5)
    dict(momentum=0.0, nesterov=False),
    dict(adjust_lr_fn="original", weight_decay=0.3),
    dict(adjust_lr_fn="match_rms_adamw", ns_steps=3, eps=1e-3),
    dict(ns_coefficients=(2.0, -1.5, 0.5), ns_steps=7),
    dict(ns_steps=0),
]
BACKENDS = ["cython", "numba", "numpy"]


@pytest.fixture
def ns_in_array_dtype(monkeypatch):
    """torch's Muon with its Newton-Schulz iteration in the array's dtype: torch's own
    source of ``_zeropower_via_newtonschulz`` with ``grad.bfloat16()`` made
    ``grad.clone()``."""
    source = inspect.getsource(torch_muon._zeropower_via_newtonschulz)
    assert source.count("grad.bfloat16()") == 1
    namespace = dict(vars(torch_muon))
    exec(source.replace("grad.bfloat16()", "grad.clone()"), namespace)
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz",
                        namespace["_zeropower_via_newtonschulz"])


def _problem(shape, dtype, order, rng, steps=STEPS):
    p = np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
    grads = [np.asarray(rng.standard_normal(shape), dtype=dtype, order=order)
             for _ in range(steps)]
    return p, grads


def _torch_run(p0, grads, lr, **opts):
    tp = torch.tensor(p0, requires_grad=True)
    opt = torch.optim.Muon([tp], lr=lr, **opts)
    for g in grads:
        tp.grad = torch.tensor(g)
        opt.step()
    return tp.detach().numpy(), opt.state[tp]["momentum_buffer"].numpy()


def _ours(p0, grads, lr, backend="auto", **opts):
    p, buf = p0.copy(order="K"), np.zeros_like(p0)
    workspace = MuonWorkspace.for_param(p)
    for g in grads:
        fo.muon_step(p, g, buf, lr=lr, workspace=workspace, backend=backend, **opts)
    return p, buf


# ---- parity with torch -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("opts", OPTIONS, ids=str)
def test_matches_torch_with_the_iteration_in_the_array_dtype(ns_in_array_dtype, opts,
                                                              shape, dtype, rng):
    order = "F" if shape == (33, 20) else "C"
    p0, grads = _problem(shape, dtype, order, rng)
    want_p, want_buf = _torch_run(p0, grads, 0.02, **opts)
    p, buf = _ours(p0, grads, 0.02, **opts)
    np.testing.assert_allclose(buf, want_buf, **TOL[dtype])
    np.testing.assert_allclose(p, want_p, **TOL[dtype])
    assert not np.allclose(p, p0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("opts", [OPTIONS[0], OPTIONS[1], OPTIONS[5]], ids=str)
def test_close_to_torch_as_shipped_bfloat16(opts, dtype, rng):
    p0, grads = _problem((24, 40), dtype, "C", rng)
    want, _ = _torch_run(p0, grads, 0.02, **opts)
    p, _ = _ours(p0, grads, 0.02, **opts)
    assert np.linalg.norm(p - want) < 0.02 * np.linalg.norm(want - p0)


# ---- backends --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 9), (40_003, 2), (300, 301)], ids=str)
@pytest.mark.parametrize("opts", OPTIONS[:4], ids=str)
def test_backends(opts, shape, dtype, rng):
    pytest.importorskip("numba")
    p0, grads = _problem(shape, dtype, "C", rng, steps=3 if shape[0] > 1000 else 20)
    out = {b: _ours(p0, grads, 0.01, backend=b, **opts) for b in BACKENDS}
    for a, b in zip(out["cython"], out["numba"]):
        np.testing.assert_array_equal(a, b)          # the same element-wise bits
    for a, b in zip(out["cython"], out["numpy"]):
        np.testing.assert_allclose(a, b, **{k: 10 * v for k, v in TOL[dtype].items()})


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 1003, 16384 * 3 + 5, 10**6 + 3])
@pytest.mark.parametrize("nesterov,momentum", [(True, 0.95), (False, 0.95), (True, 0.2)])
def test_momentum_pass_is_torch_lerp_and_a_fixed_order_sum(dtype, n, nesterov, momentum,
                                                           rng):
    g = rng.standard_normal(n).astype(dtype)
    buf = rng.standard_normal(n).astype(dtype)
    update = np.empty_like(g)
    t = np.dtype(dtype).type
    w, mu = t(1 - momentum), t(momentum)
    args = (float(w), float(t(1) - w), bool(abs(w) < 0.5), nesterov, float(mu),
            float(t(1) - mu), bool(abs(mu) < 0.5))
    want_buf = torch.tensor(buf).lerp_(torch.tensor(g), float(1 - momentum))
    want = torch.tensor(g).lerp(want_buf, momentum) if nesterov else want_buf
    mine_buf = buf.copy()
    total = _muon.momentum(g, mine_buf, update, *args)
    np.testing.assert_allclose(mine_buf, want_buf.numpy(), **TOL[dtype])
    np.testing.assert_allclose(update, want.numpy(), **TOL[dtype])
    # the sum: close to NumPy's, and exactly the Numba twin's (same chunks, lanes, order)
    np.testing.assert_allclose(total, np.sum(update.astype(np.float64) ** 2), rtol=1e-12)
    numba_muon = pytest.importorskip("fastoptim.numba_kernels.muon")
    import numba
    other_buf, other = buf.copy(), np.empty_like(g)
    previous = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            other_buf[:] = buf
            assert numba_muon.muon_momentum_kernel(g, other_buf, other, *args) == total
            np.testing.assert_array_equal(other, update)
            np.testing.assert_array_equal(other_buf, mine_buf)
    finally:
        numba.set_num_threads(previous)
    assert numba_muon.chunk_length(n) == _muon.chunk_length(n)


def test_reference_by_hand():
    """ns_steps=0 and momentum=0: the update is g / ||g||_F."""
    p = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[3.0, 0.0], [0.0, 4.0]])
    for backend in BACKENDS[::2]:
        q, buf = p.copy(), np.zeros((2, 2))
        fo.muon_step(q, g, buf, lr=0.1, weight_decay=0.5, momentum=0.0, nesterov=False,
                     ns_steps=0, backend=backend)
        np.testing.assert_allclose(q, p * (1 - 0.05) - 0.1 * g / 5.0, rtol=1e-15)
        np.testing.assert_array_equal(buf, g)


def test_orthogonalizes():
    """Enough iterations with (a, b, c) = (1.5, -0.5, 0) (the cubic Newton-Schulz
    iteration, which converges) give U V^T of the SVD U S V^T."""
    rng = np.random.default_rng(3)
    g = rng.standard_normal((6, 10))
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    p, buf = np.zeros((6, 10)), np.zeros((6, 10))
    fo.muon_step(p, g, buf, lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False,
                 ns_coefficients=(1.5, -0.5, 0.0), ns_steps=60)
    np.testing.assert_allclose(-p, u @ vt, atol=1e-10)


# ---- memory ------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,order", [((256, 128), "C"), ((128, 256), "F")])
def test_no_allocation_after_the_first_step(shape, order, rng):
    p0, grads = _problem(shape, np.float32, order, rng, steps=3)
    p = p0.copy(order="K")
    opt = fo.Muon([p], lr=0.01)
    functional = p0.copy(order="K"), np.zeros_like(p0)
    workspace = MuonWorkspace.for_param(p)
    opt.step([grads[0]])
    fo.muon_step(functional[0], grads[0], functional[1], workspace=workspace)
    tracemalloc.start()
    try:
        opt.step([grads[1]])
        fo.muon_step(functional[0], grads[2], functional[1], workspace=workspace)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < p.nbytes // 4, peak           # no array: a few Python objects at most
    assert np.shares_memory(opt.params[0], p)


# ---- errors: raised naming the argument, nothing changed ------------------------------------
BAD_HYPER = [
    (dict(lr=-1.0), "lr"), (dict(weight_decay=-0.1), "weight_decay"),
    (dict(momentum=-0.5), "momentum"), (dict(nesterov="yes"), "nesterov"),
    (dict(ns_coefficients=(1.0, 2.0)), "ns_coefficients"),
    (dict(ns_coefficients=(1.0, "b", 2.0)), "ns_coefficients"),
    (dict(ns_coefficients=(1.0, float("nan"), 2.0)), "ns_coefficients"),
    (dict(eps=0.0), "eps"), (dict(eps=1e-40), "eps"), (dict(ns_steps=100), "ns_steps"),
    (dict(ns_steps=2.0), "ns_steps"), (dict(ns_steps=-1), "ns_steps"),
    (dict(adjust_lr_fn="sqrt"), "adjust_lr_fn"), (dict(backend="fortran"), "backend"),
    (dict(adjust_lr_fn=np.array(["original"])), "adjust_lr_fn"),
    (dict(adjust_lr_fn=True), "adjust_lr_fn"),
]


def _snapshot(*arrays):
    return [a.copy() for a in arrays]


@pytest.mark.parametrize("bad,name", BAD_HYPER, ids=str)
def test_bad_hyperparameter_raises_and_changes_nothing(bad, name, rng):
    p = rng.standard_normal((4, 5)).astype(np.float32)
    g = rng.standard_normal((4, 5)).astype(np.float32)
    buf = np.full((4, 5), 0.5, np.float32)
    before = _snapshot(p, g, buf)
    with pytest.raises((TypeError, ValueError), match=name):
        fo.muon_step(p, g, buf, **bad)
    for a, b in zip((p, g, buf), before):
        np.testing.assert_array_equal(a, b)
    kwargs = {k: v for k, v in bad.items() if k != "lr"}
    if "lr" in bad:
        kwargs["lr"] = bad["lr"]
    with pytest.raises((TypeError, ValueError), match=name):
        fo.Muon([p], **kwargs)


def _bad_arrays(rng):
    p = rng.standard_normal((4, 5)).astype(np.float32)
    good = dict(param=p, grad=np.ones((4, 5), np.float32),
                momentum_buffer=np.zeros((4, 5), np.float32))
    readonly = np.zeros((4, 5), np.float32)
    readonly.flags.writeable = False
    return [
        (dict(good, param=np.zeros(20, np.float32), grad=np.ones(20, np.float32),
              momentum_buffer=np.zeros(20, np.float32)), "2-D"),
        (dict(good, grad=np.ones((4, 5, 1), np.float32)), "grad"),
        (dict(good, grad=np.ones((4, 5), np.float64)), "grad"),
        (dict(good, momentum_buffer=np.zeros((5, 4), np.float32)), "momentum_buffer"),
        (dict(good, momentum_buffer=readonly), "momentum_buffer"),
        (dict(good, momentum_buffer=good["param"]), "momentum_buffer"),
        (dict(good, grad=np.asfortranarray(np.ones((4, 5), np.float32))), "grad"),
        (dict(good, grad=np.ones((4, 10), np.float32)[:, ::2]), "grad"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_bad_array_raises_naming_it_and_changes_nothing(case, rng):
    arrays, name = _bad_arrays(rng)[case]
    before = {k: np.array(a, copy=True) for k, a in arrays.items()}
    with pytest.raises((TypeError, ValueError), match=name):
        fo.muon_step(arrays["param"], arrays["grad"], arrays["momentum_buffer"])
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, before[k])


def test_bad_workspace_raises_and_changes_nothing(rng):
    p, g, buf = (rng.standard_normal((4, 5)) for _ in range(3))
    before = _snapshot(p, g, buf)
    for ws in (MuonWorkspace((5, 4), np.float64), MuonWorkspace((4, 5), np.float32),
               np.zeros((4, 5))):
        with pytest.raises(ValueError, match="workspace"):
            fo.muon_step(p, g, buf, workspace=ws)
    for a, b in zip((p, g, buf), before):
        np.testing.assert_array_equal(a, b)


def test_class_refuses_arrays_that_are_not_2d_before_adding_any(rng):
    with pytest.raises(ValueError, match=r"params\['b'\] has shape \(3,\)"):
        fo.Muon({"W": np.zeros((3, 2)), "b": np.zeros(3)})
    opt = fo.Muon({"W": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"params\['c'\]"):
        opt.add_param_group({"params": {"V": np.zeros((2, 2)), "c": np.zeros((1, 1, 1))}})
    assert list(opt.params) == ["W"] and len(opt.param_groups) == 1


def test_class_bad_gradient_changes_nothing(rng):
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((4, 3))}
    opt = fo.Muon(params, lr=0.1)
    before = {k: a.copy() for k, a in params.items()}
    with pytest.raises(ValueError, match="b"):
        opt.step({"a": np.ones((3, 4)), "b": np.ones((3, 4))})
    with pytest.raises(ValueError, match="share memory"):
        opt.step({"a": np.ones((3, 4)), "b": params["b"]})
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    assert opt.t == 0


# ---- the class -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("backend", ["auto", "numba", "numpy"])
def test_class_matches_torch_with_groups(ns_in_array_dtype, backend, dtype, rng):
    if backend == "numba":
        pytest.importorskip("numba")
    shapes = {"W1": (12, 20), "W2": (20, 12), "W3": (20, 12)}
    p0 = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    params = {k: a.copy() for k, a in p0.items()}
    group_opts = [dict(lr=0.03, nesterov=False), dict(adjust_lr_fn="match_rms_adamw",
                                                      weight_decay=0.0)]
    opt = fo.Muon([{"params": {"W1": params["W1"]}, **group_opts[0]},
                   {"params": {k: params[k] for k in ("W2", "W3")}, **group_opts[1]}],
                  lr=0.02, momentum=0.9, backend=backend)
    tensors = {k: torch.tensor(a, requires_grad=True) for k, a in p0.items()}
    ref = torch.optim.Muon([{"params": [tensors["W1"]], **group_opts[0]},
                            {"params": [tensors["W2"], tensors["W3"]], **group_opts[1]}],
                           lr=0.02, momentum=0.9)
    for t in range(1, STEPS + 1):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        if t % 7 == 0:
            grads["W3"] = None                        # skipped: state and count stay
        if t == 20:
            opt.param_groups[1]["lr"] = 0.005
            ref.param_groups[1]["lr"] = 0.005
            opt.param_groups[0]["momentum"] = 0.5
            ref.param_groups[0]["momentum"] = 0.5
        opt.step(grads)
        for k, tensor in tensors.items():
            tensor.grad = None if grads[k] is None else torch.tensor(grads[k])
        ref.step()
    tol = {k: 10 * v for k, v in TOL[dtype].items()}
    for k in shapes:
        np.testing.assert_allclose(params[k], tensors[k].detach().numpy(), **tol)
    assert opt.t == STEPS and opt.last_lr == 0.03


def test_class_lr_schedule_and_state_dict_resume_bit_for_bit(tmp_path, rng):
    shapes = [(6, 9), (9, 6)]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(8)]
    grads[2][1] = None
    schedule = fo.schedules.inverse_time_decay(0.05, 0.5)

    def run(params, steps):
        opt = fo.Muon(params, lr=schedule, weight_decay=0.05)
        for g in steps:
            opt.step(list(g))
        return opt

    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    full = [a.copy() for a in start]
    run(full, grads)
    half = [a.copy() for a in start]
    opt = run(half, grads[:4])
    assert opt.last_lr == schedule(4)
    fo.save_state(opt, tmp_path / "muon.npz")
    other = [np.zeros(s, np.float32) for s in shapes]
    resumed = fo.Muon(other, lr=schedule, weight_decay=0.05)
    fo.load_state(resumed, tmp_path / "muon.npz")
    assert resumed.state_dict()["steps"] == [4, 3]
    for g in grads[4:]:
        resumed.step(list(g))
    for a, b in zip(other, full):
        np.testing.assert_array_equal(a, b)
    # a state dict of other options or shapes is refused, nothing copied
    wrong = fo.Muon([np.zeros((9, 6), np.float32), np.zeros((6, 9), np.float32)])
    with pytest.raises(ValueError):
        fo.load_state(wrong, tmp_path / "muon.npz")
    assert not wrong.params[0].any() and wrong.t == 0


def test_class_skip_nonfinite_and_attributes(rng):
    params = [rng.standard_normal((3, 3))]
    opt = fo.Muon(params, skip_nonfinite=True)
    before = params[0].copy()
    opt.step([np.full((3, 3), np.inf)])
    np.testing.assert_array_equal(params[0], before)
    assert opt.skipped_steps == 1 and opt.t == 0
    assert opt.momentum == 0.95 and opt.nesterov is True and opt.ns_steps == 5
    assert opt.ns_coefficients == (3.4445, -4.775, 2.0315) and opt.adjust_lr_fn is None
    with pytest.raises(ValueError, match="ns_steps"):
        opt.param_groups[0]["ns_steps"] = 500
    assert opt.ns_steps == 5


def test_exported_and_documented():
    assert fo.Muon is fo.optim.Muon and fo.muon_step is fo.functional.muon_step
    for doc in (fo.Muon.__doc__, fo.muon_step.__doc__, reference.muon_step.__doc__):
        assert "Newton" in doc or "ns_steps" in doc
    assert ".. math::" in fo.muon_step.__doc__


# ---- the cimport-able kernels ----------------------------------------------------------------
CONSUMER = '''# cython: language_level=3
from fastoptim._muon cimport muon_apply_kernel, muon_momentum_kernel


def momentum(const double[::1] g, double[::1] buf, double[::1] update, double momentum):
    cdef double total, w = 1 - momentum
    with nogil:
        total = muon_momentum_kernel(&g[0], &buf[0], &update[0], g.shape[0], w, 1 - w,
                                     w < 0.5, True, momentum, 1 - momentum, momentum < 0.5)
    return total


def apply(double[::1] p, const double[::1] update, double scale, double neg_lr):
    with nogil:
        muon_apply_kernel(&p[0], &update[0], p.shape[0], scale, neg_lr)
'''


def test_cimported_kernels_are_the_steps_passes(tmp_path, rng):
    from test_lamb import build_consumer
    consumer = build_consumer(tmp_path, "muon_consumer", CONSUMER)
    p0, grads = _problem((30, 20), np.float64, "C", rng, steps=5)
    p, buf = p0.copy(), np.zeros_like(p0)
    mine, mine_buf = p0.copy(), np.zeros_like(p0)
    workspace = MuonWorkspace.for_param(p)
    for g in grads:
        fo.muon_step(p, g, buf, lr=0.02, momentum=0.9, workspace=workspace)
        total = consumer.momentum(g.ravel(), mine_buf.ravel(), workspace.update.ravel(), 0.9)
        out = workspace.newton_schulz(total, 1e-7, (3.4445, -4.775, 2.0315), 5)
        consumer.apply(mine.ravel(), out.ravel(), 1 - 0.02 * 0.1, -0.02 * np.sqrt(1.5))
    np.testing.assert_array_equal(mine_buf, buf)
    np.testing.assert_array_equal(mine, p)


@pytest.mark.parametrize("backend", ["auto", "numba"])
def test_fastoptim_thread_count_does_not_change_the_result(backend, rng):
    """fastoptim's threads run the element-wise passes (the Numba twin's chunks); the BLAS
    pool of the matrix products is left as it is (its thread count may change the last
    bits of a product: the module's docstring)."""
    if backend == "numba":
        pytest.importorskip("numba")
    p0, grads = _problem((70_001, 3), np.float32, "C", rng, steps=3)
    out = []
    previous = fo.get_num_threads()
    try:
        for n in (1, 2):
            fo.set_num_threads(n)
            params = [p0.copy()]
            opt = fo.Muon(params, lr=0.01, backend=backend)
            for g in grads:
                opt.step([g])
            out.append(params[0])
    finally:
        fo.set_num_threads(previous)
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("shape", [(0, 5), (5, 0)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_matrix_is_a_no_op(shape, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    p, g, buf = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    fo.muon_step(p, g, buf, backend=backend)
    opt = fo.Muon([p, np.ones((2, 2))], backend=backend)
    opt.step([g, np.ones((2, 2))])
    assert opt.t == 1


# ---- properties ------------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 3000), momentum=st.floats(0.0, 1.0), nesterov=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_momentum_pass_is_the_lerp_formula_bit_for_bit(n, momentum, nesterov, dtype, seed):
    """The fused pass rounds exactly like torch's lerp written out in NumPy (the same
    operations in the element type, the same branch), for any momentum and size."""
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n).astype(dtype)
    buf = rng.standard_normal(n).astype(dtype)
    t = np.dtype(dtype).type
    w, mu = t(1 - momentum), t(momentum)
    want_buf = buf + w * (g - buf) if abs(w) < 0.5 else g - (g - buf) * (t(1) - w)
    if nesterov:
        want = g + mu * (want_buf - g) if abs(mu) < 0.5 else \
            want_buf - (want_buf - g) * (t(1) - mu)
    else:
        want = want_buf
    update = np.empty_like(g)
    total = _muon.momentum(g, buf, update, float(w), float(t(1) - w), bool(abs(w) < 0.5),
                           nesterov, float(mu), float(t(1) - mu), bool(abs(mu) < 0.5))
    np.testing.assert_array_equal(buf, want_buf)
    np.testing.assert_array_equal(update, want)
    np.testing.assert_allclose(total, np.sum(want.astype(np.float64) ** 2), rtol=1e-12)


def test_corrupted_checkpoint_is_refused_and_changes_nothing(rng):
    params = [rng.standard_normal((4, 6))]
    opt = fo.Muon(params, lr=0.01)
    opt.step([rng.standard_normal((4, 6))])
    sd = opt.state_dict()
    before = params[0].copy()
    for key, value, name in (("ns_steps", 1000, "ns_steps"),
                             ("ns_coefficients", [1.0, 2.0], "ns_coefficients"),
                             ("adjust_lr_fn", "other", "adjust_lr_fn"),
                             ("momentum", -1.0, "momentum")):
        bad = dict(sd, param_groups=[dict(sd["param_groups"][0], **{key: value})])
        bad["params"] = [np.zeros((4, 6))]
        with pytest.raises((TypeError, ValueError), match=name):
            opt.load_state_dict(bad)
        np.testing.assert_array_equal(params[0], before)
        assert opt.t == 1 and opt.ns_steps == 5
