# Multi-tensor entry points of the "cython" backend (included by kernels.pyx).
#
# ``<kernel>_multi`` steps a whole list of arrays in one call: it builds a table of data
# pointers in C, then runs one OpenMP parallel region over all the arrays. The work is cut
# into chunks of at least CHUNK elements per array, about four per thread (long contiguous
# runs keep the hardware prefetchers streaming; 64 KiB chunks dealt out alternately ran a
# 1e6-element Adam ~25% slower), which the threads take one at a time (dynamic schedule: on a
# busy machine a thread that was preempted does not hold the others back by a fixed share).
# Every update is element-wise and rounds the same in the vector body and the scalar tail, so
# where a chunk starts cannot change a result: the results are the same bit for bit for any
# thread count (and equal to the single-array kernels').
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from cython.parallel cimport prange

include "_extents.pxi"

from fastoptim._checks import check_subclass as _check_subclass

cdef enum:
    CHUNK = 16384              # elements: the smallest chunk (64 KiB of float32 per array)
    CHUNKS_PER_THREAD = 4
    MAX_ARRAYS = 5             # arrays per kernel call (param, grad, up to 3 states)

MULTI_CHUNK = CHUNK

# Memory traffic of one call (bytes read + written: every array read, all but the gradient
# written; 28 bytes per element for float32 Adam) from which threads pay: the one place this
# crossover lives, used by _threads_pay for the multi-tensor kernels and, through
# threads_pay, by fastoptim._backends for every single-array call. Measured on a 2-core AVX2
# machine, idle, with `python bench/crossover.py`: two threads beat the serial kernel from a
# serial call that moves 2-12 MiB (Adam float64 1.8 MiB, SGD float64 6 MiB, Adam float32
# 7 MiB, SGD float32 12 MiB); 8 MiB loses least across them (a wrong "parallel" costs up to
# 1.4x near the crossover, a wrong "serial" at most ~1.3x). The run is recorded in
# bench/README.md. get/set_parallel_min_traffic let benchmarks move it.
cdef Py_ssize_t _parallel_min_traffic = 8 << 20


cdef inline bint _threads_pay(Py_ssize_t bytes_per_array, Py_ssize_t arrays) noexcept nogil:
    """Whether a call on ``arrays`` arrays (the gradient read, the others read and written)
    of ``bytes_per_array`` bytes each moves enough memory for threads to pay."""
    return bytes_per_array * (2 * arrays - 1) >= _parallel_min_traffic


def threads_pay(Py_ssize_t bytes_per_array, Py_ssize_t arrays):
    """:func:`_threads_pay` for Python: the threading decision of ``backend="auto"``."""
    return _threads_pay(bytes_per_array, arrays)


def get_parallel_min_traffic():
    """Bytes moved per call from which the multi-tensor kernels use several threads."""
    return _parallel_min_traffic


def set_parallel_min_traffic(Py_ssize_t nbytes):
    """Set :func:`get_parallel_min_traffic` (``>= 0``); returns the previous value."""
    global _parallel_min_traffic
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes}")
    previous, _parallel_min_traffic = _parallel_min_traffic, nbytes
    return previous


cdef struct Table:
    int kind
    int nptr                   # arrays per kernel call
    Py_ssize_t count           # kernel calls (list length)
    void** ptr                 # [count * MAX_ARRAYS] data pointers, NULL for absent state
    Py_ssize_t* start          # [count + 1] first element of each call in the whole list
    Py_ssize_t chunk           # elements per chunk (the last of an array may be shorter)
    Py_ssize_t chunks          # number of chunks
    Py_ssize_t most            # room for this many chunks
    Py_ssize_t* entry          # [chunks] the list entry of each chunk
    Py_ssize_t* offset         # [chunks] its first element in that entry
    char* f64                  # [count] 1 for float64, 0 for float32
    AnyCoefficients coef       # the per-call coefficients, by name (_glue.pxi)


cdef inline void* _at(void* base, Py_ssize_t offset, Py_ssize_t itemsize) noexcept nogil:
    return NULL if base == NULL else <char*>base + offset * itemsize


cdef void _run_chunk(const Table* t, Py_ssize_t chunk) noexcept nogil:
    """Run chunk number ``chunk`` of the list (array ``t.entry[chunk]``)."""
    cdef Py_ssize_t i = t.entry[chunk]
    cdef Py_ssize_t off = t.offset[chunk]
    cdef Py_ssize_t n = min(t.chunk, t.start[i + 1] - t.start[i] - off)
    if t.f64[i]:
        _chunk_typed[double](<double*>t.ptr[i * MAX_ARRAYS], t, i, off, n)
    else:
        _chunk_typed[float](<float*>t.ptr[i * MAX_ARRAYS], t, i, off, n)


