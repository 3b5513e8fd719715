# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The ``"cython"`` backend of :mod:`fastoptim.lowmem`: Adam with bfloat16 or blockwise 8-bit
moments (``csrc/adam_lowmem.h``), one fused pass, ``threads`` OpenMP threads.

These functions do **not** validate: :func:`fastoptim.lowmem.adam_lowmem_step` checks every
array and hyperparameter first.
"""
cimport numpy as cnp
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from fastoptim.lowmem_kernels cimport (fo_lm_adam_coefficients, fo_lm_q8_tables,
                                       fo_lm_lion_coefficients, fo_lm_momentum_coefficients,
                                       fo_lm_rmsprop_coefficients, fo_lm_many, fo_lm_kind,
                                       FO_LM_ADAM_BF16, FO_LM_ADAM_Q8, FO_LM_LION_BF16,
                                       FO_LM_LION_Q8, FO_LM_MOMENTUM_BF16, FO_LM_MOMENTUM_Q8,
                                       FO_LM_RMSPROP_BF16, fo_lm_select,
                                       fo_lm_level, fo_lm_supported, fo_adam_mixed_threads,
                                       fo_rounding_key, fo_lm_bf16_decode, fo_lm_bf16_encode,
                                       fo_lm_q8_decode_planes, fo_lm_q8_encode_decades,
                                       fo_lm_q8_planes, FO_Q8_PLANES, FO_Q8_DECADE_TABLE,
                                       fo_lm_q8_decade_check, fo_lm_arithmetic_search,
                                       fo_lm_select_search)

cnp.import_array()
if Q8_PLANES != FO_Q8_PLANES:       # _lowmem.pxd's copy for the modules that cimport it
    raise ImportError("fastoptim._lowmem: Q8_PLANES differs from FO_Q8_PLANES")

_LEVELS = ("sse2", "avx2", "avx512", "avx512vbmi", "avx512bf16")


cdef fo_lm_adam_coefficients _struct(tuple v) except *:
    cdef fo_lm_adam_coefficients c
    (c.grad_sign, c.weight_decay, c.param_scale, c.beta1, c.one_minus_beta1, c.beta2,
     c.one_minus_beta2, c.step_size, c.inv_bias_correction2_sqrt, c.eps, c.m_bound) = v
    return c


cdef fo_lm_lion_coefficients _lion(tuple coefficients) except *:
    cdef fo_lm_lion_coefficients c
    (c.lr, c.grad_sign, c.weight_decay, c.beta1, c.one_minus_beta1, c.beta2,
     c.one_minus_beta2) = coefficients
    return c


cdef fo_lm_momentum_coefficients _momentum(tuple coefficients) except *:
    cdef fo_lm_momentum_coefficients c
    (c.lr, c.grad_sign, c.weight_decay, c.momentum, c.one_minus_dampening,
     c.nesterov) = coefficients
    return c


cdef fo_lm_rmsprop_coefficients _rmsprop(tuple coefficients) except *:
    cdef fo_lm_rmsprop_coefficients c
    (c.lr, c.grad_sign, c.weight_decay, c.alpha, c.one_minus_alpha, c.eps, c.momentum,
     c.eps_root) = coefficients
    return c


cdef inline void* _data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef fo_lm_q8_tables _tables(tuple tables) except *:
    cdef fo_lm_q8_tables t
    t.m_code = <const float*>_data(tables[0])
    t.v_code = <const float*>_data(tables[2])
    t.m_zero = tables[4]
    t.v_zero = tables[5]
    t.m_bucket = <const int32_t*>_data(tables[6])
    t.v_bucket = <const int32_t*>_data(tables[7])
    t.m_shift = tables[8]
    t.v_shift = tables[9]
    # the arithmetic search's tables; None: the bucket search alone (the same indices)
    t.m_decades = t.v_decades = NULL
    if tables[10] is not None:
        t.m_decades = <const float*>_data(tables[10])
    if tables[11] is not None:
        t.v_decades = <const float*>_data(tables[11])
    return t


# rule, encoding -> the C kind of fo_lm_many
_MANY = {("adam", "bfloat16"): FO_LM_ADAM_BF16, ("adam", "int8"): FO_LM_ADAM_Q8,
         ("lion", "bfloat16"): FO_LM_LION_BF16, ("lion", "int8"): FO_LM_LION_Q8,
         ("momentum", "bfloat16"): FO_LM_MOMENTUM_BF16, ("momentum", "int8"): FO_LM_MOMENTUM_Q8,
         ("rmsprop", "bfloat16"): FO_LM_RMSPROP_BF16}


def many(str rule, str encoding, list params, list grads, list states, list scales,
         tuple coefficients, tables, int threads=1):
    """One step of ``rule`` ("adam", "lion", "momentum", "rmsprop") on every array in one call:
    the one-array function's bits on each (:func:`adam_bf16`, :func:`adam_q8`, ...), one OpenMP
    region over all of them, so a model's many small arrays cost one call, not one each.
    ``params``, ``grads``: float32, each pair contiguous in one memory order, read in it, as
    its state. ``states``: one list per state buffer in the one-array function's order
    (``None`` for an RMSprop buffer that is off), ``encoding`` "bfloat16" (bits) or "int8"
    (codes; then ``scales`` holds one list of absmax arrays per buffer and ``tables`` is
    :func:`fastoptim.lowmem.code_tables`). ``coefficients``: the one-array function's."""
    cdef fo_lm_kind kind = _MANY[rule, encoding]
    cdef fo_lm_adam_coefficients adam
    cdef fo_lm_lion_coefficients lion
    cdef fo_lm_momentum_coefficients momentum
    cdef fo_lm_rmsprop_coefficients rmsprop
    cdef const void* c
    if rule == "adam":
        adam = _struct(coefficients)
        c = &adam
    elif rule == "lion":
        lion = _lion(coefficients)
        c = &lion
    elif rule == "momentum":
        momentum = _momentum(coefficients)
        c = &momentum
    else:
        rmsprop = _rmsprop(coefficients)
        c = &rmsprop
    cdef fo_lm_q8_tables t
    cdef const fo_lm_q8_tables* tp = NULL
    if encoding == "int8":
        t = _tables(tables)
        tp = &t
    cdef int a, j, count = len(params), failed
    cdef int nstate = len(states), nscale = len(scales)
    if nstate > 3 or nscale > 2:
        raise ValueError("many: at most 3 state buffers and 2 scale lists")
    # rows: params, grads, states 0..2, scales 0..1 (a row left NULL-filled when absent)
    cdef void** ptrs = <void**>PyMem_Malloc(sizeof(void*) * 7 * (count + 1))
    cdef Py_ssize_t* n = <Py_ssize_t*>PyMem_Malloc(sizeof(Py_ssize_t) * (count + 1))
    if ptrs == NULL or n == NULL:
        PyMem_Free(ptrs)
        PyMem_Free(n)
        raise MemoryError()
    cdef void** rows[7]
    try:
        for j in range(7):
            rows[j] = ptrs + j * count
        for a in range(count):
            rows[0][a] = _data(params[a])                           # IN/OUT
            rows[1][a] = _data(grads[a])                            # IN
            for j in range(3):
                rows[2 + j][a] = NULL if j >= nstate or states[j] is None \
                    else _data(states[j][a])                        # IN/OUT
            for j in range(2):
                rows[5 + j][a] = NULL if j >= nscale else _data(scales[j][a])  # IN/OUT
            n[a] = cnp.PyArray_SIZE(<cnp.ndarray>params[a])
        with nogil:
            failed = fo_lm_many(kind, <float**>rows[0], <const float**>rows[1], rows[2],
                                rows[3], rows[4], <float**>rows[5], <float**>rows[6], n,
                                count, c, tp, threads)
        if failed:
            raise MemoryError()
    finally:
        PyMem_Free(ptrs)
        PyMem_Free(n)


