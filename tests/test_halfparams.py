"""Half-precision parameters (issue 14, item 2): the NumPy reference in fastoptim.half_reference."""
import ml_dtypes
import numpy as np
import pytest

from fastoptim import half_reference as hr
from fastoptim import reference

BF16 = np.dtype(ml_dtypes.bfloat16)
SIZES = [1, 7, 67, 1003]


def test_bf16_rne_bit_trick_matches_ml_dtypes_cast():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    # ties and near-ties explicitly
    ties = (rng.integers(0, 2**16, 5000, dtype=np.uint32) << 16) | np.uint32(0x8000)
    x = np.concatenate([x, ties.view(np.float32), np.float32([0.0, -0.0, np.inf, -np.inf])])
    ours = hr.f32_to_bf16_bits_rne(x)
    with np.errstate(invalid="ignore"):
        ref = x.astype(BF16).view(np.uint16)
    finite = ~np.isnan(x)
    np.testing.assert_array_equal(ours[finite], ref[finite])
    assert np.isnan(ours[~finite].view(BF16).astype(np.float32)).all()


def test_stochastic_rounding_unbiased_and_bracketing():
    x = np.full(200_000, np.float32(1.0) + np.float32(2.0**-10), dtype=np.float32)  # 1/8 ulp
    r = hr.f32_to_bf16_stochastic(x, seed=123, step=5).astype(np.float32)
    lo, hi = np.float32(1.0), np.float32(1.0 + 2.0**-7)
    assert set(np.unique(r)) <= {lo, hi}
    frac_up = np.mean(r == hi)
    assert abs(frac_up - 0.125) < 0.005  # std ~ 0.0007
    rng = np.random.default_rng(1)
    y = rng.standard_normal(400_000).astype(np.float32)
    ry = hr.f32_to_bf16_stochastic(y, seed=7, step=1).astype(np.float64)
    assert abs(np.mean(ry - y)) < 1e-4
    assert abs(np.mean(y.astype(BF16).astype(np.float64) - y)) < 1e-4


def test_stochastic_rounding_reproducible_and_chunk_independent():
    y = np.random.default_rng(2).standard_normal(10_003).astype(np.float32)
    a = hr.f32_to_bf16_stochastic(y, seed=9, step=3)
    b = hr.f32_to_bf16_stochastic(y, seed=9, step=3)
    c = hr.f32_to_bf16_stochastic(y, seed=9, step=4)
    np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))
    assert (a.view(np.uint16) != c.view(np.uint16)).any()
    # noise depends only on the element index: any split into chunks gives the same bits
    noise = hr.rounding_noise(9, 3, y.size)
    np.testing.assert_array_equal(noise[:5000], hr.rounding_noise(9, 3, 5000))


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("opts", [{}, {"weight_decay": 0.01},
                                  {"weight_decay": 0.01, "decoupled_weight_decay": True},
                                  {"maximize": True}])
def test_master_weights_track_float32_training(dtype, n, opts):
    rng = np.random.default_rng(n)
    p32 = rng.standard_normal(n).astype(np.float32)
    master = p32.copy()
    param = p32.astype(dtype)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    m32, v32 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    for t in range(1, 51):
        g32 = (rng.standard_normal(n) * 0.1).astype(np.float32)
        g = g32.astype(dtype)
        hr.adam_step_mixed(param, g, m, v, step=t, lr=1e-3, master=master, **opts)
        reference.adam_step(p32, g.astype(np.float32), m32, v32, step=t, lr=1e-3, **opts)
        np.testing.assert_array_equal(param, master.astype(dtype))
    np.testing.assert_allclose(master, p32, rtol=1e-5, atol=1e-6)