cdef object _get_num_threads = None

# In a process created by fork() the kernels never open an OpenMP parallel region: libgomp's
# thread pool does not survive fork, and a child whose parent had used it hangs in its first
# parallel region (the same policy as other OpenMP-based libraries). The at-fork handler
# below sets this flag in every child; one thread then runs the serial C loop.
cdef bint _in_forked_child = False


def _after_fork_in_child():
    global _in_forked_child
    _in_forked_child = True


def in_forked_child():
    """Whether this process was created by ``fork()`` after fastoptim was imported (its
    kernels then run on one thread)."""
    return _in_forked_child


import os as _os
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


cdef int _threads(object num_threads) except -1:
    """The thread count to use: ``num_threads``, or fastoptim's setting when it is None;
    always 1 in a forked child."""
    global _get_num_threads
    if num_threads is None:
        if _get_num_threads is None:
            import fastoptim
            _get_num_threads = getattr(fastoptim, "get_num_threads", None) or (lambda: 1)
        num_threads = _get_num_threads()
    if type(num_threads) is not int or num_threads < 1:
        raise ValueError(f"num_threads must be an int >= 1 (or None), got {num_threads!r}")
    return 1 if _in_forked_child else num_threads


cdef int _check_entry_array(str func, tuple names, int j, Py_ssize_t i, object obj,
                            object param) except -1:
    """Refuse what the kernels cannot take as it is: a non-ndarray or masked array, another
    dtype, shape or layout than the entry's parameter, swapped bytes, misalignment, a
    strided view, a read-only output."""
    cdef cnp.ndarray a, p
    cdef int typenum
    if not cnp.PyArray_CheckExact(obj):
        if not cnp.PyArray_Check(obj):
            raise TypeError(f"{func}: {names[j]}[{i}] must be a numpy.ndarray, "
                            f"got {type(obj).__name__}")
        _check_subclass(func, f"{names[j]}[{i}]", obj)
    a = <cnp.ndarray>obj
    p = <cnp.ndarray>param
    typenum = cnp.PyArray_TYPE(p)
    if j == 0:
        if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
            raise TypeError(f"{func}: {names[0]}[{i}] must be float32 or float64, "
                            f"got {obj.dtype}")
    else:
        if cnp.PyArray_TYPE(a) != typenum:
            raise TypeError(f"{func}: {names[j]}[{i}] must have the dtype of "
                            f"{names[0]}[{i}] ({param.dtype}), got {obj.dtype}")
        if cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(p) or not cnp.PyArray_CompareLists(
                cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(p), cnp.PyArray_NDIM(p)):
            raise ValueError(f"{func}: {names[j]}[{i}] must have the shape of "
                             f"{names[0]}[{i}] {param.shape}, got {obj.shape}")
        if not ((cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(p))
                or (cnp.PyArray_IS_F_CONTIGUOUS(a) and cnp.PyArray_IS_F_CONTIGUOUS(p))):
            raise ValueError(f"{func}: {names[j]}[{i}] must be contiguous in the order of "
                             f"{names[0]}[{i}] (all C or all F: mixing them would pair "
                             f"different elements)")
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{func}: {names[j]}[{i}] must be in native byte order")
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{func}: {names[j]}[{i}] is not aligned to its dtype")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)):
        raise ValueError(f"{func}: {names[j]}[{i}] must be contiguous")
    if j != 1 and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{func}: {names[j]}[{i}] is read-only")
    return 0


cdef void _pack_extents(Extent* e, Py_ssize_t* count, Py_ssize_t k, int nlists) noexcept:
    """Move list j's extents (stored from e[j * k]) right after those of list j - 1."""
    cdef Py_ssize_t base = 0, x
    cdef int j
    for j in range(nlists):
        if base != j * k:
            for x in range(count[j]):
                e[base + x] = e[j * k + x]
        base += count[j]


cdef str _label(tuple names, int which, Py_ssize_t entry, object labels):
    """``params[3]``, or ``params['W1']`` when the caller named the entries (``labels``)."""
    if labels is None:
        return f"{names[which]}[{entry}]"
    return f"{names[which]}[{labels[entry]!r}]"


