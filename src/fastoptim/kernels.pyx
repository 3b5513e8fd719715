# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend: one fused, in-place pass per optimizer step.

The ``cdef ... noexcept nogil`` kernels are declared in ``kernels.pxd`` (read it for their
contract; other Cython code may ``cimport`` them). Each forwards to a loop in its C header
``csrc/<kernel>.h`` (the one place its formula is written), compiled for several SIMD targets
(SSE2, AVX2+FMA, AVX-512) and picked at import by ``_simd_kernels.h`` for this CPU, so a
portable build still runs the widest vectors the CPU has (:func:`simd_target` says which).

The ``def`` functions at the bottom are the Python layer's entry points. They do **not**
validate: :mod:`fastoptim.functional` checks every array and hyperparameter first and passes
the per-call coefficients. Arrays may have any shape; they must be contiguous in one common
order, which the validation layer guarantees. The ``<kernel>_multi`` functions
(``_multi_tensor.pxi``, included at the end) step a whole list of arrays in one call and one
OpenMP parallel region; ``compressed`` and ``compressed_many`` (``_compressed_state.pxi``) do
the same for state stored as bfloat16 or 8-bit codes, checking their arrays themselves.
"""
cimport numpy as cnp
from fastoptim.coefficients cimport *

cnp.import_array()

cdef extern from "_simd_kernels.h" nogil:
    # The loops themselves, compiled once per SIMD target and picked at import (see the
    # header). The formulas live only in csrc/<kernel>.h.
    int fo_simd_levels()
    int fo_simd_supported(int level)
    int fo_simd_best()
    int fo_simd_select(int level)
    int fo_simd_level()
    const char* fo_simd_name(int level)

fo_simd_select(fo_simd_best())


cdef extern from *:
    """
    #ifdef _OPENMP
    #define FO_BUILT_WITH_OPENMP 1
    #else
    #define FO_BUILT_WITH_OPENMP 0
    #endif
    """
    const int FO_BUILT_WITH_OPENMP


cdef extern from "csrc/prefetch.h":
    const int FO_HAS_PREFETCH
    int fo_prefetch_to_l2() nogil
    Py_ssize_t fo_prefetch_ahead() nogil


# elements ahead of each loop that the compiled loops prefetch on this CPU: 256 on AMD CPUs,
# 1,024 elsewhere (-DFO_PREFETCH_AHEAD_AMD=... / -DFO_PREFETCH_AHEAD=...)
PREFETCH_AHEAD = fo_prefetch_ahead()


def prefetch_target():
    """Where the compiled loops' software prefetch puts the lines it asks for,
    ``PREFETCH_AHEAD`` elements ahead of each loop (``csrc/prefetch.h``):
    ``"L2"`` on AMD CPUs (on a Zen 4 EPYC, whose L1 holds 32 KB, the prefetch into L1 made
    Adam slower than none), ``"L1"`` elsewhere, ``"none"`` where the compiler has no
    prefetch builtin. It changes no result."""
    if not FO_HAS_PREFETCH:
        return "none"
    return "L2" if fo_prefetch_to_l2() else "L1"


def openmp_enabled():
    """Whether this build's compiled kernels run on OpenMP threads when the thread count is
    above 1. A build whose compiler could not build OpenMP programs (setup.py checks) runs
    them on one thread, with the same results; the Numba backend's threads are its own."""
    return bool(FO_BUILT_WITH_OPENMP)


def simd_target():
    """The SIMD variant the kernels run: ``"avx512"``, ``"avx2"`` or ``"sse2"`` on x86
    (``"generic"`` elsewhere), chosen at import as the best this CPU supports."""
    return fo_simd_name(fo_simd_level()).decode()


def simd_targets():
    """Every SIMD variant compiled into this build that this CPU can run, best last."""
    return [fo_simd_name(level).decode() for level in range(fo_simd_levels())
            if fo_simd_supported(level)]


def _select_simd_target(str name):
    """Make ``name`` (one of :func:`simd_targets`) the active variant; for tests and
    benchmarks. Returns the previously active name."""
    previous = simd_target()
    for level in range(fo_simd_levels()):
        if fo_simd_name(level).decode() == name and fo_simd_select(level) == level:
            return previous
    raise ValueError(f"SIMD target {name!r} is not available here; choose from {simd_targets()}")


# ---------------------------------------------------------------------------------------------
# Python entry points (unchecked: called by fastoptim.functional after validation)
# ---------------------------------------------------------------------------------------------

cdef inline bint _is_float32(object a):
    return cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32


cdef inline void* _data(object a):
    """Data pointer of an ndarray, NULL for None."""
    if a is None:
        return NULL
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline Py_ssize_t _size(object a):
    return cnp.PyArray_SIZE(<cnp.ndarray>a)


include "_glue.pxi"
include "_multi_tensor.pxi"
include "_compressed_state.pxi"
