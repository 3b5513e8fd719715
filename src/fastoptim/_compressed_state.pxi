# The generic compressed state of the "cython" backend (included by kernels.pyx): one registry
# kernel stepping a float32 parameter whose state buffers are stored as bfloat16 or as
# blockwise 8-bit codes (fastoptim.optimizers._state_dtype, fastoptim.lowmem).
#
# One OpenMP parallel region over rounds of ROUND elements (whole blocks of 256): per round a
# thread decodes each state buffer into its own float32 scratch (ROUND floats per buffer, in
# the L1 cache), runs the kernel on the round's parameter, gradient and scratch, and encodes
# the scratch back (_lowmem's codecs: bfloat16 rounded to nearest even; 8-bit requantized
# block by block). Parameter, gradient and state are read and written once from memory.
# Every round starts on a block boundary and both the codecs (per block) and the kernels
# (per element) round alike anywhere, so the results are those of decoding the whole state,
# stepping it and encoding it back, bit for bit, for any thread count.
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cython.parallel cimport threadid
from libc.math cimport sqrtf
from libc.stdint cimport int32_t, uint8_t, uint16_t

from fastoptim._lowmem cimport (Q8_PLANES, bf16_decode_range, bf16_encode_range,
                                q8_decode_range, q8_encode_range, q8_planes)

cdef extern from "csrc/prefetch.h":
    # the cache lines of `bytes` bytes at p, into L1 (L2 on AMD CPUs): no result changes
    void fo_prefetch_bytes(const void* p, size_t bytes) nogil

cdef enum:
    ROUND = 512                # elements per decode-step-encode round (2 blocks). Measured
                               # at 3e7, 2 cores, bfloat16 NAdam for ROUND = 256, 512, 1024,
                               # 2048, 4096, 8192: 16.9, 16.9, 20.8, 23.8, 25.6, 24.7 ms
    Q8_BLOCK = 256             # fastoptim.lowmem.BLOCK: one absmax per block
    ROUNDS_PER_THREAD = 4      # rounds are dealt out in about this many runs per thread
    PREFETCH_ROUNDS = 2        # a round asks for the lines of the round this far ahead
    EXP_CLASSES = 26           # fastoptim.lowmem._EXP_CLASSES: the bucket table's classes;
                               # its negative half starts at 2**(8 + bits) = 2**(31 - shift)


cdef struct Compressed:            # what a call's arrays share
    int kind                   # the registry kernel (Kind)
    int nstate                 # its state buffers (arrays after param and grad)
    const float* code[MAX_ARRAYS]      # 8-bit: the 256 code values
    uint8_t planes[MAX_ARRAYS][Q8_PLANES]  # 8-bit: their byte planes (q8_planes), once per call
    const int32_t* bucket[MAX_ARRAYS]  # 8-bit: the nearest-code search's bucket table
    int shift[MAX_ARRAYS]
    uint8_t zero[MAX_ARRAYS]
    int is_signed[MAX_ARRAYS]
    const float* decades[MAX_ARRAYS]   # 8-bit: the arithmetic search's table, or NULL
    int nclamp                         # clamps of a decoded m to bound * sqrt(v)
    int clamp_m[MAX_ARRAYS]
    int clamp_v[MAX_ARRAYS]
    float clamp_bound[MAX_ARRAYS]
    AnyCoefficients coef


cdef struct CompressedArray:       # one array of the call
    float* p
    const float* g
    Py_ssize_t n
    void* held[MAX_ARRAYS]             # uint16 bfloat16 bits or uint8 codes; NULL absent
    float* absmax[MAX_ARRAYS]          # 8-bit: one scale per block; NULL for bfloat16


