"""``state_dtype=`` on the optimizer classes (Adam, AdamW, Lion): compressed moments through
the classes, bit for bit with fastoptim.lowmem's functional steps, with everything the
classes promise (groups, None gradients, skip_nonfinite, schedules, state dicts,
checkpoints, errors that change nothing)."""
import tracemalloc

import numpy as np
import pytest

import fastoptim
from fastoptim import lowmem as lm

BACKENDS = ["cython", "numba", "numpy"]
# sizes: under MIN_8BIT_SIZE (int8 keeps float32), a vector body plus a tail, blocks plus a
# partial block; one 2-D array in Fortran order
SHAPES = [(100,), (4096 + 7,), (70, 90)]


def arrays(seed=0, order="C"):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    out[2] = np.asarray(out[2], order=order)
    return out


def grads(step, seed=1, order="C"):
    rng = np.random.default_rng(seed * 1000 + step)
    g = [(rng.standard_normal(s) * 1e-2).astype(np.float32) for s in SHAPES]
    g[2] = np.asarray(g[2], order=order)
    g[1][:50] = 0.0                                  # exactly zero gradients (the trap)
    return g


CASES = [("Adam", "bfloat16", {}), ("Adam", "int8", {}),
         ("Adam", "int8", dict(weight_decay=0.1, maximize=True, betas=(0.8, 0.99))),
         ("AdamW", "bfloat16", {}), ("AdamW", "int8", dict(weight_decay=0.05, eps=1e-6)),
         ("Lion", "bfloat16", {}), ("Lion", "bfloat16", dict(weight_decay=0.1, maximize=True)),
         ("Lion", "int8", {}), ("Lion", "int8", dict(weight_decay=0.1, maximize=True))]


def case_id(c):
    return f"{c[0]}-{c[1]}-" + (",".join(c[2]) or "default")


def functional(name, kind, opts, params, steps, lr, order="C", backend="auto"):
    """The same run through fastoptim.lowmem's functional steps."""
    opts = dict(opts, backend=backend)
    beta1, beta2 = opts.pop("betas", (0.9, 0.99) if name == "Lion" else (0.9, 0.999))
    if name == "Lion":
        states = [lm.lion_state(p, kind) for p in params]
        for t in range(1, steps + 1):
            for p, g, s in zip(params, grads(t, order=order), states):
                lm.lion_lowmem_step(p, g, s, lr=lr, beta1=beta1, beta2=beta2, **opts)
        return states
    if name == "AdamW":
        opts.setdefault("weight_decay", 1e-2)
        opts["decoupled_weight_decay"] = True
    states = [lm.adam_state(p, kind) for p in params]
    for t in range(1, steps + 1):
        for p, g, s in zip(params, grads(t, order=order), states):
            lm.adam_lowmem_step(p, g, s, step=t, lr=lr, beta1=beta1, beta2=beta2, **opts)
    return states


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_class_matches_the_functional_steps_bit_for_bit(case, backend):
    name, kind, opts = case
    lr = 1e-3
    mine, ref = arrays(order="F"), arrays(order="F")
    opt = getattr(fastoptim, name)(mine, lr=lr, backend=backend, state_dtype=kind, **opts)
    for t in range(1, 21):
        opt.step(grads(t, order="F"))
    states = functional(name, kind, opts, ref, 20, lr, order="F", backend=backend)
    assert opt.t == 20 and opt.state_dtype == kind
    for i, (p, q, s) in enumerate(zip(mine, ref, states)):
        assert np.array_equal(bits(p), bits(q)), i
        assert not np.array_equal(p, arrays(order="F")[i])
        for key, value in s.items():
            assert np.array_equal(bits(opt._state[key][i]), bits(value)), (i, key)
    sd = opt.state_dict()["state"]
    if kind == "int8":
        assert sd["exp_avg"][0].dtype == np.float32          # 100 elements: float32 kept
        assert sd["exp_avg"][1].dtype == np.uint8 and sd["exp_avg_absmax"][1].size == 17
    if kind == "bfloat16":
        assert sd["exp_avg"][1].dtype == lm.bfloat16


def test_float_state_dtype_is_the_default_state():
    a, b = arrays(), arrays()
    o1 = fastoptim.Adam(a, lr=1e-2)
    o2 = fastoptim.Adam(b, lr=1e-2, state_dtype="float32")
    for t in range(1, 6):
        o1.step(grads(t))
        o2.step(grads(t))
    for p, q in zip(a, b):
        assert np.array_equal(p, q)
    assert o2.state_dtype == "float32" and o2.state_nbytes() == 8 * sum(p.size for p in a)
    with pytest.raises(ValueError, match="state_dtype 'float32' needs float32"):
        fastoptim.Adam([np.zeros(10)], state_dtype="float32")


