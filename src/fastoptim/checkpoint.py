"""Optimizer checkpoints as ``.npz`` files, written atomically.

``save_state(opt, path)`` stores :meth:`Optimizer.state_dict` (the parameters, every state
buffer, the step count and the hyperparameters); ``load_state(opt, path)`` restores it in
place, so that training resumes bit-for-bit::

    fastoptim.save_state(opt, "ckpt.npz")
    ...
    opt = fastoptim.Adam(parameters, lr=1e-3)      # same keys, shapes, dtypes and options
    fastoptim.load_state(opt, "ckpt.npz")          # parameters and state restored in place

The file is written to a temporary file in the destination folder, flushed to disk and then
renamed over ``path`` (``os.replace``, atomic on POSIX and Windows), so an interrupted save
leaves the previous checkpoint intact. The archive holds only arrays (``allow_pickle`` is
never needed): the scalars and names travel as a JSON string in ``__meta__``.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
from typing import Union

import numpy as np

from . import _validation
from ._state_dict import RENAMED_STATES as _RENAMED
from .optim import Optimizer

__all__ = ["save_state", "load_state"]

_FORMAT = 2          # 2: parameter groups, per-array step counts; 1 (fastoptim 0.1) is read
_READABLE = (1, 2)
# mkstemp creates files readable by the owner only; a checkpoint gets the usual permissions
_UMASK = os.umask(0)
os.umask(_UMASK)
PathLike = Union[str, "os.PathLike[str]"]


def _check_optimizer(func: str, opt) -> None:
    if not isinstance(opt, Optimizer):
        raise TypeError(
            f"{func}: opt must be a fastoptim optimizer (SGD, Adam, ...), got "
            f"{type(opt).__name__}")


def save_state(opt: Optimizer, path: PathLike) -> None:
    """Write ``opt.state_dict()`` to ``path`` (an ``.npz`` file) atomically.

    Parameters
    ----------
    opt : Optimizer
    path : str or path-like
        Destination; its folder must exist. An existing file is replaced only once the new
        one is completely written.
    """
    _check_optimizer("save_state", opt)
    path = os.fspath(path)
    sd = opt.state_dict()
    meta = {
        "format": _FORMAT,
        "optimizer": sd["optimizer"],
        "step": int(sd["step"]),
        "skipped_steps": int(sd["skipped_steps"]),
        "param_keys": sd["param_keys"],
        "hyperparameters": sd["hyperparameters"],
        "param_groups": sd["param_groups"],
        "steps": sd["steps"],
        "state": {name: len(bufs) for name, bufs in sd["state"].items()},
        "state_params": sd["state_params"],
    }
    if "scalars" in sd:
        meta["scalars"] = sd["scalars"]         # floats: JSON keeps them exactly
    arrays = {"__meta__": np.array(json.dumps(meta))}
    arrays.update({f"params/{i}": a for i, a in enumerate(sd["params"])})
    for name, bufs in sd["state"].items():
        arrays.update({f"state/{name}/{i}": a for i, a in enumerate(bufs)})
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save_state: the folder {folder!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=_TMP_SUFFIX, prefix=_tmp_prefix(path))
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _sync_folder(folder)
    _remove_stale_temporaries(folder)


# Temporary files of save_state:
#   ".<checkpoint name, at most 96 bytes>.<writer id>.<writer pid>.<random>.fastoptim-tmp"
# The writer id (a hash of the host name and the pid namespace) tells whether the writer's
# pid can be checked from here: a temporary of another machine sharing the folder (NFS) or
# of another container is only removed once it is old.
_TMP_SUFFIX = ".fastoptim-tmp"
_TMP_NAME = re.compile(r"^\..*\.([0-9a-f]{8})\.(\d+)\.[^./]+" + re.escape(_TMP_SUFFIX) + "$")
_STALE_AGE = 24 * 3600      # seconds: older temporaries are stale even if the pid is reused
_NAME_BYTES = 96            # of the checkpoint's name kept in a temporary's name


def _writer_id() -> str:
    """8 hex digits naming this host and pid namespace."""
    import hashlib
    import socket
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha1(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:8]


def _tmp_prefix(path: str) -> str:
    name = os.path.basename(path).encode()[:_NAME_BYTES].decode(errors="ignore")
    return f".{name}.{_writer_id()}.{os.getpid()}."


def _remove_stale_temporaries(folder: str) -> None:
    """Remove save_state temporaries left in ``folder`` by writers that died (``kill -9``
    in the middle of a save): those of this host whose process no longer exists, and any
    older than a day (a pid may have been reused; another host's writer cannot be checked).
    Never anything else: only names of fastoptim's pattern, never this process's own."""
    now = time.time()
    me = _writer_id()
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for name in entries:
        match = _TMP_NAME.match(name)
        if match is None:
            continue
        writer, pid = match.group(1), int(match.group(2))
        full = os.path.join(folder, name)
        try:
            if writer == me and pid == os.getpid():
                continue
            dead = writer == me and not _alive(pid)
            if dead or now - os.stat(full).st_mtime >= _STALE_AGE:
                os.unlink(full)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on Windows, where ``os.kill`` would terminate it, the
    answer is always yes: temporaries are then removed by age only)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                 # exists, owned by someone else
        return True
    return True


def _sync_folder(folder: str) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_state(opt: Optimizer, path: PathLike) -> None:
    """Restore a checkpoint written by :func:`save_state` into ``opt``, in place.

    Every unusable file raises ``ValueError`` (the underlying error chained as its cause)
    and leaves ``opt`` unchanged: not an ``.npz`` archive (empty, truncated, a ``.npy``),
    malformed metadata, a step count that is not an integer in ``[0, 2**63 - 1]``, another
    optimizer type, other parameter keys, shapes, dtypes or state options. The ``.npy``
    header (shape and dtype) of every entry is read and compared with the optimizer before
    any array data is decompressed, so a small file that would inflate to gigabytes is
    refused after reading a few hundred bytes. A missing or unreadable file raises the
    ``OSError`` of ``open``.
    """
    _check_optimizer("load_state", opt)
    path = os.fspath(path)
    with open(path, "rb") as fh:
        try:
            sd = _read_checkpoint(fh, path, opt)
        except ValueError:
            raise
        except Exception as exc:      # zipfile, zlib, EOF, format errors: unusable file
            raise ValueError(
                f"load_state: {path!r} is not a readable fastoptim checkpoint "
                f"({type(exc).__name__}: {exc})") from exc
    try:
        opt.load_state_dict(sd)
    except ValueError:
        raise
    except (TypeError, KeyError, AttributeError, OverflowError) as exc:
        raise ValueError(f"load_state: {path!r} does not fit this optimizer: {exc}") from exc


_MAX_META_BYTES = 1 << 20


def _read_checkpoint(fh, path: str, opt: Optimizer) -> dict:
    """The state_dict stored in the open file ``fh``, checked against ``opt`` entry by entry
    (names, then every .npy header) before any array data is read."""
    def fail(why):
        return ValueError(f"load_state: {path!r} {why}")

    try:
        archive = zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        raise fail("is not a fastoptim checkpoint (not an .npz archive)") from exc
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        if "__meta__.npy" not in infos:
            raise fail("is not a fastoptim checkpoint (no __meta__)")
        if infos["__meta__.npy"].file_size > _MAX_META_BYTES:
            raise fail("has oversized metadata")
        meta = _parse_meta(_read_member(archive, "__meta__.npy", None, path), fail)
        expected = _expected_entries(opt, meta, fail)
        unexpected = sorted(set(infos) - set(expected) - {"__meta__.npy"})
        missing = sorted(set(expected) - set(infos))
        if missing or unexpected:
            raise fail(f"does not match this optimizer: missing entries {missing}, "
                       f"unexpected entries {unexpected}")
        for member, like in expected.items():     # headers first, no data yet
            _check_header(archive, member, like, path)
        arrays = {member: _read_member(archive, member, like, path)
                  for member, like in expected.items()}
    n = len(meta["param_keys"])
    sd = {
        "optimizer": meta["optimizer"], "step": meta["step"],
        "skipped_steps": meta.get("skipped_steps", 0), "param_keys": meta["param_keys"],
        "hyperparameters": meta["hyperparameters"],
        "params": [arrays[f"params/{i}.npy"] for i in range(n)],
        "state": {name: [arrays[f"state/{name}/{i}.npy"] for i in range(count)]
                  for name, count in meta["state"].items()},
    }
    sd.update({k: meta[k] for k in ("param_groups", "steps", "state_params", "scalars")
               if k in meta})
    return sd


def _parse_meta(raw, fail) -> dict:
    """The JSON metadata, with the type of every field checked."""
    if not isinstance(raw, np.ndarray) or raw.shape != () or raw.dtype.kind != "U":
        raise fail("has malformed metadata (not a text entry)")
    try:
        meta = json.loads(str(raw))
    except ValueError as exc:
        raise fail(f"has malformed metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise fail("has malformed metadata (not a JSON object)")
    if meta.get("format") not in _READABLE or isinstance(meta.get("format"), bool):
        raise fail(f"has checkpoint format {meta.get('format')!r}, this fastoptim reads "
                   f"formats {', '.join(map(str, _READABLE))}")
    kinds = {"optimizer": str, "step": int, "param_keys": list, "hyperparameters": dict,
             "state": dict}
    for key, kind in kinds.items():
        if key not in meta:
            raise fail(f"has malformed metadata (no {key!r})")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise fail(f"has malformed metadata ({key!r} is {type(meta[key]).__name__}, "
                       f"expected {kind.__name__})")
    _validation.steps_taken("load_state", "step", meta["step"])
    _validation.steps_taken("load_state", "skipped_steps", meta.get("skipped_steps", 0))
    for name, count in meta["state"].items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise fail(f"has malformed metadata (state {name!r} count {count!r})")
    optional = {"param_groups": (list, dict), "steps": (list, int),
                "state_params": (dict, list), "scalars": (dict, list)}
    for key, (kind, item) in optional.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, kind) or not all(
                isinstance(v, item) and not isinstance(v, bool)
                for v in (value.values() if isinstance(value, dict) else value))):
            raise fail(f"has malformed metadata ({key!r})")
    return meta


def _expected_entries(opt: Optimizer, meta: dict, fail) -> dict:
    """Archive member -> the optimizer's array it will be copied into (its shape and dtype
    are what the member's header must say)."""
    if meta["optimizer"] != type(opt).__name__:
        raise fail(f"is from a {meta['optimizer']!r} optimizer, not {type(opt).__name__!r}")
    if len(meta["param_keys"]) != len(opt._params):
        raise fail(f"has {len(meta['param_keys'])} parameters, this optimizer "
                   f"{len(opt._params)}")
    expected = {f"params/{i}.npy": p for i, p in enumerate(opt._params)}
    for name, count in meta["state"].items():
        current = _RENAMED.get(name, name) if name not in opt._state else name
        if current not in opt._state:
            raise fail(f"has state {sorted(meta['state'])}, this optimizer "
                       f"{sorted(opt._state)}; construct it with the saved options "
                       f"{meta['hyperparameters']}")
        mine = [a for a in opt._state[current] if a is not None]
        if count != len(mine):
            raise fail(f"has {count} {name!r} buffers, expected {len(mine)}")
        expected.update({f"state/{name}/{i}.npy": a for i, a in enumerate(mine)})
    return expected


def _header(stream):
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f"unsupported .npy version {version}")


def _on_disk(dtype: np.dtype) -> np.dtype:
    """The dtype a ``.npy`` header gives for an array of ``dtype``: raw records (``V2``) for
    a NumPy-extension float type such as ``ml_dtypes.bfloat16`` (compressed optimizer
    state), read back as ``dtype`` bit for bit."""
    if dtype.kind == "V" and dtype.names is None and dtype.subdtype is None:
        return np.dtype(f"V{dtype.itemsize}")
    return dtype


def _check_header(archive, member: str, like: np.ndarray, path: str) -> None:
    with archive.open(member) as stream:
        shape, _, dtype = _header(stream)
    if dtype.hasobject or shape != like.shape or dtype not in (like.dtype,
                                                               _on_disk(like.dtype)):
        raise ValueError(
            f"load_state: {path!r} entry {member[:-4]!r} has shape {shape} and dtype "
            f"{dtype}, this optimizer expects {like.shape} and {like.dtype}")


def _read_member(archive, member: str, like, path: str) -> np.ndarray:
    with archive.open(member) as stream:
        array = np.lib.format.read_array(stream, allow_pickle=False)
    if like is not None and array.dtype != like.dtype and array.dtype == _on_disk(like.dtype):
        array = array.view(like.dtype)
    return array