def test_stochastic_rounding_keeps_small_updates_that_rne_loses():
    n = 4096
    p0 = np.ones(n, np.float32)
    grad = np.full(n, 1.0, np.float32).astype(BF16)
    p_sr, p_rne = p0.astype(BF16), p0.astype(BF16)
    m1, v1, m2, v2 = (np.zeros(n, np.float32) for _ in range(4))
    for t in range(1, 201):
        hr.adam_step_mixed(p_sr, grad, m1, v1, step=t, lr=1e-4, stochastic_rounding=True, seed=3)
        hr.adam_step_mixed(p_rne, grad, m2, v2, step=t, lr=1e-4)
    expected = 1.0 - 200 * 1e-4
    assert np.all(p_rne.astype(np.float32) == 1.0)  # every 1e-4 update rounds away
    assert abs(p_sr.astype(np.float32).mean() - expected) < 2e-3


def test_errors_name_the_argument_and_change_nothing():
    n = 9
    param = np.ones(n, BF16)
    grad = np.ones(n, BF16)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    before = [a.copy() for a in (param, grad, m, v)]
    cases = [
        (dict(grad=np.ones(n, np.float16)), TypeError, "grad"),
        (dict(grad=np.ones(n + 1, BF16)), ValueError, "grad"),
        (dict(exp_avg=np.zeros(n, np.float64)), TypeError, "exp_avg"),
        (dict(master=np.zeros(n + 1, np.float32)), ValueError, "master"),
        (dict(master=np.zeros(n, np.float32), stochastic_rounding=True), ValueError, "exclusive"),
        (dict(param=np.ones(n, np.float32)), TypeError, "param"),
    ]
    for override, exc, word in cases:
        args = dict(param=param, grad=grad, exp_avg=m, exp_avg_sq=v)
        args.update(override)
        kw = {k: args.pop(k) for k in ("master", "stochastic_rounding") if k in args}
        with pytest.raises(exc, match=word):
            hr.adam_step_mixed(args["param"], args["grad"], args["exp_avg"], args["exp_avg_sq"],
                               step=1, **kw)
    with pytest.raises(TypeError, match="bfloat16"):
        hr.adam_step_mixed(np.ones(n, np.float16), np.ones(n, np.float16), m, v, step=1,
                           stochastic_rounding=True)
    for a, b in zip((param, grad, m, v), before):
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


# ---- csrc/half_convert.h, compiled with the system C compiler and checked bit for bit -------
import ctypes
import pathlib
import shutil
import subprocess

HEADER = pathlib.Path(__file__).resolve().parents[1] / "src" / "fastoptim" / "csrc"
DRIVER = r"""
#include "half_convert.h"
typedef long long ll;
#define AVX __attribute__((target("avx2,f16c")))
AVX static ll bf16_rne_v(const float *x, uint16_t *o, ll n) {
    ll i = 0; for (; i + 8 <= n; i += 8) fo_f32x8_to_bf16_rne_avx2(_mm256_loadu_ps(x + i), o + i);
    return i; }
AVX static ll f16_rne_v(const float *x, uint16_t *o, ll n) {
    ll i = 0; for (; i + 8 <= n; i += 8) fo_f32x8_to_f16_rne_f16c(_mm256_loadu_ps(x + i), o + i);
    return i; }
AVX static ll f16_up_v(const uint16_t *h, float *o, ll n) {
    ll i = 0; for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, fo_f16x8_to_f32_f16c(h + i));
    return i; }
AVX static ll bf16_up_v(const uint16_t *h, float *o, ll n) {
    ll i = 0; for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, fo_bf16x8_to_f32_avx2(h + i));
    return i; }
void bf16_rne(const float *x, uint16_t *o, ll n, int simd) {
    for (ll i = simd ? bf16_rne_v(x, o, n) : 0; i < n; i++) o[i] = fo_f32_to_bf16_rne(x[i]); }
void f16_rne(const float *x, uint16_t *o, ll n, int simd) {
    for (ll i = simd ? f16_rne_v(x, o, n) : 0; i < n; i++) o[i] = fo_f32_to_f16_rne(x[i]); }
void f16_up(const uint16_t *h, float *o, ll n, int simd) {
    for (ll i = simd ? f16_up_v(h, o, n) : 0; i < n; i++) o[i] = fo_f16_to_f32(h[i]); }
void bf16_up(const uint16_t *h, float *o, ll n, int simd) {
    for (ll i = simd ? bf16_up_v(h, o, n) : 0; i < n; i++) o[i] = fo_bf16_to_f32(h[i]); }
void bf16_sr(const float *x, uint16_t *o, ll n, unsigned long long seed, unsigned long long step) {
    uint64_t key = fo_rounding_key(seed, step);
    for (ll i = 0; i < n; i++) o[i] = fo_f32_to_bf16_stochastic(x[i], fo_rounding_noise(key, (uint64_t)i));
}
"""