def test_bytes_per_parameter():
    n = 1 << 20
    per_param = {}
    for kind in (None, "bfloat16", "int8"):
        opt = fastoptim.Adam([np.zeros(n, np.float32)], state_dtype=kind)
        per_param[kind] = opt.state_nbytes() / n
    assert per_param == {None: 8.0, "bfloat16": 4.0, "int8": 2 + 8 / 256}
    lion = fastoptim.Lion([np.zeros(n, np.float32)], state_dtype="bfloat16")
    assert lion.state_nbytes() == 2 * n


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_groups_none_gradients_schedules_and_skip_nonfinite(kind):
    mine, ref = arrays(), arrays()
    schedule = fastoptim.schedules.exponential_decay(1e-2, 0.9)
    opt = fastoptim.Adam([dict(params=mine[:2], lr=schedule), dict(params=mine[2:], lr=1e-3)],
                         state_dtype=kind, skip_nonfinite=True)
    states = [lm.adam_state(p, kind) for p in ref]
    counts = [0, 0, 0]
    for t in range(1, 9):
        g = grads(t)
        if t == 3:
            g[1] = None                               # skips array 1 this step
        if t == 5:
            bad = [x.copy() for x in g]
            bad[0][0] = np.nan
            before = [p.copy() for p in mine]
            opt.step(bad)                             # skipped: nothing changes
            assert opt.skipped_steps == 1
            for p, q in zip(mine, before):
                assert np.array_equal(p, q)
        opt.step(g)
        for i, (p, gi, s) in enumerate(zip(ref, g, states)):
            if gi is None:
                continue
            counts[i] += 1
            lr = schedule(t) if i < 2 else 1e-3
            lm.adam_lowmem_step(p, gi, s, step=counts[i], lr=lr)
    for p, q in zip(mine, ref):
        assert np.array_equal(p, q)


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_state_dict_and_checkpoint_resume_bit_exact(kind, tmp_path):
    whole, first, second = arrays(), arrays(), arrays()
    o_whole = fastoptim.AdamW(whole, state_dtype=kind)
    o_first = fastoptim.AdamW(first, state_dtype=kind)
    for t in range(1, 6):
        o_whole.step(grads(t))
        o_first.step(grads(t))
    path = tmp_path / "ckpt.npz"
    fastoptim.save_state(o_first, path)
    sd = o_first.state_dict()
    # resume from the file into fresh arrays, and from the state dict
    for p, q in zip(second, first):
        p[...] = q
    o_file = fastoptim.AdamW(second, state_dtype=kind)
    fastoptim.load_state(o_file, path)
    resumed = arrays()
    for p, q in zip(resumed, first):
        p[...] = q
    o_dict = fastoptim.AdamW(resumed, state_dtype=kind)
    o_dict.load_state_dict(sd)
    for t in range(6, 11):
        o_whole.step(grads(t))
        o_file.step(grads(t))
        o_dict.step(grads(t))
    for a, b, c in zip(whole, second, resumed):
        assert np.array_equal(bits(a), bits(b)) and np.array_equal(bits(a), bits(c))
    for key in o_whole._state:
        for a, b in zip(o_whole._state[key], o_file._state[key]):
            assert np.array_equal(bits(a), bits(b)), key


def test_state_of_another_dtype_is_refused_and_changes_nothing():
    float_opt = fastoptim.Adam(arrays())
    float_opt.step(grads(1))
    opt = fastoptim.Adam(arrays(), state_dtype="int8")
    opt.step(grads(1))
    before = {k: [b.copy() for b in v] for k, v in opt._state.items()}
    with pytest.raises(ValueError, match="state"):
        opt.load_state_dict(float_opt.state_dict())
    bf = fastoptim.Adam(arrays(), state_dtype="bfloat16")
    with pytest.raises(ValueError, match="dtype"):
        bf.load_state_dict(fastoptim.Adam(arrays(), state_dtype="bfloat16").state_dict()
                           | {"state": {k: [b.astype(np.float32) for b in v]
                                        for k, v in bf.state_dict()["state"].items()}})
    for k, v in opt._state.items():
        for a, b in zip(v, before[k]):
            assert np.array_equal(bits(a), bits(b))


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_bad_gradient_changes_nothing(kind):
    params = arrays()
    opt = fastoptim.Adam(params, state_dtype=kind)
    opt.step(grads(1))
    before = [p.copy() for p in params]
    state = {k: [b.copy() for b in v] for k, v in opt._state.items()}
    for bad_last in (np.zeros(3, np.float32), np.zeros((70, 90), np.float64),
                     np.zeros((90, 70), np.float32)):
        g = grads(2)
        g[2] = bad_last
        with pytest.raises((ValueError, TypeError), match="grads"):
            opt.step(g)
    assert opt.t == 1
    for p, q in zip(params, before):
        assert np.array_equal(p, q)
    for k, v in opt._state.items():
        for a, b in zip(v, state[k]):
            assert np.array_equal(bits(a), bits(b))


@pytest.mark.parametrize("count", [3, 150])        # 150: past the check's stack buffer
@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_a_gradient_sharing_a_parameter_or_state_buffer_is_named(kind, count):
    """A gradient that is another array's parameter or state buffer is refused, naming both
    (also with a None gradient before it, which shifts the gradients' numbering), and the
    step changes nothing."""
    rng = np.random.default_rng(count)
    sizes = [5000 if i % 3 == 0 else 40 for i in range(count)]   # int8: codes and float32
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    opt = fastoptim.AdamW(params, state_dtype=kind)
    opt.step([np.ones_like(p) for p in params])
    before = [p.copy() for p in params]
    state = {k: [b.copy() for b in v] for k, v in opt._state.items()}
    last, big = count - 1, count - 3            # sizes[last] == 40, sizes[big] == 5000
    name = "exp_avg_sq" if kind == "int8" else "exp_avg"
    for alias, message in [
            (params[big][:40], rf"grads\[{last}\] shares memory with params\[{big}\]"),
            (opt._state[name][big].view(np.uint8)[:160].view(np.float32),
             rf"grads\[{last}\] shares memory with the {name} of params\[{big}\]")]:
        for missing in (False, True):
            g = [np.ones_like(p) for p in params]
            if missing:
                g[1] = None
            g[last] = alias
            with pytest.raises(ValueError, match=message):
                opt.step(g)
    assert opt.t == 1
    assert all(np.array_equal(p, q) for p, q in zip(params, before))
    for k, v in opt._state.items():
        assert all(np.array_equal(bits(a), bits(b)) for a, b in zip(v, state[k]))


@pytest.mark.parametrize("bad, match", [
    (dict(state_dtype="int4"), "state_dtype must be None or one of"),
    (dict(state_dtype=8), "state_dtype must be None or one of"),
    (dict(state_dtype="int8", amsgrad=True), "amsgrad=True needs float state"),
    (dict(state_dtype="bfloat16", eps_root=1e-8), "eps_root=1e-08 needs float state"),
])
def test_bad_options_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        fastoptim.Adam([np.zeros(10, np.float32)], **bad)


def test_asgd_has_no_int8_and_compressed_state_needs_float32():
    """ASGD's state is an average of the parameters: 8-bit codes would lose it."""
    with pytest.raises(ValueError, match="state_dtype must be None or one of"):
        fastoptim.ASGD([np.zeros(10, np.float32)], state_dtype="int8")
    with pytest.raises(ValueError, match="needs float32 parameters, got a float64"):
        fastoptim.SGD([np.zeros(10)], lr=0.1, momentum=0.9, state_dtype="int8")
    with pytest.raises(ValueError, match="needs float32 parameters, got a float64"):
        fastoptim.AdamW([np.zeros(10)], state_dtype="bfloat16")


