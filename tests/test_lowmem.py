"""Low-memory Adam state (fastoptim.lowmem): bfloat16 and blockwise 8-bit moments.

Parity of the C kernels (every SIMD level this CPU has) and the Numba twins with the NumPy
reference, bit for bit, over many steps and every option; thread-count independence; the
code tables; validation with nothing changed; checkpoints; the zero-gradient trap.
"""
import io
import math

import ml_dtypes
import numpy as np
import pytest

import fastoptim
from fastoptim import _lowmem, lowmem as lm

BF16 = np.dtype(ml_dtypes.bfloat16)
SIZES_BF16 = [1, 7, 8 * 33 + 3, 1001, 40000 + 5]
SIZES_INT8 = [4096, 4096 + 7, 10000 + 3, 70001]        # 70001: three OpenMP work items
OPTIONS = [dict(),
           dict(weight_decay=0.05),
           dict(weight_decay=0.1, decoupled_weight_decay=True),
           dict(maximize=True, beta1=0.5, beta2=0.9, eps=1e-6)]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def grads(n, steps, seed):
    """Gradients over many magnitudes, with exact zeros (the zero-gradient elements)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        g = rng.standard_normal(n).astype(np.float32) * np.float32(10.0 ** (-(t % 6)))
        g[rng.random(n) < 0.1] = 0
        out.append(g)
    return out


def run(kind, n, backend, steps=25, seed=0, **hyper):
    param = np.random.default_rng(seed + 1).standard_normal(n).astype(np.float32)
    state = lm.adam_state(param, kind)
    for t, g in enumerate(grads(n, steps, seed), start=1):
        lm.adam_lowmem_step(param, g, state, step=t, lr=1e-2, backend=backend, **hyper)
    return param, state


@pytest.fixture(params=_lowmem.simd_targets())
def level(request):
    previous = _lowmem._select_simd_target(request.param)
    yield request.param
    _lowmem._select_simd_target(previous)


@pytest.fixture(params=["bucket", "arithmetic"])
def search(request):
    """The AVX-512 8-bit loops' nearest-code search (the CPU picks one; the tests run both)."""
    _lowmem._select_nearest_code_search(request.param)
    yield request.param
    _lowmem._select_nearest_code_search(None)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("kind, n, search", [("bfloat16", n, "bucket") for n in SIZES_BF16]
                         + [("int8", n, s) for n in SIZES_INT8
                            for s in ("bucket", "arithmetic")], indirect=["search"])
def test_compiled_and_numba_match_the_reference_bit_for_bit(level, kind, n, search, options):
    ref_p, ref_s = run(kind, n, "numpy", **options)
    assert lm.state_kind(ref_s) == kind
    for backend in ("cython", "numba"):
        p, s = run(kind, n, backend, **options)
        assert np.array_equal(bits(p), bits(ref_p)), backend
        for key in ref_s:
            assert np.array_equal(bits(s[key]), bits(ref_s[key])), (backend, key)


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_result_does_not_depend_on_the_thread_count(kind):
    n = 3 * 32768 + 517
    results = []
    try:
        for threads in (1, 2):
            fastoptim.set_num_threads(threads)
            results.append(run(kind, n, "cython", steps=5))
    finally:
        fastoptim.set_num_threads(None)
    (p1, s1), (p2, s2) = results
    assert np.array_equal(bits(p1), bits(p2))
    for key in s1:
        assert np.array_equal(bits(s1[key]), bits(s2[key]))


@pytest.mark.parametrize("n", [64, 64 + 7])
def test_bfloat16_rounding_and_nan_follow_ml_dtypes(level, n):
    """At every SIMD level (vcvtneps2bf16 where the CPU has it: it reads a subnormal as 0
    and keeps a NaN's payload), in the vector body and the tail."""
    param = np.zeros(n, np.float32)
    grad = np.full(n, 1e-18, np.float32)            # v = 1e-3 * 1e-36: a subnormal
    grad[:8] = [np.nan, -np.nan, np.inf, 3e37, -3e37, 1.00390625, 1e-30, 0]
    grad[-8:] = [np.nan, -np.nan, np.inf, 3e37, -3e37, 1.00390625, 1e-30, 0]
    grad.view(np.uint32)[40] = 0x7fc01234                       # a NaN with a payload
    # NaNs whose payload reaches the rounding's carry (the sum would wrap into the sign
    # bit), a signaling one, in the body and as the last element
    grad.view(np.uint32)[[41, 42, n - 1]] = [0x7fffffff, 0xff80ffff, 0xffffffff]
    state = lm.adam_state(param, "bfloat16")
    ref = {k: v.copy() for k, v in state.items()}
    p_ref = param.copy()
    with np.errstate(all="ignore"):
        lm.adam_lowmem_step(param, grad, state, step=1, backend="cython")
        lm.adam_lowmem_step(p_ref, grad, ref, step=1, backend="numpy")
    for key in state:
        assert np.array_equal(state[key].view(np.uint16), ref[key].view(np.uint16))
    assert np.isnan(state["exp_avg"][0].astype(np.float32))
    assert state["exp_avg_sq"][20].astype(np.float32) > 0     # subnormal kept, not flushed


@pytest.mark.parametrize("n", [20 * 256, 20 * 256 + 77])
def test_int8_special_values_and_dead_blocks_match_the_reference(level, n):
    """At every SIMD level, across consecutive full blocks (the AVX-512 loop searches block
    b - 1's codes while it updates block b) and a partial tail: a block of zero gradients
    (absmax 0: the zero code), a block with a NaN (absmax NaN: index 0), an inf, values
    whose normalized moments fall below 2**-25 and above 2**-1, -0.0 and subnormal
    moments, a block whose v alone is prescaled (m's and v's scales differ), over a few
    steps."""
    rng = np.random.default_rng(7)
    param = rng.standard_normal(n).astype(np.float32)
    base = (rng.standard_normal(n) * np.float32(1e-3)).astype(np.float32)
    base[256:512] = 0                                        # a dead block
    base[512:768] *= np.float32(1e-30)                       # tiny moments, v subnormal
    base[768] = np.nan                                       # a NaN block
    base[1024] = np.inf
    base[1280:1536:2] = -0.0
    base[1536] = 3e30                                        # the rest of its block < 2**-25
    base[1792:2048] *= np.float32(1e-15)                     # only v's absmax < 2**-100
    base[-3:] = [np.nan, -1e-38, 1e-45]                      # the tail
    state = lm.adam_state(param, "int8")
    ref = {k: v.copy() for k, v in state.items()}
    p_ref = param.copy()
    with np.errstate(all="ignore"):
        for t in range(1, 4):
            g = base * np.float32(1 + t)
            lm.adam_lowmem_step(param, g, state, step=t, lr=1e-2, backend="cython")
            lm.adam_lowmem_step(p_ref, g, ref, step=t, lr=1e-2, backend="numpy")
    assert np.array_equal(bits(param), bits(p_ref))
    for key in state:
        assert np.array_equal(bits(state[key]), bits(ref[key])), key
    assert lm.state_kind(state) == "int8"
    assert state["exp_avg_absmax"][1] == 0 and np.isnan(state["exp_avg_absmax"][3])
    assert state["exp_avg_absmax"][7] >= 2.0 ** -100 > state["exp_avg_sq_absmax"][7] > 0