cdef inline void _clamp_moment(float* m, const float* v, Py_ssize_t n,
                               float bound) noexcept nogil:
    """m clamped to [-bound sqrt(v), bound sqrt(v)], NaN propagating: clamp_moment of
    fastoptim.optimizers._state_dtype (np.minimum, then np.maximum with the negated limit)."""
    cdef Py_ssize_t i
    cdef float x, limit
    for i in range(n):
        limit = sqrtf(v[i]) * bound
        x = m[i]
        x = x if (x < limit or x != x) else limit
        limit = -limit
        m[i] = x if (x > limit or x != x) else limit


cdef inline void _prefetch_round(const Compressed* t, const CompressedArray* a,
                                 Py_ssize_t lo) noexcept nogil:
    """Ask for the lines of the round at ``lo`` (nothing past the end): its parameter,
    gradient and held state."""
    cdef Py_ssize_t n = min(<Py_ssize_t>ROUND, a.n - lo)
    cdef int j
    if n <= 0:
        return
    fo_prefetch_bytes(a.p + lo, <size_t>n * 4)
    fo_prefetch_bytes(a.g + lo, <size_t>n * 4)
    for j in range(t.nstate):
        if a.held[j] == NULL:
            continue
        if a.absmax[j] != NULL:
            fo_prefetch_bytes(<const uint8_t*>a.held[j] + lo, <size_t>n)
        else:
            fo_prefetch_bytes(<const uint16_t*>a.held[j] + lo, <size_t>n * 2)


cdef void _compressed_round(const Compressed* t, const CompressedArray* a, Py_ssize_t lo,
                            float* scratch) noexcept nogil:
    """Elements [lo, lo + ROUND) of array ``a`` (fewer at the end): decode, step, encode
    back."""
    cdef Py_ssize_t n = min(<Py_ssize_t>ROUND, a.n - lo)
    cdef void* s[MAX_ARRAYS]
    cdef float* w
    cdef int j
    _prefetch_round(t, a, lo + PREFETCH_ROUNDS * ROUND)
    for j in range(t.nstate):
        s[j] = NULL
        if a.held[j] == NULL:
            continue
        w = scratch + j * ROUND
        if a.absmax[j] != NULL:
            q8_decode_range(<const uint8_t*>a.held[j] + lo, a.absmax[j] + lo // Q8_BLOCK,
                            t.code[j], t.planes[j], w, n)
        else:
            bf16_decode_range(<const uint16_t*>a.held[j] + lo, w, n)
        s[j] = w
    for j in range(t.nclamp):
        _clamp_moment(<float*>s[t.clamp_m[j]], <const float*>s[t.clamp_v[j]], n,
                      t.clamp_bound[j])
    _kernel_on(t.kind, a.p + lo, a.g + lo, s, n, &t.coef)
    for j in range(t.nstate):
        if a.held[j] == NULL:
            continue
        w = scratch + j * ROUND
        if a.absmax[j] != NULL:
            q8_encode_range(w, <uint8_t*>a.held[j] + lo, a.absmax[j] + lo // Q8_BLOCK, n,
                            t.bucket[j], t.shift[j], t.zero[j], t.is_signed[j],
                            t.decades[j])
        else:
            bf16_encode_range(w, <uint16_t*>a.held[j] + lo, n)


