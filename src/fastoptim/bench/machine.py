"""The machine line of a benchmark: CPU, SIMD features, threads and library versions."""
from __future__ import annotations

import importlib
import os
import platform

import numpy as np

from .._config import cpu_simd_features


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where available)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str):
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def machine_info() -> dict:
    """CPU, SIMD, thread count and versions, as plain JSON-able values."""
    from .. import __version__
    try:
        threads = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        threads = os.cpu_count()
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        load = None
    return dict(
        cpu=cpu_model(), arch=platform.machine(), simd=cpu_simd_features(), threads=threads,
        load_average=load,
        python=platform.python_version(), numpy=np.__version__, numba=_version("numba"),
        torch=_version("torch"), numexpr=_version("numexpr"), fastoptim=__version__,
    )


def machine_line(info: dict) -> str:
    """One line describing the machine, for tables, plots and the README."""
    versions = ", ".join(f"{name} {info[name]}" for name in
                         ("python", "numpy", "numba", "torch", "numexpr", "fastoptim")
                         if info.get(name))
    simd = " ".join(info["simd"]) or "unknown SIMD"
    load = info.get("load_average")
    load = "" if load is None else f"; load average {load:.1f} at start"
    return f"{info['cpu']} ({info['arch']}, {simd}), {info['threads']} threads; {versions}{load}"


def busy_warning(info: dict):
    """A warning when other processes keep the cores busy (parallel timings suffer most:
    a thread barrier waits for a descheduled thread for a whole time slice), else None."""
    load = info.get("load_average")
    if load is not None and load > 0.5 * info["threads"]:
        return (f"warning: load average {load:.1f} on {info['threads']} threads: other "
                f"processes are running, timings (parallel ones most) will be noisy and slow")
    return None
