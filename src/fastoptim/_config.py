"""``fastoptim info`` / :func:`show_config`: what this installation can do."""
from __future__ import annotations

import platform
import sys
import time

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


def numba_status() -> str:
    """Numba's version, or why it cannot be used (imports numba; diagnostics only)."""
    try:
        import numba
    except ImportError as exc:
        return f"unavailable ({exc})"
    return f"{numba.__version__} (at most {numba.config.NUMBA_NUM_THREADS} threads)"


def config_lines() -> list:
    from . import __version__, _lowmem, _threads, kernels
    from . import _backends
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
        f"numba     {numba_status()}",
        f"threads   {_threads.get_num_threads()} (set_num_threads, else "
        f"{_threads.ENV_VAR}, else the {_threads.available_cpus()} CPUs available)",
        f"prefetch  into {kernels.prefetch_target()}, {kernels.PREFETCH_AHEAD:,} elements "
        f"ahead of the loops",
        f"int8      the {_lowmem.nearest_code_search()} nearest-code search (compressed-state "
        f"loops at "
        f"{_lowmem.simd_target()})",
        "openmp    " + ("yes" if kernels.openmp_enabled() else
                        "no: built without OpenMP, the cython kernels run on one thread"),
        f"auto      serial cython below {kernels.get_parallel_min_traffic()} bytes moved per call "
        f"(Adam float32: {_backends.crossover(4)} elements), OpenMP threads from there "
        f"(with 2+ threads); numba only when asked for",
    ]
    return lines


def show_config() -> None:
    """Print the version, the backends available, the CPU's SIMD features, the thread count
    and the sizes from which ``backend="auto"`` runs the parallel kernels."""
    print("\n".join(config_lines()))


def add_arguments(parser) -> None:
    parser.add_argument("--warmup", action="store_true",
                        help="compile every Numba kernel for float32 and float64 now")


def run(args) -> int:
    show_config()
    if args.warmup:
        from ._backends import warmup
        t0 = time.perf_counter()
        count = warmup()
        print(f"warmup    {count} Numba kernel variants ready in "
              f"{time.perf_counter() - t0:.1f} s")
    return 0