cdef void _compressed_run(const Compressed* t, const CompressedArray* arrays,
                          const Py_ssize_t* first, Py_ssize_t count, float* scratch,
                          int nt) noexcept nogil:
    """Every round of every array, on ``nt`` threads (thread k uses its own part of
    ``scratch``). Array ``i`` has rounds ``first[i]`` to ``first[i + 1] - 1`` of the call."""
    cdef Py_ssize_t rounds = first[count], r, i, lo, hi, mid
    cdef Py_ssize_t grab = max(<Py_ssize_t>1, rounds // (ROUNDS_PER_THREAD * nt))
    if nt == 1:
        for i in range(count):
            for r in range(first[i + 1] - first[i]):
                _compressed_round(t, arrays + i, r * ROUND, scratch)
    else:
        for r in prange(rounds, num_threads=nt, schedule="dynamic", chunksize=grab):
            lo = 0                      # the array of round r: first[lo] <= r < first[lo + 1]
            hi = count
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if first[mid] <= r:
                    lo = mid
                else:
                    hi = mid
            _compressed_round(t, arrays + lo, (r - first[lo]) * ROUND,
                              scratch + threadid() * MAX_ARRAYS * ROUND)


cdef str _span_name(int code, Py_ssize_t entry):
    """0 param, 1 grad, 4j+2 states[j], 4j+3 scales[j], 4j+4 / 4j+5 tables[j]'s code /
    bucket (codes >= 2 + 4j + 2 are only read); ``entry``: the array's index in the lists of
    :func:`compressed_many` (-1: :func:`compressed`'s one array, or a table)."""
    cdef int j
    if code < 2:
        name = ("param", "grad")[code]
        return name if entry < 0 else f"{name}s[{entry}]"
    code -= 2
    j = code // 4
    if code % 4 >= 2:
        return f"tables[{j}] {('code', 'bucket')[code % 2]}"
    name = f"{('states', 'scales')[code % 4]}[{j}]"
    return name if entry < 0 else f"{name}[{entry}]"


cdef inline bint _written(int code) noexcept:
    return code == 0 or (code >= 2 and (code - 2) % 4 < 2)


cdef int _check_compressed(str func, int who, Py_ssize_t entry, object a, Py_ssize_t n,
                           int itemsize) except -1:
    """``a`` (:func:`_span_name` ``who``, ``entry``) holds ``n`` items of ``itemsize``
    bytes, contiguous, aligned, native, writeable if the step writes it. Names are made only
    for an error."""
    if not cnp.PyArray_CheckExact(a):
        raise TypeError(f"{func}: {_span_name(who, entry)} must be a numpy.ndarray, got "
                        f"{type(a).__name__}")
    if cnp.PyArray_ITEMSIZE(<cnp.ndarray>a) != itemsize or cnp.PyArray_SIZE(<cnp.ndarray>a) != n:
        raise ValueError(f"{func}: {_span_name(who, entry)} must hold {n} items of "
                         f"{itemsize} bytes, got {a.dtype} of size {a.size}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            or cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>a)) \
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>a) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        raise ValueError(f"{func}: {_span_name(who, entry)} must be contiguous, aligned, "
                         f"native byte order")
    if _written(who) and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{func}: {_span_name(who, entry)} is read-only")
    return 0


cdef int _check_order(str func, int who, Py_ssize_t entry, object a, bint order_c
                      ) except -1:
    """``a`` (grad or a state buffer, element-wise with the param) is contiguous in the
    param's memory order (a 1-D or single-row array is both)."""
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) if order_c
            else cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>a)):
        raise ValueError(f"{func}: {_span_name(0, entry)} and {_span_name(who, entry)} must "
                         f"be contiguous in one common order ({_span_name(0, entry)} is "
                         f"{'C' if order_c else 'F'}-contiguous)")
    return 0


cdef inline Py_ssize_t _extent(Extent* e, Py_ssize_t k, object a, int code,
                               Py_ssize_t entry) noexcept:
    """Record array ``a``'s byte extent at ``e[k]`` (:func:`_span_name`'s ``code``,
    ``entry``); returns the next free index (``k`` again for an empty array)."""
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    if nbytes == 0:
        return k
    e[k].lo = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    e[k].hi = e[k].lo + <uintptr_t>nbytes
    e[k].which = code
    e[k].written = _written(code)
    e[k].entry = entry
    return k + 1


cdef tuple _hold(str func, str name, object lists, Py_ssize_t count):
    """``lists`` (one entry per state buffer: ``None`` or a list of ``count`` arrays) with
    each list copied into a tuple, which holds a reference to every array for the whole
    call: a list changed by another thread while the kernels run could otherwise free an
    array in use."""
    out = []
    for j, arrays in enumerate(lists):
        if arrays is not None:
            if not isinstance(arrays, (list, tuple)) or len(arrays) != count:
                raise ValueError(f"{func}: {name}[{j}] must be None or a list of one array "
                                 f"per param ({count})")
            arrays = tuple(arrays)
        out.append(arrays)
    return tuple(out)