def test_dynamic_map_is_bitsandbytes_scheme():
    signed, unsigned = lm.dynamic_map(True), lm.dynamic_map(False)
    for code, low in ((signed, -1.0), (unsigned, 0.0)):
        assert code.shape == (256,) and code.dtype == np.float32
        assert np.all(np.diff(code) > 0)
        assert code[-1] == 1.0 and 0.0 in code and code[0] >= low
    assert np.sum(signed < 0) == 127 and np.sum(signed > 0) == 128
    torch = pytest.importorskip("torch")
    # bitsandbytes' create_dynamic_map(signed, 7, 8), its formula with torch's linspace
    for is_signed, code in ((True, signed), (False, unsigned)):
        data = []
        for i in range(7):
            items = 2 ** i + 1 if is_signed else 2 ** (i + 1) + 1
            b = torch.linspace(0.1, 1, items, dtype=torch.float32)
            means = (b[:-1] + b[1:]) / 2.0
            data += ((10 ** (-6 + i)) * means).tolist()
            if is_signed:
                data += (-(10 ** (-6 + i)) * means).tolist()
        data += [0, 1.0]
        expected = np.sort(np.array(data, np.float32))
        np.testing.assert_allclose(code, expected, rtol=1e-6, atol=0)


def test_quantize_picks_the_nearest_code(rng):
    x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-9, 1, 5000),
                        [0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    for signed in (True, False):
        values = x if signed else np.abs(x)
        codes, absmax = lm.quantize_blockwise(values, signed)
        code = lm.dynamic_map(signed)
        normalized = np.repeat(np.float32(1) / absmax, lm.BLOCK)[:values.size] * values
        dist = np.abs(code[None, :].astype(np.float64) - normalized[:, None])
        best = dist.min(axis=1)
        chosen = dist[np.arange(values.size), codes]
        # nearest, up to the midpoints' low byte, which holds their index (2**-15 relative)
        assert np.all(chosen <= best + 2.0 ** -15 * np.abs(normalized) + 1e-12)
        back = lm.dequantize_blockwise(codes, absmax, signed)
        assert np.all(np.abs(back - values) <= np.repeat(absmax, lm.BLOCK)[:values.size] * 0.02
                      + 1e-30)


def test_bucket_entries_are_the_thresholds_with_their_index():
    """The kernels compare x with a bucket entry as it is and take its low byte as the count
    of midpoints below the bucket: each threshold's low byte is its own index, the entry of
    a bucket is the next threshold itself (the largest float32 above the last), and the
    thresholds stay sorted and within 2**-15 of the exact midpoints."""
    t = lm.code_tables()
    for code, mid, bucket in ((t[0], t[1], t[6]), (t[2], t[3], t[7])):
        bits = mid.view(np.uint32)
        assert np.array_equal(bits[:255] & 0xFF, np.arange(255))
        assert mid[255] == np.finfo(np.float32).max and bits[255] & 0xFF == 255
        assert np.all(np.diff(mid) > 0)
        exact = (code[:-1].astype(np.float64) + code[1:]) / 2
        assert np.all(np.abs(mid[:255] - exact) <= 2.0 ** -15 * np.abs(exact))
        used = bucket[bucket != 0].view(np.uint32)
        assert np.array_equal(used, bits[used & 0xFF])


AVX512 = [name for name in _lowmem.simd_targets() if name.startswith("avx512")]


@pytest.mark.skipif(not AVX512, reason="the arithmetic search is the AVX-512 loops'")
@pytest.mark.parametrize("name", AVX512)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_decade_search_equals_the_bucket_search_on_every_float32(name, signed):
    """The AVX-512 loops' arithmetic search gives the bucket search's index for every
    float32 bit pattern it can meet (|x| < 2: a normalized value; the unsigned code's
    search also takes every negative), and leaves few lanes to it (near a midpoint)."""
    t = lm.code_tables()
    spans = [(0, 2 ** 30), (2 ** 31, 2 ** 30 if signed else 2 ** 31)]
    previous = _lowmem._select_simd_target(name)
    try:
        results = [_lowmem.decade_search_check(t, signed, first, size // 16)
                   for first, size in spans]
    finally:
        _lowmem._select_simd_target(previous)
    differing = sum(r[0] for r in results)
    assert differing == 0, [hex(r[2]) for r in results if r[0]]
    left = sum(r[1] for r in results)
    assert 0 < left < 2e-3 * sum(size for _, size in spans)


def test_decade_search_table_places_the_midpoints_on_its_lines():
    """The arithmetic search's table: each octave holds at most one region start, a
    midpoint (or the float below one, for x < 0), and t' = |x| * slope - offset of every
    midpoint inside a region lies within eps of the integer that is its count + 1."""
    t = lm.code_tables()
    for mid, zero, table in ((t[1][:255], t[4], t[10]), (t[3][:255], t[5], t[11])):
        assert table.size == lm.DECADE_TABLE == _lowmem.DECADE_TABLE
        assert not table.flags.writeable
        starts = table[:32][np.isfinite(table[:32])]
        assert starts.size == 8
        assert np.all(np.isin(starts, mid) | np.isin(np.nextafter(starts, np.float32(1)),
                                                     np.abs(mid)))
        region = table[32:64].view(np.int32)
        slope, offset, clamp, eps = table[64:80], table[80:96], table[96:112], table[112]
        assert 0 < eps < 0.003
        positive = mid[zero:].astype(np.float64)
        checked = 0
        for exponent in range(102, 128):
            low, high = 2.0 ** (exponent - 127), 2.0 ** (exponent - 126)
            k, start = region[exponent % 32], table[exponent % 32]
            for rank in np.flatnonzero((positive >= low) & (positive < high)):
                x = positive[rank]
                if abs(x - start) <= 1e-6 * x:       # a start: compared, not on a line
                    continue
                r = k + int(x > start)
                t_prime = x * np.float64(slope[r]) - np.float64(offset[r])
                # floor(t') counts the midpoints below x: t' of the midpoint itself is its
                # rank + 1, the count just above it
                assert abs(t_prime - (rank + 1)) < eps and rank + 1 <= clamp[r]
                checked += 1
        assert checked == positive.size - 8


def test_the_bucket_search_alone_gives_the_same_steps(level, search):
    """Adam's 8-bit step with the decade tables (the search selected) and without them (the
    bucket search alone): the same bits, at every SIMD level."""
    n = 40000 + 7
    c = lm._coefficients(3, 1e-2, 0.9, 0.999, 1e-8, 0.01, True, False)
    tables = lm.code_tables()
    out = []
    for t in (tables, tables[:10] + (None, None)):
        p = np.random.default_rng(1).standard_normal(n).astype(np.float32)
        state = lm.adam_state(p, "int8")
        for g in grads(n, 12, 5):
            _lowmem.many("adam", "int8", [p], [g], [[state["exp_avg"]], [state["exp_avg_sq"]]],
                         [[state["exp_avg_absmax"]], [state["exp_avg_sq_absmax"]]], c, t, 2)
        out.append([p] + [state[k] for k in sorted(state)])
    for a, b in zip(*out):
        assert np.array_equal(bits(a), bits(b))


def test_tiny_blocks_quantize_like_normal_ones():
    """A block whose absmax is subnormal (1 / absmax overflows float32) stores the same codes
    as the same block scaled by 2**64: zeros stay on the zero code."""
    x = np.zeros(512, np.float32)
    x[1::3] = np.linspace(-1, 1, x[1::3].size, dtype=np.float32)
    tiny = x * np.float32(2.0 ** -130)
    for signed in (True, False):
        values = x if signed else np.abs(x)
        small = tiny if signed else np.abs(tiny)
        assert np.array_equal(lm.quantize_blockwise(small, signed)[0],
                              lm.quantize_blockwise(values, signed)[0])


def test_state_bytes_per_parameter():
    n = 1 << 20
    param = np.zeros(n, np.float32)
    per = {k: lm.state_nbytes(lm.adam_state(param, k)) / n
           for k in ("float32", "bfloat16", "int8")}
    assert per["float32"] == 8 and per["bfloat16"] == 4
    assert per["int8"] == 2 + 8 / 256


def test_small_arrays_keep_float32_state_and_run_adam(rng):
    param = rng.standard_normal(4095).astype(np.float32)
    state = lm.adam_state(param, "int8")
    assert state["exp_avg"].dtype == np.float32
    p2, m2, v2 = param.copy(), np.zeros_like(param), np.zeros_like(param)
    for t in range(1, 6):
        g = rng.standard_normal(param.size).astype(np.float32)
        lm.adam_lowmem_step(param, g, state, step=t, lr=1e-2)
        fastoptim.adam_step(p2, g, m2, v2, step=t, lr=1e-2)
    assert np.array_equal(param, p2)


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_checkpoint_round_trip_is_bit_exact(kind):
    n = 9000
    gs = grads(n, 20, 3)
    param = np.random.default_rng(4).standard_normal(n).astype(np.float32)
    whole_p, whole_s = param.copy(), lm.adam_state(param, kind)
    for t, g in enumerate(gs, start=1):
        lm.adam_lowmem_step(whole_p, g, whole_s, step=t)
    p, s = param.copy(), lm.adam_state(param, kind)
    for t, g in enumerate(gs[:10], start=1):
        lm.adam_lowmem_step(p, g, s, step=t)
    buffer = io.BytesIO()
    np.savez(buffer, param=p, **s)
    buffer.seek(0)
    with np.load(buffer) as saved:
        p = saved["param"].copy()
        s = lm.restore_state({k: saved[k].copy() for k in s})
    assert all(isinstance(a, np.ndarray) for a in s.values())
    for t, g in enumerate(gs[10:], start=11):
        lm.adam_lowmem_step(p, g, s, step=t)
    assert np.array_equal(bits(p), bits(whole_p))
    for key in s:
        assert np.array_equal(bits(s[key]), bits(whole_s[key]))


_COEFFICIENTS = lm._coefficients


def _bound(t, lr=1e-3, beta1=0.9, beta2=0.999):
    """Adam's per-step change bound lr * C_t * sqrt(1 - beta2^t) / (1 - beta1^t)."""
    c = _COEFFICIENTS(t, lr, beta1, beta2, 1e-8, 0.0, False, False)[-1]
    return lr * c * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)


def _trap(kind, backend="cython"):
    """A block with one large gradient and many small ones; after 20 steps the small ones'
    gradients become exactly 0. Returns the largest per-step change over steps and the
    per-step bounds."""
    n = 8192
    param = np.zeros(n, np.float32)
    state = lm.adam_state(param, kind)
    worst = []
    for t in range(1, 121):
        g = np.full(n, 1e-3, np.float32)
        g[::256] = 10.0
        if t > 20:
            g[np.arange(n) % 256 != 0] = 0.0
        before = param.copy()
        lm.adam_lowmem_step(param, g, state, step=t, lr=1e-3, backend=backend)
        worst.append((np.max(np.abs(param - before)), _bound(t)))
    return worst


@pytest.mark.parametrize("kind", ["float32", "bfloat16", "int8"])
@pytest.mark.parametrize("backend", ["cython", "numba", "numpy"])
def test_zero_gradient_trap_steps_stay_bounded_as_in_float32(kind, backend):
    for change, bound in _trap(kind, backend):
        assert np.isfinite(change)
        assert change <= bound * (1 + 1e-4)


def test_the_trap_exists_without_the_clamp(monkeypatch):
    """The test above can fail: without the |m| <= C_t sqrt(v) clamp, the 8-bit state's
    zero-gradient elements take steps far beyond Adam's bound (unsloth-zoo #962)."""
    real = lm._coefficients
    monkeypatch.setattr(lm, "_coefficients", lambda *a: real(*a)[:-1] + (math.inf,))
    ratios = [change / bound for change, bound in _trap("int8")]
    assert max(ratios) > 100


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_bad_input_is_refused_before_anything_changes(kind, rng):
    n = 5000
    param = rng.standard_normal(n).astype(np.float32)
    grad = rng.standard_normal(n).astype(np.float32)
    state = lm.adam_state(param, kind)
    lm.adam_lowmem_step(param, grad, state, step=1)
    snapshot = (param.copy(), {k: v.copy() for k, v in state.items()})

    def unchanged():
        assert np.array_equal(bits(param), bits(snapshot[0]))
        for k in state:
            assert np.array_equal(bits(state[k]), bits(snapshot[1][k]))

    bad = [
        (dict(grad=grad[:-1]), ValueError, "grad"),
        (dict(grad=grad.astype(np.float64)), ValueError, "grad"),
        (dict(param=param.astype(np.float64)), ValueError, "float32"),
        (dict(step=0), ValueError, "step"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(beta1=1.0), ValueError, "beta1"),
        (dict(beta2=float("nan")), ValueError, "beta2"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay"),
        (dict(maximize="yes"), TypeError, "maximize"),
        (dict(backend="gpu"), ValueError, "backend"),
        (dict(grad=param), ValueError, "overlap"),
        (dict(state={**state, "exp_avg_sq": state["exp_avg_sq"][:-1]}), ValueError,
         "exp_avg_sq"),
        (dict(state={"exp_avg": state["exp_avg"], "exp_avg_sq": state["exp_avg"]}),
         (ValueError, TypeError), "exp_avg|overlap"),
        (dict(grad=np.zeros((n, 2), np.float32)[:, 0]), ValueError, "contiguous"),
    ]
    for change, error, words in bad:
        args = dict(param=param, grad=grad, state=state, step=2)
        args.update(change)
        with pytest.raises(error, match=words):
            lm.adam_lowmem_step(args.pop("param"), args.pop("grad"), args.pop("state"),
                                **args)
        unchanged()
    readonly = param.copy()
    readonly.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        lm.adam_lowmem_step(readonly, grad, state, step=2)
    unchanged()


def test_adam_state_refuses_bad_arguments():
    with pytest.raises(ValueError, match="state_dtype"):
        lm.adam_state(np.zeros(5, np.float32), "int4")
    with pytest.raises(ValueError, match="float32"):
        lm.adam_state(np.zeros(5000), "int8")
    with pytest.raises(TypeError, match="ndarray"):
        lm.adam_state([1.0], "bfloat16")


def test_f_contiguous_parameters_use_their_memory_order(rng):
    a = np.asfortranarray(rng.standard_normal((80, 70)).astype(np.float32))
    g = np.asfortranarray(rng.standard_normal((80, 70)).astype(np.float32))
    flat = a.reshape(-1, order="F").copy()
    s1, s2 = lm.adam_state(a, "int8"), lm.adam_state(flat, "int8")
    lm.adam_lowmem_step(a, g, s1, step=1)
    lm.adam_lowmem_step(flat, g.reshape(-1, order="F").copy(), s2, step=1)
    assert np.array_equal(a.reshape(-1, order="F"), flat)


@pytest.mark.parametrize("kind", ["bfloat16", "int8", "float32"])
def test_class_matches_the_functional_steps_and_checkpoints_bit_exact(kind, rng):
    params = {"w": rng.standard_normal((100, 90)).astype(np.float32),
              "b": rng.standard_normal(90).astype(np.float32)}
    gs = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
          for _ in range(12)]
    ref = {k: v.copy() for k, v in params.items()}
    ref_states = {k: lm.adam_state(v, kind) for k, v in ref.items()}
    opt = lm.LowMemAdamW(params, lr=1e-2, state_dtype=kind)
    for t, g in enumerate(gs[:6], start=1):
        opt.step(g)
        for k in ref:
            lm.adam_lowmem_step(ref[k], g[k], ref_states[k], step=t, lr=1e-2,
                                weight_decay=1e-2, decoupled_weight_decay=True)
    for k in ref:
        assert np.array_equal(params[k], ref[k])
    buffer = io.BytesIO()
    sd = opt.state_dict()
    np.savez(buffer, **{f"{i}/{k}": v for i, s in enumerate(sd["state"]) for k, v in s.items()})
    buffer.seek(0)
    with np.load(buffer) as z:
        loaded = [{k.split("/")[1]: z[k] for k in z.files if k.startswith(f"{i}/")}
                  for i in range(len(sd["state"]))]
    resumed_params = {k: v.copy() for k, v in params.items()}
    resumed = lm.LowMemAdamW(resumed_params, lr=1e-2, state_dtype=kind)
    resumed.load_state_dict(dict(sd, state=loaded))
    for g in gs[6:]:
        opt.step(g)
        resumed.step(g)
    for k in params:
        assert np.array_equal(bits(params[k]), bits(resumed_params[k]))
    for a, b in zip(opt.state, resumed.state):
        for k in a:
            assert np.array_equal(bits(a[k]), bits(b[k]))
    small = 90 * 8 if kind == "float32" else (2 + 8 / 256) * 9000 + 8 * 90
    if kind == "bfloat16":
        small = 4 * 9090
    expected = 8 * 9090 if kind == "float32" else small
    assert opt.state_nbytes() == pytest.approx(expected, rel=0.01)


def test_class_refuses_a_bad_gradient_before_any_update(rng):
    params = [rng.standard_normal(5000).astype(np.float32),
              rng.standard_normal(5000).astype(np.float32)]
    before = [p.copy() for p in params]
    opt = lm.LowMemAdam(params, state_dtype="int8")
    with pytest.raises(ValueError, match="grad"):
        opt.step([np.ones(5000, np.float32), np.ones(4999, np.float32)])
    assert all(np.array_equal(a, b) for a, b in zip(params, before)) and opt.t == 0


def _nan_grads(n, steps=4, seed=3):
    """Gradients with NaNs of both signs (and infinities) in the first half, changing sign
    between steps, so that some operations meet two NaNs of opposite signs (an 8-bit block
    holding a NaN decodes to NaN: the second half stays finite)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        g = rng.standard_normal(n).astype(np.float32)
        g[:n // 2][rng.random(n // 2) < 0.3] = np.nan
        g[:n // 2][rng.random(n // 2) < 0.05] = np.inf
        flip = rng.random(n) < 0.5
        g[flip] = -g[flip] if t % 2 else g[flip]
        out.append(g)
    return out


def _nan_canonical(a):
    """The bits of ``a`` with every NaN made the one quiet NaN: IEEE 754 lets an operation on
    two NaNs return either (compilers commute the operands of + and *), so the sign and
    payload of a NaN are not part of fastoptim's bit-for-bit contract; where NaNs are and
    every other bit are."""
    a = np.ascontiguousarray(a)
    if a.dtype == np.uint8:
        return a
    f = a.astype(np.float32)
    return np.where(np.isnan(f), np.float32(np.nan), f).view(np.uint32)


NAN_STEPS = {
    "adam": (lm.adam_state, lambda p, g, s, t, b: lm.adam_lowmem_step(
        p, g, s, step=t, lr=1e-2, weight_decay=0.1, backend=b)),
    "lion": (lm.lion_state, lambda p, g, s, t, b: lm.lion_lowmem_step(
        p, g, s, lr=1e-2, weight_decay=0.1, backend=b)),
    "momentum": (lm.momentum_state, lambda p, g, s, t, b: lm.momentum_lowmem_step(
        p, g, s, lr=1e-2, momentum=0.9, nesterov=True, backend=b)),
}


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
@pytest.mark.parametrize("name", list(NAN_STEPS))
def test_nan_and_inf_gradients_give_the_same_values_on_every_level_and_backend(name, kind):
    make_state, step = NAN_STEPS[name]
    n = 4099                                    # vector body and a tail
    param0 = np.random.default_rng(4).standard_normal(n).astype(np.float32)
    param0[:n // 2:17] = np.nan
    results = {}
    previous = _lowmem.simd_target()
    try:
        for where in [*_lowmem.simd_targets(), "numba", "numpy"]:
            backend = where if where in ("numba", "numpy") else "cython"
            if backend == "cython":
                _lowmem._select_simd_target(where)
            param = param0.copy()
            state = make_state(param, kind)
            with np.errstate(invalid="ignore", over="ignore"):
                for t, g in enumerate(_nan_grads(n), start=1):
                    step(param, g, state, t, backend)
            results[where] = [param] + [state[k] for k in sorted(state)]
    finally:
        _lowmem._select_simd_target(previous)
    reference = [_nan_canonical(a) for a in results["numpy"]]
    assert np.isnan(results["numpy"][0]).any() and np.isfinite(results["numpy"][0]).any()
    for where, arrays in results.items():
        for a, b in zip(arrays, reference):
            assert np.array_equal(_nan_canonical(a), b), where


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_momentum_takes_dampening_one_as_torch_does(kind, rng):
    """dampening is in [0, 1] (the registry's closed_unit_interval): 1 ignores the gradient
    after the first step, as torch.optim.SGD."""
    param = rng.standard_normal(5000).astype(np.float32)
    state = lm.momentum_state(param, kind)
    ref, ref_state = param.copy(), lm.momentum_state(param, kind)
    g = rng.standard_normal(5000).astype(np.float32)
    for _ in range(3):
        lm.momentum_lowmem_step(param, g, state, lr=0.1, momentum=0.9, dampening=1.0)
        lm.momentum_lowmem_step(ref, g, ref_state, lr=0.1, momentum=0.9, dampening=1.0,
                                backend="numpy")
    assert np.array_equal(param, ref)
    with pytest.raises(ValueError, match=r"dampening must be in \[0, 1\]"):
        lm.momentum_lowmem_step(param, g, state, lr=0.1, momentum=0.9, dampening=1.5)


@pytest.mark.parametrize("step, names", [
    (lambda p, g, s: lm.adam_lowmem_step(p, g, s, step=1, lr=1e-3), ("exp_avg", "exp_avg_sq")),
    (lambda p, g, s: lm.lion_lowmem_step(p, g, s, lr=1e-3), ("exp_avg",)),
    (lambda p, g, s: lm.momentum_lowmem_step(p, g, s, lr=1e-3), ("momentum_buffer",)),
])
def test_a_state_that_is_not_an_array_is_refused_by_name(step, names):
    param = np.ones(5000, np.float32)
    state = {name: [0.0] * 5000 for name in names}
    with pytest.raises(TypeError, match=f"{names[0]} must be a numpy.ndarray, got list"):
        step(param, np.ones(5000, np.float32), state)
    assert (param == 1).all()


# rule -> (new state, the many-array step, the one-array public step, hyperparameters)
MANY_RULES = {
    "adam": (lm.adam_state, lm._adam_apply_many, lm.adam_lowmem_step,
             dict(lr=1e-2, beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1,
                  decoupled_weight_decay=False, maximize=False)),
    "lion": (lm.lion_state, lm._lion_apply_many, lm.lion_lowmem_step,
             dict(lr=1e-2, beta1=0.8, beta2=0.95, weight_decay=0.1, maximize=True)),
    "momentum": (lm.momentum_state, lm._momentum_apply_many, lm.momentum_lowmem_step,
                 dict(lr=1e-2, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.1,
                      maximize=False)),
    "momentum-dampened": (lm.momentum_state, lm._momentum_apply_many, lm.momentum_lowmem_step,
                          dict(lr=1e-2, momentum=0.9, dampening=0.3, nesterov=False,
                               weight_decay=0.0, maximize=True)),
    "rmsprop": (lambda p, k: lm.rmsprop_state(p, k), lm._rmsprop_apply_many,
                lm.rmsprop_lowmem_step,
                dict(lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.0,
                     centered=False, maximize=False, eps_root=0.0)),
    "rmsprop-centered-momentum": (
        lambda p, k: lm.rmsprop_state(p, k, momentum=True, centered=True),
        lm._rmsprop_apply_many, lm.rmsprop_lowmem_step,
        dict(lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.0, momentum=0.5, centered=True,
             maximize=True, eps_root=1e-8)),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("rule, kind", [   # RMSprop's int8 state is the generic chunked one
    (r, k) for r in MANY_RULES for k in ("bfloat16", "int8")
    if not (r.startswith("rmsprop") and k == "int8")])
def test_many_arrays_in_one_call_equal_one_call_each(level, rule, kind, threads):
    """lowmem._*_apply_many (the classes' step on a group's arrays: _lowmem.many) gives every
    array the bits of the public one-array step on it alone: sizes under one item, with
    tails, over several items of 32768 (shared out between the threads across arrays), an
    empty array, F-ordered arrays; float states (int8's small arrays) on the float kernel."""
    make_state, many, one, hyper = MANY_RULES[rule]
    rng = np.random.default_rng(8)
    sizes = [4099, 0, 2 * 32768 + 517, 5000, 100, 32768, 4096 + 31, (70, 90), (30, 20)]
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    params[-2:] = [np.asfortranarray(p) for p in params[-2:]]     # stepped in memory order
    start = [p.copy() for p in params]
    alone = [p.copy(order="K") for p in params]
    states = [make_state(p, kind) for p in params]
    alone_states = [make_state(p, kind) for p in params]
    before = fastoptim.get_num_threads()
    fastoptim.set_num_threads(threads)
    try:
        for t in range(1, 5):
            grads = [np.asarray(rng.standard_normal(p.shape) * 10.0 ** rng.integers(-6, 1),
                                np.float32, order="A" if p.ndim == 1 else "F")
                     for p in params]
            for g in grads:
                g.reshape(-1, order="A")[: g.size // 3] = 0     # zero gradients: the clamp
            step = dict(step=t) if rule == "adam" else {}
            many(params, grads, lm._columns(states), backend="cython", **step, **hyper)
            for p, g, s in zip(alone, grads, alone_states):
                one(p, g, s, backend="cython", **step, **hyper)
    finally:
        fastoptim.set_num_threads(before)
    for p, q, s, r in zip(params, alone, states, alone_states):
        assert np.array_equal(bits(p), bits(q))
        assert set(s) == set(r) and all(np.array_equal(bits(s[k]), bits(r[k])) for k in s)
    assert all(not np.array_equal(p, q) for p, q in zip(params, start) if p.size)


def test_class_refuses_arrays_that_share_memory(rng):
    """Two parameters in one buffer, or a gradient that is a parameter (or its state), would
    be updated twice or read after being written: refused, nothing changed."""
    q = rng.standard_normal(5000).astype(np.float32)
    with pytest.raises(ValueError, match=r"LowMemAdam: params\[0\] and params\[1\] share"):
        lm.LowMemAdam([q, q])
    with pytest.raises(ValueError, match="share memory"):
        lm.LowMemAdam([q[:3000], q[2000:]])
    a, b = q[:4500].copy(), rng.standard_normal(5000).astype(np.float32)
    c, d = rng.standard_normal(100).astype(np.float32), np.ones(100, np.float32)
    params = [a, b, c, d]           # a, b: int8 state; c, d: float32 state (< 4096)
    before = [p.copy() for p in params]
    opt = lm.LowMemAdam(params, state_dtype="int8")
    fresh = opt.state_dict()["state"]
    ones = [np.ones_like(p) for p in params]
    for i, grad, message in [
            (0, b[:4500], r"grads\[0\] shares memory with params\[1\]"),
            (2, d, r"grads\[2\] shares memory with params\[3\]"),
            (3, opt.state[2]["exp_avg_sq"],
             r"grads\[3\] shares memory with the exp_avg_sq of params\[2\]"),
            (1, b, "param, grad and the state arrays must not overlap")]:
        with pytest.raises(ValueError, match=message):
            opt.step(ones[:i] + [grad] + ones[i + 1:])
    assert all(np.array_equal(x, y) for x, y in zip(params, before)) and opt.t == 0
    assert all(np.array_equal(s[k], f[k]) for s, f in zip(opt.state, fresh) for k in s)
    opt.step([np.ones_like(p) for p in params])     # gradients may share memory: allowed
    opt.step([np.ones(5000, np.float32)[:4500], np.ones(5000, np.float32)] + [d.copy()] * 2)
    assert opt.t == 2


def test_class_load_state_dict_checks_everything_before_changing_anything(rng):
    params = [rng.standard_normal(5000).astype(np.float32)]
    opt = lm.LowMemAdam(params, state_dtype="int8")
    opt.step([rng.standard_normal(5000).astype(np.float32)])
    good = opt.state_dict()
    other = lm.LowMemAdam([p.copy() for p in params], state_dtype="int8")
    snapshot = other.state_dict()
    bad = [({k: v for k, v in good.items() if k != "t"}, ValueError, r"no \['t'\]"),
           (dict(good, t=-1), ValueError, "t must be in"),
           (dict(good, t=2.5), ValueError, "t must be an integer"),
           (dict(good, hyper=dict(good["hyper"], beta1=5.0)), ValueError, "beta1"),
           (dict(good, hyper=dict(good["hyper"], eps=-1.0)), ValueError, "eps"),
           (dict(good, hyper=dict(good["hyper"], eps=1e-50)), ValueError, "underflows"),
           (dict(good, hyper=dict(good["hyper"], momentum=0.9)), ValueError, "momentum"),
           (dict(good, state=[dict(good["state"][0], exp_avg=[0] * 5000)]), ValueError,
            r"exp_avg is int64\(5000,\), expected uint8"),
           ([1, 2], TypeError, "state_dict must be a dict")]
    for sd, error, message in bad:
        with pytest.raises(error, match=message):
            other.load_state_dict(sd)
        now = other.state_dict()
        assert now["t"] == 0 and now["hyper"] == snapshot["hyper"]
        assert all(np.array_equal(now["state"][0][k], snapshot["state"][0][k])
                   for k in now["state"][0])
    other.load_state_dict(good)
    assert other.t == 1 and other.hyper == opt.hyper


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402


@given(n=st.integers(4096, 6000), scale=st.integers(-40, 10), seed=st.integers(0, 2**31),
       kind=st.sampled_from(["bfloat16", "int8"]), zeros=st.floats(0, 1))
def test_property_compiled_equals_reference(n, scale, seed, kind, zeros):
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(n).astype(np.float32)
    states = {b: lm.adam_state(param, kind) for b in ("cython", "numpy")}
    params = {b: param.copy() for b in states}
    for t in range(1, 4):
        g = (rng.standard_normal(n) * 10.0 ** scale).astype(np.float32)
        g[rng.random(n) < zeros] = 0
        for b in states:
            lm.adam_lowmem_step(params[b], g, states[b], step=t, lr=1e-2, backend=b)
    assert np.array_equal(bits(params["cython"]), bits(params["numpy"]))
    for key in states["numpy"]:
        assert np.array_equal(bits(states["cython"][key]), bits(states["numpy"][key]))


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_a_compiled_step_allocates_o1_memory(kind):
    import tracemalloc
    n = 1 << 20
    param = np.zeros(n, np.float32)
    grad = np.ones(n, np.float32)
    state = lm.adam_state(param, kind)
    lm.adam_lowmem_step(param, grad, state, step=1, backend="cython")     # warm caches
    tracemalloc.start()
    try:
        lm.adam_lowmem_step(param, grad, state, step=2, backend="cython")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024          # n = 1M elements: no temporary array (4 MB each)


def run_lion(n, backend, steps=20, kind="bfloat16", **hyper):
    param = np.random.default_rng(5).standard_normal(n).astype(np.float32)
    state = lm.lion_state(param, kind)
    for g in grads(n, steps, 9):
        lm.lion_lowmem_step(param, g, state, lr=1e-2, backend=backend, **hyper)
    return param, state


@pytest.mark.parametrize("hyper", [dict(), dict(weight_decay=0.1, maximize=True, beta1=0.5)])
@pytest.mark.parametrize("kind, n", [("bfloat16", n) for n in SIZES_BF16]
                         + [("int8", n) for n in SIZES_INT8])
def test_lion_compressed_matches_the_reference_bit_for_bit(level, kind, n, hyper):
    ref_p, ref_s = run_lion(n, "numpy", kind=kind, **hyper)
    assert lm.state_kind(ref_s) == kind
    for backend in ("cython", "numba"):
        p, s = run_lion(n, backend, kind=kind, **hyper)
        assert np.array_equal(bits(p), bits(ref_p)), backend
        for key in ref_s:
            assert np.array_equal(bits(s[key]), bits(ref_s[key])), (backend, key)


def test_lion_bfloat16_is_lion_up_to_the_moment_rounding(rng):
    """One step from a zero moment: the bfloat16 state and fastoptim.lion_step agree on the
    parameters exactly (the moment is only read after rounding on the next step)."""
    param = rng.standard_normal(1000).astype(np.float32)
    grad = rng.standard_normal(1000).astype(np.float32)
    p2, m2 = param.copy(), np.zeros_like(param)
    state = lm.lion_state(param)
    lm.lion_lowmem_step(param, grad, state, lr=1e-3, weight_decay=0.1)
    fastoptim.lion_step(p2, grad, m2, lr=1e-3, weight_decay=0.1)
    assert np.array_equal(param, p2)
    assert np.array_equal(state["exp_avg"], m2.astype(BF16))
    assert lm.state_nbytes(state) == 2 * param.size


def test_lion_refuses_bad_input_before_anything_changes(rng):
    param = rng.standard_normal(100).astype(np.float32)
    state = lm.lion_state(param)
    before = param.copy()
    for kwargs, error in ((dict(grad=np.ones(99, np.float32)), ValueError),
                          (dict(lr=-1.0), ValueError), (dict(beta2=1.0), ValueError),
                          (dict(grad=param), ValueError), (dict(backend="x"), ValueError)):
        args = dict(grad=np.ones(100, np.float32))
        args.update(kwargs)
        with pytest.raises(error, match="lion_lowmem_step"):
            lm.lion_lowmem_step(param, args.pop("grad"), state, **args)
    assert np.array_equal(param, before) and not state["exp_avg"].astype(np.float32).any()


@pytest.mark.parametrize("n", [48, 48 + 5])
def test_lion_bfloat16_special_values_match_the_reference(level, n):
    """sign(0) = 0, NaN and inf gradients, a subnormal moment: at every SIMD level, in the
    vector body and the tail, bit for bit with the NumPy reference."""
    grad = np.full(n, 1e-37, np.float32)            # moment (1 - beta2) * 1e-37: subnormal
    special = [0.0, -0.0, np.nan, -np.inf, np.inf, 3e38, -1e-40, 0.5]
    grad[:8] = special
    grad[-8:] = special
    out = []
    for backend in ("numpy", "cython"):
        param = np.linspace(-1, 1, n).astype(np.float32)
        state = lm.lion_state(param, "bfloat16")
        # -0 moments and parameters where the gradient is -0: e = -0, whose sign is +0
        # (p - lr * (+0) keeps p = -0; a sign of -0 would make it +0)
        state["exp_avg"].view(np.uint16)[[1, n - 7]] = 0x8000
        param[[1, n - 7]] = -0.0
        with np.errstate(all="ignore"):
            for _ in range(2):
                lm.lion_lowmem_step(param, grad, state, lr=1e-2, weight_decay=0.1,
                                    backend=backend)
        out.append((param, state["exp_avg"]))
    (ref_p, ref_m), (p, m) = out
    assert np.array_equal(bits(p), bits(ref_p))
    assert np.array_equal(bits(m), bits(ref_m))
    assert np.any((ref_m.view(np.uint16)[8:-8] & 0x7f80) == 0)    # subnormals kept


# ---- SGD with momentum, bfloat16 buffer -----------------------------------------------------
def run_momentum(n, backend, steps=12, kind="bfloat16", **hyper):
    param = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    state = lm.momentum_state(param, kind)
    for t, g in enumerate(grads(n, steps, 4), start=1):
        lm.momentum_lowmem_step(param, g, state, lr=1e-2, backend=backend, **hyper)
    return param, state


MOMENTUM_OPTIONS = [dict(), dict(nesterov=True, weight_decay=0.1),
                    dict(dampening=0.9, momentum=0.9, maximize=True), dict(momentum=0.0)]


@pytest.mark.parametrize("hyper", MOMENTUM_OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("kind, n", [("bfloat16", n) for n in SIZES_BF16]
                         + [("int8", n) for n in SIZES_INT8])
def test_momentum_compressed_matches_the_reference_bit_for_bit(level, kind, n, hyper):
    ref_p, ref_s = run_momentum(n, "numpy", kind=kind, **hyper)
    assert lm.state_kind(ref_s) == kind
    for backend in ("cython", "numba"):
        p, s = run_momentum(n, backend, kind=kind, **hyper)
        assert np.array_equal(bits(p), bits(ref_p)), backend
        for key in ref_s:
            assert np.array_equal(bits(s[key]), bits(ref_s[key])), (backend, key)


@pytest.mark.parametrize("n", [20 * 256, 20 * 256 + 77])
def test_momentum_int8_special_values_match_the_reference(level, n):
    """A dead block (absmax 0), a NaN block, an inf, tiny (prescaled) and huge values, at
    every SIMD level, in full blocks and the partial tail."""
    rng = np.random.default_rng(8)
    base = (rng.standard_normal(n) * np.float32(1e-3)).astype(np.float32)
    base[256:512] = 0
    base[512:768] *= np.float32(1e-33)
    base[768], base[1024], base[1536] = np.nan, np.inf, 3e30
    base[-3:] = [np.nan, -1e-38, 1e-45]
    out = []
    for backend in ("numpy", "cython"):
        param = np.random.default_rng(9).standard_normal(n).astype(np.float32)
        param[256:512] = 0
        state = lm.momentum_state(param, "int8")
        with np.errstate(all="ignore"):
            for t in range(1, 4):
                lm.momentum_lowmem_step(param, base * np.float32(t), state, lr=1e-2,
                                        nesterov=True, backend=backend)
        out.append((param, state))
    (ref_p, ref_s), (p, s) = out
    assert np.array_equal(bits(p), bits(ref_p))
    for key in ref_s:
        assert np.array_equal(bits(s[key]), bits(ref_s[key])), key
    assert s["momentum_buffer_absmax"][1] == 0 and np.isnan(s["momentum_buffer_absmax"][3])


def test_momentum_bfloat16_is_momentum_step_up_to_the_buffer_rounding(rng):
    """Each step: fastoptim.momentum_step on the rounded buffer gives the same parameters,
    and its buffer rounded is the stored one."""
    param = rng.standard_normal(1000).astype(np.float32)
    p2, v2 = param.copy(), np.zeros_like(param)
    state = lm.momentum_state(param)
    for t in range(5):
        grad = rng.standard_normal(1000).astype(np.float32)
        lm.momentum_lowmem_step(param, grad, state, lr=1e-2, momentum=0.9, nesterov=True)
        fastoptim.momentum_step(p2, grad, v2, lr=1e-2, momentum=0.9, nesterov=True)
        assert np.array_equal(param, p2)
        assert np.array_equal(state["momentum_buffer"], v2.astype(BF16))
        v2[...] = v2.astype(BF16).astype(np.float32)
    assert lm.state_nbytes(state) == 2 * param.size


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_momentum_result_does_not_depend_on_the_thread_count(kind):
    n = 200_001
    out = []
    for threads in (1, 2):
        with _num_threads(threads):
            param = np.linspace(-1, 1, n).astype(np.float32)
            if kind == "bfloat16":
                state = lm.momentum_state(param)
                for g in grads(n, 3, 5):
                    lm.momentum_lowmem_step(param, g, state, lr=1e-2, nesterov=True)
                out.append((param, state["momentum_buffer"]))
            else:
                opt = fastoptim.SGD([param], lr=1e-2, momentum=0.9, state_dtype="int8")
                for g in grads(n, 3, 5):
                    opt.step([g])
                out.append((param, opt._state["momentum_buffer"][0]))
    assert np.array_equal(bits(out[0][0]), bits(out[1][0]))
    assert np.array_equal(bits(out[0][1]), bits(out[1][1]))


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_lion_result_does_not_depend_on_the_thread_count(kind):
    """Over several OpenMP work items (32768 elements each) and a partial block."""
    n = 200_001
    out = []
    for threads in (1, 2):
        with _num_threads(threads):
            param = np.linspace(-1, 1, n).astype(np.float32)
            state = lm.lion_state(param, kind)
            for g in grads(n, 3, 5):
                lm.lion_lowmem_step(param, g, state, lr=1e-3, weight_decay=0.1)
            out.append((param, state))
    assert np.array_equal(bits(out[0][0]), bits(out[1][0]))
    for key in out[0][1]:
        assert np.array_equal(bits(out[0][1][key]), bits(out[1][1][key])), key


class _num_threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.before = fastoptim.get_num_threads()
        fastoptim.set_num_threads(self.n)

    def __exit__(self, *exc):
        fastoptim.set_num_threads(self.before)


def test_momentum_refuses_bad_input_before_anything_changes(rng):
    param = rng.standard_normal(100).astype(np.float32)
    state = lm.momentum_state(param)
    before = param.copy()
    for kwargs, error in ((dict(grad=np.ones(99, np.float32)), ValueError),
                          (dict(lr=-1.0), ValueError), (dict(dampening=1.5), ValueError),
                          (dict(nesterov=True, dampening=0.5), ValueError),
                          (dict(momentum=float("nan")), ValueError),
                          (dict(grad=param), ValueError), (dict(backend="x"), ValueError)):
        args = dict(grad=np.ones(100, np.float32), lr=0.1)
        args.update(kwargs)
        with pytest.raises(error, match="momentum_lowmem_step"):
            lm.momentum_lowmem_step(param, args.pop("grad"), state, **args)
    with pytest.raises(ValueError, match="int8 state needs at least 4096"):
        lm.momentum_lowmem_step(param, np.ones(100, np.float32),
                                {"momentum_buffer": np.zeros(100, np.uint8)}, lr=0.1)
    big = rng.standard_normal(5000).astype(np.float32)
    q8 = lm.momentum_state(big, "int8")
    with pytest.raises(ValueError, match="momentum_buffer_absmax must hold 20 elements"):
        lm.momentum_lowmem_step(big, np.ones(5000, np.float32),
                                {"momentum_buffer": q8["momentum_buffer"],
                                 "momentum_buffer_absmax": np.zeros(19, np.float32)}, lr=0.1)
    with pytest.raises(ValueError, match="state_dtype must be one of"):
        lm.momentum_state(param, "int4")
    assert np.array_equal(param, before) and not state["momentum_buffer"].astype(np.float32).any()


@pytest.mark.parametrize("n", [48, 48 + 5])
def test_momentum_bfloat16_special_values_match_the_reference(level, n):
    """NaN and inf gradients, overflow, subnormal buffers: at every SIMD level, in the vector
    body and the tail, bit for bit with the NumPy reference."""
    grad = np.full(n, 1e-39, np.float32)            # a subnormal buffer
    special = [0.0, -0.0, np.nan, -np.inf, np.inf, 3e38, -1e-40, 0.5]
    grad[:8] = special
    grad[-8:] = special
    out = []
    for backend in ("numpy", "cython"):
        param = np.linspace(-1, 1, n).astype(np.float32)
        state = lm.momentum_state(param)
        with np.errstate(all="ignore"):
            for _ in range(3):
                lm.momentum_lowmem_step(param, grad, state, lr=1e-2, momentum=0.9,
                                        nesterov=True, backend=backend)
        out.append((param, state["momentum_buffer"]))
    (ref_p, ref_v), (p, v) = out
    assert np.array_equal(bits(p), bits(ref_p))
    assert np.array_equal(bits(v), bits(ref_v))
    assert np.any((ref_v.view(np.uint16)[8:-8] & 0x7f80) == 0)    # subnormals kept


# ---- RMSprop, bfloat16 buffers --------------------------------------------------------------
RMSPROP_OPTIONS = [dict(), dict(centered=True, momentum=0.9, weight_decay=0.1),
                   dict(momentum=0.5, maximize=True, alpha=0.9),
                   dict(centered=True, eps=0.0, eps_root=1e-8),
                   dict(eps_root=1e-6, momentum=0.9)]


def run_rmsprop(n, backend, grad_list, **hyper):
    param = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    state = lm.rmsprop_state(param, momentum=hyper.get("momentum", 0) > 0,
                             centered=hyper.get("centered", False))
    with np.errstate(all="ignore"):
        for g in grad_list:
            lm.rmsprop_lowmem_step(param, g, state, lr=1e-2, backend=backend, **hyper)
    return param, state


@pytest.mark.parametrize("hyper", RMSPROP_OPTIONS, ids=lambda o: ",".join(o) or "default")
@pytest.mark.parametrize("n", SIZES_BF16)
def test_rmsprop_bfloat16_matches_the_reference_bit_for_bit(level, n, hyper):
    gs = grads(n, 12, 6)
    ref_p, ref_s = run_rmsprop(n, "numpy", gs, **hyper)
    assert all(a.dtype == BF16 for a in ref_s.values())
    for backend in ("cython", "numba"):
        p, s = run_rmsprop(n, backend, gs, **hyper)
        assert np.array_equal(bits(p), bits(ref_p)), backend
        for key in ref_s:
            assert np.array_equal(bits(s[key]), bits(ref_s[key])), (backend, key)


@pytest.mark.parametrize("n", [48, 48 + 5])
def test_rmsprop_bfloat16_special_values_match_the_reference(level, n):
    """NaN and inf gradients, overflow, subnormal buffers, a zero gradient over eps = 0 with
    eps_root: at every SIMD level, in the vector body and the tail."""
    grad = np.full(n, 1e-39, np.float32)
    special = [0.0, -0.0, np.nan, -np.inf, np.inf, 3e38, -1e-40, 0.5]
    grad[:8] = special
    grad[-8:] = special
    hyper = dict(centered=True, momentum=0.9, alpha=0.5)
    ref = run_rmsprop(n, "numpy", [grad] * 3, **hyper)
    out = run_rmsprop(n, "cython", [grad] * 3, **hyper)
    assert np.array_equal(bits(out[0]), bits(ref[0]))
    for key in ref[1]:
        assert np.array_equal(bits(out[1][key]), bits(ref[1][key])), key


def test_rmsprop_bfloat16_is_rmsprop_step_up_to_the_buffer_rounding(rng):
    param = rng.standard_normal(1000).astype(np.float32)
    p2 = param.copy()
    s2, b2, a2 = (np.zeros_like(param) for _ in range(3))
    state = lm.rmsprop_state(param, momentum=True, centered=True)
    for t in range(5):
        grad = rng.standard_normal(1000).astype(np.float32)
        lm.rmsprop_lowmem_step(param, grad, state, momentum=0.9, centered=True)
        fastoptim.rmsprop_step(p2, grad, s2, momentum=0.9, momentum_buffer=b2, centered=True,
                               grad_avg=a2)
        assert np.array_equal(param, p2)
        for key, ref in (("square_avg", s2), ("momentum_buffer", b2), ("grad_avg", a2)):
            assert np.array_equal(state[key], ref.astype(BF16))
            ref[...] = ref.astype(BF16).astype(np.float32)


def test_rmsprop_refuses_bad_input_before_anything_changes(rng):
    param = rng.standard_normal(100).astype(np.float32)
    state = lm.rmsprop_state(param, momentum=True)
    before = param.copy()
    for kwargs, error in ((dict(grad=np.ones(99, np.float32)), ValueError),
                          (dict(lr=-1.0), ValueError), (dict(alpha=1.5), ValueError),
                          (dict(eps=0.0), ValueError), (dict(eps=1e-50), ValueError),
                          (dict(momentum=0.0), TypeError),        # state has a buffer
                          (dict(centered=True), TypeError),       # state has no grad_avg
                          (dict(grad=param), ValueError), (dict(backend="x"), ValueError)):
        args = dict(grad=np.ones(100, np.float32), momentum=0.9)
        args.update(kwargs)
        with pytest.raises(error, match="rmsprop_lowmem_step"):
            lm.rmsprop_lowmem_step(param, args.pop("grad"), state, **args)
    assert np.array_equal(param, before)
    assert not any(a.astype(np.float32).any() for a in state.values())
    with pytest.raises(ValueError, match="state_dtype must be one of"):
        lm.rmsprop_state(param, "int8")


def test_rmsprop_result_does_not_depend_on_the_thread_count():
    n = 200_001
    out = []
    for threads in (1, 2):
        with _num_threads(threads):
            out.append(run_rmsprop(n, "cython", grads(n, 3, 7), centered=True, momentum=0.9))
    assert np.array_equal(bits(out[0][0]), bits(out[1][0]))
    for key in out[0][1]:
        assert np.array_equal(bits(out[0][1][key]), bits(out[1][1][key]))


@pytest.mark.parametrize("rule, kind", [(r, k) for r in ("adam", "lion", "momentum")
                                         for k in ("bfloat16", "int8")]
                         + [("rmsprop", "bfloat16")])     # (int8 RMSprop: the class's chunks)
def test_numba_twins_allocate_nothing_per_element(rule, kind):
    """The Numba twins' bit casts are register moves (numba_kernels._common.float32_bits):
    a step of 20,000 elements makes a handful of Numba allocations (the parallel loop's),
    not one or two per element as a 1-element array per cast would (Numba's allocator, which
    tracemalloc does not see, counted by its own statistics)."""
    from numba.core.runtime import _nrt_python as nrt
    n = 20000
    rng = np.random.default_rng(3)
    param = rng.standard_normal(n).astype(np.float32)
    grad = rng.standard_normal(n).astype(np.float32)
    if rule == "rmsprop":
        state = lm.rmsprop_state(param, kind, momentum=True, centered=True)
        opts = dict(momentum=0.9, centered=True)
    else:
        state = getattr(lm, f"{rule}_state")(param, kind)
        opts = dict(step=1) if rule == "adam" else {}
    step = getattr(lm, f"{rule}_lowmem_step")
    step(param, grad, state, lr=1e-3, backend="numba", **opts)      # compiled, warm
    before = param.copy()
    was_on = nrt.memsys_stats_enabled()
    nrt.memsys_enable_stats()
    try:
        first = nrt.memsys_get_stats_alloc()
        step(param, grad, state, lr=1e-3, backend="numba", **opts)
        made = nrt.memsys_get_stats_alloc() - first
    finally:
        if not was_on:
            nrt.memsys_disable_stats()
    assert not np.array_equal(param, before)            # the step ran
    assert made < 64, made


@pytest.mark.parametrize("signed", [True, False])
def test_numba_bucket_search_is_the_nearest_code(signed):
    """The Numba twins' search (numba_kernels.lowmem._index, csrc/quant8.h's q8_index: the
    bucket table and one comparison) gives lowmem._nearest's index for every midpoint, the
    floats either side of it, 2 million random bit patterns (NaNs, huge and subnormal values
    among them) and a dense grid over [-2, 2]."""
    import numba
    from fastoptim.numba_kernels import lowmem as nb

    @numba.njit
    def search(xs, bucket, shift, out):
        for i in range(xs.size):
            out[i] = nb._index(bucket, shift, xs[i])

    t = lm.code_tables()
    mid, bucket, shift = (t[1], t[6], t[8]) if signed else (t[3], t[7], t[9])
    mid = mid[:255]
    rng = np.random.default_rng(5)
    random_bits = rng.integers(0, 2 ** 32, size=2_000_000, dtype=np.uint64).astype(np.uint32)
    xs = np.concatenate([mid, -mid, np.nextafter(mid, np.float32(2)),
                         np.nextafter(mid, np.float32(-2)), random_bits.view(np.float32),
                         np.linspace(-2, 2, 1_000_001, dtype=np.float32),
                         np.array([0.0, -0.0, np.nan, 1e-45, -1e-45], np.float32)])
    xs = xs[np.abs(xs) != np.inf]       # inf never reaches a search (x * (1 / absmax))
    out = np.empty(xs.size, np.uint8)
    search(xs, bucket, shift, out)
    with np.errstate(invalid="ignore"):
        expected = lm._nearest(xs, signed)
    assert np.array_equal(out, expected)
