# cython: language_level=3
"""The compressed-state Adam kernels (``csrc/adam_lowmem.h``), for other Cython code to
``cimport``::

    from fastoptim.lowmem_kernels cimport (fo_lm_adam_coefficients, fo_lm_q8_tables,
                                           fo_lm_adam_bf16, fo_lm_adam_q8)

The header is self-contained (static functions, compiled into the consumer); add
``fastoptim.get_include()`` to the include path (tests/test_extending.py builds such a
consumer). The headers turn floating-point contraction off for their own functions, so the
consumer's flags do not change their bits; compile with OpenMP (``-fopenmp``) for a
``threads`` argument above 1 to take effect (without it the kernels run on one thread).
The kernels validate nothing: the caller passes float32 ``param``/``grad`` of ``n``
elements, bfloat16 moments as ``uint16`` bits, or 8-bit moments as ``uint8`` code indices
with one float32 absmax per 256-element block, and the per-call scalars and code tables of
:mod:`fastoptim.lowmem` (``_coefficients`` and ``code_tables``). No two arrays may overlap.
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef extern from "csrc/adam_lowmem.h" nogil:
    ctypedef struct fo_lm_adam_coefficients:
        float grad_sign                 # +1, or -1 to maximize (no other value: the vector
                                        # loops fold it into 1 - beta1)
        float weight_decay              # L2 term (Adam), 0 for AdamW
        float param_scale               # AdamW: 1 - lr*weight_decay; Adam: 1
        float beta1
        float one_minus_beta1
        float beta2
        float one_minus_beta2
        float step_size                 # lr / (1 - beta1**t)
        float inv_bias_correction2_sqrt # 1 / sqrt(1 - beta2**t)
        float eps
        float m_bound                   # C_t: |m| <= C_t sqrt(v) (the zero-gradient trap)

    ctypedef struct fo_lm_momentum_coefficients:
        float lr
        float grad_sign
        float weight_decay              # L2, added to the gradient
        float momentum
        float one_minus_dampening
        int nesterov
    ctypedef struct fo_lm_rmsprop_coefficients:
        float lr
        float grad_sign
        float weight_decay              # L2, added to the gradient
        float alpha
        float one_minus_alpha
        float eps
        float momentum
        float eps_root                  # inside the square root
    ctypedef struct fo_lm_lion_coefficients:
        float lr
        float grad_sign
        float weight_decay              # decoupled
        float beta1
        float one_minus_beta1
        float beta2
        float one_minus_beta2

    ctypedef struct fo_lm_q8_tables:
        const float* m_code             # 256 signed code values, sorted
        const float* v_code             # 256 unsigned code values
        const int32_t* m_bucket         # the nearest-code search's bucket tables
        const int32_t* v_bucket
        int m_shift                     # 23 - mantissa bits of a bucket key
        int v_shift
        uint8_t m_zero                  # index of the code value 0
        uint8_t v_zero
        # the AVX-512 loops' arithmetic search (code_tables()[10], [11]), or NULL: the
        # bucket search alone, the same indices
        const float* m_decades
        const float* v_decades

    int FO_Q8_BLOCK

    # IN/OUT param, exp_avg, exp_avg_sq; IN grad, c
    void fo_lm_adam_bf16(float* param, const float* grad, uint16_t* exp_avg,
                         uint16_t* exp_avg_sq, Py_ssize_t n,
                         const fo_lm_adam_coefficients* c, int threads) noexcept
    # IN/OUT param, exp_avg, exp_avg_absmax, exp_avg_sq, exp_avg_sq_absmax; IN grad, c, t
    void fo_lm_adam_q8(float* param, const float* grad, uint8_t* exp_avg,
                       float* exp_avg_absmax, uint8_t* exp_avg_sq, float* exp_avg_sq_absmax,
                       Py_ssize_t n, const fo_lm_adam_coefficients* c,
                       const fo_lm_q8_tables* t, int threads) noexcept
    ctypedef enum fo_lm_kind:
        FO_LM_ADAM_BF16, FO_LM_ADAM_Q8, FO_LM_LION_BF16, FO_LM_LION_Q8, FO_LM_MOMENTUM_BF16,
        FO_LM_MOMENTUM_Q8, FO_LM_RMSPROP_BF16

    # The fused step of `kind` on count arrays in one OpenMP region: the same bits as one
    # call per array (fo_lm_adam_bf16 ... fo_lm_rmsprop_bf16, whose state order it takes);
    # state1, state2, scale0, scale1 NULL where the kind has no such buffer; c: the kind's
    # coefficient struct. -1 when its index cannot be allocated (nothing written).
    # IN/OUT param[a], state0..2[a], scale0..1[a]; IN grad[a], n, c, t
    int fo_lm_many(fo_lm_kind kind, float* const* param, const float* const* grad,
                   void* const* state0, void* const* state1, void* const* state2,
                   float* const* scale0, float* const* scale1, const Py_ssize_t* n,
                   int count, const void* c, const fo_lm_q8_tables* t,
                   int threads) noexcept
    # IN/OUT param, exp_avg (bfloat16 bits); IN grad, c
    void fo_lm_lion_bf16(float* param, const float* grad, uint16_t* exp_avg, Py_ssize_t n,
                         const fo_lm_lion_coefficients* c, int threads) noexcept
    # IN/OUT param, buf (bfloat16 bits); IN grad, c
    void fo_lm_momentum_bf16(float* param, const float* grad, uint16_t* buf, Py_ssize_t n,
                             const fo_lm_momentum_coefficients* c, int threads) noexcept
    # IN/OUT param, square_avg, momentum_buffer, grad_avg (bfloat16 bits; the last two NULL
    # when unused); IN grad, c
    void fo_lm_rmsprop_bf16(float* param, const float* grad, uint16_t* square_avg,
                            uint16_t* momentum_buffer, uint16_t* grad_avg, Py_ssize_t n,
                            const fo_lm_rmsprop_coefficients* c, int threads) noexcept
    # IN/OUT param, codes, absmax (one per block of 256); IN grad, c, t (its signed code)
    void fo_lm_momentum_q8(float* param, const float* grad, uint8_t* codes, float* absmax,
                           Py_ssize_t n, const fo_lm_momentum_coefficients* c,
                           const fo_lm_q8_tables* t, int threads) noexcept
    # IN/OUT param, codes, absmax (one per block of 256); IN grad, c, t (its signed code)
    void fo_lm_lion_q8(float* param, const float* grad, uint8_t* codes, float* absmax,
                       Py_ssize_t n, const fo_lm_lion_coefficients* c,
                       const fo_lm_q8_tables* t, int threads) noexcept
    # n bfloat16 bits -> float32; float32 -> bfloat16 bits, round to nearest even
    void fo_lm_bf16_decode(const uint16_t* src, float* dst, Py_ssize_t n) noexcept
    void fo_lm_bf16_encode(const float* src, uint16_t* dst, Py_ssize_t n) noexcept
    # n values of a blockwise 8-bit state (codes; absmax: one per block of 256) -> float32;
    # float32 -> codes and absmax (bucket, shift, zero: fastoptim.lowmem.code_tables of the
    # signed code, is_signed 1, or of the unsigned one)
    void fo_lm_q8_decode(const uint8_t* codes, const float* absmax, const float* code,
                         float* dst, Py_ssize_t n) noexcept
    # the code's four byte planes (FO_Q8_PLANES bytes, byte k of code[i] at 256 * k + i), and
    # fo_lm_q8_decode with them: byte permutes at levels avx512vbmi and avx512bf16, the same values
    enum: FO_Q8_PLANES
    # floats of an arithmetic search's table (fo_lm_q8_tables' decades)
    enum: FO_Q8_DECADE_TABLE
    void fo_lm_q8_planes(const float* code, uint8_t* planes) noexcept
    void fo_lm_q8_decode_planes(const uint8_t* codes, const float* absmax, const float* code,
                                const uint8_t* planes, float* dst, Py_ssize_t n) noexcept
    void fo_lm_q8_encode(const float* src, uint8_t* codes, float* absmax, Py_ssize_t n,
                         const int32_t* bucket, int shift, uint8_t zero,
                         int is_signed) noexcept
    # the same with the code's arithmetic search table (code_tables()[10] or [11], or
    # NULL): the same codes, faster at the AVX-512 levels
    void fo_lm_q8_encode_decades(const float* src, uint8_t* codes, float* absmax,
                                 Py_ssize_t n, const int32_t* bucket, int shift, uint8_t zero,
                                 int is_signed, const float* decades) noexcept
    int fo_lm_select(int level) noexcept
    # the AVX-512 loops' nearest-code search when the tables carry decades: 1 arithmetic (on
    # AMD CPUs), 0 the bucket table's gather (elsewhere); the same codes. Select: 1, 0, or -1
    # for this CPU's choice; returns the search in use
    int fo_lm_arithmetic_search() noexcept
    int fo_lm_select_search(int arithmetic) noexcept
    # the arithmetic search against the bucket search over 16 * vectors float32 bit
    # patterns from first (counts: differing lanes, lanes left to the bucket search); -1
    # below AVX-512
    int fo_lm_q8_decade_check(const int32_t* bucket, int shift, const float* decades,
                              int zero, int is_signed, uint32_t first, Py_ssize_t vectors,
                              int64_t* counts, uint32_t* first_bad) noexcept
    int fo_lm_level() noexcept
    int fo_lm_supported(int level) noexcept


# Adam on float16 / bfloat16 parameters (fastoptim.lowmem.adam_half_step): half bits as
# uint16, float32 moments and optional float32 master copy; the per-call scalars as
# fastoptim.halfparams._coefficients computes them.
cdef extern from "csrc/adam_mixed.h" nogil:
    int FO_HALF_BF16
    int FO_HALF_F16
    # IN/OUT param, master (or NULL), m, v; IN grad. wd_mode: 0 none, 1 L2, 2 decoupled;
    # sr: stochastic rounding (bfloat16, master NULL) keyed by fo_rounding_key(seed, step);
    # vector: the widest loop to use where the CPU has it (0 portable, 1 AVX2 + F16C,
    # 2 AVX-512)
    void fo_adam_mixed_threads(uint16_t* param, const uint16_t* grad, float* master,
                               float* m, float* v, long long n, int kind, float beta1,
                               float one_minus_beta1, float beta2, float one_minus_beta2,
                               float step_size, float inv_bc2_sqrt, float eps,
                               float weight_decay, float decay, int wd_mode, int maximize,
                               int sr, uint64_t key, int vector, int threads) noexcept
    uint64_t fo_rounding_key(uint64_t seed, uint64_t step) noexcept
