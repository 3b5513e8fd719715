"""float16 / bfloat16 parameters in Adam and AdamW (master_weights, stochastic_rounding):
the class matches fastoptim.halfparams' functional steps bit for bit on every backend,
with groups, None gradients, schedules and checkpoints; errors change nothing."""
import numpy as np
import pytest

import fastoptim
from fastoptim import halfparams as hp
from fastoptim.half_reference import bfloat16

F16 = np.dtype(np.float16)
SHAPES = [(3000,), (17,), (30, 40)]
MODES = [(F16, "master"), (F16, "plain"), (bfloat16, "master"), (bfloat16, "plain"),
         (bfloat16, "sr")]


def bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in SHAPES]
    out[2] = np.asfortranarray(out[2])
    return out


def grads(dtype, t):
    rng = np.random.default_rng(100 + t)
    out = [(rng.standard_normal(s) * 0.1).astype(np.float32).astype(dtype) for s in SHAPES]
    out[2] = np.asfortranarray(out[2])
    return out


def options(mode):
    return {"master": dict(master_weights=True), "plain": {},
            "sr": dict(stochastic_rounding=True, seed=7)}[mode]


@pytest.mark.parametrize("backend", ["cython", "numba", "numpy"])
@pytest.mark.parametrize("name, opts", [("Adam", {}), ("AdamW", dict(weight_decay=0.05)),
                                        ("Adam", dict(weight_decay=0.01, maximize=True,
                                                      betas=(0.8, 0.95), eps=1e-6))],
                         ids=["Adam", "AdamW", "Adam-options"])
@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_class_matches_the_functional_steps(dtype, mode, name, opts, backend):
    mine, ref = params(dtype), params(dtype)
    opt = getattr(fastoptim, name)(mine, lr=1e-3, backend=backend, **opts, **options(mode))
    states = [hp.half_state(p, master_weights=(mode == "master")) for p in ref]
    o = dict(opts)
    beta1, beta2 = o.pop("betas", (0.9, 0.999))
    if name == "AdamW":
        o["decoupled_weight_decay"] = True
    for t in range(1, 11):
        g = grads(dtype, t)
        opt.step(g)
        for k, (p, gk, s) in enumerate(zip(ref, g, states)):
            extra = dict(stochastic_rounding=True, seed=7 + k) if mode == "sr" else {}
            hp.adam_half_step(p, gk, s, step=t, lr=1e-3, beta1=beta1, beta2=beta2,
                              backend=backend, **o, **extra)
    for k, (p, q, s) in enumerate(zip(mine, ref, states)):
        assert p.dtype == dtype
        assert np.array_equal(bits(p), bits(q)), k
        for key, value in s.items():
            assert np.array_equal(bits(opt._state[key][k]), bits(value)), (k, key)
    assert ("master" in opt.state_dict()["state"]) == (mode == "master")


def test_master_weights_keep_small_updates():
    p_plain, p_master = [np.ones(4096, bfloat16)], [np.ones(4096, bfloat16)]
    plain = fastoptim.Adam(p_plain, lr=1e-4)
    master = fastoptim.Adam(p_master, lr=1e-4, master_weights=True)
    g = [np.ones(4096, bfloat16)]
    for _ in range(200):
        plain.step(g)
        master.step(g)
    assert np.all(p_plain[0].astype(np.float32) == 1.0)             # every update lost
    assert np.all(p_master[0].astype(np.float32) < 1.0)
    assert abs(master._state["master"][0].mean() - (1 - 200 * 1e-4)) < 1e-4


def test_groups_none_gradients_and_checkpoints(tmp_path):
    a, b = params(bfloat16, 1), params(bfloat16, 1)
    groups = lambda ps: [dict(params=ps[:2], lr=fastoptim.schedules.exponential_decay(1e-2, 0.9)),
                         dict(params=ps[2:], lr=1e-3)]
    o1 = fastoptim.AdamW(groups(a), master_weights=True)
    o2 = fastoptim.AdamW(groups(b), master_weights=True)
    for t in range(1, 4):
        g = grads(bfloat16, t)
        if t == 2:
            g[1] = None
        o1.step(g)
        o2.step(g)
    fastoptim.save_state(o2, tmp_path / "half.npz")
    c = params(bfloat16, 1)
    o3 = fastoptim.AdamW(groups(c), master_weights=True)
    fastoptim.load_state(o3, tmp_path / "half.npz")
    for p, q in zip(c, b):
        assert np.array_equal(bits(p), bits(q))              # the parameters restored too
    for t in range(4, 7):
        g = grads(bfloat16, t)
        o1.step(g)
        o3.step(g)
    for p, q in zip(a, c):
        assert np.array_equal(bits(p), bits(q))


