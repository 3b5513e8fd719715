"""Reliability of the optimizer classes: races, silent mistakes, non-finite gradients.

Each test is a regression test for a defect that an adversarial review found: a gradient
aliasing a parameter, concurrent steps losing counts, a rebound dict key, typos in attribute
names, eps underflowing the dtype, non-finite gradients, step counts beyond 63 bits.
"""
import threading

import numpy as np
import pytest
from testing_settings import ALL_BACKENDS

import fastoptim as fo
from fastoptim import Adagrad, Adam, SGD
from fastoptim._registry import KERNELS
from kernel_cases import (CLASS_FULL_CASES, CLASS_TYPICAL_CASES, class_case_id, entry,
                          optimizer_class)

# (class, constructor keywords): each class and kernel it runs, with the most state buffers
CLASSES = [(optimizer_class(name), opts) for name, _, opts in CLASS_FULL_CASES]
CLASS_IDS = [class_case_id(case) for case in CLASS_FULL_CASES]
# (class case, the keyword of its eps) where eps must be a normal number of the dtype
EPS_CASES = [(case, entry(*case[:2]).renames.get(KERNELS[case[1]].eps, KERNELS[case[1]].eps))
             for case in CLASS_TYPICAL_CASES if KERNELS[case[1]].eps]


def params_dict(n=10, dtype=np.float64):
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((3, n)).astype(dtype), "b1": np.zeros(3, dtype),
            "W2": rng.standard_normal((1, 3)).astype(dtype)}


def snapshot(opt):
    return ([p.copy() for p in opt._params], {k: [s.copy() for s in v]
                                              for k, v in opt._state.items()}, opt.t)


def assert_unchanged(opt, snap):
    params, state, t = snap
    for a, b in zip(opt._params, params):
        np.testing.assert_array_equal(a, b)
    for k, bufs in state.items():
        for a, b in zip(opt._state[k], bufs):
            np.testing.assert_array_equal(a, b)
    assert opt.t == t


# ---- item 4: a gradient that is a parameter or a state buffer -----------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS + ["auto"])
@pytest.mark.parametrize("cls,kw", CLASSES, ids=CLASS_IDS)
def test_gradient_sharing_memory_with_another_parameter_is_refused(cls, kw, backend):
    params = params_dict(n=3)
    opt = cls(params, backend=backend, **kw)
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    snap = snapshot(opt)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    grads["b1"] = params["W1"][0]              # b1's gradient is a row of W1
    with pytest.raises(ValueError, match=r"grads\['b1'\].*params\['W1'\]|params\['W1'\]"
                                         r".*grads\['b1'\]") as info:
        opt.step(grads)
    assert "share" in str(info.value)
    assert_unchanged(opt, snap)


@pytest.mark.parametrize("backend", ALL_BACKENDS + ["auto"])
def test_gradient_that_is_a_state_buffer_is_refused(backend):
    params = params_dict()
    opt = Adam(params, backend=backend)
    snap = snapshot(opt)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    grads["W2"] = opt._state["exp_avg"][1].reshape(params["W2"].shape) \
        if opt._state["exp_avg"][1].size == params["W2"].size else opt._state["exp_avg"][2]
    with pytest.raises(ValueError, match="share"):
        opt.step(grads)
    assert_unchanged(opt, snap)


def test_gradients_may_share_memory_with_each_other():
    p = [np.zeros(5), np.zeros(5)]
    g = np.ones(5)
    opt = SGD(p, lr=0.5)
    opt.step([g, g])
    np.testing.assert_array_equal(p[0], -0.5)
    np.testing.assert_array_equal(p[1], -0.5)


# ---- item 5: one optimizer stepped from several threads ------------------------------------
@pytest.mark.parametrize("cls,kw", [(Adam, {}), (SGD, dict(lr=0.01, momentum=0.9))],
                         ids=["Adam", "SGD-momentum"])
def test_concurrent_steps_are_serialized_and_none_is_lost(cls, kw):
    steps = 2000
    p = np.ones(100)
    g = np.full(100, 0.3)
    opt = cls([p], **kw)

    def worker():
        for _ in range(steps):
            opt.step([g])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opt.t == 2 * steps
    q = np.ones(100)
    serial = cls([q], **kw)
    for _ in range(2 * steps):
        serial.step([g])
    np.testing.assert_array_equal(p, q)


