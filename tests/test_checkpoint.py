"""state_dict / load_state_dict and atomic .npz checkpoints: bit-for-bit resume.

Every optimizer class with every option set of the registry (kernel_cases.CLASS_CASES)."""
import os

import numpy as np
import pytest

import fastoptim
from fastoptim import load_state, save_state
from fastoptim.optim import SGD, Adagrad, Adam, AdamW
from kernel_cases import CLASS_CASES, class_case_id, class_state_names, optimizer_class
from testing_settings import ALL_BACKENDS


def initial(dtype=np.float32):
    rng = np.random.default_rng(0)
    return {"W1": rng.standard_normal((6, 4)).astype(dtype),
            "b1": np.zeros((6, 1), dtype),
            "W2": rng.standard_normal((1, 6)).astype(dtype)}


def grad_stream(params, n, seed=1):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}
            for _ in range(n)]


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("case", CLASS_CASES, ids=class_case_id)
def test_resume_is_bit_identical(case, backend, tmp_path):
    name, _, opts = case
    cls = optimizer_class(name)
    grads = grad_stream(initial(), 100)
    straight = initial()
    opt = cls(straight, backend=backend, **opts)
    for g in grads:
        opt.step(g)

    first = initial()
    opt1 = cls(first, backend=backend, **opts)
    for g in grads[:50]:
        opt1.step(g)
    path = tmp_path / "ckpt.npz"
    save_state(opt1, path)
    resumed = initial()                                   # fresh params, fresh optimizer
    opt2 = cls(resumed, backend=backend, **opts)
    load_state(opt2, path)
    assert opt2.t == 50
    for g in grads[50:]:
        opt2.step(g)
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k])
        assert resumed[k].tobytes() == straight[k].tobytes()


@pytest.mark.parametrize("case", CLASS_CASES, ids=class_case_id)
def test_state_dict_roundtrip_in_memory(case):
    name, _, opts = case
    cls = optimizer_class(name)
    params = initial(np.float64)
    opt = cls(params, **opts)
    for g in grad_stream(params, 5):
        opt.step(g)
    sd = opt.state_dict()
    assert sd["optimizer"] == cls.__name__
    assert type(sd["step"]) is np.int64 and sd["step"] == 5
    assert sd["param_keys"] == ["W1", "b1", "W2"]
    assert list(sd["state"]) == list(class_state_names(*case))
    for bufs in sd["state"].values():
        assert all(type(b) is np.ndarray for b in bufs)
        assert not any(np.shares_memory(b, s) for b in bufs for lst in opt._state.values()
                       for s in lst)
    other = initial(np.float64)
    opt2 = cls(other, **opts)
    ptrs = [a.ctypes.data for a in other.values()]
    opt2.load_state_dict(sd)
    assert [a.ctypes.data for a in other.values()] == ptrs                # in place
    for k in params:
        np.testing.assert_array_equal(other[k], params[k])
    for s, bufs in opt2.state_dict()["state"].items():
        for a, b in zip(bufs, sd["state"][s]):
            np.testing.assert_array_equal(a, b)


def test_manual_lr_is_restored(tmp_path):
    params = initial()
    opt = SGD(params, lr=0.2)
    opt.lr = 0.05
    save_state(opt, tmp_path / "c.npz")
    opt2 = SGD(initial(), lr=0.2)
    load_state(opt2, tmp_path / "c.npz")
    assert opt2.lr == 0.05
    sched = SGD(initial(), lr=lambda t: 0.1)
    assert sched.state_dict()["hyperparameters"]["lr"] is None


def _trained(cls=Adam, **opts):
    params = initial()
    opt = cls(params, **opts)
    for g in grad_stream(params, 3):
        opt.step(g)
    return opt


