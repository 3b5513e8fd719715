"""Unusable and hostile checkpoints: every one raises ValueError with the optimizer unchanged;
nothing is decompressed before its header matches; interrupted saves leave no litter."""
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastoptim as fo


def make_opt():
    params = {"W": np.linspace(-1, 1, 12).reshape(3, 4), "b": np.zeros(3)}
    opt = fo.Adam(params, lr=0.1)
    for _ in range(3):
        opt.step({"W": np.ones((3, 4)), "b": np.ones(3)})
    return opt


def snapshot(opt):
    return ([p.copy() for p in opt._params],
            {k: [s.copy() for s in v] for k, v in opt._state.items()}, opt.t)


def assert_unchanged(opt, snap):
    params, state, t = snap
    for a, b in zip(opt._params, params):
        np.testing.assert_array_equal(a, b)
    for k, bufs in state.items():
        for a, b in zip(opt._state[k], bufs):
            np.testing.assert_array_equal(a, b)
    assert opt.t == t


@pytest.fixture
def saved(tmp_path):
    opt = make_opt()
    path = tmp_path / "good.npz"
    fo.save_state(opt, path)
    return path


def rewrite(src, dst, change_meta=None, drop=(), add=None, replace=None):
    """Copy the archive ``src`` to ``dst``, editing its metadata or members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info.filename)
            if info.filename == "__meta__.npy" and change_meta is not None:
                meta = json.loads(str(np.load(io.BytesIO(data))))
                change_meta(meta)
                buf = io.BytesIO()
                np.save(buf, np.array(json.dumps(meta)))
                data = buf.getvalue()
            if replace and info.filename in replace:
                data = replace[info.filename]
            zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _write(dst, data):
    dst.write_bytes(data)
    return dst


def _set(key, value):
    return lambda meta: meta.__setitem__(key, value)


BAD_FILES = {
    "empty": lambda src, dst: _write(dst, b""),
    "truncated": lambda src, dst: _write(dst, src.read_bytes()[:300]),
    "truncated_tail": lambda src, dst: _write(dst, src.read_bytes()[:-40]),
    "npy": lambda src, dst: _write(dst, npy_bytes(np.zeros(3))),
    "text": lambda src, dst: _write(dst, b"not a checkpoint"),
    "no_meta": lambda src, dst: rewrite(src, dst, drop=("__meta__.npy",)),
    "meta_not_json": lambda src, dst: rewrite(
        src, dst, replace={"__meta__.npy": npy_bytes(np.array("{nope"))}),
    "meta_not_text": lambda src, dst: rewrite(
        src, dst, replace={"__meta__.npy": npy_bytes(np.arange(3))}),
    "meta_list": lambda src, dst: rewrite(
        src, dst, replace={"__meta__.npy": npy_bytes(np.array("[1, 2]"))}),
    "step_2_64": lambda src, dst: rewrite(src, dst, _set("step", 2**64)),
    "step_2_63": lambda src, dst: rewrite(src, dst, _set("step", 2**63)),
    "step_float": lambda src, dst: rewrite(src, dst, _set("step", 3.7)),
    "step_negative": lambda src, dst: rewrite(src, dst, _set("step", -1)),
    "step_string": lambda src, dst: rewrite(src, dst, _set("step", "3")),
    "no_step": lambda src, dst: rewrite(src, dst, lambda m: m.pop("step")),
    "keys_not_list": lambda src, dst: rewrite(src, dst, _set("param_keys", "Wb")),
    "hyper_not_dict": lambda src, dst: rewrite(src, dst, _set("hyperparameters", [1])),
    "hyper_bad_betas": lambda src, dst: rewrite(
        src, dst, lambda m: m["param_groups"][0].__setitem__("betas", 5)),
    "hyper_bad_betas_format_1": lambda src, dst: rewrite(
        src, dst, lambda m: (m.update(format=1), m.pop("param_groups"),
                             m["hyperparameters"].__setitem__("betas", 5))),
    "groups_not_list": lambda src, dst: rewrite(src, dst, _set("param_groups", {"a": 1})),
    "groups_of_numbers": lambda src, dst: rewrite(src, dst, _set("param_groups", [1, 2])),
    "steps_not_ints": lambda src, dst: rewrite(src, dst, _set("steps", ["a", "b", "c"])),
    "steps_negative": lambda src, dst: rewrite(src, dst, _set("steps", [1, -1, 1])),
    "steps_short": lambda src, dst: rewrite(src, dst, _set("steps", [1])),
    "state_params_bad": lambda src, dst: rewrite(
        src, dst, _set("state_params", {"exp_avg": "x"})),
    "state_params_other": lambda src, dst: rewrite(
        src, dst, lambda m: m["state_params"].__setitem__("exp_avg", [2, 1, 0])),
    "state_count_bad": lambda src, dst: rewrite(
        src, dst, lambda m: m["state"].__setitem__("exp_avg", "two")),
    "format": lambda src, dst: rewrite(src, dst, _set("format", 99)),
    "other_optimizer": lambda src, dst: rewrite(src, dst, _set("optimizer", "SGD")),
    "missing_entry": lambda src, dst: rewrite(src, dst, drop=("params/1.npy",)),
    "extra_entry": lambda src, dst: rewrite(src, dst, add={"evil.npy": npy_bytes(np.ones(2))}),
    "object_array": lambda src, dst: rewrite(
        src, dst, replace={"params/1.npy": npy_bytes(np.array([None] * 3, dtype=object))}),
    "wrong_shape": lambda src, dst: rewrite(
        src, dst, replace={"params/1.npy": npy_bytes(np.zeros(4))}),
    "wrong_dtype": lambda src, dst: rewrite(
        src, dst, replace={"params/1.npy": npy_bytes(np.zeros(3, np.float32))}),
    "garbage_member": lambda src, dst: rewrite(
        src, dst, replace={"params/1.npy": b"\x93NUMPY garbage"}),
    "short_member": lambda src, dst: rewrite(
        src, dst, replace={"params/1.npy": npy_bytes(np.zeros(3))[:-8]}),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_every_unusable_checkpoint_raises_value_error_and_changes_nothing(kind, saved,
                                                                          tmp_path):
    bad = BAD_FILES[kind](saved, tmp_path / f"{kind}.npz")
    opt = make_opt()
    opt.step({"W": np.full((3, 4), 2.0), "b": np.full(3, 2.0)})   # differs from the file
    snap = snapshot(opt)
    with pytest.raises(ValueError):
        fo.load_state(opt, bad)
    assert_unchanged(opt, snap)


def test_the_good_checkpoint_still_loads(saved):
    opt = make_opt()
    opt.step({"W": np.full((3, 4), 2.0), "b": np.full(3, 2.0)})
    fo.load_state(opt, saved)
    assert opt.t == 3


def test_a_zip_bomb_is_refused_from_its_header(saved, tmp_path):
    """A few-kB member that inflates to 400 MB, of the wrong shape: refused after reading its
    header, before the data is decompressed."""
    big = np.zeros(50_000_000)                       # 400 MB of zeros, compresses ~1000x
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(big))

    def chunks():
        yield header.getvalue()
        block = bytes(1 << 20)
        for _ in range(big.nbytes >> 20):
            yield block

    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(saved) as zin, zipfile.ZipFile(
            bomb, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename != "params/0.npy":
                zout.writestr(info.filename, zin.read(info.filename))
        with zout.open("params/0.npy", "w", force_zip64=True) as member:
            for chunk in chunks():
                member.write(chunk)
    assert bomb.stat().st_size < 2_000_000
    opt = make_opt()
    snap = snapshot(opt)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="shape"):
            fo.load_state(opt, bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000
    assert_unchanged(opt, snap)


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        fo.save_state(make_opt(), missing / "c.npz")


KILLER = textwrap.dedent("""
    import os, sys, numpy as np, fastoptim as fo
    real = np.savez
    def dying_savez(fh, **arrays):
        fh.write(b"partial checkpoint bytes" * 1000)
        fh.flush()
        os.kill(os.getpid(), 9)
    np.savez = dying_savez
    opt = fo.Adam([np.zeros(1000)])
    fo.save_state(opt, sys.argv[1])
