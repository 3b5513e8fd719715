# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled passes of the clipping functions, each over a whole list of arrays in one call.

The functions take a list of validated arrays (float32/float64, contiguous, writeable where
written, not overlapping: :mod:`fastoptim.clip` checks them) and walk each array once over
raw pointers without the GIL. They do not validate.

``sums_of_squares`` is the reduction of the global gradient norm: each array's sum of
squares is accumulated in double precision, sequentially in memory order (the compiler may
not reorder floating-point additions without -ffast-math, which we never use), so the result
is the same on every run and every thread count.
"""
cimport numpy as cnp
from cython cimport floating

cnp.import_array()


cdef double sum_squares_kernel(
    const floating* x,              # IN
    Py_ssize_t n,                   # IN  number of elements
) noexcept nogil:
    cdef Py_ssize_t i
    cdef double s = 0.0, v
    for i in range(n):
        v = x[i]
        s += v * v
    return s


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