def _assert_unchanged(opt, before):
    after = opt.state_dict()
    assert after["step"] == before["step"]
    for a, b in zip(after["params"], before["params"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mutate,msg", [
    (lambda sd: sd.update(optimizer="SGD"), "from a 'SGD' optimizer, not 'Adam'"),
    (lambda sd: sd.update(param_keys=["W1", "b1"]), "param_keys"),
    (lambda sd: sd["params"].__setitem__(1, np.zeros((5, 1), np.float32)), r"params\['b1'\] has shape \(5, 1\)"),
    (lambda sd: sd["state"]["exp_avg"].__setitem__(2, np.zeros((1, 6))), r"state\['exp_avg'\]\['W2'\] has shape \(1, 6\) and dtype float64"),
    (lambda sd: sd["state"].pop("exp_avg_sq"), "state"),
    (lambda sd: sd["param_groups"][0].update(amsgrad=True), "construct it with the saved options"),
    (lambda sd: sd["param_groups"][0].update(eps=-1.0), "eps must be >= 0"),
    # a one-group state dict of fastoptim 0.1 (no param_groups) is checked the same way
    (lambda sd: (sd.pop("param_groups"), sd["hyperparameters"].update(amsgrad=True)),
     "construct it with the saved options"),
    (lambda sd: sd["param_groups"][0].update(params=[0, 1]), "holds other arrays"),
    (lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0])), "2 parameter groups"),
    (lambda sd: sd.update(steps=[3, 3]), "steps has 2 counts"),
    (lambda sd: sd.update(steps=[3, 3, -1]), r"steps\[2\] must be in"),
    (lambda sd: sd["state_params"].update(exp_avg=[0, 1]), "belong to other arrays"),
    (lambda sd: sd.update(step=-3), r"step must be in \[0, 2\*\*63 - 1\]"),
    (lambda sd: sd.update(step=2**63), r"step must be in \[0, 2\*\*63 - 1\]"),
    (lambda sd: sd.update(step=2**64), r"step must be in \[0, 2\*\*63 - 1\]"),
    (lambda sd: sd.update(step=3.7), "step must be an integer"),
    (lambda sd: sd.update(step=np.float64(3.0)), "step must be an integer"),
    (lambda sd: sd.update(skipped_steps=-1), "skipped_steps must be in"),
    (lambda sd: sd["param_groups"][0].pop("betas"), r"hyperparameters \['amsgrad', 'decoupled_weight_decay', 'eps'"),
    (lambda sd: sd.pop("state"), "missing"),
])
def test_load_state_dict_validates_before_copying(mutate, msg):
    source = _trained(Adam)
    sd = source.state_dict()
    mutate(sd)
    target = _trained(Adam, lr=0.5)
    target.step(grad_stream(initial(), 1, seed=9)[0])
    before = target.state_dict()
    with pytest.raises((ValueError, TypeError), match=msg):
        target.load_state_dict(sd)
    _assert_unchanged(target, before)


def test_load_wrong_optimizer_type_from_file(tmp_path):
    save_state(_trained(Adam), tmp_path / "a.npz")
    with pytest.raises(ValueError, match="from a 'Adam' optimizer, not 'AdamW'"):
        load_state(_trained(AdamW), tmp_path / "a.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not a fastoptim checkpoint"):
        load_state(_trained(Adam), tmp_path / "other.npz")
    with pytest.raises(TypeError, match="opt must be a fastoptim optimizer"):
        save_state(object(), tmp_path / "x.npz")


def test_list_params_checkpoint(tmp_path):
    params = [np.ones(3), np.ones((2, 2))]
    opt = Adagrad(params)
    opt.step([np.ones(3), np.ones((2, 2))])
    save_state(opt, tmp_path / "l.npz")
    fresh = [np.zeros(3), np.zeros((2, 2))]
    opt2 = Adagrad(fresh)
    load_state(opt2, tmp_path / "l.npz")
    np.testing.assert_array_equal(fresh[1], params[1])
    np.testing.assert_array_equal(opt2._state["state_sum"][0], opt._state["state_sum"][0])


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    opt = _trained(Adam)
    path = tmp_path / "ckpt.npz"
    save_state(opt, path)
    good = path.read_bytes()
    opt.step(grad_stream(initial(), 1, seed=5)[0])

    real_savez = np.savez

    def failing_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 partial zip")                     # half-written archive
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_state(opt, path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["ckpt.npz"]                   # temp file cleaned up
    restored = Adam(initial())
    load_state(restored, path)
    assert restored.t == 3


def test_save_and_load_are_public():
    assert fastoptim.save_state is save_state and fastoptim.load_state is load_state


def test_checkpoint_file_permissions_follow_umask(tmp_path):
    path = tmp_path / "p.npz"
    save_state(_trained(SGD, lr=0.1), path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