# ---- the codecs of _lowmem.pxd (fastoptim.kernels' fused generic compressed step) ---------
cdef void bf16_decode_range(const uint16_t* src, float* dst, Py_ssize_t n) noexcept nogil:
    fo_lm_bf16_decode(src, dst, n)


cdef void bf16_encode_range(const float* src, uint16_t* dst, Py_ssize_t n) noexcept nogil:
    fo_lm_bf16_encode(src, dst, n)


cdef void q8_planes(const float* code, uint8_t* planes) noexcept nogil:
    fo_lm_q8_planes(code, planes)


cdef void q8_decode_range(const uint8_t* codes, const float* absmax, const float* code,
                          const uint8_t* planes, float* dst, Py_ssize_t n) noexcept nogil:
    fo_lm_q8_decode_planes(codes, absmax, code, planes, dst, n)


cdef void q8_encode_range(const float* src, uint8_t* codes, float* absmax, Py_ssize_t n,
                          const int32_t* bucket, int shift, uint8_t zero, int is_signed,
                          const float* decades) noexcept nogil:
    fo_lm_q8_encode_decades(src, codes, absmax, n, bucket, shift, zero, is_signed, decades)


def bf16_decode(src, dst):
    """``dst[:] = src`` for bfloat16 bits ``src`` (uint16) and float32 ``dst`` of one size,
    contiguous: no validation (the caller's arrays)."""
    cdef const uint16_t* a = <const uint16_t*>_data(src)    # IN
    cdef float* b = <float*>_data(dst)                       # OUT
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>src)
    with nogil:
        bf16_decode_range(a, b, n)


