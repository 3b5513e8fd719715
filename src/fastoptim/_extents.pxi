# Byte extents of arrays and their sort (included by _multi_tensor.pxi and _checks.pyx): the
# overlap checks of a call over many arrays sort the extents once, O(k log k) in the number of
# arrays, independent of their sizes.
from libc.stdint cimport uintptr_t
from libc.string cimport memcpy


cdef struct Extent:
    uintptr_t lo               # first byte
    uintptr_t hi               # one past the last byte
    int which                  # what the array is, for its name (the caller's code)
    int written                # whether the call writes it (_first_overlap)
    Py_ssize_t entry           # its index in the caller's list


cdef void _sort_extents(Extent* e, Extent* tmp, Py_ssize_t n) noexcept nogil:
    """Sort ``e[:n]`` by start address: a bottom-up merge sort with the comparison inline
    (qsort's callback doubled the cost of a 200-array step), ``tmp`` holds ``n`` more."""
    cdef Py_ssize_t width = 1, lo, mid, hi, a, b, out
    cdef Extent* src = e
    cdef Extent* dst = tmp
    cdef Extent* swap
    while width < n:
        lo = 0
        while lo < n:
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            a, b, out = lo, mid, lo
            while a < mid and b < hi:
                if src[b].lo < src[a].lo:
                    dst[out] = src[b]
                    b += 1
                else:
                    dst[out] = src[a]
                    a += 1
                out += 1
            while a < mid:
                dst[out] = src[a]
                a += 1
                out += 1
            while b < hi:
                dst[out] = src[b]
                b += 1
                out += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != e:
        memcpy(e, src, n * sizeof(Extent))


cdef Py_ssize_t _first_overlap(const Extent* e, Py_ssize_t n, Py_ssize_t* earlier
                               ) noexcept nogil:
    """In ``e[:n]`` sorted by start (:func:`_sort_extents`): the index of the first extent
    that overlaps an earlier one where either is written, with that earlier one's index in
    ``*earlier``; -1 when none does (arrays only read may overlap each other). One sweep
    that keeps the furthest end seen so far, of any extent and of a written one."""
    cdef Py_ssize_t x, far_any = -1, far_written = -1, other
    for x in range(n):
        other = far_any if e[x].written else far_written
        if other >= 0 and e[x].lo < e[other].hi:
            earlier[0] = other
            return x
        if far_any < 0 or e[x].hi > e[far_any].hi:
            far_any = x
        if e[x].written and (far_written < 0 or e[x].hi > e[far_written].hi):
            far_written = x
    return -1
