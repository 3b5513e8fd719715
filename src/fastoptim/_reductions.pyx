# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled passes of the clipping functions, each over a whole list of arrays in one call.

The functions take a list of validated arrays (float32/float64, contiguous, writeable where
written, not overlapping: :mod:`fastoptim.clip` checks them) and walk each array once over
raw pointers without the GIL. They do not validate.

``sums_of_squares`` is the reduction of the global gradient norm: each array's sum of
squares is accumulated in double precision in memory order, in eight interleaved lanes
combined in a fixed order (see ``sum_squares_kernel``; the compiler may not reorder
floating-point additions without -ffast-math, which we never use), so the result depends only
on the data, never on the run or the thread count.
"""
cimport numpy as cnp
from cython cimport floating

cnp.import_array()


cdef double sum_squares_kernel(
    const floating* x,              # IN
    Py_ssize_t n,                   # IN  number of elements
) noexcept nogil:
    # Eight independent double accumulators (lane k sums elements i = k mod 8, in order),
    # then the remainder into lane 0 and a fixed pairwise combination: the order of every
    # addition is fixed by n alone, and the eight chains keep the FPU pipelines busy.
    cdef Py_ssize_t i, m = n - n % 8
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef double v
    for i in range(0, m, 8):
        v = x[i]
        s0 += v * v
        v = x[i + 1]
        s1 += v * v
        v = x[i + 2]
        s2 += v * v
        v = x[i + 3]
        s3 += v * v
        v = x[i + 4]
        s4 += v * v
        v = x[i + 5]
        s5 += v * v
        v = x[i + 6]
        s6 += v * v
        v = x[i + 7]
        s7 += v * v
    for i in range(m, n):
        v = x[i]
        s0 += v * v
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef void scale_kernel(
    floating* x,                    # IN/OUT
    Py_ssize_t n,                   # IN
    floating factor,                # IN
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        x[i] = x[i] * factor


cdef void clip_kernel(
    floating* x,                    # IN/OUT
    Py_ssize_t n,                   # IN
    floating limit,                 # IN  > 0; NaN stays NaN
) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(n):
        v = x[i]
        if v > limit:
            v = limit
        elif v < -limit:
            v = -limit
        x[i] = v


cdef inline bint _is_float32(cnp.ndarray a) noexcept nogil:
    return cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32


def sums_of_squares(list arrays):
    """Per array, the sum of squares in double precision (a list of floats, list order)."""
    cdef cnp.ndarray a
    cdef void* p
    cdef Py_ssize_t n
    cdef double s
    out = []
    for obj in arrays:
        a = <cnp.ndarray>obj
        p = cnp.PyArray_DATA(a)
        n = cnp.PyArray_SIZE(a)
        if _is_float32(a):
            with nogil:
                s = sum_squares_kernel[float](<const float*>p, n)
        else:
            with nogil:
                s = sum_squares_kernel[double](<const double*>p, n)
        out.append(s)
    return out


cdef _in_place(list arrays, double x, bint clip_values):
    """One pass per array: ``clip_kernel(x)`` if ``clip_values`` else ``scale_kernel(x)``."""
    cdef cnp.ndarray a
    cdef void* p
    cdef Py_ssize_t n
    for obj in arrays:
        a = <cnp.ndarray>obj
        p = cnp.PyArray_DATA(a)
        n = cnp.PyArray_SIZE(a)
        with nogil:
            if _is_float32(a) and clip_values:
                clip_kernel[float](<float*>p, n, <float>x)
            elif _is_float32(a):
                scale_kernel[float](<float*>p, n, <float>x)
            elif clip_values:
                clip_kernel[double](<double*>p, n, x)
            else:
                scale_kernel[double](<double*>p, n, x)


def scale(list arrays, double factor):
    """``x *= factor`` for every array, in place."""
    _in_place(arrays, factor, False)


def clip(list arrays, double limit):
    """``x = min(max(x, -limit), limit)`` for every array, in place (NaN is kept)."""
    _in_place(arrays, limit, True)


from libc.stdint cimport uint32_t, uint64_t

from cython.parallel cimport prange

cdef enum:
    FINITE_BLOCK = 4096            # elements tested between early exits
    PARALLEL_MIN = 1 << 20         # elements from which all_finite uses several threads
    PARALLEL_BLOCK = 1 << 16       # elements per parallel work item


cdef bint all_finite_f32(const uint32_t* bits, Py_ssize_t n) noexcept nogil:
    """Whether no float32 (given as its bits) is inf or NaN: the exponent is all ones
    exactly for those. An OR of integer tests per block (integer OR is associative, so the
    loop vectorizes without -ffast-math), leaving at the first block that has one."""
    cdef Py_ssize_t start, i, stop
    cdef uint32_t bad
    start = 0
    while start < n:
        stop = min(start + <Py_ssize_t>FINITE_BLOCK, n)
        bad = 0
        for i in range(start, stop):
            bad |= (bits[i] & 0x7F800000u) == 0x7F800000u
        if bad:
            return False
        start = stop
    return True


cdef bint all_finite_f64(const uint64_t* bits, Py_ssize_t n) noexcept nogil:
    """:func:`all_finite_f32` for float64."""
    cdef Py_ssize_t start, i, stop
    cdef uint64_t bad
    start = 0
    while start < n:
        stop = min(start + <Py_ssize_t>FINITE_BLOCK, n)
        bad = 0
        for i in range(start, stop):
            bad |= (bits[i] & 0x7FF0000000000000u) == 0x7FF0000000000000u
        if bad:
            return False
        start = stop
    return True


cdef bint _all_finite_parallel(const void* p, Py_ssize_t n, bint f32, int threads) noexcept nogil:
    """:func:`all_finite_f32` / ``_f64`` over blocks on ``threads`` OpenMP threads (no early
    exit; the OR of the blocks' answers does not depend on the thread count)."""
    cdef Py_ssize_t blocks = (n + PARALLEL_BLOCK - 1) // PARALLEL_BLOCK, b, start
    cdef int bad = 0
    for b in prange(blocks, num_threads=threads, schedule="static"):
        start = b * PARALLEL_BLOCK
        if f32:
            bad |= not all_finite_f32(<const uint32_t*>p + start,
                                      min(<Py_ssize_t>PARALLEL_BLOCK, n - start))
        else:
            bad |= not all_finite_f64(<const uint64_t*>p + start,
                                      min(<Py_ssize_t>PARALLEL_BLOCK, n - start))
    return bad == 0


def all_finite(arrays):
    """Whether every element of every array (float32/float64, contiguous) is finite: one
    read-only pass, stopping at the first block holding an inf or a NaN; arrays of a million
    elements and more are read by fastoptim's threads (one in a forked child)."""
    cdef cnp.ndarray a
    cdef const void* p
    cdef Py_ssize_t n
    cdef bint ok = True
    cdef int threads = 1
    for obj in arrays:
        a = <cnp.ndarray>obj
        if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 and cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT64:
            # read as float64 it would be read past its end
            raise TypeError(f"all_finite: float32 or float64 arrays only, got {a.dtype}")
        p = cnp.PyArray_DATA(a)
        n = cnp.PyArray_SIZE(a)
        if n >= PARALLEL_MIN:
            from fastoptim._threads import get_num_threads
            threads = get_num_threads()
        with nogil:
            if n >= PARALLEL_MIN and threads > 1:
                ok = _all_finite_parallel(p, n, _is_float32(a), threads)
            elif _is_float32(a):
                ok = all_finite_f32(<const uint32_t*>p, n)
            else:
                ok = all_finite_f64(<const uint64_t*>p, n)
        if not ok:
            return False
    return True