def bf16_encode(src, dst):
    """``dst[:] = src`` rounded to bfloat16 (nearest even; ml_dtypes' NaN), float32 ``src``,
    uint16 ``dst`` of one size, contiguous: no validation (the caller's arrays)."""
    cdef const float* a = <const float*>_data(src)           # IN
    cdef uint16_t* b = <uint16_t*>_data(dst)                 # OUT
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>src)
    with nogil:
        bf16_encode_range(a, b, n)


def q8_decode(codes, absmax, code, dst):
    """``dst[:] = code[codes] * absmax`` (one absmax per block of 256) for uint8 ``codes``,
    float32 ``absmax``, the 256 float32 code values ``code`` and float32 ``dst`` of the codes'
    size, contiguous: no validation (the caller's arrays)."""
    cdef const uint8_t* c = <const uint8_t*>_data(codes)    # IN
    cdef const float* a = <const float*>_data(absmax)        # IN
    cdef const float* k = <const float*>_data(code)          # IN
    cdef float* d = <float*>_data(dst)                       # OUT
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>codes)
    cdef uint8_t planes[FO_Q8_PLANES]
    with nogil:
        q8_planes(k, planes)
        q8_decode_range(c, a, k, planes, d, n)


def q8_encode(src, codes, absmax, bucket, int shift, int zero, bint is_signed, decades=None):
    """float32 ``src`` to uint8 ``codes`` (its size) and float32 ``absmax`` (one per block of
    256), :func:`fastoptim.lowmem.quantize_blockwise`'s rule; ``bucket``, ``shift``, ``zero``
    and ``decades`` (or None: the bucket search alone, the same codes) from
    :func:`fastoptim.lowmem.code_tables` for the signed code (``is_signed``) or the unsigned
    one. Contiguous arrays: no validation (the caller's arrays)."""
    cdef const float* s = <const float*>_data(src)           # IN
    cdef uint8_t* c = <uint8_t*>_data(codes)                 # OUT
    cdef float* a = <float*>_data(absmax)                    # OUT
    cdef const int32_t* b = <const int32_t*>_data(bucket)    # IN
    cdef const float* d = NULL                               # IN
    if decades is not None:
        d = <const float*>_data(decades)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>src)
    with nogil:
        q8_encode_range(s, c, a, n, b, shift, <uint8_t>zero, is_signed, d)


def adam_half_many(params, grads, masters, exp_avgs, exp_avg_sqs, int kind,
                   tuple coefficients, bint stochastic_rounding, seeds,
                   unsigned long long step, int threads=1):
    """One Adam step on half-precision parameters, in place, for arrays checked by the
    caller (:func:`fastoptim.halfparams._compiled_steps`): ``params``, ``grads`` the half
    bits, read as uint16 (``kind`` 0 bfloat16, 1 float16); float32 moments and ``masters``
    (``None``, or one per array); array ``i`` rounded stochastically with ``seeds[i]``;
    ``coefficients``: :func:`fastoptim.halfparams._coefficients`. Each array in its own
    memory order, its state laid out as it; the GIL released once for all of them. The
    portable loop at SIMD level ``sse2``, AVX2 + F16C at ``avx2``, AVX-512 above."""
    cdef float b1, omb1, b2, omb2, ss, ibc, eps, wd, decay
    cdef int wd_mode, maximize
    b1, omb1, b2, omb2, ss, ibc, eps, wd, decay, wd_mode, maximize = coefficients
    # tuples hold every array for the whole call (a list changed meanwhile cannot free one)
    params, grads, exp_avgs, exp_avg_sqs = (tuple(params), tuple(grads), tuple(exp_avgs),
                                            tuple(exp_avg_sqs))
    masters = None if masters is None else tuple(masters)
    cdef Py_ssize_t i, count = len(params)
    if not (len(grads) == len(exp_avgs) == len(exp_avg_sqs) == len(seeds) == count) \
            or (masters is not None and len(masters) != count):
        raise ValueError("adam_half_many: one grad, moment, seed (and master) per param")
    cdef void** ptr = <void**>PyMem_Malloc(sizeof(void*) * 5 * count + 1)
    cdef long long* n = <long long*>PyMem_Malloc(sizeof(long long) * count + 1)
    cdef uint64_t* key = <uint64_t*>PyMem_Malloc(sizeof(uint64_t) * count + 1)
    # this module's SIMD level (tests select it): sse2 portable, avx2 8 lanes, avx512 16
    cdef int vector = 2 if fo_lm_level() >= 2 else fo_lm_level()
    try:
        if ptr == NULL or n == NULL or key == NULL:
            raise MemoryError()
        for i in range(count):
            ptr[5 * i] = _data(params[i])                                   # IN/OUT
            ptr[5 * i + 1] = _data(grads[i])                                # IN
            ptr[5 * i + 2] = NULL if masters is None else _data(masters[i])  # IN/OUT
            ptr[5 * i + 3] = _data(exp_avgs[i])                             # IN/OUT
            ptr[5 * i + 4] = _data(exp_avg_sqs[i])                          # IN/OUT
            n[i] = cnp.PyArray_SIZE(<cnp.ndarray>params[i])
            key[i] = fo_rounding_key(seeds[i], step)
        with nogil:
            for i in range(count):
                fo_adam_mixed_threads(<uint16_t*>ptr[5 * i], <const uint16_t*>ptr[5 * i + 1],
                                      <float*>ptr[5 * i + 2], <float*>ptr[5 * i + 3],
                                      <float*>ptr[5 * i + 4], n[i], kind, b1, omb1, b2, omb2,
                                      ss, ibc, eps, wd, decay, wd_mode, maximize,
                                      stochastic_rounding, key[i], vector, threads)
    finally:
        PyMem_Free(ptr)
        PyMem_Free(n)
        PyMem_Free(key)