cdef int _set_tables(Compressed* t, str func, Py_ssize_t j, tuple table) except -1:
    """State buffer ``j``'s code tables (:func:`compressed`'s ``tables[j]``), checked."""
    if len(table) not in (5, 6):
        raise ValueError(f"{func}: tables[{j}] must be (code, bucket, shift, zero, "
                         f"is_signed[, decades])")
    code, bucket, shift, zero, is_signed = table[:5]
    decades = table[5] if len(table) == 6 else None
    if decades is not None:
        from fastoptim.lowmem import code_tables
        if decades is not code_tables()[10 if is_signed else 11]:
            raise ValueError(f"{func}: tables[{j}] decades must be code_tables()"
                             f"[{10 if is_signed else 11}] (the "
                             f"{'signed' if is_signed else 'unsigned'} code's)")
    _check_compressed(func, 4 * j + 4, -1, code, 256, 4)
    if not 0 < shift < 23 or not cnp.PyArray_Check(bucket) \
            or cnp.PyArray_TYPE(<cnp.ndarray>bucket) != cnp.NPY_INT32 \
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bucket) \
            or bucket.size != (1 << (31 - shift)) + (EXP_CLASSES << (23 - shift)):
        raise ValueError(f"{func}: tables[{j}] must be code_tables' entries")
    t.code[j] = <const float*>cnp.PyArray_DATA(<cnp.ndarray>code)
    q8_planes(t.code[j], t.planes[j])
    t.bucket[j] = <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>bucket)
    t.shift[j] = shift
    t.zero[j] = zero
    t.is_signed[j] = bool(is_signed)
    t.decades[j] = NULL
    if decades is not None:
        t.decades[j] = <const float*>cnp.PyArray_DATA(<cnp.ndarray>decades)
    return 0


cdef int _add_array(CompressedArray* a, Extent* e, Py_ssize_t* k, str func, bint many,
                    Py_ssize_t i, tuple params, tuple grads, tuple states, tuple scales,
                    tuple tables, int nstate) except -1:
    """Check array ``i`` of the call (param, grad, its state buffers and scales: sizes,
    dtype widths, contiguity in one memory order, writeability), record its pointers in
    ``a`` and its byte extents at ``e[k[0]]``."""
    cdef Py_ssize_t entry = i if many else -1, n
    cdef int j
    param, grad = params[i], grads[i]
    _check_compressed(func, 0, entry, param, cnp.PyArray_SIZE(<cnp.ndarray>param)
                      if cnp.PyArray_Check(param) else -1, 4)
    if cnp.PyArray_TYPE(<cnp.ndarray>param) != cnp.NPY_FLOAT32:
        raise TypeError(f"{func}: {_span_name(0, entry)} must be float32, got {param.dtype}")
    n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    _check_compressed(func, 1, entry, grad, n, 4)
    if cnp.PyArray_TYPE(<cnp.ndarray>grad) != cnp.NPY_FLOAT32:
        raise TypeError(f"{func}: {_span_name(1, entry)} must be float32, got {grad.dtype}")
    order_c = not cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>param) \
        or cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>param)
    _check_order(func, 1, entry, grad, order_c)
    a.p = <float*>cnp.PyArray_DATA(<cnp.ndarray>param)
    a.g = <const float*>cnp.PyArray_DATA(<cnp.ndarray>grad)
    a.n = n
    k[0] = _extent(e, k[0], param, 0, i)
    k[0] = _extent(e, k[0], grad, 1, i)
    for j in range(nstate):
        a.held[j] = NULL
        a.absmax[j] = NULL
        if states[j] is None:
            continue
        held = (<tuple>states[j])[i]
        if tables[j] is None:           # bfloat16
            _check_compressed(func, 4 * j + 2, entry, held, n, 2)
        else:
            _check_compressed(func, 4 * j + 2, entry, held, n, 1)
            scale = (<tuple>scales[j])[i]
            _check_compressed(func, 4 * j + 3, entry, scale, (n + Q8_BLOCK - 1) // Q8_BLOCK,
                              4)
            a.absmax[j] = <float*>cnp.PyArray_DATA(<cnp.ndarray>scale)
            k[0] = _extent(e, k[0], scale, 4 * j + 3, i)
        _check_order(func, 4 * j + 2, entry, held, order_c)
        a.held[j] = cnp.PyArray_DATA(<cnp.ndarray>held)
        k[0] = _extent(e, k[0], held, 4 * j + 2, i)
    return 0


