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


cdef struct Compressed:
    int kind                   # the registry kernel (Kind)
    int nstate                 # its state buffers (arrays after param and grad)
    float* p
    const float* g
    Py_ssize_t n
    void* held[MAX_ARRAYS]             # uint16 bfloat16 bits or uint8 codes; NULL absent
    float* absmax[MAX_ARRAYS]          # 8-bit: one scale per block; NULL for bfloat16
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


cdef inline void _prefetch_round(const Compressed* t, Py_ssize_t lo) noexcept nogil:
    """Ask for the lines of the round at ``lo`` (nothing past the end): its parameter,
    gradient and held state."""
    cdef Py_ssize_t n = min(<Py_ssize_t>ROUND, t.n - lo)
    cdef int j
    if n <= 0:
        return
    fo_prefetch_bytes(t.p + lo, <size_t>n * 4)
    fo_prefetch_bytes(t.g + lo, <size_t>n * 4)
    for j in range(t.nstate):
        if t.held[j] == NULL:
            continue
        if t.absmax[j] != NULL:
            fo_prefetch_bytes(<const uint8_t*>t.held[j] + lo, <size_t>n)
        else:
            fo_prefetch_bytes(<const uint16_t*>t.held[j] + lo, <size_t>n * 2)


cdef void _compressed_round(const Compressed* t, Py_ssize_t lo,
                            float* scratch) noexcept nogil:
    """Elements [lo, lo + ROUND) (fewer at the end): decode, step, encode back."""
    cdef Py_ssize_t n = min(<Py_ssize_t>ROUND, t.n - lo)
    cdef void* s[MAX_ARRAYS]
    cdef float* w
    cdef int j
    _prefetch_round(t, lo + PREFETCH_ROUNDS * ROUND)
    for j in range(t.nstate):
        s[j] = NULL
        if t.held[j] == NULL:
            continue
        w = scratch + j * ROUND
        if t.absmax[j] != NULL:
            q8_decode_range(<const uint8_t*>t.held[j] + lo, t.absmax[j] + lo // Q8_BLOCK,
                            t.code[j], t.planes[j], w, n)
        else:
            bf16_decode_range(<const uint16_t*>t.held[j] + lo, w, n)
        s[j] = w
    for j in range(t.nclamp):
        _clamp_moment(<float*>s[t.clamp_m[j]], <const float*>s[t.clamp_v[j]], n,
                      t.clamp_bound[j])
    _kernel_on(t.kind, t.p + lo, t.g + lo, s, n, &t.coef)
    for j in range(t.nstate):
        if t.held[j] == NULL:
            continue
        w = scratch + j * ROUND
        if t.absmax[j] != NULL:
            q8_encode_range(w, <uint8_t*>t.held[j] + lo, t.absmax[j] + lo // Q8_BLOCK, n,
                            t.bucket[j], t.shift[j], t.zero[j], t.is_signed[j],
                            t.decades[j])
        else:
            bf16_encode_range(w, <uint16_t*>t.held[j] + lo, n)