""")


def test_a_killed_save_leaves_litter_that_the_next_save_removes(tmp_path):
    target = tmp_path / "ckpt.npz"
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", KILLER, str(target)], timeout=120)
        assert out.returncode == -9
    litter = sorted(os.listdir(tmp_path))
    assert len(litter) == 3 and not target.exists()
    (tmp_path / "notes.txt").write_text("mine")               # not fastoptim's: kept
    (tmp_path / ".other.tmp").write_text("someone else's")
    fo.save_state(make_opt(), target)
    assert sorted(os.listdir(tmp_path)) == [".other.tmp", "ckpt.npz", "notes.txt"]
    opt = make_opt()
    fo.load_state(opt, target)


def test_a_live_writers_temporary_is_kept(tmp_path):
    """A temporary whose writer process is alive (another process saving right now) stays."""
    from fastoptim.checkpoint import _writer_id
    live = tmp_path / f".ckpt.npz.{_writer_id()}.{os.getppid()}.abcd1234.fastoptim-tmp"
    live.write_bytes(b"in progress")
    fo.save_state(make_opt(), tmp_path / "ckpt.npz")
    assert live.exists()


def test_another_hosts_temporary_is_kept_until_it_is_old(tmp_path):
    """A writer on another machine sharing the folder (NFS) cannot be checked from here: its
    temporary, even with a pid that does not exist here, is removed only once a day old."""
    from fastoptim.checkpoint import _STALE_AGE, _writer_id
    other = "0" * 8 if _writer_id() != "0" * 8 else "1" * 8
    young = tmp_path / f".ckpt.npz.{other}.999999999.abcd1234.fastoptim-tmp"
    old = tmp_path / f".ckpt.npz.{other}.999999999.efgh5678.fastoptim-tmp"
    young.write_bytes(b"in progress on another host")
    old.write_bytes(b"left by a dead writer on another host")
    stamp = time.time() - _STALE_AGE - 60
    os.utime(old, (stamp, stamp))
    fo.save_state(make_opt(), tmp_path / "ckpt.npz")
    assert young.exists() and not old.exists()


def test_a_long_checkpoint_name_saves(tmp_path):
    """The temporary's name keeps at most 96 bytes of the checkpoint's name, so a name near
    the file system's 255-byte limit still saves (and its temporary is removed)."""
    target = tmp_path / ("c" * 240 + ".npz")
    fo.save_state(make_opt(), target)
    assert sorted(os.listdir(tmp_path)) == [target.name]
    fo.load_state(make_opt(), target)
