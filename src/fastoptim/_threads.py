"""The number of threads fastoptim's parallel (Numba) kernels use.

Resolved once, in this order: :func:`set_num_threads`, else the environment variable
``FASTOPTIM_NUM_THREADS``, else the CPUs this process may run on
(``len(os.sched_getaffinity(0))``). The setting is fastoptim's own: the Numba backend applies
it around each of its calls and restores Numba's global thread count afterwards, so other
libraries never see it. This module does not import numba.
"""
from __future__ import annotations

import os
from numbers import Integral
from typing import Optional

ENV_VAR = "FASTOPTIM_NUM_THREADS"

_num_threads: Optional[int] = None
_forked_child = False


def _after_fork_in_child() -> None:
    """At-fork handler: a child of fork() runs fastoptim's kernels on one thread. OpenMP's
    and Numba's thread pools do not survive fork; a child whose parent had used them would
    hang (libgomp) or be terminated (Numba's OpenMP layer) in its first parallel call."""
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child() -> bool:
    """Whether this process was created by ``fork()`` after fastoptim was imported: its
    kernels then run on one thread whatever :func:`set_num_threads` says."""
    return _forked_child


def available_cpus() -> int:
    """The number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    """The largest thread count fastoptim accepts: 8 per CPU of the machine, at least 64.
    More threads than that only oversubscribe the CPUs, and far more (tens of thousands)
    make OpenMP's thread creation fail, which aborts or crashes the process."""
    return max(64, 8 * (os.cpu_count() or 1))


def _from_environment() -> Optional[int]:
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV_VAR} must be a positive integer, got {raw!r}")
    if n > max_threads():
        raise ValueError(f"{ENV_VAR} must be at most {max_threads()} (8 per CPU), got "
                         f"{raw!r}")
    return n


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of threads of fastoptim's parallel kernels.

    Parameters
    ----------
    n : int or None
        A thread count from 1 to :func:`max_threads` (8 per CPU, at least 64; more raises
        ``ValueError``), or ``None`` to go back to the default
        (``FASTOPTIM_NUM_THREADS``, else the CPUs available to this process). Numba cannot
        use more threads than it started with (``numba.config.NUMBA_NUM_THREADS``); a larger
        ``n`` is capped to that when a kernel runs.
    """
    global _num_threads
    if n is None:
        _num_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n!r}")
    if n > max_threads():
        raise ValueError(f"set_num_threads: n must be at most {max_threads()} (8 per CPU: "
                         f"more only oversubscribes them), got {n!r}")
    _num_threads = int(n)


def get_num_threads() -> int:
    """The number of threads fastoptim's parallel kernels use (see :func:`set_num_threads`);
    always 1 in a process created by ``fork()`` (see :func:`in_forked_child`)."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _from_environment() or available_cpus()
    return 1 if _forked_child else _num_threads