cdef _check_no_overlap(str func, tuple names, Extent* e, Extent* tmp, Py_ssize_t* count,
                       int nlists, object labels):
    """No array written by the call may share memory with any other array of the call
    (gradients, which are only read, may share memory with each other).

    ``e`` holds ``count[j]`` extents of list ``j`` after those of lists ``0..j-1``. Each
    list's extents are usually in address order already (state buffers are views of one
    arena, parameters are usually allocated in order), so each is sorted only if it is not,
    then the lists are merged in one sweep that keeps the furthest end seen so far: O(k) in
    the common case, O(k log k) at worst, independent of the array sizes."""
    cdef Py_ssize_t head[MAX_ARRAYS]
    cdef Py_ssize_t stop[MAX_ARRAYS]
    cdef Py_ssize_t x, far_any = -1, far_out = -1, other, base = 0
    cdef int j, best
    for j in range(nlists):
        head[j] = base
        stop[j] = base + count[j]
        for x in range(base + 1, stop[j]):
            if e[x].lo < e[x - 1].lo:
                _sort_extents(e + base, tmp, count[j])
                break
        base = stop[j]
    while True:
        best = -1
        for j in range(nlists):
            if head[j] < stop[j] and (best < 0 or e[head[j]].lo < e[head[best]].lo):
                best = j
        if best < 0:
            return
        x = head[best]
        head[best] += 1
        other = -1
        if e[x].which != 1 and far_any >= 0 and e[x].lo < e[far_any].hi:
            other = far_any
        elif e[x].which == 1 and far_out >= 0 and e[x].lo < e[far_out].hi:
            other = far_out
        if other >= 0:
            raise ValueError(
                f"{func}: {_label(names, e[other].which, e[other].entry, labels)} and "
                f"{_label(names, e[x].which, e[x].entry, labels)} share memory; every "
                f"array the call writes must be a separate buffer")
        if far_any < 0 or e[x].hi > e[far_any].hi:
            far_any = x
        if e[x].which != 1 and (far_out < 0 or e[x].hi > e[far_out].hi):
            far_out = x


cdef tuple _held(str func, tuple lists, tuple names):
    """Every list copied into a tuple, which holds a reference to each array for the whole
    call (a sequence whose ``__getitem__`` made new arrays would otherwise leave dangling
    pointers); the lists must have the parameters' length."""
    held = list(lists)
    for j in range(len(held)):
        if held[j] is not None:
            held[j] = tuple(held[j])
    k = len(held[0])
    for j in range(1, len(held)):
        if held[j] is not None and len(held[j]) != k:
            raise ValueError(f"{func}: {names[j]} has {len(held[j])} arrays, "
                             f"{names[0]} has {k}")
    return tuple(held)


