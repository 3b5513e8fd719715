"""``eps_root``: the course's two ways of writing the Adam/RMSprop denominator.

The course writes ``sqrt(S_corrected) + eps`` (torch's form: the defaults) and
``sqrt(S_corrected + eps)`` (``eps=0, eps_root=1e-8``). Both are checked here against the
course's formulas written out in NumPy (float64, the course's variable names), on every
backend and SIMD level; then the validation rules (``eps_root >= 0``; ``eps=0`` only with
``eps_root > 0``); then that ``eps_root=0`` runs the kernels as they were before it existed,
bit for bit (an element-wise float32/float64 emulation of their arithmetic, operation by
operation). The generic tests (reference, torch, classes, checkpoints) cover the rest from
the registry's examples.
"""
import numpy as np
import pytest

import fastoptim as fo
from fastoptim import _coefficients, kernels
from testing_settings import ALL_BACKENDS

BACKENDS = ALL_BACKENDS
DTYPES = [np.float32, np.float64]
# the course's two forms: (eps, eps_root) of the call
COURSE_FORMS = {"sqrt(S) + eps": dict(eps=1e-8, eps_root=0.0),
                "sqrt(S + eps)": dict(eps=0.0, eps_root=1e-8)}
N = 67          # a SIMD body and a tail at every width
STEPS = 8


@pytest.fixture(params=kernels.simd_targets())
def simd_target(request):
    previous = kernels._select_simd_target(request.param)
    yield request.param
    kernels._select_simd_target(previous)


