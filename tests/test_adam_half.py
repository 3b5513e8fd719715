"""fastoptim.halfparams: Adam on float16 / bfloat16 parameters through the compiled kernel
(csrc/adam_mixed.h), bit for bit with the NumPy reference (fastoptim.half_reference), for
every mode and option, any thread count; errors before anything changes."""
import numpy as np
import pytest

import fastoptim
from fastoptim import _lowmem
from fastoptim import halfparams as hp
from fastoptim.half_reference import bfloat16

F16 = np.dtype(np.float16)
MODES = [(F16, "master"), (F16, "plain"), (bfloat16, "master"), (bfloat16, "plain"),
         (bfloat16, "sr")]
OPTS = [{}, dict(weight_decay=0.01), dict(weight_decay=0.01, decoupled_weight_decay=True),
        dict(maximize=True, beta1=0.5, beta2=0.9, eps=1e-6)]
SIZES = [1, 31, 1003, 2 * 32768 + 5]          # the last: three OpenMP work items


@pytest.fixture(params=_lowmem.simd_targets())
def level(request):
    """Every SIMD level this CPU has (sse2: the portable loop; above: AVX2 + F16C)."""
    previous = _lowmem.simd_target()
    _lowmem._select_simd_target(request.param)
    yield request.param
    _lowmem._select_simd_target(previous)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def run(dtype, mode, n, opts, backend, steps=12, shape=None, order="C"):
    rng = np.random.default_rng(n)
    shape = shape or (n,)
    p32 = rng.standard_normal(shape).astype(np.float32)
    param = np.asarray(p32.astype(dtype), order=order)
    state = hp.half_state(param, master_weights=(mode == "master"))
    extra = dict(stochastic_rounding=True, seed=2 ** 64 - 3) if mode == "sr" else {}
    for t in range(1, steps + 1):
        g = np.asarray((rng.standard_normal(shape) * 0.1).astype(np.float32).astype(dtype),
                       order=order)
        g.reshape(-1, order="A")[: min(5, g.size - 1)] = 0    # exactly zero gradients
        hp.adam_half_step(param, g, state, step=t, lr=1e-3, backend=backend, **opts, **extra)
    return param, state


