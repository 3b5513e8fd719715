# cython: language_level=3, boundscheck=False, wraparound=False
"""Array checks for the validation layer, in C so that a step on a small array stays cheap.

One function, :func:`check_arrays`, serves every backend. It raises ``TypeError`` or
``ValueError`` naming the function and the argument, and it never touches array data.
"""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

include "_extents.pxi"

cdef enum:
    LOCAL_EXTENTS = 128        # arrays grads_apart checks without a heap allocation

cnp.import_array()


cdef str _layout_words(cnp.ndarray a):
    if cnp.PyArray_IS_C_CONTIGUOUS(a):
        return "C-contiguous"
    if cnp.PyArray_IS_F_CONTIGUOUS(a):
        return "F-contiguous"
    return "not contiguous"


cdef object _masked_array_type = None


cdef bint _is_masked(object obj):
    """Whether ``obj`` is a ``numpy.ma.MaskedArray`` (imported on the first subclass seen)."""
    global _masked_array_type
    if _masked_array_type is None:
        import numpy.ma
        _masked_array_type = numpy.ma.MaskedArray
    return isinstance(obj, _masked_array_type)


cpdef check_subclass(str func, str name, object obj):
    """The policy for ``ndarray`` subclasses, shared by every entry point: a masked array is
    refused with ``TypeError`` (the kernels would ignore its mask and update masked
    elements); any other subclass (``np.matrix``, ``np.memmap``, ...) is used through a
    plain ``ndarray`` view of the same memory, so the update lands in the user's array and
    no backend sees the subclass's own operators (a ``matrix`` turns ``g**2`` into a matrix
    power and ravels to 2-D). Returns that view."""
    if _is_masked(obj):
        raise TypeError(
            f"{func}: {name} is a numpy.ma.MaskedArray; fastoptim would ignore its mask "
            f"and update the masked elements too. Pass the data (np.ma.getdata) or the "
            f"filled array (np.ma.filled) explicitly")
    return obj.view(np.ndarray)


def check_arrays(str func, tuple names, tuple arrays, Py_ssize_t readonly_ok=1):
    """Check the arrays of one kernel call; return ``None``, or plain views of subclasses.

    ``arrays[0]`` is the parameter; every array must be an ``np.ndarray`` of float32 or
    float64 in native byte order, aligned, of ``arrays[0]``'s dtype and shape; all must be
    C-contiguous or all F-contiguous; all but ``arrays[readonly_ok]`` must be writeable; no
    two may share memory. ``names[i]`` names ``arrays[i]`` in the messages.

    When every array is exactly ``numpy.ndarray`` (the common case) the result is ``None``.
    When some are subclasses, the result is ``arrays`` with each subclass replaced by a
    plain ``ndarray`` view of the same memory (:func:`check_subclass`: masked arrays are
    refused); the caller must pass those views to the backend.
    """
    cdef list plain = _plain_views(func, names, arrays)
    if plain is not None:
        arrays = tuple(plain)
    cdef cnp.ndarray first = <cnp.ndarray>arrays[0]
    cdef int typenum = cnp.PyArray_TYPE(first)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(
            f"{func}: {names[0]} must have dtype float32 or float64, got {arrays[0].dtype}")
    if not _check_each(func, names, arrays, readonly_ok):
        _raise_layout(func, names, arrays)
    if cnp.PyArray_SIZE(first) > 0:
        _check_apart(func, names, arrays, cnp.PyArray_NBYTES(first))
    return arrays if plain is not None else None


cdef list _plain_views(str func, tuple names, tuple arrays):
    """``None`` when every array is exactly ``numpy.ndarray``; else the arrays with each
    subclass replaced by its plain view (:func:`check_subclass`)."""
    cdef list plain = None
    for i in range(len(arrays)):
        obj = arrays[i]
        if not cnp.PyArray_CheckExact(obj):
            if not cnp.PyArray_Check(obj):
                raise TypeError(
                    f"{func}: {names[i]} must be a numpy.ndarray, got {type(obj).__name__}")
            if plain is None:
                plain = list(arrays)
            plain[i] = check_subclass(func, names[i], obj)
    return plain