@pytest.mark.parametrize("make, match", [
    (lambda: fastoptim.Adam([np.zeros(4, np.float32)], master_weights=True),
     "master_weights=True needs float16 or bfloat16"),
    (lambda: fastoptim.Adam([np.zeros(4, F16)], stochastic_rounding=True),
     "stochastic_rounding needs bfloat16"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16)], stochastic_rounding=True,
                            master_weights=True), "exclude each other"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16), np.zeros(4, np.float32)]),
     "half or float parameters, not both"),
    (lambda: fastoptim.Adam([np.zeros(4, np.float32), np.zeros(4, bfloat16)]),
     "half or float parameters, not both"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16), np.zeros(4, F16)]), "mix"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16)], amsgrad=True), "amsgrad"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16)], state_dtype="int8"), "state_dtype"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16)], skip_nonfinite=True), "skip_nonfinite"),
    (lambda: fastoptim.Adam([np.zeros(8, bfloat16)[::2]]), "contiguous"),
    (lambda: fastoptim.Adam([np.zeros(4, bfloat16)], seed=-1), "seed"),
])
def test_bad_options_are_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("bad, match", [
    (np.zeros(17, np.float32), "must be a numpy.ndarray of bfloat16"),
    (np.zeros(16, bfloat16), "has shape"),
    (np.zeros((40, 30), bfloat16).T.copy(order="C")[:, :], "contiguous in the memory order"),
])
def test_bad_gradient_changes_nothing(bad, match):
    ps = params(bfloat16)
    opt = fastoptim.Adam(ps, master_weights=True)
    opt.step(grads(bfloat16, 1))
    before = [p.copy() for p in ps]
    state = {k: [x.copy() for x in v] for k, v in opt._state.items()}
    g = grads(bfloat16, 2)
    if bad.ndim == 2:
        g[2] = np.ascontiguousarray(g[2])                 # C order for an F-order parameter
    else:
        g[1] = bad
    with pytest.raises((ValueError, TypeError), match=match):
        opt.step(g)
    assert opt.t == 1
    for p, q in zip(ps, before):
        assert np.array_equal(bits(p), bits(q))
    for k, v in opt._state.items():
        for x, y in zip(v, state[k]):
            assert np.array_equal(bits(x), bits(y))


def test_skip_nonfinite_cannot_be_turned_on_later():
    opt = fastoptim.Adam([np.zeros(4, bfloat16)], master_weights=True)
    with pytest.raises(ValueError, match="skip_nonfinite is for float parameters"):
        opt.skip_nonfinite = True
    assert opt.skip_nonfinite is False


def test_all_finite_refuses_what_it_would_read_past():
    from fastoptim import _reductions
    with pytest.raises(TypeError, match="float32 or float64 arrays only"):
        _reductions.all_finite([np.zeros(4, bfloat16)])


@pytest.mark.parametrize("dtype, mode", MODES, ids=lambda x: str(x))
def test_a_group_steps_in_one_compiled_call(dtype, mode, monkeypatch):
    """On "cython" a group's arrays step in one _lowmem.adam_half_many call: the bits of
    adam_half_step on each array (its seed seed + k), on 1 and 2 threads, with an empty
    array, arrays over two of the kernel's chunks and a None gradient."""
    from fastoptim import _lowmem
    shapes = [(70000,), (0,), (40, 30), (5,)]
    calls, counting = [], [False]
    many = _lowmem.adam_half_many

    def counted(params, *args, **kw):
        if counting[0]:                 # the class's calls, not the reference's
            calls.append(len(params))
        many(params, *args, **kw)

    monkeypatch.setattr(_lowmem, "adam_half_many", counted)
    rng = np.random.default_rng(4)
    start = [rng.standard_normal(s).astype(np.float32).astype(dtype) for s in shapes]
    start[2] = np.asfortranarray(start[2])
    previous = fastoptim.get_num_threads()
    try:
        for threads in (1, 2):
            fastoptim.set_num_threads(threads)
            calls.clear()
            mine, ref = [p.copy(order="K") for p in start], [p.copy(order="K") for p in start]
            opt = fastoptim.AdamW(mine, lr=1e-2, backend="cython", **options(mode))
            states = [hp.half_state(p, master_weights=(mode == "master")) for p in ref]
            for t in range(1, 5):
                g = [(rng.standard_normal(s) * 0.1).astype(np.float32).astype(dtype)
                     for s in shapes]
                g[2] = np.asfortranarray(g[2])
                if t == 2:
                    g[0] = None
                counting[0] = True
                opt.step(g)
                counting[0] = False
                for k, (p, gk, s) in enumerate(zip(ref, g, states)):
                    if gk is None:
                        continue
                    extra = dict(stochastic_rounding=True, seed=7 + k) if mode == "sr" else {}
                    step = t - 1 if k == 0 and t > 2 else t      # array 0 skipped step 2
                    hp.adam_half_step(p, gk, s, step=step, lr=1e-2, weight_decay=1e-2,
                                      decoupled_weight_decay=True, backend="cython", **extra)
            for p, q in zip(mine, ref):
                assert np.array_equal(bits(p), bits(q)), threads
            assert not np.array_equal(bits(mine[0]), bits(start[0]))
            # one call per bucket (group, step count): array 0 is a step behind after step 2
            assert calls == [4, 3, 1, 3, 1, 3], calls
    finally:
        fastoptim.set_num_threads(previous)