def test_a_group_asking_for_amsgrad_later_is_refused():
    opt = fastoptim.Adam([np.zeros(10, np.float32)], state_dtype="int8")
    with pytest.raises(ValueError, match="amsgrad"):
        opt.add_param_group(dict(params=[np.zeros(5, np.float32)], amsgrad=True))
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_a_step_allocates_no_array_sized_memory(kind):
    n = 1 << 20
    params = [np.zeros(n, np.float32)]
    g = [np.full(n, 1e-3, np.float32)]
    opt = fastoptim.Adam(params, state_dtype=kind)
    opt.step(g)
    tracemalloc.start()
    opt.step(g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 1024, peak         # the float32 parameter alone is 4 MiB


def test_state_dtype_is_read_only():
    opt = fastoptim.Adam([np.zeros(10, np.float32)], state_dtype="bfloat16")
    assert opt.state_dtype == "bfloat16"
    with pytest.raises(AttributeError, match="state_dtype"):
        opt.state_dtype = "int8"
    assert opt.state_dtype == "bfloat16" and opt._state["exp_avg"][0].dtype == lm.bfloat16
    assert fastoptim.Adam([np.zeros(10)]).state_dtype is None


# ---- the generic bfloat16 state of the other element-wise classes ---------------------------
from kernel_cases import CLASS_CASES, class_case_id  # noqa: E402
from fastoptim.optimizers._state_dtype import CHUNK  # noqa: E402

GENERIC = [c for c in CLASS_CASES
           if "bfloat16" in getattr(fastoptim, c[0])._compressed
           and "bfloat16" not in getattr(fastoptim, c[0])._fused]
# bfloat16 state == the float32 step with the state rounded: the generic classes, and the
# fused steps without Adam's clamp (Lion, SGD with momentum, RMSprop)
ROUNDED = GENERIC + [c for c in CLASS_CASES
                     if c[0] in ("Lion", "SGD", "RMSprop") and c not in GENERIC]
# an array over two chunks plus a tail, a small one, a 2-D one in Fortran order
GENERIC_SHAPES = [(2 * CHUNK + 517,), (33,), (40, 30)]


def generic_arrays(seed):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(np.float32) for s in GENERIC_SHAPES]
    out[2] = np.asfortranarray(out[2])
    return out


def round_states(opt):
    """Round every float32 state buffer to bfloat16 and back, in place."""
    for bufs in opt._state.values():
        for b in bufs:
            if b is not None:
                b[...] = b.astype(lm.bfloat16).astype(np.float32)


def test_every_element_wise_class_has_compressed_state():
    names = {c[0] for c in GENERIC}
    assert {"Adagrad", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop", "ASGD"} <= names
    assert fastoptim.RMSprop._fused == ("bfloat16",)
    assert {"RMSprop", "Adagrad", "Adamax", "Adadelta", "Rprop", "NAdam", "RAdam"} \
        == {c[0] for c in GENERIC_INT8}
    assert fastoptim.SGD._fused == fastoptim.Lion._fused == ("bfloat16", "int8")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ROUNDED, ids=class_case_id)
def test_bfloat16_state_is_the_float32_step_with_the_state_rounded(case, backend):
    """Bit for bit: the class on bfloat16 state == the float32 class whose state is rounded
    to bfloat16 before every step (and after the last)."""
    name, _, opts = case
    cls = getattr(fastoptim, name)
    mine, ref = generic_arrays(1), generic_arrays(1)
    opt = cls(mine, backend=backend, state_dtype="bfloat16", **opts)
    float_opt = cls(ref, backend=backend, **opts)
    rng = np.random.default_rng(2)
    for _ in range(6):
        g = [(rng.standard_normal(p.shape) * 0.1).astype(np.float32) for p in mine]
        g[2] = np.asfortranarray(g[2])
        g[0][:40] = 0.0
        opt.step(g)
        round_states(float_opt)
        float_opt.step(g)
    round_states(float_opt)
    for p, q in zip(mine, ref):
        assert np.array_equal(bits(p), bits(q))
    for key, bufs in opt._state.items():
        for a, b in zip(bufs, float_opt._state[key]):
            if a is None:
                continue
            assert a.dtype == lm.bfloat16 and a.size == b.size     # fused: 1-D
            assert np.array_equal(bits(a.reshape(-1, order="A")),
                                  bits(b.astype(lm.bfloat16).reshape(-1, order="A"))), key
    assert opt.state_nbytes() * 2 == float_opt.state_nbytes()


def test_generic_bfloat16_state_dict_resumes_bit_exact(tmp_path):
    whole, part = generic_arrays(3), generic_arrays(3)
    kw = dict(lr=1e-2, momentum=0.9, nesterov=True, state_dtype="bfloat16")
    o_whole, o_part = fastoptim.SGD(whole, **kw), fastoptim.SGD(part, **kw)
    rng = np.random.default_rng(4)
    gs = [[rng.standard_normal(p.shape).astype(np.float32) for p in whole] for _ in range(6)]
    for g in gs:
        g[2] = np.asfortranarray(g[2])
    for g in gs[:3]:
        o_whole.step(g)
        o_part.step(g)
    fastoptim.save_state(o_part, tmp_path / "sgd.npz")
    resumed = generic_arrays(3)
    for p, q in zip(resumed, part):
        p[...] = q
    o_resumed = fastoptim.SGD(resumed, **kw)
    fastoptim.load_state(o_resumed, tmp_path / "sgd.npz")
    for g in gs[3:]:
        o_whole.step(g)
        o_resumed.step(g)
    for p, q in zip(whole, resumed):
        assert np.array_equal(bits(p), bits(q))


@pytest.mark.parametrize("kind", ["bfloat16", "int8"])
def test_generic_state_step_memory_is_bounded(kind):
    n = 1 << 21
    params = [np.zeros(n, np.float32)]
    g = [np.full(n, 1e-3, np.float32)]
    opt = fastoptim.RMSprop(params, state_dtype=kind, momentum=0.9,
                            centered=kind == "bfloat16")          # int8 cannot be centered
    opt.step(g)
    tracemalloc.start()
    opt.step(g)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * CHUNK * 4 + 64 * 1024, peak      # the scratch, not the 8 MiB array


# ---- the generic int8 state ---------------------------------------------------------------
def _lowmem_levels():
    from fastoptim import _lowmem
    return _lowmem.simd_targets()