cdef int _check_each(str func, tuple names, tuple arrays, Py_ssize_t readonly_ok) except -1:
    """Each array against the first: dtype, byte order, shape, alignment, writeable.
    Returns 1 when all are C-contiguous or all F-contiguous, else 0."""
    cdef cnp.ndarray a, first = <cnp.ndarray>arrays[0]
    cdef int typenum = cnp.PyArray_TYPE(first), ndim = cnp.PyArray_NDIM(first)
    cdef bint all_c = True, all_f = True
    for i in range(len(arrays)):
        a = <cnp.ndarray>arrays[i]
        if cnp.PyArray_TYPE(a) != typenum:
            raise TypeError(
                f"{func}: {names[i]} must have the dtype of {names[0]} ({arrays[0].dtype}), "
                f"got {arrays[i].dtype}")
        if not cnp.PyArray_ISNOTSWAPPED(a):
            raise TypeError(
                f"{func}: {names[i]} must be in native byte order, got dtype {arrays[i].dtype.str!r}")
        if i > 0 and (cnp.PyArray_NDIM(a) != ndim or not cnp.PyArray_CompareLists(
                cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(first), ndim)):
            raise ValueError(
                f"{func}: {names[i]} must have the shape of {names[0]} {arrays[0].shape}, "
                f"got {arrays[i].shape}")
        if not cnp.PyArray_ISALIGNED(a):
            raise ValueError(f"{func}: {names[i]} is not aligned to its dtype")
        if i != readonly_ok and not cnp.PyArray_ISWRITEABLE(a):
            raise ValueError(
                f"{func}: {names[i]} is read-only, but it is updated in place; "
                f"pass a writeable array")
        all_c = all_c and cnp.PyArray_IS_C_CONTIGUOUS(a)
        all_f = all_f and cnp.PyArray_IS_F_CONTIGUOUS(a)
    return all_c or all_f


cdef int _raise_layout(str func, tuple names, tuple arrays) except -1:
    """Raise for a non-contiguous array, or for mixed C and F layouts."""
    cdef Py_ssize_t k = len(arrays)
    for i in range(k):
        a = <cnp.ndarray>arrays[i]
        if not (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)):
            raise ValueError(
                f"{func}: {names[i]} must be C- or F-contiguous, got strides "
                f"{arrays[i].strides} for shape {arrays[i].shape}; fastoptim updates arrays in place "
                f"and never copies (a copy would lose the update)")
    raise ValueError(
        f"{func}: all arrays must be C-contiguous or all F-contiguous, but "
        f"{names[0]} is {_layout_words(<cnp.ndarray>arrays[0])} and "
        + ", ".join(f"{names[i]} is {_layout_words(<cnp.ndarray>arrays[i])}"
                    for i in range(1, k))
        + "; mixing layouts would pair different elements")


cdef int _check_apart(str func, tuple names, tuple arrays, Py_ssize_t nbytes) except -1:
    """No two of the arrays (``nbytes`` each) share memory."""
    cdef uintptr_t lo_i, hi_i, lo_j, hi_j
    cdef Py_ssize_t k = len(arrays), i, j
    for i in range(k):
        lo_i = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>arrays[i])
        hi_i = lo_i + nbytes
        for j in range(i + 1, k):
            lo_j = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>arrays[j])
            hi_j = lo_j + nbytes
            if lo_i < hi_j and lo_j < hi_i:
                raise ValueError(
                    f"{func}: {names[i]} and {names[j]} share memory; every array "
                    f"must be a separate buffer")
    return 0


# ---------------------------------------------------------------------------------------------
# Hyperparameters: one compiled pass over all of a call's scalars.
# ---------------------------------------------------------------------------------------------

from cpython.float cimport PyFloat_AS_DOUBLE
from libc.math cimport isfinite

# The kinds of scalar, in the order of _validation.SCALAR_KINDS.
cdef enum:
    REAL, NONNEGATIVE, POSITIVE, UNIT_INTERVAL, CLOSED_UNIT_INTERVAL, FLAG, STEP_COUNT