cdef Extent* _allocate(Table* t, tuple params, int nt) except NULL:
    """Plan the chunks and allocate the table (about 80 bytes per array: pointers, offsets,
    extents; one C ``malloc``, freed by the caller) for ``params``' sizes. Chunks are about
    total / (CHUNKS_PER_THREAD * threads) elements, a multiple of 64, at least CHUNK: at
    most k + total / chunk of them. Returns the extents (twice k * MAX_ARRAYS: the second
    half is sorting space)."""
    cdef Py_ssize_t i, k = t.count, most = 0
    for i in range(k):
        most += cnp.PyArray_SIZE(params[i]) if cnp.PyArray_Check(params[i]) else 0
    t.chunk = max(<Py_ssize_t>CHUNK, (most // (CHUNKS_PER_THREAD * nt) + 63) // 64 * 64)
    t.most = k + most // t.chunk
    t.ptr = <void**>malloc(k * MAX_ARRAYS * sizeof(void*) + (k + 1 + 2 * t.most)
                           * sizeof(Py_ssize_t) + 2 * k * MAX_ARRAYS * sizeof(Extent) + k + 1)
    if t.ptr == NULL:
        raise MemoryError()
    t.start = <Py_ssize_t*>(t.ptr + k * MAX_ARRAYS)
    t.entry = t.start + k + 1
    t.offset = t.entry + t.most
    cdef Extent* extents = <Extent*>(t.offset + t.most)
    t.f64 = <char*>(extents + 2 * k * MAX_ARRAYS)
    t.chunks = 0
    t.start[0] = 0
    return extents


cdef Py_ssize_t _add_entry(Table* t, str func, tuple lists, tuple names, Py_ssize_t i,
                           Extent* extents, Py_ssize_t* counts) except -1:
    """Check entry ``i``'s arrays, record their pointers, byte extents and chunks; returns
    the bytes of the entry's parameter."""
    cdef Py_ssize_t j, x, size = 0, k = t.count
    cdef int typenum = 0
    cdef cnp.ndarray a
    param = None
    for j in range(MAX_ARRAYS):
        t.ptr[i * MAX_ARRAYS + j] = NULL
    for j in range(t.nptr):
        if lists[j] is None:
            continue
        obj = (<tuple>lists[j])[i]
        if j == 0:
            param = obj
        _check_entry_array(func, names, j, i, obj, param)
        a = <cnp.ndarray>obj
        if j == 0:
            typenum = cnp.PyArray_TYPE(a)
            size = cnp.PyArray_SIZE(a)
        t.ptr[i * MAX_ARRAYS + j] = cnp.PyArray_DATA(a)
        if size > 0:
            x = j * k + counts[j]
            counts[j] += 1
            extents[x].lo = <uintptr_t>cnp.PyArray_DATA(a)
            extents[x].hi = extents[x].lo + cnp.PyArray_NBYTES(a)
            extents[x].which = j
            extents[x].written = j != 1
            extents[x].entry = i
    t.f64[i] = typenum == cnp.NPY_FLOAT64
    t.start[i + 1] = t.start[i] + size
    if t.chunks + (size + t.chunk - 1) // t.chunk > t.most:
        raise ValueError(f"{func}: {names[0]} changed while it was read")
    j = 0
    while j < size:  # (a C loop; range() with a step would build Python ints)
        t.entry[t.chunks] = i
        t.offset[t.chunks] = j
        t.chunks += 1
        j += t.chunk
    return size * (8 if t.f64[i] else 4)


cdef void _execute(const Table* t, int nt, bint threads) noexcept nogil:
    """Run every chunk: on ``nt`` threads when ``threads``, else in order on this one."""
    cdef Py_ssize_t chunk
    if nt == 1 or not threads:
        for chunk in range(t.chunks):
            _run_chunk(t, chunk)
    else:
        for chunk in prange(t.chunks, num_threads=nt, schedule="dynamic"):
            _run_chunk(t, chunk)


cdef _run(int kind, str func, tuple lists, tuple names, const AnyCoefficients* coef,
          object num_threads, object labels=None):
    """Fill a Table from ``lists`` (param list first; None for an absent state list), check
    everything a crash or a wrong result would follow from (:func:`_check_entry_array` per
    array, :func:`_check_no_overlap` across them), and run it on ``num_threads`` threads.
    No array data is allocated."""
    cdef int nt = _threads(num_threads)
    cdef Table t
    cdef Py_ssize_t i, j, nbytes = 0, arrays = 0
    cdef Py_ssize_t counts[MAX_ARRAYS]
    lists = _held(func, lists, names)
    for j in range(MAX_ARRAYS):
        counts[j] = 0
    t.kind = kind
    t.nptr = len(lists)
    t.count = len(lists[0])
    t.coef = coef[0]
    cdef Extent* extents = _allocate(&t, lists[0], nt)
    try:
        for i in range(t.count):
            nbytes += _add_entry(&t, func, lists, names, i, extents, counts)
        _pack_extents(extents, counts, t.count, t.nptr)
        _check_no_overlap(func, names, extents, extents + t.count * MAX_ARRAYS, counts,
                          t.nptr, labels)
        for j in range(t.nptr):
            arrays += lists[j] is not None
        with nogil:
            _execute(&t, nt, _threads_pay(nbytes, arrays))
    finally:
        free(t.ptr)


# ---------------------------------------------------------------------------------------------
# The Python entry points ``<kernel>_multi`` (generated in _glue.pxi) take lists (any
# sequences) of arrays, one entry per parameter, then the kernel's Coefficients. The
# caller validates every array as for the single-array kernels (fastoptim._checks.check_arrays
# on each entry's arrays). Still, these public entry points refuse everything that would
# crash or compute garbage: a non-ndarray or masked array, float32/64 only, within an entry
# the parameter's dtype, shape and layout (all C or all F), native byte order, alignment,
# contiguity, writeable outputs, and no written array sharing memory with any other array
# of the call. Entries may differ in size, shape and dtype from each other.
# ``labels``: optional names of the entries (the optimizer's keys), used in the messages.
# ``num_threads``: an int >= 1, or None for fastoptim's thread setting
# (``fastoptim.get_num_threads()``; 1 if the package has none). Results do not depend on it.
# ---------------------------------------------------------------------------------------------