def _cpu_has(*flags):
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    words = set(text.split())
    return all(f in words for f in flags)


@pytest.fixture(scope="module")
def convert_lib(tmp_path_factory):
    from build_probe import require_build
    require_build()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("half_convert")
    (d / "driver.c").write_text(DRIVER)
    so = d / "driver.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", f"-I{HEADER}", str(d / "driver.c"), "-o",
                    str(so)], check=True)
    lib = ctypes.CDLL(str(so))
    for name in ("bf16_rne", "f16_rne", "f16_up", "bf16_up"):
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong,
                                       ctypes.c_int]
    lib.bf16_sr.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong,
                            ctypes.c_ulonglong, ctypes.c_ulonglong]
    return lib


SIMD_LEVELS = [0] + ([1] if _cpu_has("avx2", "f16c") else [])


def _call(fn, x, out_dtype, *extra):
    out = np.empty(x.size, out_dtype)
    fn(x.ctypes.data, out.ctypes.data, x.size, *extra)
    return out


def _random_floats(n, seed):
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    normal = rng.standard_normal(n).astype(np.float32) * np.float32(1e-3)
    tiny = rng.standard_normal(n).astype(np.float32) * np.float32(1e-6)  # float16 subnormals
    return np.concatenate([bits.view(np.float32), normal, tiny,
                           np.float32([0.0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520])])


@pytest.mark.parametrize("simd", SIMD_LEVELS)
def test_c_rne_matches_ml_dtypes_and_numpy(convert_lib, simd):
    x = _random_floats(100_003, 5)
    finite = ~np.isnan(x)
    with np.errstate(invalid="ignore", over="ignore"):
        ref_bf = x.astype(BF16).view(np.uint16)
        ref_h = x.astype(np.float16).view(np.uint16)
    got_bf = _call(convert_lib.bf16_rne, x, np.uint16, simd)
    got_h = _call(convert_lib.f16_rne, x, np.uint16, simd)
    np.testing.assert_array_equal(got_bf[finite], ref_bf[finite])
    np.testing.assert_array_equal(got_h[finite], ref_h[finite])
    assert np.isnan(got_bf[~finite].view(BF16).astype(np.float32)).all()
    assert np.isnan(got_h[~finite].view(np.float16)).all()


@pytest.mark.parametrize("simd", SIMD_LEVELS)
def test_c_upcasts_are_exact(convert_lib, simd):
    every = np.arange(2**16, dtype=np.uint16)
    up_h = _call(convert_lib.f16_up, every, np.float32, simd)
    up_b = _call(convert_lib.bf16_up, every, np.float32, simd)
    ok = ~np.isnan(every.view(np.float16))
    np.testing.assert_array_equal(up_h[ok], every.view(np.float16)[ok].astype(np.float32))
    assert np.isnan(up_h[~ok]).all()
    ok = ~np.isnan(every.view(BF16).astype(np.float32))
    np.testing.assert_array_equal(up_b[ok], every.view(BF16)[ok].astype(np.float32))


def test_c_stochastic_rounding_matches_reference(convert_lib):
    x = np.random.default_rng(8).standard_normal(10_007).astype(np.float32)
    got = _call(convert_lib.bf16_sr, x, np.uint16, 11, 42)
    ref = hr.f32_to_bf16_stochastic(x, seed=11, step=42).view(np.uint16)
    np.testing.assert_array_equal(got, ref)


