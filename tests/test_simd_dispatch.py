"""Runtime SIMD dispatch of the Cython kernels: the variant running is the best this CPU
supports, and every other variant this CPU can run passes the parity test too."""
import platform

import numpy as np
import pytest
from kernel_cases import CASES, case_id
from test_parity import test_matches_reference_over_many_steps as parity

from fastoptim import kernels

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def expected_best(flags):
    if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags:
        return "avx512"
    if {"avx2", "fma"} <= flags:
        return "avx2"
    return "sse2"


@pytest.mark.skipif(not X86 or cpu_flags() is None, reason="needs x86 Linux (/proc/cpuinfo)")
def test_running_variant_is_the_best_this_cpu_supports():
    best = expected_best(cpu_flags())
    assert kernels.simd_target() == best
    assert kernels.simd_targets()[-1] == best
    assert kernels.simd_targets()[0] == "sse2"


def cpu_vendor():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@pytest.mark.skipif(not X86 or cpu_vendor() is None, reason="needs x86 Linux (/proc/cpuinfo)")
def test_prefetch_goes_to_l2_on_amd_and_l1_elsewhere():
    """csrc/prefetch.h's policy, read back from the compiled module: the CPU model word
    gcc's __builtin_cpu_is reads agrees with the kernel's vendor string; the lines are asked
    for 256 elements ahead on AMD CPUs, 1,024 elsewhere."""
    amd = cpu_vendor() == "AuthenticAMD"
    assert kernels.prefetch_target() == ("L2" if amd else "L1")
    assert kernels.PREFETCH_AHEAD == (256 if amd else 1024)


@pytest.mark.skipif(not X86 or cpu_vendor() is None, reason="needs x86 Linux (/proc/cpuinfo)")
def test_int8_search_is_arithmetic_on_amd_and_the_bucket_gather_elsewhere():
    """csrc/adam_lowmem.h's policy for the AVX-512 8-bit loops, a selection for tests that
    the CPU's choice (None) restores, and the bucket search alone below AVX-512."""
    from fastoptim import _lowmem
    both = len(_lowmem.nearest_code_searches()) == 2       # the best level: AVX-512 or not
    assert both == _lowmem.simd_target().startswith("avx512")
    expected = "arithmetic" if cpu_vendor() == "AuthenticAMD" and both else "bucket"
    assert _lowmem.nearest_code_search() == expected
    if both:
        other = "bucket" if expected == "arithmetic" else "arithmetic"
        try:
            assert _lowmem._select_nearest_code_search(other) == expected
            assert _lowmem.nearest_code_search() == other
        finally:
            _lowmem._select_nearest_code_search(None)
        assert _lowmem.nearest_code_search() == expected
    below = [t for t in _lowmem.simd_targets() if not t.startswith("avx512")]
    previous = _lowmem._select_simd_target(below[-1])
    _lowmem._select_nearest_code_search("arithmetic")
    try:
        assert _lowmem.nearest_code_searches() == ("bucket",)
        assert _lowmem.nearest_code_search() == "bucket"
    finally:
        _lowmem._select_nearest_code_search(None)
        _lowmem._select_simd_target(previous)
    with pytest.raises(ValueError, match="choose from"):
        _lowmem._select_nearest_code_search("binary")


def test_unknown_or_unsupported_variant_is_refused():
    with pytest.raises(ValueError, match="not available"):
        kernels._select_simd_target("no-such-target")
    assert kernels.simd_target() == kernels.simd_targets()[-1]


# the running variant is covered by test_parity; here the others this CPU can run
@pytest.fixture(params=kernels.simd_targets()[:-1] or [None])
def simd_target(request):
    if request.param is None:
        pytest.skip("this build has one SIMD variant only")
    previous = kernels._select_simd_target(request.param)
    yield request.param
    kernels._select_simd_target(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(0,), (17,), (1000,)], ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_variant_matches_reference(case, shape, dtype, simd_target, rng):
    assert kernels.simd_target() == simd_target
    parity(case=case, shape=shape, order="C", dtype=dtype, backend="cython", rng=rng)