cdef int _check_apart(str func, bint many, Extent* e, Py_ssize_t k, Py_ssize_t count
                      ) except -1:
    """No array written (params, states, scales) overlaps another array of the call
    (gradients and tables are only read): one sort of the extents, O(k log k) in the number
    of arrays, independent of their sizes. The two are named in the order of the call's
    arguments."""
    cdef Py_ssize_t x, other = -1
    _sort_extents(e, e + k, k)
    x = _first_overlap(e, k, &other)
    if x < 0:
        return 0
    pair = sorted([(e[x].entry, e[x].which), (e[other].entry, e[other].which)])
    names = [_span_name(which, entry if many and entry < count else -1)
             for entry, which in pair]
    raise ValueError(f"{func}: {names[0]} and {names[1]} share memory; an array written by "
                     f"the step must not overlap another")


cdef _compressed(str func, bint many, tuple params, tuple grads, tuple states, tuple scales,
                 tuple tables, Coefficients c, tuple clamps, object num_threads):
    """:func:`compressed_many` (``many``) or :func:`compressed` (its one array, named
    without an index): every array checked before anything is written, then one OpenMP
    region over every round of every array."""
    cdef Compressed t
    cdef int j, nt = _threads(num_threads)
    cdef Py_ssize_t i, count = len(params), total = 0, k = 0, most
    from fastoptim._registry import kernel as registry_entry
    spec = registry_entry(c.kernel).states
    t.nstate = len(states)
    if t.nstate != len(spec) or len(scales) != t.nstate or len(tables) != t.nstate:
        raise ValueError(f"{func}: states, scales and tables must have one entry per state "
                         f"buffer of {c.kernel} {tuple(st.name for st in spec)}")
    if len(grads) != count:
        raise ValueError(f"{func}: {len(grads)} grads for {count} params")
    for j in range(t.nstate):           # the kernels skip an absent optional buffer only
        if states[j] is None and spec[j].enabled_by is None:
            raise ValueError(f"{func}: states[{j}] ({spec[j].name}) is always updated by "
                             f"{c.kernel}: it cannot be None")
        if states[j] is not None and tables[j] is not None:
            if scales[j] is None:
                raise ValueError(f"{func}: scales[{j}] must hold the codes' absmax")
            _set_tables(&t, func, j, <tuple>tables[j])
    t.kind = c.kind
    t.coef = c.c
    t.nclamp = len(clamps)
    if t.nclamp > MAX_ARRAYS:
        raise ValueError(f"{func}: at most {MAX_ARRAYS} clamps")
    most = count * (2 + 2 * t.nstate) + 2 * t.nstate        # extents: arrays, then tables
    cdef char* memory = <char*>PyMem_RawMalloc(
        count * sizeof(CompressedArray) + (count + 1) * sizeof(Py_ssize_t)
        + 2 * most * sizeof(Extent))
    if memory == NULL:
        raise MemoryError()
    cdef CompressedArray* arrays = <CompressedArray*>memory
    cdef Py_ssize_t* first = <Py_ssize_t*>(arrays + count)
    cdef Extent* e = <Extent*>(first + count + 1)
    cdef float* scratch = NULL
    try:
        first[0] = 0
        for i in range(count):
            _add_array(arrays + i, e, &k, func, many, i, params, grads, states, scales,
                       tables, t.nstate)
            total += arrays[i].n
            first[i + 1] = first[i] + (arrays[i].n + ROUND - 1) // ROUND
        for j in range(t.nstate):
            if states[j] is not None and tables[j] is not None:
                k = _extent(e, k, tables[j][0], 4 * j + 4, count)
                k = _extent(e, k, tables[j][1], 4 * j + 5, count)
        _check_apart(func, many, e, k, count)
        for j in range(t.nclamp):
            m, v, bound = clamps[j]
            if not (0 <= m < t.nstate and 0 <= v < t.nstate and m != v) \
                    or states[m] is None or states[v] is None:
                raise ValueError(f"{func}: clamps[{j}] must name two present state buffers, "
                                 f"got {clamps[j]!r}")
            t.clamp_m[j], t.clamp_v[j], t.clamp_bound[j] = m, v, bound
        if not _threads_pay(4 * total, 3):  # param and grad, and the state: fewer bytes, more work
            nt = 1
        scratch = <float*>PyMem_RawMalloc(nt * MAX_ARRAYS * ROUND * sizeof(float))
        if scratch == NULL:
            raise MemoryError()
        with nogil:
            _compressed_run(&t, arrays, first, count, scratch, nt)
    finally:
        PyMem_RawFree(scratch)
        PyMem_RawFree(memory)