def gradients(dtype, seed=0):
    """Gradients over five orders of magnitude (where the two forms differ most), with
    exact zeros (where sqrt(S + eps) with eps=0 outside must still not divide by 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        g = rng.standard_normal(N) * 10.0 ** rng.uniform(-5, 0, N)
        g[::7] = 0.0
        out.append(g.astype(dtype))
    return out


def course_adam(W, grads, *, lr, beta1, beta2, eps, root, wd=0.0, amsgrad=False):
    """The course's Adam, literally: V, S, their bias corrections, and the denominator
    ``sqrt(S_corrected) + eps`` or (``root``) ``sqrt(S_corrected + eps)``. AdamW decays
    ``W *= 1 - lr*wd`` first; AMSGrad uses the running maximum of S."""
    W = W.astype(np.float64)
    V = np.zeros_like(W)
    S = np.zeros_like(W)
    S_max = np.zeros_like(W)
    for t, dW in enumerate(grads, start=1):
        dW = dW.astype(np.float64)
        W = W * (1 - lr * wd)
        V = beta1 * V + (1 - beta1) * dW
        S = beta2 * S + (1 - beta2) * dW**2
        S_max = np.maximum(S_max, S)
        V_corrected = V / (1 - beta1**t)
        S_corrected = (S_max if amsgrad else S) / (1 - beta2**t)
        if root:
            W = W - lr * V_corrected / np.sqrt(S_corrected + eps)
        else:
            W = W - lr * V_corrected / (np.sqrt(S_corrected) + eps)
    return W


def course_rmsprop(W, grads, *, lr, beta, eps, root, centered=False):
    """The course's RMSprop, literally: ``S = beta*S + (1-beta)*dW**2`` and the denominator
    ``sqrt(S) + eps`` or (``root``) ``sqrt(S + eps)``; centered subtracts the squared
    running mean of dW inside the root."""
    W = W.astype(np.float64)
    S = np.zeros_like(W)
    A = np.zeros_like(W)
    for dW in grads:
        dW = dW.astype(np.float64)
        S = beta * S + (1 - beta) * dW**2
        A = beta * A + (1 - beta) * dW
        variance = S - A**2 if centered else S
        if root:
            W = W - lr * dW / np.sqrt(variance + eps)
        else:
            W = W - lr * dW / (np.sqrt(variance) + eps)
    return W


def tolerance(dtype):
    return dict(rtol=1e-11, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


def start(dtype):
    return np.linspace(-1.0, 1.0, N).astype(dtype)


# ---- the two course forms, functional, every backend and SIMD level -------------------------
@pytest.mark.parametrize("form", list(COURSE_FORMS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_step_gives_each_course_form(form, dtype, backend, amsgrad, simd_target):
    opts = COURSE_FORMS[form]
    p = start(dtype)
    m, v, vmax = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    grads = gradients(dtype)
    for t, g in enumerate(grads, start=1):
        fo.adam_step(p, g, m, v, step=t, lr=0.01, amsgrad=amsgrad,
                     max_exp_avg_sq=vmax if amsgrad else None, backend=backend, **opts)
    expected = course_adam(start(dtype), grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                           root=opts["eps"] == 0.0, amsgrad=amsgrad)
    np.testing.assert_allclose(p, expected, **tolerance(dtype))
    assert np.isfinite(p).all()


@pytest.mark.parametrize("form", list(COURSE_FORMS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_step_gives_each_course_form(form, dtype, backend, centered, simd_target):
    opts = COURSE_FORMS[form]
    p = start(dtype)
    s, a = np.zeros_like(p), np.zeros_like(p)
    grads = gradients(dtype)
    for g in grads:
        fo.rmsprop_step(p, g, s, lr=0.01, alpha=0.9, centered=centered,
                        grad_avg=a if centered else None, backend=backend, **opts)
    expected = course_rmsprop(start(dtype), grads, lr=0.01, beta=0.9, eps=1e-8,
                              root=opts["eps"] == 0.0, centered=centered)
    np.testing.assert_allclose(p, expected, **tolerance(dtype))
    assert np.isfinite(p).all()


def test_the_two_course_forms_differ_beyond_the_tolerance():
    """So that the tests above would catch an eps_root that is ignored (or put outside)."""
    grads = gradients(np.float32)
    one = course_adam(start(np.float32), grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                      root=False)
    two = course_adam(start(np.float32), grads, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                      root=True)
    assert not np.allclose(one, two, **tolerance(np.float32))
    one = course_rmsprop(start(np.float32), grads, lr=0.01, beta=0.9, eps=1e-8, root=False)
    two = course_rmsprop(start(np.float32), grads, lr=0.01, beta=0.9, eps=1e-8, root=True)
    assert not np.allclose(one, two, **tolerance(np.float32))


def test_both_eps_add_up_as_documented():
    """eps_root and eps together: sqrt(v_hat + eps_root) + eps (the reference's form)."""
    grads = gradients(np.float64)
    p = start(np.float64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        fo.adam_step(p, g, m, v, step=t, lr=0.01, eps=1e-3, eps_root=1e-4, backend="cython")
    W, V, S = start(np.float64), np.zeros(N), np.zeros(N)
    for t, dW in enumerate(grads, start=1):
        V = 0.9 * V + 0.1 * dW
        S = 0.999 * S + 0.001 * dW**2
        W = W - 0.01 * (V / (1 - 0.9**t)) / (np.sqrt(S / (1 - 0.999**t) + 1e-4) + 1e-3)
    np.testing.assert_allclose(p, W, rtol=1e-12, atol=1e-14)


# ---- the classes -------------------------------------------------------------------------
@pytest.mark.parametrize("form", list(COURSE_FORMS))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_classes_give_each_course_form(name, form, backend):
    opts = COURSE_FORMS[form]
    root = opts["eps"] == 0.0
    params = {"W1": start(np.float64), "b1": start(np.float64)[:5].copy()}
    grads = gradients(np.float64)
    if name == "RMSprop":
        opt = fo.RMSprop(params, lr=0.01, alpha=0.9, backend=backend, **opts)
        expected = course_rmsprop(start(np.float64), grads, lr=0.01, beta=0.9, eps=1e-8,
                                  root=root)
    else:
        opt = getattr(fo, name)(params, lr=0.01, backend=backend, **opts)
        wd = 1e-2 if name == "AdamW" else 0.0
        expected = course_adam(start(np.float64), grads, lr=0.01, beta1=0.9, beta2=0.999,
                               eps=1e-8, root=root, wd=wd)
    for g in grads:
        opt.step({"W1": g, "b1": g[:5]})
    np.testing.assert_allclose(params["W1"], expected, **tolerance(np.float64))
    assert opt.param_groups[0]["eps_root"] == opts["eps_root"]


def test_eps_root_survives_a_checkpoint(tmp_path):
    params = [start(np.float32)]
    opt = fo.Adam(params, lr=0.01, eps=0.0, eps_root=1e-8)
    opt.step([gradients(np.float32)[0]])
    sd = opt.state_dict()
    other = fo.Adam([start(np.float32)], lr=0.01, eps=0.0, eps_root=1e-6)
    other.load_state_dict(sd)
    assert other.param_groups[0]["eps_root"] == 1e-8


# ---- validation --------------------------------------------------------------------------
def adam_arrays(dtype=np.float32):
    p = start(dtype)
    return p, np.ones_like(p), np.zeros_like(p), np.zeros_like(p)


def rmsprop_arrays(dtype=np.float32):
    p = start(dtype)
    return p, np.ones_like(p), np.zeros_like(p)


CALLS = {"adam_step": (lambda arrays, **kw: fo.adam_step(*arrays, step=1, **kw), adam_arrays),
         "rmsprop_step": (lambda arrays, **kw: fo.rmsprop_step(*arrays, **kw), rmsprop_arrays)}


def refused(func, exc, match, dtype=np.float32, **kw):
    call, make = CALLS[func]
    arrays = make(dtype)
    before = [a.copy() for a in arrays]
    for backend in BACKENDS:
        with pytest.raises(exc, match=match) as info:
            call(arrays, backend=backend, **kw)
        assert func in str(info.value)
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b)
    return str(info.value)


@pytest.mark.parametrize("func", list(CALLS))
def test_eps_root_must_be_a_nonnegative_real(func):
    refused(func, ValueError, "eps_root must be >= 0", eps_root=-1e-8)
    refused(func, ValueError, "eps_root must be finite", eps_root=float("inf"))
    refused(func, ValueError, "eps_root", eps_root=float("nan"))
    refused(func, TypeError, "eps_root must be a real number", eps_root="1e-8")


@pytest.mark.parametrize("func", list(CALLS))
def test_eps_zero_needs_a_positive_eps_root_and_the_error_names_both(func):
    message = refused(func, ValueError, "eps must be > 0 unless eps_root > 0", eps=0.0)
    assert "eps=0.0" in message and "eps_root=0.0" in message
    refused(func, ValueError, "eps must be >= 0", eps=-1e-8, eps_root=1e-8)


@pytest.mark.parametrize("func", list(CALLS))
def test_eps_zero_is_allowed_with_a_positive_eps_root(func):
    call, make = CALLS[func]
    for backend in BACKENDS:
        arrays = make()
        call(arrays, eps=0.0, eps_root=1e-8, backend=backend)
        assert np.isfinite(arrays[0]).all()


@pytest.mark.parametrize("func", list(CALLS))
def test_the_normal_number_rule_still_holds(func):
    """eps > 0 must still be a normal number of the dtype, even with eps_root > 0; with
    eps = 0, eps_root (then the only guard against 0/0) must be one."""
    refused(func, ValueError, "eps=1e-50 underflows float32", eps=1e-50, eps_root=1e-8)
    refused(func, ValueError, "eps_root=1e-50 underflows float32", eps=0.0, eps_root=1e-50)
    call, make = CALLS[func]
    call(make(np.float64), eps=0.0, eps_root=1e-50)        # a normal float64
    call(make(np.float32), eps=1e-8, eps_root=1e-50)       # eps keeps it away from 0


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop"])
def test_classes_validate_eps_root_at_construction(name):
    cls = getattr(fo, name)
    with pytest.raises(ValueError, match=f"{name}: eps must be > 0 unless eps_root > 0"):
        cls([start(np.float32)], eps=0.0)
    with pytest.raises(ValueError, match="eps_root must be >= 0"):
        cls([start(np.float32)], eps_root=-1.0)
    with pytest.raises(ValueError, match="eps_root=1e-50 underflows float32"):
        cls([start(np.float32)], eps=0.0, eps_root=1e-50)
    opt = cls([start(np.float32)], eps=0.0, eps_root=1e-8)
    with pytest.raises(ValueError, match="eps must be > 0 unless eps_root > 0"):
        opt.param_groups[0]["eps_root"] = 0.0


# ---- eps_root = 0 is the kernel as it was, bit for bit ----------------------------------------
def weighted_square(w, d, backend):
    """``(1-beta)*d*d`` as every backend groups it: ``(1-beta) * (d*d)`` (C's
    ``ewa_of(avg, d*d)``; the Numba twins group it the same way)."""
    return w * (d * d)


def old_adam(p, g, m, v, step, backend):
    """The compiled Adam kernel's arithmetic before eps_root, element-wise in the arrays'
    dtype (IEEE, no fused multiply-add), default hyperparameters but lr=0.01."""
    T = p.dtype.type
    c = _coefficients.adam(step, 0.01, 0.9, 0.999, 1e-8, 0.0, False, False, 0.0)
    d = T(c.grad_sign) * g
    m[...] = T(c.beta1) * m + T(c.one_minus_beta1) * d
    v[...] = T(c.beta2) * v + weighted_square(T(c.one_minus_beta2), d, backend)
    denom = np.sqrt(v) * T(c.inv_bias_correction2_sqrt) + T(c.eps)
    p[...] = p - T(c.step_size) * m / denom


def old_rmsprop(p, g, s, backend):
    T = p.dtype.type
    c = _coefficients.rmsprop(0.01, 0.99, 1e-8, 0.0, 0.0, False, 0.0)
    d = T(c.grad_sign) * g
    s[...] = T(c.alpha) * s + weighted_square(T(c.one_minus_alpha), d, backend)
    p[...] = p - T(c.lr) * d / (np.sqrt(s) + T(c.eps))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
def test_eps_root_zero_is_bit_identical_to_before(dtype, backend, simd_target):
    grads = gradients(dtype, seed=3)
    runs = {}
    for how in ("old", "default", "explicit 0"):
        p = start(dtype)
        m, v, s = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
        q = start(dtype)
        for t, g in enumerate(grads, start=1):
            if how == "old":
                old_adam(p, g, m, v, t, backend)
                old_rmsprop(q, g, s, backend)
                continue
            extra = {} if how == "default" else dict(eps_root=0.0)
            fo.adam_step(p, g, m, v, step=t, lr=0.01, backend=backend, **extra)
            fo.rmsprop_step(q, g, s, lr=0.01, backend=backend, **extra)
        runs[how] = (p.tobytes(), m.tobytes(), v.tobytes(), q.tobytes(), s.tobytes())
    assert runs["default"] == runs["old"]
    assert runs["explicit 0"] == runs["old"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_eps_root_results_do_not_depend_on_the_simd_level(dtype):
    results = set()
    for target in kernels.simd_targets():
        previous = kernels._select_simd_target(target)
        try:
            p = start(dtype)
            m, v, vmax, s, a = (np.zeros_like(p) for _ in range(5))
            q = start(dtype)
            for t, g in enumerate(gradients(dtype), start=1):
                fo.adam_step(p, g, m, v, step=t, lr=0.01, eps=0.0, eps_root=1e-8,
                             amsgrad=True, max_exp_avg_sq=vmax, backend="cython")
                fo.rmsprop_step(q, g, s, lr=0.01, eps=1e-8, eps_root=1e-6, centered=True,
                                grad_avg=a, backend="cython")
        finally:
            kernels._select_simd_target(previous)
        results.add((p.tobytes(), q.tobytes()))
    assert len(results) == 1