cdef bint _plainly_valid(int kind, object x):
    """True when ``x`` is already the canonical, valid value of its kind (the common case):
    an exact ``float`` in range, an exact ``bool``, an exact ``int >= 1``."""
    cdef double d
    if kind == FLAG:
        return type(x) is bool
    if kind == STEP_COUNT:
        return type(x) is int and 1 <= x <= 0x7FFFFFFFFFFFFFFF
    if type(x) is not float:
        return False
    d = PyFloat_AS_DOUBLE(x)
    if not isfinite(d):
        return False
    if kind == NONNEGATIVE:
        return d >= 0.0
    if kind == POSITIVE:
        return d > 0.0
    if kind == UNIT_INTERVAL:
        return 0.0 <= d < 1.0
    if kind == CLOSED_UNIT_INTERVAL:
        return 0.0 <= d <= 1.0
    return kind == REAL


def check_scalars(str func, tuple spec, tuple values):
    """Check every hyperparameter of one call; return them in canonical form.

    ``spec[i]`` is ``(name, kind, check)`` for ``values[i]`` (built by
    :func:`fastoptim._validation.scalar_spec`). A value that is plainly valid (an exact
    ``float`` in range, ``bool``, ``int >= 1``) is accepted here in C; any other value goes to
    ``check(func, name, value)``, the Python check of its kind, which raises the error or
    returns the converted value. So the messages and conversions are those of the Python
    checks, and the common case costs one call. Returns ``values`` itself when nothing needed
    converting.
    """
    cdef Py_ssize_t i, k = len(values)
    cdef list out = None
    cdef tuple item
    if len(spec) != k:
        raise ValueError(f"{func}: {len(values)} hyperparameters for a spec of {len(spec)}")
    for i in range(k):
        item = <tuple>spec[i]
        x = values[i]
        if not _plainly_valid(item[1], x):
            if out is None:
                out = list(values)
            out[i] = item[2](func, item[0], x)
    return values if out is None else tuple(out)


def has_none(list items):
    """Whether ``items`` holds ``None`` (by identity: ``None in items`` would compare
    arrays with ``==``)."""
    cdef object x
    for x in items:
        if x is None:
            return True
    return False


cdef Py_ssize_t _add_extents(Extent* e, Py_ssize_t n, list arrays, int written) noexcept:
    """Append the byte extent of each non-empty array of ``arrays`` at ``e[n]`` (``written``:
    1 for parameters and state, 0 for gradients); returns the new count."""
    cdef Py_ssize_t nbytes, i
    cdef cnp.ndarray a
    for i in range(len(arrays)):
        a = <cnp.ndarray>arrays[i]
        nbytes = cnp.PyArray_NBYTES(a)
        if nbytes:
            e[n].lo = <uintptr_t>cnp.PyArray_DATA(a)
            e[n].hi = e[n].lo + <uintptr_t>nbytes
            e[n].which = e[n].written = written
            e[n].entry = i
            n += 1
    return n


def grads_apart(str f, grad_names, list grads, written_names, list written):
    """No gradient overlaps a parameter or a state buffer (``written``); gradients may
    overlap each other (they are only read). The extents are read from the arrays' C
    structs into a C array and sorted once (``_extents.pxi``): O(k log k) in the number of
    arrays, independent of their sizes, no Python object per array. ``grad_names`` and
    ``written_names`` are sequences read only for the message
    (fastoptim._params.check_grads_apart, and Adafactor's step)."""
    cdef Py_ssize_t k = len(grads) + len(written), n = 0, x, other = -1
    cdef Extent local[2 * LOCAL_EXTENTS]
    cdef Extent* e = local
    if k > LOCAL_EXTENTS:
        e = <Extent*>malloc(2 * k * sizeof(Extent))
        if e == NULL:
            raise MemoryError()
    try:
        n = _add_extents(e, n, written, 1)
        n = _add_extents(e, n, grads, 0)
        _sort_extents(e, e + k, n)      # by start; stable: the written first on a tie
        x = _first_overlap(e, n, &other)
        if x >= 0 and e[x].written and e[other].written:    # made apart when added
            raise ValueError(f"{f}: {written_names[e[x].entry]} shares memory with "
                             f"{written_names[e[other].entry]}; every array the step "
                             f"writes must be a separate buffer")
        if x >= 0:
            if e[other].written:
                first, second = e[other].entry, e[x].entry
            else:
                first, second = e[x].entry, e[other].entry
            raise ValueError(f"{f}: {grad_names[second]} shares memory with "
                             f"{written_names[first]}; a gradient must not be a "
                             f"parameter or a state buffer")
    finally:
        if e != local:
            free(e)