def compressed(param, grad, tuple states, tuple scales, tuple tables, Coefficients c, *,
               tuple clamps=(), num_threads=None):
    """One step of the kernel of ``c`` on float32 ``param`` and ``grad`` (contiguous, one
    memory order) with its state buffers stored compressed, in place.

    ``states``: one entry per state buffer of the kernel (the registry's order after param
    and grad): ``None`` (an absent optional buffer), bfloat16 bits (2 bytes per element) or
    8-bit codes (uint8), each of ``param``'s size in its memory order. ``scales``: per
    buffer, the codes' float32 absmax, one per block of 256 (``None`` for bfloat16).
    ``tables``: per buffer of codes, ``(code, bucket, shift, zero, is_signed)`` of
    :func:`fastoptim.lowmem.code_tables` for its code, and optionally its ``decades`` table
    (``code_tables()[10]`` signed, ``[11]`` unsigned: the AVX-512 loops' faster search, the
    same codes). The result is the float32 step on the decoded state, encoded back
    (bfloat16: nearest even; 8-bit: :func:`fastoptim.lowmem.quantize_blockwise`), for any
    ``num_threads``. ``clamps``: ``(m, v, bound)`` triples of state indices: after
    decoding, ``m`` is clamped to ``[-bound sqrt(v), bound sqrt(v)]`` (the generic int8
    state's guard against the zero-gradient trap). Arrays are checked for size, dtype
    width, contiguity, writeability and overlap before anything is written."""
    _compressed("compressed", False, (param,), (grad,),
                tuple(None if s is None else (s,) for s in states),
                tuple(None if s is None else (s,) for s in scales), tables, c, clamps,
                num_threads)


def compressed_many(list params, list grads, tuple states, tuple scales, tuple tables,
                    Coefficients c, *, tuple clamps=(), num_threads=None):
    """:func:`compressed` on many arrays in one call: ``params`` and ``grads`` are lists,
    ``states[j]`` and ``scales[j]`` ``None`` or a list of one array per param (``tables`` and
    ``clamps`` are shared). Each array gets the bits of :func:`compressed` on it alone; all
    of them run in one OpenMP region (a model's many small arrays cost one call, not one
    each). Every array is checked, and no array written may overlap any other array of the
    call, before anything is written."""
    func = "compressed_many"
    count = len(params)
    _compressed(func, True, tuple(params), tuple(grads), _hold(func, "states", states, count),
                _hold(func, "scales", scales, count), tables, c, clamps, num_threads)
