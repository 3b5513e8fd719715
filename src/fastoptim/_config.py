"""``fastoptim info`` / :func:`show_config`: what this installation can do."""
from __future__ import annotations

import platform
import sys

import numpy as np


def cpu_simd_features() -> list:
    """SIMD extensions of this CPU that matter to the kernels (read from /proc/cpuinfo)."""
    wanted = ("sse2", "avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw", "neon", "asimd")
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def config_lines() -> list:
    from . import __version__
    from . import kernels
    from ._backends import BACKENDS, DEFAULT_BACKEND
    lines = [
        f"fastoptim {__version__}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"numpy     {np.__version__}",
        f"machine   {platform.machine()} {platform.processor() or ''}".rstrip(),
        f"simd      {' '.join(cpu_simd_features()) or 'unknown'}",
        f"kernels   cython runs the {kernels.simd_target()} variant "
        f"(this CPU can run: {', '.join(kernels.simd_targets())})",
        f"backends  {', '.join(BACKENDS)} (default {DEFAULT_BACKEND!r})",
    ]
    return lines


def show_config() -> None:
    """Print the version, backends and CPU features."""
    print("\n".join(config_lines()))


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    show_config()
    return 0