# ---- item 6: a key rebound to another array ------------------------------------------------
def test_rebinding_a_dict_key_is_detected_at_the_next_step():
    params = params_dict()
    opt = Adam(params)
    grads = {k: np.ones_like(v) for k, v in params.items()}
    opt.step(grads)
    old = params["W1"]
    params["W1"] = params["W1"] - 0.1 * grads["W1"]    # the course's style
    snap = snapshot(opt)
    before = old.copy()
    with pytest.raises(ValueError, match=r"params\['W1'\] was replaced.*\[\.\.\.\]"):
        opt.step(grads)
    assert_unchanged(opt, snap)
    np.testing.assert_array_equal(old, before)
    params["W1"] = old                                   # rebinding back works again
    opt.step(grads)
    assert opt.t == 2


def test_removing_a_key_or_changing_a_list_is_detected():
    params = params_dict()
    opt = SGD(params, lr=0.1)
    del params["b1"]
    with pytest.raises(ValueError, match="b1"):
        opt.step({k: np.ones(3) for k in ("W1", "b1", "W2")})
    plist = [np.zeros(3), np.zeros(3)]
    opt = SGD(plist, lr=0.1)
    plist[1] = np.zeros(3)
    with pytest.raises(ValueError, match="list was changed"):
        opt.step([np.ones(3), np.ones(3)])


def test_assigning_in_place_is_the_supported_way():
    params = params_dict()
    opt = SGD(params, lr=0.1)
    params["W1"][...] = 0.0
    opt.step({k: np.ones_like(v) for k, v in params.items()})
    np.testing.assert_array_equal(params["W1"], -0.1)


# ---- item 7: unknown attributes, last_lr -----------------------------------------------------
def test_setting_an_unknown_attribute_raises_with_the_valid_names():
    opt = Adam([np.zeros(3)])
    with pytest.raises(AttributeError, match="learning_rate.*settable: lr, skip_nonfinite"):
        opt.learning_rate = 100
    with pytest.raises(AttributeError, match="change it between steps with opt.param_groups"):
        opt.eps = 1e-3
    with pytest.raises(AttributeError, match="t"):
        opt.t = 5
    opt.lr = 0.5                     # the supported ones
    opt.skip_nonfinite = True
    assert opt.lr == 0.5 and opt.skip_nonfinite


def test_last_lr_is_the_rate_of_the_last_step_with_a_schedule():
    opt = SGD([np.zeros(3)], lr=fo.schedules.inverse_time_decay(0.2, 1.0))
    assert opt.last_lr is None
    opt.step([np.ones(3)])
    assert f"{opt.last_lr:.5f}" == "0.10000"      # lr0 / (1 + 1 * 1) at t = 1
    opt.step([np.ones(3)])
    assert opt.last_lr == pytest.approx(0.2 / 3)


# ---- item 10: eps that underflows the parameters' dtype --------------------------------------
@pytest.mark.parametrize("case,keyword", EPS_CASES,
                         ids=[class_case_id(c) for c, _ in EPS_CASES])
def test_eps_that_underflows_float32_is_refused_at_construction(case, keyword):
    name, _, opts = case
    cls = optimizer_class(name)
    with pytest.raises(ValueError, match=f"{keyword}=1e-50 underflows float32"):
        cls([np.zeros(3, np.float32)], **dict(opts, **{keyword: 1e-50}))
    cls([np.zeros(3, np.float64)], **dict(opts, **{keyword: 1e-50}))     # a normal float64