GENERIC_INT8 = [c for c in CLASS_CASES
                if "int8" in getattr(fastoptim, c[0])._compressed
                and "int8" not in getattr(fastoptim, c[0])._fused]
# an array over two chunks plus a partial block, a small one (float32 state), a 2-D one
# over MIN_8BIT_SIZE in Fortran order
INT8_SHAPES = [(2 * CHUNK + 517,), (33,), (70, 90)]


def int8_arrays(seed):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(np.float32) for s in INT8_SHAPES]
    out[2] = np.asfortranarray(out[2])
    return out


def signed_buffer(opt, key):
    from fastoptim.optimizers._state_dtype import _nonnegative
    return not _nonnegative(opt._groups[0].kernel, key)


def quantize_states(opt, steps_taken):
    """Quantize every float32 state buffer of an array of at least MIN_8BIT_SIZE elements
    blockwise (memory order; the registry's signed or unsigned code) and back, in place;
    then clamp each of the class's _int8_bounds pairs, m to C sqrt(v) with C the bound after
    ``steps_taken`` steps (lowmem.moment_bound, float32, NaN propagating)."""
    for key, bufs in opt._state.items():
        for b in bufs:
            if b is not None and b.size >= lm.MIN_8BIT_SIZE:
                signed = signed_buffer(opt, key)
                back = lm.dequantize_blockwise(*lm.quantize_blockwise(b, signed), signed)
                b.reshape(-1, order="A")[...] = back
    hyper = opt._functional(opt._groups[0].hyper)
    for m_name, v_name, beta_m, beta_v in type(opt)._int8_bounds:
        bound = lm.moment_bound(steps_taken, hyper[beta_m], hyper[beta_v])
        if m_name not in opt._state or bound == np.inf:
            continue
        for m, v in zip(opt._state[m_name], opt._state[v_name]):
            if m is not None and v is not None and m.size >= lm.MIN_8BIT_SIZE:
                limit = np.sqrt(v) * np.float32(bound)
                m[...] = np.maximum(np.minimum(m, limit), -limit)