@pytest.mark.parametrize("opts", OPTS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_compiled_matches_the_reference_bit_for_bit(level, dtype, mode, n, opts):
    ref_p, ref_s = run(dtype, mode, n, opts, "numpy")
    for backend in ("cython", "numba"):
        if backend == "numba" and level != _lowmem.simd_targets()[0]:
            continue                    # the Numba twin has no SIMD levels: once is enough
        p, s = run(dtype, mode, n, opts, backend)
        assert np.array_equal(bits(p), bits(ref_p)), backend
        assert set(s) == set(ref_s)
        for key in s:
            assert np.array_equal(bits(s[key]), bits(ref_s[key])), (backend, key)
    start = np.random.default_rng(n).standard_normal((n,)).astype(np.float32).astype(dtype)
    assert not np.array_equal(bits(p), bits(start))


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_fortran_order_two_dimensional(level, dtype, mode):
    a = run(dtype, mode, 7, {}, "numpy", shape=(70, 90), order="F")
    for backend in ("cython", "numba"):
        b = run(dtype, mode, 7, {}, backend, shape=(70, 90), order="F")
        assert a[0].flags.f_contiguous and np.array_equal(bits(a[0]), bits(b[0])), backend


def thread_runs(dtype, mode, backend):
    out = []
    try:
        for threads in (1, 2):
            fastoptim.set_num_threads(threads)
            out.append(run(dtype, mode, 3 * 32768 + 11, {}, backend, steps=4))
    finally:
        fastoptim.set_num_threads(None)
    (p1, s1), (p2, s2) = out
    assert np.array_equal(bits(p1), bits(p2))
    for key in s1:
        assert np.array_equal(bits(s1[key]), bits(s2[key]))


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_result_does_not_depend_on_the_thread_count(level, dtype, mode):
    thread_runs(dtype, mode, "cython")


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_numba_result_does_not_depend_on_the_thread_count(dtype, mode):
    thread_runs(dtype, mode, "numba")


def test_master_weights_keep_updates_a_half_parameter_loses():
    """lr=1e-4 steps on bfloat16 weights near 1 (spacing 2**-7): round-to-nearest without a
    master copy never moves; the master copy and stochastic rounding track float32."""
    n, steps = 4096, 200
    grad = np.full(n, 1.0, np.float32)
    exact = np.ones(n, np.float32)
    s32 = {"exp_avg": np.zeros(n, np.float32), "exp_avg_sq": np.zeros(n, np.float32)}
    results = {}
    for mode in ("plain", "master", "sr"):
        param = np.ones(n, bfloat16)
        state = hp.half_state(param, master_weights=(mode == "master"))
        for t in range(1, steps + 1):
            hp.adam_half_step(param, grad.astype(bfloat16), state, step=t, lr=1e-4,
                              stochastic_rounding=(mode == "sr"), seed=1)
        results[mode] = param.astype(np.float32)
    for t in range(1, steps + 1):
        fastoptim.adam_step(exact, grad, s32["exp_avg"], s32["exp_avg_sq"], step=t, lr=1e-4)
    assert np.all(results["plain"] == 1.0)                          # every update lost
    assert abs(results["master"].mean() - exact.mean()) < 2 ** -8
    assert abs(results["sr"].mean() - exact.mean()) < 1e-3          # unbiased on average


def arrays(dtype=bfloat16, master=True):
    p = np.linspace(-1, 1, 64).astype(dtype)
    return p, np.full(64, 0.5, dtype), hp.half_state(p, master_weights=master)


@pytest.mark.parametrize("change, kwargs, error, match", [
    (lambda p, g, s: (p.astype(np.float32), g, s), {}, TypeError, "param must be a float16"),
    (lambda p, g, s: (p, g.astype(np.float16), s), {}, TypeError, "grad is float16"),
    (lambda p, g, s: (p, g[:32], s), {}, ValueError, "grad has shape"),
    (lambda p, g, s: (p, g, {**s, "exp_avg": s["exp_avg"].astype(np.float64)}), {},
     ValueError, "exp_avg must be float32"),
    (lambda p, g, s: (p, g, {**s, "master": s["master"][:10]}), {}, ValueError,
     "master has shape"),
    (lambda p, g, s: (p, g, {"exp_avg": s["exp_avg"]}), {}, TypeError, "state must be"),
    (lambda p, g, s: (p, g, {**s, "exp_avg_sq": s["exp_avg"]}), {}, ValueError,
     "exp_avg and exp_avg_sq share memory"),
    (lambda p, g, s: (p, g, s), dict(stochastic_rounding=True), ValueError,
     "stochastic_rounding and a master copy"),
    (lambda p, g, s: (p, g, s), dict(step=0), ValueError, "step"),
    (lambda p, g, s: (p, g, s), dict(beta1=1.0), ValueError, "beta1"),
    (lambda p, g, s: (p, g, s), dict(seed=-1), ValueError, "seed"),
    (lambda p, g, s: (p, g, s), dict(backend="cuda"), ValueError, "backend"),
])
def test_bad_input_raises_before_anything_changes(change, kwargs, error, match):
    p, g, s = arrays()
    p, g, s = change(p, g, s)
    before = [x.copy() for x in (p, *s.values())]
    with pytest.raises(error, match=match):
        hp.adam_half_step(p, g, s, **{"step": 1, **kwargs})
    for x, y in zip((p, *s.values()), before):
        assert np.array_equal(bits(x), bits(y))


def test_stochastic_rounding_needs_bfloat16_and_non_contiguous_is_refused():
    p, g, s = arrays(np.float16, master=False)
    with pytest.raises(ValueError, match="needs bfloat16"):
        hp.adam_half_step(p, g, s, step=1, stochastic_rounding=True)
    p, g, s = arrays()
    big = np.zeros(128, bfloat16)
    with pytest.raises(ValueError, match="param must be contiguous"):
        hp.adam_half_step(big[::2], g, s, step=1)
    with pytest.raises(TypeError, match="param must be a float16 or bfloat16"):
        hp.half_state(np.zeros(3))


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_special_values_match_the_reference(level, dtype, mode):
    """inf, NaN, subnormal halves and overflow to inf, in the vector body and the tail."""
    n = 8 * 5 + 3
    special = [np.inf, -np.inf, np.nan, 0.0, -0.0, 6e-8, 1e-40, 65504.0, -3e38, 1e-3]
    with np.errstate(all="ignore"):
        g = np.resize(np.array(special, np.float32), n).astype(dtype)
        out = []
        for backend in ("numpy", "cython", "numba"):
            param = np.resize(np.array(special[::-1], np.float32), n).astype(dtype)
            state = hp.half_state(param, master_weights=(mode == "master"))
            extra = dict(stochastic_rounding=True, seed=3) if mode == "sr" else {}
            for t in (1, 2):
                hp.adam_half_step(param, g, state, step=t, lr=10.0, backend=backend, **extra)
            out.append((param, state))
    (rp, rs), *others = out
    for backend, (p, s) in zip(("cython", "numba"), others):
        assert np.array_equal(bits(p), bits(rp)), backend
        for key in s:
            assert np.array_equal(bits(s[key]), bits(rs[key])), (backend, key)


def _nan_canonical(a):
    """Bits with every NaN made the one quiet NaN: a NaN's sign and payload are not part of
    the bit-for-bit contract (README: IEEE 754 lets an operation on two NaNs return either
    operand's), where the NaNs are and every other bit are."""
    f = np.asarray(a).astype(np.float32)
    return np.where(np.isnan(f), np.float32(np.nan), f).view(np.uint32)


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_nan_and_inf_gradients_give_the_same_values_everywhere(level, dtype, mode):
    """NaNs of both signs in the parameters and the gradients (changing sign between steps:
    some operations meet two NaNs of opposite signs) and infinities: every level and
    backend puts NaN on the same elements and agrees on every other bit."""
    n = 1003
    rng = np.random.default_rng(11)
    start = rng.standard_normal(n).astype(np.float32)
    start[::19] = -np.nan
    gs = []
    for t in range(4):
        g = (rng.standard_normal(n) * 0.1).astype(np.float32)
        g[rng.random(n) < 0.2] = np.nan
        g[rng.random(n) < 0.05] = -np.inf
        gs.append(-g if t % 2 else g)
    extra = dict(stochastic_rounding=True, seed=5) if mode == "sr" else {}
    results = {}
    for backend in ("numpy", "cython", "numba"):
        param = start.astype(dtype)
        state = hp.half_state(param, master_weights=(mode == "master"))
        with np.errstate(invalid="ignore", over="ignore"):
            for t, g in enumerate(gs, start=1):
                hp.adam_half_step(param, g.astype(dtype), state, step=t, lr=1e-2,
                                  weight_decay=0.1, backend=backend, **extra)
        results[backend] = [param] + [state[k] for k in sorted(state) if state[k] is not None]
    assert np.isnan(results["numpy"][0].astype(np.float32)).any()
    assert np.isfinite(results["numpy"][0].astype(np.float32)).any()
    for backend, arrays in results.items():
        for a, b in zip(arrays, results["numpy"]):
            assert np.array_equal(_nan_canonical(a), _nan_canonical(b)), backend