_SEARCHES = ("bucket", "arithmetic")
DECADE_TABLE = FO_Q8_DECADE_TABLE     # the C side's; fastoptim.lowmem.DECADE_TABLE must match


def nearest_code_searches():
    """The nearest-code searches of the 8-bit loops at the active SIMD level: both
    (``"bucket"``, ``"arithmetic"``) at the AVX-512 levels, the bucket search alone below."""
    return _SEARCHES if fo_lm_level() >= 2 else _SEARCHES[:1]


def nearest_code_search():
    """The 8-bit loops' nearest-code search at the active SIMD level: ``"arithmetic"`` (no
    table load per value; at the AVX-512 levels on AMD CPUs, whose gathers are slow) or
    ``"bucket"`` (one gather of the bucket table per 16 values; elsewhere). The same
    codes."""
    return _SEARCHES[1 if fo_lm_arithmetic_search() and fo_lm_level() >= 2 else 0]


def _select_nearest_code_search(name=None):
    """Make ``name`` (``"bucket"``, ``"arithmetic"``, or None: this CPU's choice) the search
    of the AVX-512 8-bit loops; for tests and benchmarks. Returns the previous choice."""
    previous = _SEARCHES[fo_lm_arithmetic_search()]
    if name is not None and name not in _SEARCHES:
        raise ValueError(f"search {name!r}: choose from {_SEARCHES} or None")
    fo_lm_select_search(-1 if name is None else _SEARCHES.index(name))
    return previous


def decade_search_check(tables, bint signed, uint32_t first, Py_ssize_t vectors):
    """The AVX-512 loops' arithmetic nearest-code search (``code_tables()[10]`` or
    ``[11]``) against the bucket search on the float32 bit patterns ``first`` ..
    ``first + 16 * vectors - 1``, at the SIMD level in use: ``(differing lanes, lanes left to
    the bucket search, the first differing bit pattern)``, or None below AVX-512."""
    cdef int k = 0 if signed else 1
    cdef const int32_t* bucket = <const int32_t*>_data(tables[6 + k])
    cdef const float* decades = <const float*>_data(tables[10 + k])
    cdef int shift = tables[8 + k]
    cdef int zero = tables[4 + k]
    cdef int64_t counts[2]
    cdef uint32_t first_bad = 0
    cdef int status
    with nogil:
        status = fo_lm_q8_decade_check(bucket, shift, decades, zero, signed, first, vectors,
                                       counts, &first_bad)
    if status < 0:
        return None
    return int(counts[0]), int(counts[1]), int(first_bad)


cdef inline int _simd_supported(int level) noexcept nogil:
    return fo_lm_supported(level)


cdef inline int _simd_level() noexcept nogil:
    return fo_lm_level()


cdef inline void _simd_select(int level) noexcept nogil:
    fo_lm_select(level)


include "_simd_switch.pxi"