# int8 state == the float32 step on quantized state: the generic classes and the fused steps
# of SGD and Lion
QUANTIZED = GENERIC_INT8 + [c for c in CLASS_CASES if c[0] in ("SGD", "Lion")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", QUANTIZED, ids=class_case_id)
def test_int8_state_is_the_float32_step_with_the_state_requantized(case, backend):
    """Bit for bit: the class on int8 state == the float32 class whose state is quantized
    blockwise and dequantized before every step; the codes and scales are the float32
    state's quantized (small arrays keep float32 state)."""
    name, _, opts = case
    cls = getattr(fastoptim, name)
    mine, ref = int8_arrays(1), int8_arrays(1)
    opt = cls(mine, backend=backend, state_dtype="int8", **opts)
    float_opt = cls(ref, backend=backend, **opts)
    rng = np.random.default_rng(2)
    with np.errstate(all="ignore"):
        for steps_taken in range(6):
            g = [(rng.standard_normal(p.shape) * 0.1).astype(np.float32) for p in mine]
            g[2] = np.asfortranarray(g[2])
            g[0][:300] = 0.0                        # exact zeros: a whole block and more
            opt.step(g)
            quantize_states(float_opt, steps_taken)
            float_opt.step(g)
    for p, q in zip(mine, ref):
        assert np.array_equal(bits(p), bits(q))
        assert np.all(np.isfinite(p))
    for key, bufs in float_opt._state.items():
        for i, b in enumerate(bufs):
            if b is None:
                continue
            held = opt._state[key][i]
            if b.size < lm.MIN_8BIT_SIZE:
                assert held.dtype == np.float32 and np.array_equal(bits(held), bits(b))
                assert opt._state[key + "_absmax"][i].size == 0
                continue
            codes, absmax = lm.quantize_blockwise(b, signed_buffer(opt, key))
            assert held.dtype == np.uint8 and held.shape == (b.size,)
            assert np.array_equal(held, codes), key
            assert np.array_equal(bits(opt._state[key + "_absmax"][i]), bits(absmax)), key
    n8 = sum(p.size for p in mine if p.size >= lm.MIN_8BIT_SIZE)
    small = sum(p.size for p in mine if p.size < lm.MIN_8BIT_SIZE)
    buffers = sum(b is not None for b in (bufs[0] for bufs in float_opt._state.values()))
    blocks = sum(-(-p.size // lm.BLOCK) for p in mine if p.size >= lm.MIN_8BIT_SIZE)
    assert opt.state_nbytes() == buffers * (n8 + 4 * blocks + 4 * small)


@pytest.mark.parametrize("case", GENERIC_INT8, ids=class_case_id)
def test_int8_initial_state_is_the_float32_initial_state_quantized(case):
    """A new int8 state (quantized by the compiled codec) holds quantize_blockwise's codes
    and scales of the float32 class's initial state, in memory order (a Fortran-ordered
    array too): zeros, and Adagrad's constant initial_accumulator_value."""
    name, _, opts = case
    cls = getattr(fastoptim, name)
    mine, ref = int8_arrays(4), int8_arrays(4)
    opt = cls(mine, state_dtype="int8", **opts)
    float_opt = cls(ref, **opts)
    checked = 0
    for key, bufs in float_opt._state.items():
        for i, b in enumerate(bufs):
            if b is None or b.size < lm.MIN_8BIT_SIZE:
                continue
            codes, absmax = lm.quantize_blockwise(b, signed_buffer(opt, key))
            assert np.array_equal(opt._state[key][i], codes), key
            assert np.array_equal(bits(opt._state[key + "_absmax"][i]), bits(absmax)), key
            checked += 1
    assert checked >= 2                     # the 1-D array's buffers and the 2-D one's


@pytest.mark.parametrize("level", _lowmem_levels())
def test_int8_codec_matches_quantize_blockwise(level):
    """The compiled chunk codec at every SIMD level: the codes, scales (NaN as the quiet
    NaN) and decoded values of fastoptim.lowmem's NumPy functions, special values included."""
    from fastoptim import _lowmem
    previous = _lowmem._select_simd_target(level)
    try:
        t = lm.code_tables()
        rng = np.random.default_rng(5)
        for n in (256 * 5 + 77, 256 * 4):
            for signed in (True, False):
                x = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 5, n)).astype(np.float32)
                if not signed:
                    x = np.abs(x)
                x[300:556] = 0
                x[600], x[900], x[-1] = np.nan, np.inf, -0.0
                # every code's neighbourhood too: the midpoints and the floats next to them
                mid = t[1 if signed else 3][:255]
                near = np.concatenate([mid, np.nextafter(mid, np.float32(-2)),
                                       np.nextafter(mid, np.float32(2))])
                x[:256] = np.resize(near[rng.permutation(near.size)], 256)
                x[7] = 1                # the block's absmax: the values stay as they are
                ref_codes, ref_absmax = lm.quantize_blockwise(x, signed)
                k = 0 if signed else 1
                # the bucket search alone, and with the arithmetic search (AVX-512 levels)
                for decades, search in ((None, None), (t[10 + k], "arithmetic"),
                                        (t[10 + k], "bucket")):
                    _lowmem._select_nearest_code_search(search)
                    codes = np.empty(n, np.uint8)
                    absmax = np.empty(-(-n // 256), np.float32)
                    _lowmem.q8_encode(x, codes, absmax, t[6 + k], t[8 + k], t[4 + k], signed,
                                      decades)
                    assert np.array_equal(codes, ref_codes)
                    assert np.array_equal(bits(absmax), bits(ref_absmax))
                out = np.empty(n, np.float32)
                _lowmem.q8_decode(codes, absmax, lm.dynamic_map(signed), out)
                with np.errstate(all="ignore"):
                    back = lm.dequantize_blockwise(ref_codes, ref_absmax, signed)
                assert np.array_equal(bits(out), bits(back))
    finally:
        _lowmem._select_simd_target(previous)
        _lowmem._select_nearest_code_search(None)


@pytest.mark.parametrize("level", _lowmem_levels())
def test_int8_decode_runs_of_64_and_their_tails(level):
    """The compiled decode at every SIMD level (byte permutes over runs of 64 codes at
    avx512vbmi and above, gathers or scalars for the rest of a block) gives
    dequantize_blockwise's bits for sizes around the runs and the blocks, with every code
    value present."""
    from fastoptim import _lowmem
    previous = _lowmem._select_simd_target(level)
    try:
        rng = np.random.default_rng(6)
        for n in (1, 63, 64, 65, 191, 256, 319, 256 * 3 + 129):
            for signed in (True, False):
                codes = rng.integers(0, 256, n).astype(np.uint8)
                codes[:min(n, 256)] = np.arange(256, dtype=np.uint8)[:min(n, 256)]
                absmax = (rng.random(-(-n // 256)) * 10.0 ** rng.integers(-30, 5)).astype(
                    np.float32)
                out = np.full(n + 1, np.float32(7))
                _lowmem.q8_decode(codes, absmax, lm.dynamic_map(signed), out[:n])
                assert np.array_equal(bits(out[:n]),
                                      bits(lm.dequantize_blockwise(codes, absmax, signed)))
                assert out[n] == 7
    finally:
        _lowmem._select_simd_target(previous)


def test_generic_int8_state_dict_and_checkpoint_resume_bit_exact(tmp_path):
    whole, part = int8_arrays(3), int8_arrays(3)
    kw = dict(lr=1e-2, momentum=0.9, state_dtype="int8")
    o_whole, o_part = fastoptim.RMSprop(whole, **kw), fastoptim.RMSprop(part, **kw)
    rng = np.random.default_rng(4)
    gs = [[rng.standard_normal(p.shape).astype(np.float32) for p in whole] for _ in range(6)]
    for g in gs:
        g[2] = np.asfortranarray(g[2])
    for g in gs[:3]:
        o_whole.step(g)
        o_part.step(g)
    sd = o_part.state_dict()
    assert sd["state"]["square_avg"][0].dtype == np.uint8
    assert sd["state"]["square_avg_absmax"][0].dtype == np.float32
    fastoptim.save_state(o_part, tmp_path / "rmsprop.npz")
    resumed, again = int8_arrays(3), int8_arrays(3)
    for p, q, r in zip(resumed, part, again):
        p[...] = q
        r[...] = q
    o_resumed = fastoptim.RMSprop(resumed, **kw)
    fastoptim.load_state(o_resumed, tmp_path / "rmsprop.npz")
    o_again = fastoptim.RMSprop(again, **kw)
    o_again.load_state_dict(sd)
    for g in gs[3:]:
        o_whole.step(g)
        o_resumed.step(g)
        o_again.step(g)
    for p, q, r in zip(whole, resumed, again):
        assert np.array_equal(bits(p), bits(q)) and np.array_equal(bits(p), bits(r))


def test_generic_int8_bad_gradient_changes_nothing():
    params = int8_arrays(6)
    opt = fastoptim.SGD(params, lr=0.1, momentum=0.9, state_dtype="int8")
    g = [np.ones(p.shape, np.float32) for p in params]
    g[2] = np.asfortranarray(g[2])
    opt.step(g)
    before = [p.copy() for p in params]
    state = {k: [b.copy() for b in bufs] for k, bufs in opt._state.items()}
    bad = [gi.copy() for gi in g]
    bad[2] = np.ones((90, 70), np.float32)
    with pytest.raises(ValueError):
        opt.step(bad)
    assert all(np.array_equal(a, b) for a, b in zip(params, before))
    for k, bufs in opt._state.items():
        assert all(np.array_equal(a, b) for a, b in zip(bufs, state[k]))


def test_the_unsigned_code_is_for_the_buffers_kept_nonnegative():
    """The registry's nonnegative buffers are these, and the float32 steps keep them >= 0
    (a signed buffer stored with the unsigned code would lose its sign)."""
    from fastoptim._registry import KERNELS
    assert {(k.name, s.name) for k in KERNELS.values() for s in k.states if s.nonnegative} \
        == {("rmsprop", "square_avg"), ("adam", "exp_avg_sq"), ("adam", "max_exp_avg_sq"),
            ("adagrad", "state_sum"), ("adamax", "exp_inf"), ("radam", "exp_avg_sq"),
            ("nadam", "exp_avg_sq"), ("rprop", "step_size"), ("adadelta", "square_avg"),
            ("adadelta", "acc_delta")}
    rng = np.random.default_rng(9)
    for name, _, opts in GENERIC_INT8:
        opt = getattr(fastoptim, name)([rng.standard_normal(300).astype(np.float32)], **opts)
        for _ in range(5):
            opt.step([rng.standard_normal(300).astype(np.float32)])
        for key, bufs in opt._state.items():
            if not signed_buffer(opt, key):
                assert np.all(bufs[0] >= 0), (name, key)


@pytest.mark.parametrize("name, opts", [("NAdam", {}), ("RAdam", {}),
                                         ("RMSprop", dict(centered=True))])
def test_the_int8_clamp_is_what_keeps_these_steps_bounded(name, opts, monkeypatch):
    """NAdam, RAdam (m / sqrt(v)) and centered RMSprop (v - m**2) need the clamp of the
    decoded m to C sqrt(v): without it (``_int8_bounds`` emptied), a zero gradient after a
    block's large one steps its small elements far beyond float32's largest step, or to
    NaN; with it they stay within it (test_int8_steps_stay_bounded_after_gradients_become_zero
    for the whole array)."""
    n = 8192

    def largest_step(kind):
        p = np.zeros(n, np.float32)
        opt = getattr(fastoptim, name)([p], lr=1e-2, state_dtype=kind, **opts)
        g = np.full(n, 1e-3, np.float32)
        g[0] = 100.0
        opt.step([g])
        out = 0.0
        with np.errstate(all="ignore"):
            for _ in range(30):
                before = p.copy()
                opt.step([np.zeros(n, np.float32)])
                step = np.abs(p[1:] - before[1:])        # the elements with small gradients
                out = max(out, float(np.nan_to_num(step, nan=np.inf).max()))
        return out

    bounded = largest_step("int8")
    assert bounded <= 4 * largest_step(None) + 1e-2
    monkeypatch.setattr(getattr(fastoptim, name), "_int8_bounds", ())
    assert largest_step("int8") > 100 * bounded


@pytest.mark.parametrize("case", QUANTIZED, ids=class_case_id)
def test_int8_steps_stay_bounded_after_gradients_become_zero(case):
    """One large and many small gradients in a block, then exact zeros: every int8 step
    stays within 4x float32's largest step (or 4 lr), never inf or NaN."""
    name, _, opts = case
    n = 8192
    largest = {}
    for kind in (None, "int8"):
        for small in (1e-2, 3e-3, 1e-3):
            p = np.zeros(n, np.float32)
            opt = getattr(fastoptim, name)([p], state_dtype=kind, **opts)
            g = np.full(n, small, np.float32)
            g[0] = 100.0
            opt.step([g])
            for _ in range(30):
                before = p.copy()
                opt.step([np.zeros(n, np.float32)])
                step = np.abs(p - before)
                assert np.all(np.isfinite(step)), (kind, small)
                largest[kind, small] = max(largest.get((kind, small), 0.0), float(step.max()))
    # + 4 lr: a clamped class's m may reach the worst case of exact arithmetic, C sqrt(v)
    # (NAdam with betas (0.8, 0.99): C = 3.4), which float32's own steps stay below; without
    # the clamp the steps are orders of magnitude larger, or NaN
    lr = opts.get("lr", 1e-2)
    for small in (1e-2, 3e-3, 1e-3):
        assert largest["int8", small] <= 4 * largest[None, small] + 4 * lr, (small, largest)


# ---- the "cython" backend's fused generic step (kernels.compressed) -------------------------
COMPRESSED = [(c, "bfloat16") for c in GENERIC] + [(c, "int8") for c in GENERIC_INT8]


def _compressed_id(case):
    return f"{class_case_id(case[0])}-{case[1]}"


@pytest.fixture
def threads_always_pay():
    """kernels.compressed takes its threads even for the tests' small arrays."""
    from fastoptim import kernels
    previous = kernels.set_parallel_min_traffic(0)
    yield
    kernels.set_parallel_min_traffic(previous)


def _three_gradients(shapes, seed, zeros):
    """Three steps' gradients for arrays of ``shapes``: the third array's in Fortran order,
    the first's leading ``zeros`` elements zero (the int8 clamp's case)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        g = [(rng.standard_normal(s) * 0.1).astype(np.float32) for s in shapes]
        g[2] = np.asfortranarray(g[2])
        g[0][:zeros] = 0.0
        out.append(g)
    return out


@pytest.mark.parametrize("case", COMPRESSED, ids=_compressed_id)
def test_compressed_rounds_are_the_chunk_loop_for_any_threads_and_simd_level(
        case, threads_always_pay):
    """The compiled rounds (one parallel region, per-thread scratch) give the bits of the
    Python chunk loop on the NumPy backend, for 1 and 2 threads and every SIMD level of the
    kernels and of the codecs."""
    from fastoptim import _lowmem, kernels
    (name, _, opts), kind = case
    cls = getattr(fastoptim, name)
    grads = _three_gradients(INT8_SHAPES, 5, zeros=300)

    def run(backend):
        params = int8_arrays(6)
        opt = cls(params, backend=backend, state_dtype=kind, **opts)
        with np.errstate(all="ignore"):
            for g in grads:
                opt.step(g)
        return params, opt

    ref, ref_opt = run("numpy")
    # each level of the kernels with the codecs' of the same name, then the codecs' others
    best = kernels.simd_targets()[-1]
    levels = [(k, k) for k in kernels.simd_targets() if k in _lowmem.simd_targets()] \
        + [(best, k) for k in _lowmem.simd_targets() if k not in kernels.simd_targets()]
    previous = kernels.simd_target(), _lowmem.simd_target(), fastoptim.get_num_threads()
    try:
        for threads in (1, 2):
            fastoptim.set_num_threads(threads)
            for level, lm_level in levels:
                kernels._select_simd_target(level)
                _lowmem._select_simd_target(lm_level)
                mine, opt = run("cython")
                for p, q in zip(mine, ref):
                    assert np.array_equal(bits(p), bits(q)), (threads, level, lm_level)
                for key, bufs in opt._state.items():
                    for a, b in zip(bufs, ref_opt._state[key]):
                        if a is not None:
                            assert np.array_equal(bits(a), bits(b)), (key, threads, level)
    finally:
        kernels._select_simd_target(previous[0])
        _lowmem._select_simd_target(previous[1])
        fastoptim.set_num_threads(previous[2])


def _compressed_call(n=1000, **change):
    """kernels.compressed's arguments for Adagrad on int8 state (``change`` replaces some)."""
    from fastoptim import kernels
    from fastoptim.optimizers._state_dtype import _Int8Codec
    codes, absmax = lm.quantize_blockwise(np.full(n, 0.5, np.float32), False)
    args = dict(param=np.ones(n, np.float32), grad=np.ones(n, np.float32), states=(codes,),
                scales=(absmax,), tables=(_Int8Codec(False).tables,),
                c=kernels.coefficients_adagrad(1, 0.1, 0.0, 0.0, 1e-10, False))
    args.update(change)
    return args


@pytest.mark.parametrize("change, error, match", [
    (dict(grad=np.ones(999, np.float32)), ValueError, "grad must hold 1000"),
    (dict(grad=np.ones(1000)), ValueError, "grad must hold 1000 items of 4 bytes"),
    (dict(param=np.ones(1000, np.float64)), ValueError, "param must hold"),
    (dict(states=(np.zeros(999, np.uint8),)), ValueError, r"states\[0\] must hold"),
    (dict(scales=(np.zeros(3, np.float32),)), ValueError, r"scales\[0\] must hold 4"),
    (dict(states=(np.zeros(2000, np.uint8)[::2],)), ValueError, "contiguous"),
    (dict(states=()), ValueError, r"one entry per state buffer of adagrad \('state_sum',\)"),
    (dict(states=(None,), scales=(None,), tables=(None,)), ValueError,
     r"states\[0\] \(state_sum\) is always updated"),
    (dict(tables=((lm.dynamic_map(False), np.zeros(5, np.int32), 17, 0, False),)),
     ValueError, "code_tables"),
    # the arithmetic search's table: the unsigned code's own (not the signed one's, nor a
    # copy: its values are trusted)
    (dict(tables=(lm.code_tables()[2:3] + (lm.code_tables()[7], lm.code_tables()[9], 0, False,
                                           lm.code_tables()[10]),)),
     ValueError, r"decades must be code_tables\(\)\[11\]"),
    (dict(tables=(lm.code_tables()[2:3] + (lm.code_tables()[7], lm.code_tables()[9], 0, False,
                                           lm.code_tables()[11].copy()),)),
     ValueError, r"decades must be code_tables\(\)\[11\]"),
    (dict(tables=(lm.code_tables()[2:3] + (lm.code_tables()[7], lm.code_tables()[9], 0),)),
     ValueError, r"must be \(code, bucket, shift, zero, is_signed\[, decades\]\)"),
])
def test_compressed_refuses_bad_arrays_and_changes_nothing(change, error, match):
    from fastoptim import kernels
    args = _compressed_call(**change)
    before = [np.copy(a) for a in (args["param"], *args["states"], *args["scales"])]
    with pytest.raises(error, match=match):
        kernels.compressed(args["param"], args["grad"], args["states"], args["scales"],
                           args["tables"], args["c"])
    for a, b in zip((args["param"], *args["states"], *args["scales"]), before):
        assert np.array_equal(a, b)


def _fortran(n=1000):
    return np.asfortranarray(np.ones((40, n // 40), np.float32))


@pytest.mark.parametrize("change, match", [
    (lambda a: dict(grad=a["param"]), "param and grad share memory"),
    (lambda a: dict(grad=a["param"].reshape(40, 25), param=a["param"].reshape(40, 25)),
     "param and grad share memory"),
    (lambda a: dict(states=(a["param"].view(np.uint8)[1000:2000],)),
     r"param and states\[0\] share memory"),
    (lambda a: dict(scales=(a["param"][996:],)), r"param and scales\[0\] share memory"),
    (lambda a: dict(scales=(a["states"][0][:16].view(np.float32),)),
     r"states\[0\] and scales\[0\] share memory"),
    (lambda a: dict(param=_fortran(), grad=np.ones((40, 25), np.float32)),
     "param and grad must be contiguous in one common order"),
    (lambda a: dict(grad=_fortran(), param=np.ones((40, 25), np.float32)),
     "param and grad must be contiguous in one common order"),
    (lambda a: dict(param=_fortran(), grad=_fortran(),
                    states=(a["states"][0].reshape(40, 25),)),
     r"param and states\[0\] must be contiguous in one common order"),
], ids=["grad-is-param", "grad-is-2d-param", "codes-in-param", "scales-in-param",
        "scales-in-codes", "F-param-C-grad", "C-param-F-grad", "F-param-C-codes"])
def test_compressed_refuses_overlapping_or_misordered_arrays(change, match):
    """Written arrays (param, codes, scales) overlapping any other array of the call, or
    arrays element-wise with param in another memory order, would give a wrong step (a
    gradient read after its element was written; elements paired across orders)."""
    from fastoptim import kernels
    args = _compressed_call()
    args.update(change(args))
    arrays = (args["param"], args["grad"], *args["states"], *args["scales"])
    before = [a.tobytes() for a in arrays]
    with pytest.raises(ValueError, match=match):
        kernels.compressed(args["param"], args["grad"], args["states"], args["scales"],
                           args["tables"], args["c"])
    assert [a.tobytes() for a in arrays] == before


def test_compressed_steps_fortran_arrays_as_their_memory_order():
    from fastoptim import kernels
    flat, fortran = _compressed_call(), _compressed_call(param=_fortran(), grad=_fortran())
    rng = np.random.default_rng(5)
    g = rng.standard_normal(1000).astype(np.float32)
    flat["grad"][:] = g
    fortran["grad"].reshape(-1, order="F")[:] = g
    for args in (flat, fortran):
        kernels.compressed(args["param"], args["grad"], args["states"], args["scales"],
                           args["tables"], args["c"])
    assert np.array_equal(fortran["param"].reshape(-1, order="F"), flat["param"])
    assert np.array_equal(fortran["states"][0], flat["states"][0])


@pytest.mark.parametrize("clamps", [((0, 0, 1.0),), ((0, 1, 1.0),), ((0, 3, 1.0),)])
def test_compressed_refuses_a_clamp_of_absent_buffers(clamps):
    from fastoptim import kernels
    args = _compressed_call()
    before = np.copy(args["param"]), np.copy(args["states"][0])
    with pytest.raises(ValueError, match=r"clamps\[0\] must name two present state buffers"):
        kernels.compressed(args["param"], args["grad"], args["states"], args["scales"],
                           args["tables"], args["c"], clamps=clamps)
    assert np.array_equal(args["param"], before[0])
    assert np.array_equal(args["states"][0], before[1])


# ---- kernels.compressed_many: a group's arrays in one call ----------------------------------
MANY_SHAPES = [(4096,), (0,), (70, 90), (33,), (5000 + 3,), (513,), (4097,)]


@pytest.mark.parametrize("case", COMPRESSED, ids=_compressed_id)
def test_compressed_many_gives_each_array_the_bits_of_its_own_call(
        case, threads_always_pay, monkeypatch):
    """A class's step on many arrays (one kernels.compressed_many call) gives the bits of
    one kernels.compressed call per array, for 1 and 2 threads: arrays of whole and partial
    blocks and rounds, an empty one, one in Fortran order, int8's small arrays (float32
    state, stepped apart), zero gradients (the int8 clamp)."""
    from fastoptim import kernels
    (name, _, opts), kind = case
    cls = getattr(fastoptim, name)
    grads = _three_gradients(MANY_SHAPES, 11, zeros=700)

    def run():
        params = [np.random.default_rng(3).standard_normal(s).astype(np.float32)
                  for s in MANY_SHAPES]
        params[2] = np.asfortranarray(params[2])
        opt = cls(params, state_dtype=kind, **opts)
        with np.errstate(all="ignore"):
            for g in grads:
                opt.step(g)
        return params, opt

    calls = []
    many = kernels.compressed_many

    def counted(params, *args, **kw):
        calls.append(len(params))
        many(params, *args, **kw)

    def one_each(params, grads, states, scales, tables, c, *, clamps=(), num_threads=None):
        for i in range(len(params)):
            kernels.compressed(params[i], grads[i],
                               tuple(None if s is None else s[i] for s in states),
                               tuple(None if s is None else s[i] for s in scales), tables, c,
                               clamps=clamps, num_threads=num_threads)

    previous = fastoptim.get_num_threads()
    try:
        for threads in (1, 2):
            fastoptim.set_num_threads(threads)
            monkeypatch.setattr(kernels, "compressed_many", counted)
            mine, opt = run()
            monkeypatch.setattr(kernels, "compressed_many", one_each)
            ref, ref_opt = run()
            for p, q in zip(mine, ref):
                assert np.array_equal(bits(p), bits(q)), threads
            for key, bufs in opt._state.items():
                for a, b in zip(bufs, ref_opt._state[key]):
                    if a is not None:
                        assert np.array_equal(bits(a), bits(b)), (key, threads)
            assert np.all(np.isfinite(mine[0])) and not np.array_equal(mine[4], ref[4] * 0)
    finally:
        fastoptim.set_num_threads(previous)
    compressed = 7 if kind == "bfloat16" else 4       # int8: (0,), (33,), (513,) are small
    assert calls == [compressed] * 6            # one call per step, every array in it


def _many_call(k=2, n=1000):
    """kernels.compressed_many's arguments for Adagrad on int8 state, ``k`` arrays."""
    calls = [_compressed_call(n) for _ in range(k)]
    return ([a["param"] for a in calls], [a["grad"] for a in calls],
            ([a["states"][0] for a in calls],), ([a["scales"][0] for a in calls],),
            calls[0]["tables"], calls[0]["c"])


@pytest.mark.parametrize("change, error, match", [
    (lambda a: (a[0], a[1][:1]) + a[2:], ValueError, "1 grads for 2 params"),
    (lambda a: a[:2] + ((a[2][0][:1],),) + a[3:], ValueError,
     r"states\[0\] must be None or a list of one array per param \(2\)"),
    (lambda a: a[:2] + ((a[2][0][0],),) + a[3:], ValueError, r"states\[0\] must be None"),
    (lambda a: a[:3] + ((None,),) + a[4:], ValueError, r"scales\[0\] must hold the codes"),
    (lambda a: (a[0], [a[1][0], a[0][0]]) + a[2:], ValueError,
     r"params\[0\] and grads\[1\] share memory"),
    (lambda a: a[:2] + (([a[2][0][0], a[0][0].view(np.uint8)[:1000]],),) + a[3:],
     ValueError, r"params\[0\] and states\[0\]\[1\] share memory"),
    (lambda a: a[:3] + (([a[3][0][0], a[3][0][0]],),) + a[4:], ValueError,
     r"scales\[0\]\[0\] and scales\[0\]\[1\] share memory"),
    (lambda a: a[:2] + (([a[2][0][0], np.zeros(999, np.uint8)],),) + a[3:], ValueError,
     r"states\[0\]\[1\] must hold 1000"),
    (lambda a: ([a[0][0], a[0][1].astype(np.float64)],) + a[1:], ValueError,
     r"params\[1\] must hold"),
    (lambda a: (a[0], [a[1][0], np.ones(1001, np.float32)],) + a[2:], ValueError,
     r"grads\[1\] must hold 1000 items"),
], ids=["grads-length", "states-length", "states-not-a-list", "no-scales", "grad-is-param",
        "codes-in-another-param", "shared-scales", "short-codes", "float64-param",
        "long-grad"])
def test_compressed_many_refuses_bad_arrays_and_changes_nothing(change, error, match):
    """Every array of every entry is checked, and no array written may overlap any other
    array of the call, before anything is written: the good first array is unchanged."""
    from fastoptim import kernels
    args = change(_many_call())
    arrays = [a for a in (*args[0], *args[2][0], *(args[3][0] or ())) if a is not None]
    before = [a.tobytes() for a in arrays]
    with pytest.raises(error, match=match):
        kernels.compressed_many(*args)
    assert [a.tobytes() for a in arrays] == before


def test_compressed_many_of_no_arrays_does_nothing():
    from fastoptim import kernels
    one = _compressed_call()
    kernels.compressed_many([], [], ([],), ([],), one["tables"], one["c"])
    with pytest.raises(ValueError, match=r"states\[0\] must be None or a list"):
        kernels.compressed_many([], [], ([one["states"][0]],), ([],), one["tables"], one["c"])