# ---- item 11: skip_nonfinite -------------------------------------------------------------------
@pytest.mark.parametrize("backend", ALL_BACKENDS + ["auto"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cls,kw", CLASSES, ids=CLASS_IDS)
def test_skip_nonfinite_changes_nothing_but_the_counter(cls, kw, bad, backend):
    params = params_dict(n=1000, dtype=np.float32)
    opt = cls(params, backend=backend, skip_nonfinite=True, **kw)
    good = {k: np.full_like(v, 0.25) for k, v in params.items()}
    opt.step(good)
    snap = snapshot(opt)
    grads = {k: v.copy() for k, v in good.items()}
    grads["W1"][2, 997] = bad                       # in the tail of the last row
    opt.step(grads)
    assert_unchanged(opt, snap)
    assert opt.skipped_steps == 1
    opt.step(good)
    assert opt.t == 2 and opt.skipped_steps == 1
    assert opt.last_lr is not None


def test_without_skip_nonfinite_a_nan_gradient_is_applied():
    p = np.zeros(3)
    opt = SGD([p], lr=0.1)
    opt.step([np.array([np.nan, 1.0, 1.0])])
    assert np.isnan(p[0]) and opt.t == 1 and opt.skipped_steps == 0


def test_skipped_steps_survive_a_checkpoint(tmp_path):
    p = np.zeros(3)
    opt = Adam([p], skip_nonfinite=True)
    opt.step([np.array([np.inf, 0, 0])])
    opt.step([np.ones(3)])
    fo.save_state(opt, tmp_path / "c.npz")
    other = Adam([np.zeros(3)], skip_nonfinite=True)
    fo.load_state(other, tmp_path / "c.npz")
    assert other.skipped_steps == 1 and other.t == 1


# ---- item 15: step counts beyond 63 bits -------------------------------------------------------
def test_step_refuses_to_pass_two_to_the_63():
    opt = Adam([np.zeros(3)])
    sd = opt.state_dict()
    sd["step"] = np.int64(2**63 - 1)
    opt.load_state_dict(sd)
    snap = snapshot(opt)
    with pytest.raises(ValueError, match="2\\*\\*63"):
        opt.step([np.ones(3)])
    assert_unchanged(opt, snap)


# ---- subclasses and old state names --------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", ALL_BACKENDS + ["auto"])
def test_matrix_params_and_grads_are_stepped_through_plain_views(backend):
    W = np.asmatrix(np.ones((2, 3)))
    opt = Adam([W], lr=0.1, backend=backend)
    opt.step([np.asmatrix(np.full((2, 3), 0.5))])
    q = np.ones((2, 3))
    Adam([q], lr=0.1, backend="numpy").step([np.full((2, 3), 0.5)])
    np.testing.assert_allclose(np.asarray(W), q, rtol=1e-12)
    assert opt.params[0] is W


@pytest.mark.parametrize("where", ["params", "grads"])
def test_masked_arrays_are_refused_by_the_classes(where):
    p = np.ma.MaskedArray(np.ones(3), mask=[0, 1, 0]) if where == "params" else np.ones(3)
    if where == "params":
        with pytest.raises(TypeError, match="MaskedArray"):
            SGD([p], lr=0.1)
        return
    opt = SGD([p], lr=0.1)
    with pytest.raises(TypeError, match="MaskedArray"):
        opt.step([np.ma.MaskedArray(np.ones(3), mask=[0, 1, 0])])
    np.testing.assert_array_equal(p, 1.0)


def test_adagrad_state_is_named_like_the_functional_argument_and_old_name_loads():
    opt = Adagrad([np.zeros(3)], initial_accumulator_value=0.5)
    sd = opt.state_dict()
    assert set(sd["state"]) == {"state_sum"}
    sd["state"] = {"sum": [np.full(3, 2.0)]}            # a fastoptim 0.1 checkpoint
    opt.load_state_dict(sd)
    np.testing.assert_array_equal(opt._state["state_sum"][0], 2.0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_detection_finds_every_position_on_any_thread_count(dtype, threads):
    """The read-only pass behind skip_nonfinite (parallel from a million elements)."""
    from fastoptim import _reductions
    fo.set_num_threads(threads)
    try:
        a = np.ones(3 * 2**20 + 7, dtype)
        assert _reductions.all_finite([np.ones(5, dtype), a])
        for pos in (0, 4095, 4096, 2**16 * 5 + 3, a.size - 1):
            for bad in (np.nan, np.inf, -np.inf):
                a[pos] = bad
                assert not _reductions.all_finite([np.ones(5, dtype), a]), (pos, bad)
                a[pos] = np.finfo(dtype).max
                assert _reductions.all_finite([a])
                a[pos] = 1
    finally:
        fo.set_num_threads(None)