# ---- csrc/adam_mixed.h (scalar fused kernel) vs the NumPy reference, bit for bit -----------
ADAM_DRIVER = r"""
#include "adam_mixed.h"
void adam(uint16_t *p, const uint16_t *g, float *master, float *m, float *v, long long n,
          int kind, float b1, float omb1, float b2, float omb2, float ss, float ibc, float eps,
          float wd, float decay, int wd_mode, int maximize, int sr,
          unsigned long long seed, unsigned long long step) {
    fo_adam_mixed(p, g, master, m, v, n, kind, b1, omb1, b2, omb2, ss, ibc, eps, wd, decay,
                  wd_mode, maximize, sr, fo_rounding_key(seed, step));
}
"""


@pytest.fixture(scope="module")
def adam_lib(tmp_path_factory):
    from build_probe import require_build
    require_build()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("adam_mixed")
    (d / "driver.c").write_text(ADAM_DRIVER)
    so = d / "driver.so"
    subprocess.run([cc, "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{HEADER}",
                    str(d / "driver.c"), "-o", str(so), "-lm"], check=True)
    lib = ctypes.CDLL(str(so))
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    lib.adam.argtypes = [p, p, p, p, p, ctypes.c_longlong, i, f, f, f, f, f, f, f, f, f, i, i, i,
                         ctypes.c_ulonglong, ctypes.c_ulonglong]
    return lib


def _c_adam(lib, param, grad, m, v, master, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
            weight_decay=0.0, decoupled_weight_decay=False, maximize=False,
            stochastic_rounding=False, seed=0):
    f32 = np.float32
    wd_mode = 2 if decoupled_weight_decay else (1 if weight_decay != 0 else 0)
    lib.adam(param.ctypes.data, grad.ctypes.data, master.ctypes.data if master is not None else None,
             m.ctypes.data, v.ctypes.data, param.size, 0 if param.dtype == BF16 else 1,
             f32(beta1), f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(lr / (1 - beta1**step)),
             f32(1 / np.sqrt(1 - beta2**step)), f32(eps), f32(weight_decay),
             f32(1 - lr * weight_decay), wd_mode, int(maximize), int(stochastic_rounding),
             seed, step)


@pytest.mark.parametrize("dtype,mode", [(np.dtype(np.float16), "master"),
                                        (np.dtype(np.float16), "plain"),
                                        (BF16, "master"), (BF16, "plain"), (BF16, "sr")])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("opts", [{}, {"weight_decay": 0.01},
                                  {"weight_decay": 0.01, "decoupled_weight_decay": True},
                                  {"maximize": True}])
def test_c_adam_mixed_matches_reference_bitwise(adam_lib, dtype, n, mode, opts):
    rng = np.random.default_rng(n + 17)
    p32 = rng.standard_normal(n).astype(np.float32)
    a = {"param": p32.astype(dtype), "m": np.zeros(n, np.float32), "v": np.zeros(n, np.float32),
         "master": p32.copy() if mode == "master" else None}
    b = {k: (None if x is None else x.copy()) for k, x in a.items()}
    extra = {"stochastic_rounding": True, "seed": 5} if mode == "sr" else {}
    for t in range(1, 31):
        g = (rng.standard_normal(n) * 0.1).astype(np.float32).astype(dtype)
        hr.adam_step_mixed(a["param"], g, a["m"], a["v"], step=t, lr=1e-3, master=a["master"],
                           **opts, **extra)
        _c_adam(adam_lib, b["param"], g, b["m"], b["v"], b["master"], step=t, lr=1e-3,
                **opts, **extra)
    for k in a:
        if a[k] is not None:
            np.testing.assert_array_equal(a[k].view(np.uint8), b[k].view(np.uint8), err_msg=k)