cdef void _compressed_run(const Compressed* t, float* scratch, int nt) noexcept nogil:
    """Every round, on ``nt`` threads (thread k uses its own part of ``scratch``)."""
    cdef Py_ssize_t rounds = (t.n + ROUND - 1) // ROUND, r
    cdef Py_ssize_t grab = max(<Py_ssize_t>1, rounds // (ROUNDS_PER_THREAD * nt))
    if nt == 1:
        for r in range(rounds):
            _compressed_round(t, r * ROUND, scratch)
    else:
        for r in prange(rounds, num_threads=nt, schedule="dynamic", chunksize=grab):
            _compressed_round(t, r * ROUND, scratch + threadid() * MAX_ARRAYS * ROUND)


cdef inline int _span(Py_ssize_t* lo, Py_ssize_t* hi, int* who, int k, object a,
                      int code) noexcept:
    """Record array ``a``'s byte extent as span ``k`` (``who``: :func:`_span_name`'s code);
    returns the next free span (``k`` again for an empty array)."""
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    if nbytes == 0:
        return k
    lo[k] = <Py_ssize_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    hi[k] = lo[k] + nbytes
    who[k] = code
    return k + 1


cdef str _span_name(int code):
    """0 param, 1 grad, 4j+2 states[j], 4j+3 scales[j], 4j+4 / 4j+5 tables[j]'s code /
    bucket (codes >= 2 + 4j + 2 are only read)."""
    if code < 2:
        return ("param", "grad")[code]
    code -= 2
    return (f"states[{code // 4}]", f"scales[{code // 4}]", f"tables[{code // 4}] code",
            f"tables[{code // 4}] bucket")[code % 4]


cdef inline bint _written(int code) noexcept:
    return code == 0 or (code >= 2 and (code - 2) % 4 < 2)


cdef int _check_compressed(str func, int who, object a, Py_ssize_t n, int itemsize
                           ) except -1:
    """``a`` (:func:`_span_name` ``who``) holds ``n`` items of ``itemsize`` bytes, contiguous,
    aligned, native, writeable if the step writes it. Names are made only for an error."""
    if not cnp.PyArray_CheckExact(a):
        raise TypeError(f"{func}: {_span_name(who)} must be a numpy.ndarray, got "
                        f"{type(a).__name__}")
    if cnp.PyArray_ITEMSIZE(<cnp.ndarray>a) != itemsize or cnp.PyArray_SIZE(<cnp.ndarray>a) != n:
        raise ValueError(f"{func}: {_span_name(who)} must hold {n} items of {itemsize} "
                         f"bytes, got {a.dtype} of size {a.size}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            or cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>a)) \
            or not cnp.PyArray_ISALIGNED(<cnp.ndarray>a) or not cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a):
        raise ValueError(f"{func}: {_span_name(who)} must be contiguous, aligned, native "
                         f"byte order")
    if _written(who) and not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a):
        raise ValueError(f"{func}: {_span_name(who)} is read-only")
    return 0


cdef int _check_layout(str func, param, grad, tuple states, tuple scales, tuple tables,
                       bint order_c) except -1:
    """Every array element-wise with ``param`` (grad, the states) is contiguous in its memory
    order (a 1-D or single-row array is both); no array written (param, states, scales)
    overlaps another array of the call (gradients and tables are only read). Compiled: a
    few pointer comparisons, as a step on small arrays is dominated by its checks."""
    cdef Py_ssize_t lo[2 + 4 * MAX_ARRAYS]
    cdef Py_ssize_t hi[2 + 4 * MAX_ARRAYS]
    cdef int who[2 + 4 * MAX_ARRAYS]
    cdef int j, i, k = 0, n = len(states)
    for j in range(-1, n):
        a = grad if j < 0 else states[j]
        if a is not None and not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a) if order_c
                                  else cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>a)):
            raise ValueError(f"{func}: param and {'grad' if j < 0 else f'states[{j}]'} must "
                             f"be contiguous in one common order (param is "
                             f"{'C' if order_c else 'F'}-contiguous)")
    k = _span(lo, hi, who, k, param, 0)
    k = _span(lo, hi, who, k, grad, 1)
    for j in range(n):
        if states[j] is None:
            continue
        k = _span(lo, hi, who, k, states[j], 4 * j + 2)
        if tables[j] is not None:
            k = _span(lo, hi, who, k, scales[j], 4 * j + 3)
            k = _span(lo, hi, who, k, tables[j][0], 4 * j + 4)
            k = _span(lo, hi, who, k, tables[j][1], 4 * j + 5)
    for i in range(k):
        for j in range(i + 1, k):
            if (_written(who[i]) or _written(who[j])) and lo[i] < hi[j] and lo[j] < hi[i]:
                raise ValueError(f"{func}: {_span_name(who[i])} and {_span_name(who[j])} "
                                 f"share memory; an array written by the step must not "
                                 f"overlap another")
    return 0


