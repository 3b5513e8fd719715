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
import tempfile
from typing import Union

import numpy as np

from .optim import Optimizer

__all__ = ["save_state", "load_state"]

_FORMAT = 1
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
        "state": {name: len(bufs) for name, bufs in sd["state"].items()},
    }
    arrays = {"__meta__": np.array(json.dumps(meta))}
    arrays.update({f"params/{i}": a for i, a in enumerate(sd["params"])})
    for name, bufs in sd["state"].items():
        arrays.update({f"state/{name}/{i}": a for i, a in enumerate(bufs)})
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
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

    Raises ``ValueError`` (naming what differs) when the file is not a fastoptim checkpoint
    or was saved from a different optimizer type, other parameter keys, shapes, dtypes or
    state options; nothing is changed then.
    """
    _check_optimizer("load_state", opt)
    path = os.fspath(path)
    with np.load(path, allow_pickle=False) as data:
        if "__meta__" not in data.files:
            raise ValueError(f"load_state: {path!r} is not a fastoptim checkpoint (no __meta__)")
        meta = json.loads(str(data["__meta__"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(
                f"load_state: {path!r} has checkpoint format {meta.get('format')!r}, "
                f"this fastoptim reads format {_FORMAT}")
        n = len(meta["param_keys"])
        try:
            sd = {
                "optimizer": meta["optimizer"],
                "step": meta["step"],
                "skipped_steps": meta.get("skipped_steps", 0),
                "param_keys": meta["param_keys"],
                "hyperparameters": meta["hyperparameters"],
                "params": [data[f"params/{i}"] for i in range(n)],
                "state": {name: [data[f"state/{name}/{i}"] for i in range(count)]
                          for name, count in meta["state"].items()},
            }
        except KeyError as exc:
            raise ValueError(f"load_state: {path!r} is incomplete: {exc}") from None
    opt.load_state_dict(sd)