def compressed(param, grad, tuple states, tuple scales, tuple tables, Coefficients c, *,
               tuple clamps=(), num_threads=None):
    """One step of the kernel of ``c`` on float32 ``param`` and ``grad`` (contiguous, one
    memory order) with its state buffers stored compressed, in place.

    ``states``: one entry per state buffer of the kernel (the registry's order after param
    and grad): ``None`` (an absent optional buffer), bfloat16 bits (2 bytes per element) or
    8-bit codes (uint8), each of ``param``'s size in its memory order. ``scales``: per buffer, the
    codes' float32 absmax, one per block of 256 (``None`` for bfloat16). ``tables``: per
    buffer of codes, ``(code, bucket, shift, zero, is_signed)`` of
    :func:`fastoptim.lowmem.code_tables` for its code, and optionally its ``decades`` table
    (``code_tables()[10]`` signed, ``[11]`` unsigned: the AVX-512 loops' faster search, the
    same codes). The result is the float32 step on the
    decoded state, encoded back (bfloat16: nearest even; 8-bit:
    :func:`fastoptim.lowmem.quantize_blockwise`), for any ``num_threads``. ``clamps``:
    ``(m, v, bound)`` triples of state indices: after decoding, ``m`` is clamped to
    ``[-bound sqrt(v), bound sqrt(v)]`` (the generic int8 state's guard against the
    zero-gradient trap). Arrays are checked for size, dtype width, contiguity and
    writeability before anything is written."""
    func = "compressed"
    cdef Compressed t
    cdef int j, nt = _threads(num_threads)
    cdef Py_ssize_t n
    _check_compressed(func, 0, param, cnp.PyArray_SIZE(<cnp.ndarray>param)
                      if cnp.PyArray_Check(param) else -1, 4)
    if cnp.PyArray_TYPE(<cnp.ndarray>param) != cnp.NPY_FLOAT32:
        raise TypeError(f"{func}: param must be float32, got {param.dtype}")
    n = cnp.PyArray_SIZE(<cnp.ndarray>param)
    _check_compressed(func, 1, grad, n, 4)
    if cnp.PyArray_TYPE(<cnp.ndarray>grad) != cnp.NPY_FLOAT32:
        raise TypeError(f"{func}: grad must be float32, got {grad.dtype}")
    from fastoptim._registry import kernel as registry_entry
    spec = registry_entry(c.kernel).states
    t.nstate = len(states)
    if t.nstate != len(spec) or len(scales) != t.nstate or len(tables) != t.nstate:
        raise ValueError(f"{func}: states, scales and tables must have one entry per state "
                         f"buffer of {c.kernel} {tuple(st.name for st in spec)}")
    for j in range(t.nstate):           # the kernels skip an absent optional buffer only
        if states[j] is None and spec[j].enabled_by is None:
            raise ValueError(f"{func}: states[{j}] ({spec[j].name}) is always updated by "
                             f"{c.kernel}: it cannot be None")
    order_c = not cnp.PyArray_IS_F_CONTIGUOUS(<cnp.ndarray>param) \
        or cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>param)
    t.kind = c.kind
    t.coef = c.c
    t.p = <float*>cnp.PyArray_DATA(<cnp.ndarray>param)
    t.g = <const float*>cnp.PyArray_DATA(<cnp.ndarray>grad)
    t.n = n
    for j in range(t.nstate):
        t.held[j] = NULL
        t.absmax[j] = NULL
        if states[j] is None:
            continue
        if tables[j] is None:           # bfloat16
            _check_compressed(func, 4 * j + 2, states[j], n, 2)
        else:
            _check_compressed(func, 4 * j + 2, states[j], n, 1)
            _check_compressed(func, 4 * j + 3, scales[j], (n + Q8_BLOCK - 1) // Q8_BLOCK, 4)
            if len(tables[j]) not in (5, 6):
                raise ValueError(f"{func}: tables[{j}] must be (code, bucket, shift, zero, "
                                 f"is_signed[, decades])")
            code, bucket, shift, zero, is_signed = tables[j][:5]
            decades = tables[j][5] if len(tables[j]) == 6 else None
            if decades is not None:
                from fastoptim.lowmem import code_tables
                if decades is not code_tables()[10 if is_signed else 11]:
                    raise ValueError(f"{func}: tables[{j}] decades must be code_tables()"
                                     f"[{10 if is_signed else 11}] (the "
                                     f"{'signed' if is_signed else 'unsigned'} code's)")
            _check_compressed(func, 4 * j + 4, code, 256, 4)
            if not 0 < shift < 23 or not cnp.PyArray_Check(bucket) \
                    or cnp.PyArray_TYPE(<cnp.ndarray>bucket) != cnp.NPY_INT32 \
                    or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>bucket) \
                    or bucket.size != (1 << (31 - shift)) + (EXP_CLASSES << (23 - shift)):
                raise ValueError(f"{func}: tables[{j}] must be code_tables' entries")
            t.absmax[j] = <float*>cnp.PyArray_DATA(<cnp.ndarray>scales[j])
            t.code[j] = <const float*>cnp.PyArray_DATA(<cnp.ndarray>code)
            q8_planes(t.code[j], t.planes[j])
            t.bucket[j] = <const int32_t*>cnp.PyArray_DATA(<cnp.ndarray>bucket)
            t.shift[j] = shift
            t.zero[j] = zero
            t.is_signed[j] = bool(is_signed)
            t.decades[j] = NULL
            if decades is not None:
                t.decades[j] = <const float*>cnp.PyArray_DATA(<cnp.ndarray>decades)
        t.held[j] = cnp.PyArray_DATA(<cnp.ndarray>states[j])
    _check_layout(func, param, grad, states, scales, tables, order_c)
    t.nclamp = len(clamps)
    if t.nclamp > MAX_ARRAYS:
        raise ValueError(f"{func}: at most {MAX_ARRAYS} clamps")
    for j in range(t.nclamp):
        m, v, bound = clamps[j]
        if not (0 <= m < t.nstate and 0 <= v < t.nstate and m != v) \
                or t.held[m] == NULL or t.held[v] == NULL:
            raise ValueError(f"{func}: clamps[{j}] must name two present state buffers, "
                             f"got {clamps[j]!r}")
        t.clamp_m[j], t.clamp_v[j], t.clamp_bound[j] = m, v, bound
    if not _threads_pay(4 * n, 3):      # param and grad, and the state: fewer bytes, more work
        nt = 1
    cdef float* scratch = <float*>PyMem_RawMalloc(nt * MAX_ARRAYS * ROUND * sizeof(float))
    if scratch == NULL:
        raise MemoryError()
    try:
        with nogil:
            _compressed_run(&t, scratch, nt)
    finally:
        PyMem_RawFree(scratch)
