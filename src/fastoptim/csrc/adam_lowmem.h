/* Adam / AdamW with compressed moments: the "cython" backend's kernels of
 * fastoptim.lowmem (glue: fastoptim/_lowmem.pyx; Numba twin: numba_kernels/lowmem.py;
 * reference: fastoptim.lowmem.reference_adam_step).
 *
 * Parameters and gradients are float32; the moments are stored either as
 *   bfloat16  one uint16 per element (csrc/quant8.h), computed in float32, stored rounded
 *             to nearest even: 4 bytes of state per parameter instead of 8;
 *   int8      bitsandbytes' blockwise dynamic quantization: blocks of FO_Q8_BLOCK = 256
 *             elements, one uint8 code index per element and one float32 absmax per block,
 *             the signed dynamic code for m and the unsigned one for v: 2 + 8/256 bytes.
 *
 * One pass over memory. bfloat16: per element, load, update, store. int8: per block, the
 * codes are dequantized (code[q] * absmax), the moments updated and the parameter written
 * in one loop that keeps the new moments in a 2 KiB stack buffer (L1) and their absmax;
 * a second loop over that buffer requantizes them with the new absmax (nearest code of
 * value / absmax, through value * (1 / absmax), both prescaled by 2**64 when absmax is
 * below 2**-100; absmax 0 stores the zero code).
 *
 * The update (per element, float32, this order, no FMA contraction: -ffp-contract=off):
 *   d  = grad_sign * g  (+ weight_decay * p when weight_decay != 0: Adam's L2 term)
 *   m  = beta1 * m + one_minus_beta1 * d
 *   v  = beta2 * v + one_minus_beta2 * (d * d)
 *   s  = sqrt(v)
 *   m  = clamp(m, -m_bound * s, m_bound * s)
 *   p  = (param_scale * p when param_scale != 1: AdamW) - step_size * m / (s * inv_bc2_sqrt + eps)
 *
 * The clamp is the zero-gradient trap's fix (unsloth-zoo #962). In exact arithmetic
 * |m_t| <= C_t sqrt(v_t) with C_t = (1 - beta1) / sqrt(1 - beta2) * sqrt(sum_{k<t} r^k),
 * r = beta1^2 / beta2 (Cauchy-Schwarz on the two moving averages), so Adam's per-step change
 * is at most lr * C_t * sqrt(1 - beta2^t) / (1 - beta1^t). Quantization breaks the
 * invariant: in a block with one large gradient, a small element's v rounds to the zero
 * code while its m (whose code is relative to |m|, not m^2) does not; when its gradient
 * then becomes exactly 0, m / (sqrt(0) + eps) explodes. Clamping to C_t sqrt(v)
 * (m_bound = C_t, computed per call) restores the float32 bound; it never binds for states
 * an exact computation could reach.
 *
 * Threads: OpenMP over chunks of FO_LM_CHUNK elements (whole blocks); every element and
 * every block is computed by the same code whatever the chunk's thread, so the result does
 * not depend on the thread count. The SIMD targets (baseline, AVX2+FMA, AVX-512, AVX-512
 * with VBMI, and with AVX512-BF16 too) compute the same operations in the same order, without
 * FMA (scalar C the compiler vectorizes, and intrinsics for the 8-bit blocks, the AVX2
 * loops of bfloat16 Adam, Lion and RMSprop and of 8-bit Lion and SGD, and the AVX-512
 * loops); bfloat16 rounding is integer arithmetic, or vcvtneps2bf16 where the CPU has it,
 * with the lanes it reads differently (NaN, subnormal) rounded in integers: the same bits on
 * every target.
 *
 * This header includes itself once per SIMD target with FO_LM_BODY defined.
 */
#ifndef FO_LM_BODY
#ifndef FASTOPTIM_ADAM_LOWMEM_H
#define FASTOPTIM_ADAM_LOWMEM_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include "fp_exact.h"
#include "half_convert.h"     /* fo_bf16x8_to_f32_avx2: eight bfloat16 values to float32 */
#include "prefetch.h"         /* fo_prefetch_mixed, fo_prefetch_ahead: the loops' prefetch */
FO_EXACT_BEGIN        /* no FMA contraction whatever the includer's flags */

#if defined(__GNUC__) || defined(__clang__)
#define FO_LM_RESTRICT __restrict__
#define FO_QINLINE static inline __attribute__((always_inline)) FO_QTARGET
#else
#define FO_LM_RESTRICT
#define FO_QINLINE static inline FO_QTARGET
#endif
#define FO_RESTRICT FO_LM_RESTRICT

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FO_LM_DISPATCH 1
#else
#define FO_LM_DISPATCH 0
#endif

#define FO_Q8_BLOCK 256
#define FO_Q8_PLANES 1024       /* bytes of fo_lm_q8_planes: four planes of 256 */
/* floats of an arithmetic search's table (fastoptim.lowmem.DECADE_TABLE) */
#define FO_Q8_DECADE_TABLE 128
/* the bucket tables' exponent classes (fastoptim.lowmem._EXP_CLASSES, _EXP_LOW) and the
   offset of their negative half for `bits` mantissa bits: 2**(8 + bits), where a float's
   sign bit lands in its key (bits >> (23 - bits)) */
#define FO_Q8_EXP_CLASSES 26
#define FO_Q8_EXP_LOW 103
#define FO_Q8_NEGATIVE(bits) (1 << (8 + (bits)))
/* vrangeps' control: the operand of larger magnitude, with the sign of the first */
#define FO_Q8_RANGE_MAXABS 0x7
/* and with the sign cleared */
#define FO_Q8_RANGE_MAXABS_UNSIGNED 0xb
/* A block's values are normalized as (x * pre) * (1 / (absmax * pre)): pre = 2**64 when
   absmax < 2**-100 (exact power-of-two scaling, so that 1 / absmax cannot overflow for a
   tiny or subnormal absmax), else 1 (x * 1 == x). */
#define FO_Q8_PRESCALE(absmax) ((absmax) < 0x1p-100f ? 0x1p64f : 1.0f)

/* the blocks ahead that this CPU's 8-bit block loops prefetch: fo_prefetch_ahead()'s
   elements (csrc/prefetch.h) in whole blocks, at least one: 4 on Intel (Sapphire Rapids at
   3e7: 2, 4, 8, 16 blocks alike, none 20% slower), 1 on AMD CPUs (Zen 4 EPYC, int8 Adam,
   SGD and Lion at 3e7 on 2 threads: 1 block 2-8% faster than 4, about as no prefetch) */
static inline Py_ssize_t fo_lm_q8_ahead(void) {
    const Py_ssize_t blocks = (Py_ssize_t)fo_prefetch_ahead() / FO_Q8_BLOCK;
    return blocks > 0 ? blocks : 1;
}
/* elements per OpenMP work item: whole blocks */
#define FO_LM_CHUNK (FO_Q8_BLOCK * 128)

/* the per-call scalars (fastoptim.lowmem computes them once per call); grad_sign is +1, or
   -1 to maximize, and no other value: the vector loops fold it into 1 - beta1 */
typedef struct {
    float grad_sign, weight_decay, param_scale, beta1, one_minus_beta1, beta2,
        one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, m_bound;
} fo_lm_adam_coefficients;

/* SGD with momentum's per-call scalars (fastoptim.lowmem.momentum_lowmem_step) */
typedef struct {
    float lr, grad_sign, weight_decay, momentum, one_minus_dampening;
    int nesterov;
} fo_lm_momentum_coefficients;

/* RMSprop's per-call scalars (fastoptim.lowmem.rmsprop_lowmem_step) */
typedef struct {
    float lr, grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum, eps_root;
} fo_lm_rmsprop_coefficients;

/* Lion's per-call scalars (fastoptim.lowmem._lion_coefficients) */
typedef struct {
    float lr, grad_sign, weight_decay, beta1, one_minus_beta1, beta2, one_minus_beta2;
} fo_lm_lion_coefficients;

/* the code tables (signed for m, unsigned for v): 256 sorted values each, and the bucket
   tables of the nearest-code search, whose entries carry the midpoints */
typedef struct {
    const float* m_code;
    const float* v_code;
    const int32_t* m_bucket;        /* the nearest-code search's bucket tables (quant8.h) */
    const int32_t* v_bucket;
    int m_shift, v_shift;           /* 23 - mantissa bits of a bucket key */
    uint8_t m_zero, v_zero;         /* the index of the code value 0 */
    /* the AVX-512 loops' arithmetic search (FO_Q8_DECADE_TABLE floats each), or NULL: the
       bucket search alone (the same indices) */
    const float* m_decades;
    const float* v_decades;
} fo_lm_q8_tables;

/* what the search's constants load when a table has no arithmetic search (never used) */
static const float fo_lm_no_decades[FO_Q8_DECADE_TABLE] = {0};

/* The nearest-code search of the AVX-512 8-bit loops, when their tables carry the arithmetic
   search's (fo_lm_q8_tables' decades): 1, the arithmetic search (q8_decade16), on AMD CPUs;
   0, the bucket table's gather, elsewhere. Both give the same index (the tests run every
   float32 bit pattern through both). On a Zen 4 EPYC a 16-lane vpgatherdd takes 6.1-7.6 ns
   and the arithmetic search made 8-bit Adam 1.2-1.4x faster in cache (encoding alone 1.2x
   signed, 1.4x unsigned); on Sapphire Rapids a gather takes 1.78 ns, less than the
   arithmetic search's 16-20 vector instructions on its two 512-bit ports would. -1 until
   chosen. */
static int fo_lm_arithmetic_search_ = -1;

static inline int fo_lm_arithmetic_search(void) {
    if (fo_lm_arithmetic_search_ < 0)
        fo_lm_arithmetic_search_ = fo_cpu_is_amd();
    return fo_lm_arithmetic_search_;
}

/* Select the search (tests and benchmarks): 1 arithmetic, 0 bucket, -1 this CPU's choice;
   returns the search in use afterwards. */
static inline int fo_lm_select_search(int arithmetic) {
    fo_lm_arithmetic_search_ = arithmetic < 0 ? fo_cpu_is_amd() : arithmetic != 0;
    return fo_lm_arithmetic_search_;
}

/* the 256 code values as four byte planes, byte k of code[i] at planes[256 * k + i]
   (FO_Q8_PLANES bytes): the layout of the AVX512-VBMI dequantization, built once per code */
static inline void fo_lm_q8_planes(const float* code, uint8_t* planes) {
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 256; i++) {
            uint32_t u;
            memcpy(&u, code + i, sizeof u);
            planes[256 * k + i] = (uint8_t)(u >> (8 * k));
        }
}

/* ---- the loops, per SIMD target --------------------------------------------------------- */
#define FO_LM_BODY 1

#define FO_QNAME(x) fo_lm_##x##_l0
#define FO_QTARGET
#define FO_LM_VEC 0
#include "adam_lowmem.h"
#undef FO_QNAME
#undef FO_QTARGET
#undef FO_LM_VEC

#if FO_LM_DISPATCH
#define FO_QNAME(x) fo_lm_##x##_l1
#define FO_QTARGET __attribute__((target("avx2,fma")))
#define FO_LM_VEC 1
#include "adam_lowmem.h"
#undef FO_QNAME
#undef FO_QTARGET
#undef FO_LM_VEC

#define FO_QNAME(x) fo_lm_##x##_l2
#if defined(__clang__)
#define FO_QTARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#else
#define FO_QTARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#endif
#define FO_LM_VEC 2
#include "adam_lowmem.h"
#undef FO_QNAME
#undef FO_QTARGET
#undef FO_LM_VEC

/* level 3: level 2 with AVX512-VBMI's byte permutes (the 8-bit loops' dequantization and
   code packing: Ice Lake, Tiger Lake, Sapphire Rapids, Zen 4) */
#define FO_QNAME(x) fo_lm_##x##_l3
#if defined(__clang__)
#define FO_QTARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx512vbmi,avx2,fma")))
#else
#define FO_QTARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx512vbmi,avx2,fma,prefer-vector-width=512")))
#endif
#define FO_LM_VEC 3
#include "adam_lowmem.h"
#undef FO_QNAME
#undef FO_QTARGET
#undef FO_LM_VEC

/* level 4: level 3 with the AVX512-BF16 conversion instruction (vcvtneps2bf16: Sapphire
   Rapids, Zen 4) */
#define FO_QNAME(x) fo_lm_##x##_l4
#if defined(__clang__)
#define FO_QTARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx512vbmi,avx2,fma")))
#else
#define FO_QTARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx512vbmi,avx2,fma,prefer-vector-width=512")))
#endif
#define FO_LM_VEC 4
#include "adam_lowmem.h"
#undef FO_QNAME
#undef FO_QTARGET
#undef FO_LM_VEC
#define FO_LM_LEVELS 5
#else
#define FO_LM_LEVELS 1
#endif

#undef FO_LM_BODY

/* ---- SIMD level ------------------------------------------------------------------------- */
typedef void (*fo_lm_bf16_fn)(float*, const float*, uint16_t*, uint16_t*, Py_ssize_t,
                              const fo_lm_adam_coefficients*);
typedef void (*fo_lm_q8_fn)(float*, const float*, uint8_t*, float*, uint8_t*, float*,
                            Py_ssize_t, const fo_lm_adam_coefficients*,
                            const fo_lm_q8_tables*);

typedef void (*fo_lm_lion_fn)(float*, const float*, uint16_t*, Py_ssize_t,
                              const fo_lm_lion_coefficients*);
static const fo_lm_lion_fn fo_lm_lion_table[FO_LM_LEVELS] = {
    fo_lm_lion_bf16_range_l0,
#if FO_LM_DISPATCH
    fo_lm_lion_bf16_range_l1, fo_lm_lion_bf16_range_l2,
    fo_lm_lion_bf16_range_l3, fo_lm_lion_bf16_range_l4,
#endif
};
static const fo_lm_bf16_fn fo_lm_bf16_table[FO_LM_LEVELS] = {
    fo_lm_adam_bf16_range_l0,
#if FO_LM_DISPATCH
    fo_lm_adam_bf16_range_l1, fo_lm_adam_bf16_range_l2,
    fo_lm_adam_bf16_range_l3, fo_lm_adam_bf16_range_l4,
#endif
};
static const fo_lm_q8_fn fo_lm_q8_table[FO_LM_LEVELS] = {
    fo_lm_adam_q8_range_l0,
#if FO_LM_DISPATCH
    fo_lm_adam_q8_range_l1, fo_lm_adam_q8_range_l2,
    fo_lm_adam_q8_range_l3, fo_lm_adam_q8_range_l4,
#endif
};

typedef void (*fo_lm_momentum_fn)(float*, const float*, uint16_t*, Py_ssize_t,
                                  const fo_lm_momentum_coefficients*);
static const fo_lm_momentum_fn fo_lm_momentum_table[FO_LM_LEVELS] = {
    fo_lm_momentum_bf16_range_l0,
#if FO_LM_DISPATCH
    fo_lm_momentum_bf16_range_l1, fo_lm_momentum_bf16_range_l2,
    fo_lm_momentum_bf16_range_l3, fo_lm_momentum_bf16_range_l4,
#endif
};

typedef void (*fo_lm_rmsprop_fn)(float*, const float*, uint16_t*, uint16_t*, uint16_t*,
                                 Py_ssize_t, const fo_lm_rmsprop_coefficients*);
static const fo_lm_rmsprop_fn fo_lm_rmsprop_table[FO_LM_LEVELS] = {
    fo_lm_rmsprop_bf16_range_l0,
#if FO_LM_DISPATCH
    fo_lm_rmsprop_bf16_range_l1, fo_lm_rmsprop_bf16_range_l2,
    fo_lm_rmsprop_bf16_range_l3, fo_lm_rmsprop_bf16_range_l4,
#endif
};

typedef void (*fo_lm_momentum_q8_fn)(float*, const float*, uint8_t*, float*, Py_ssize_t,
                                     const fo_lm_momentum_coefficients*,
                                     const fo_lm_q8_tables*);
static const fo_lm_momentum_q8_fn fo_lm_momentum_q8_table[FO_LM_LEVELS] = {
    fo_lm_momentum_q8_range_l0,
#if FO_LM_DISPATCH
    fo_lm_momentum_q8_range_l1, fo_lm_momentum_q8_range_l2,
    fo_lm_momentum_q8_range_l3, fo_lm_momentum_q8_range_l4,
#endif
};

typedef void (*fo_lm_lion_q8_fn)(float*, const float*, uint8_t*, float*, Py_ssize_t,
                                 const fo_lm_lion_coefficients*, const fo_lm_q8_tables*);
static const fo_lm_lion_q8_fn fo_lm_lion_q8_table[FO_LM_LEVELS] = {
    fo_lm_lion_q8_range_l0,
#if FO_LM_DISPATCH
    fo_lm_lion_q8_range_l1, fo_lm_lion_q8_range_l2,
    fo_lm_lion_q8_range_l3, fo_lm_lion_q8_range_l4,
#endif
};

typedef void (*fo_lm_decode_fn)(const uint16_t*, float*, Py_ssize_t);
typedef void (*fo_lm_encode_fn)(const float*, uint16_t*, Py_ssize_t);
static const fo_lm_decode_fn fo_lm_decode_table[FO_LM_LEVELS] = {
    fo_lm_bf16_decode_range_l0,
#if FO_LM_DISPATCH
    fo_lm_bf16_decode_range_l1, fo_lm_bf16_decode_range_l2,
    fo_lm_bf16_decode_range_l3, fo_lm_bf16_decode_range_l4,
#endif
};
static const fo_lm_encode_fn fo_lm_encode_table[FO_LM_LEVELS] = {
    fo_lm_bf16_encode_range_l0,
#if FO_LM_DISPATCH
    fo_lm_bf16_encode_range_l1, fo_lm_bf16_encode_range_l2,
    fo_lm_bf16_encode_range_l3, fo_lm_bf16_encode_range_l4,
#endif
};

typedef void (*fo_lm_q8_decode_fn)(const uint8_t*, const float*, const float*,
                                   const uint8_t*, float*, Py_ssize_t);
typedef void (*fo_lm_q8_encode_fn)(const float*, uint8_t*, float*, Py_ssize_t, const int32_t*,
                                   int, uint8_t, int, const float*);
static const fo_lm_q8_decode_fn fo_lm_q8_decode_table[FO_LM_LEVELS] = {
    fo_lm_q8_decode_range_l0,
#if FO_LM_DISPATCH
    fo_lm_q8_decode_range_l1, fo_lm_q8_decode_range_l2,
    fo_lm_q8_decode_range_l3, fo_lm_q8_decode_range_l4,
#endif
};
static const fo_lm_q8_encode_fn fo_lm_q8_encode_table[FO_LM_LEVELS] = {
    fo_lm_q8_encode_range_l0,
#if FO_LM_DISPATCH
    fo_lm_q8_encode_range_l1, fo_lm_q8_encode_range_l2,
    fo_lm_q8_encode_range_l3, fo_lm_q8_encode_range_l4,
#endif
};

/* 0: baseline, 1: AVX2 + FMA, 2: AVX-512 F/VL/BW/DQ, 3: level 2 + AVX512-VBMI, 4: level 3 +
   AVX512-BF16; -1 until chosen (the best, on first use) */
static int fo_lm_level_ = -1;

static inline int fo_lm_supported(int level) {
    if (level == 0)
        return 1;
    if (level < 0 || level >= FO_LM_LEVELS)
        return 0;
#if FO_LM_DISPATCH
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    if (level >= 2 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                        && __builtin_cpu_supports("avx512bw")
                        && __builtin_cpu_supports("avx512dq")))
        return 0;
    if (level >= 3 && !__builtin_cpu_supports("avx512vbmi"))
        return 0;
    if (level >= 4 && !__builtin_cpu_supports("avx512bf16"))
        return 0;
#endif
    return 1;
}

/* Select a level (tests and benchmarks); returns the active level afterwards. */
static inline int fo_lm_select(int level) {
    if (level >= 0 && fo_lm_supported(level))
        fo_lm_level_ = level;
    else if (fo_lm_level_ < 0) {
        fo_lm_level_ = FO_LM_LEVELS - 1;
        while (fo_lm_level_ > 0 && !fo_lm_supported(fo_lm_level_))
            fo_lm_level_--;
    }
    return fo_lm_level_;
}

static inline int fo_lm_level(void) {
    return fo_lm_level_ < 0 ? fo_lm_select(-1) : fo_lm_level_;
}

/* fastoptim._lowmem.decade_search_check: q8_decade_check at the SIMD level in use, 0; -1
   below AVX-512 (whose loops keep the bucket search alone) */
static inline int fo_lm_q8_decade_check(const int32_t* bucket, int shift, const float* decades,
                                        int zero, int is_signed, uint32_t first,
                                        Py_ssize_t vectors, int64_t* counts,
                                        uint32_t* first_bad) {
#if FO_LM_DISPATCH
    switch (fo_lm_level()) {
    case 2:
        fo_lm_q8_decade_check_l2(bucket, shift, decades, zero, is_signed, first, vectors,
                                 counts, first_bad);
        return 0;
    case 3:
        fo_lm_q8_decade_check_l3(bucket, shift, decades, zero, is_signed, first, vectors,
                                 counts, first_bad);
        return 0;
    case 4:
        fo_lm_q8_decade_check_l4(bucket, shift, decades, zero, is_signed, first, vectors,
                                 counts, first_bad);
        return 0;
    }
#endif
    (void)bucket; (void)shift; (void)decades; (void)zero; (void)is_signed; (void)first;
    (void)vectors; (void)counts; (void)first_bad;
    return -1;
}


/* ---- the entry points ------------------------------------------------------------------- */
/* (lowmem_kernels.pxd's; static inline, as adam_mixed.h's fo_adam_mixed_threads, so that a
   consumer which calls some of them is not warned about the others) */
/* One call of a fused kernel: its arrays (state buffers are bfloat16 bits or 8-bit codes,
   NULL when absent; scales one float32 absmax per FO_Q8_BLOCK block), its per-call scalars
   and code tables. fo_lm_item runs elements [lo, lo + len) of it at the active level. */
typedef enum {
    FO_LM_ADAM_BF16, FO_LM_ADAM_Q8, FO_LM_LION_BF16, FO_LM_LION_Q8, FO_LM_MOMENTUM_BF16,
    FO_LM_MOMENTUM_Q8, FO_LM_RMSPROP_BF16
} fo_lm_kind;

typedef struct {
    fo_lm_kind kind;
    float* param;
    const float* grad;
    void* state[3];
    float* scale[2];
    const void* c;
    const fo_lm_q8_tables* t;
} fo_lm_call;

/* base + lo elements of `size` bytes, NULL for an absent buffer */
static void* fo_lm_at(void* base, Py_ssize_t lo, size_t size) {
    return base == NULL ? NULL : (char*)base + (size_t)lo * size;
}

static void fo_lm_item(const fo_lm_call* x, Py_ssize_t lo, Py_ssize_t len) {
    const int level = fo_lm_level();
    float* p = x->param + lo;
    const float* g = x->grad + lo;
    uint16_t* h0 = (uint16_t*)fo_lm_at(x->state[0], lo, 2);
    uint8_t* q0 = (uint8_t*)fo_lm_at(x->state[0], lo, 1);
    float* a0 = (float*)fo_lm_at(x->scale[0], lo / FO_Q8_BLOCK, 4);   /* lo: whole blocks */
    switch (x->kind) {
    case FO_LM_ADAM_BF16:
        fo_lm_bf16_table[level](p, g, h0, (uint16_t*)fo_lm_at(x->state[1], lo, 2), len,
                                (const fo_lm_adam_coefficients*)x->c);
        break;
    case FO_LM_ADAM_Q8:
        fo_lm_q8_table[level](p, g, q0, a0, (uint8_t*)fo_lm_at(x->state[1], lo, 1),
                              (float*)fo_lm_at(x->scale[1], lo / FO_Q8_BLOCK, 4), len,
                              (const fo_lm_adam_coefficients*)x->c, x->t);
        break;
    case FO_LM_LION_BF16:
        fo_lm_lion_table[level](p, g, h0, len, (const fo_lm_lion_coefficients*)x->c);
        break;
    case FO_LM_LION_Q8:
        fo_lm_lion_q8_table[level](p, g, q0, a0, len, (const fo_lm_lion_coefficients*)x->c,
                                   x->t);
        break;
    case FO_LM_MOMENTUM_BF16:
        fo_lm_momentum_table[level](p, g, h0, len, (const fo_lm_momentum_coefficients*)x->c);
        break;
    case FO_LM_MOMENTUM_Q8:
        fo_lm_momentum_q8_table[level](p, g, q0, a0, len,
                                       (const fo_lm_momentum_coefficients*)x->c, x->t);
        break;
    case FO_LM_RMSPROP_BF16:
        fo_lm_rmsprop_table[level](p, g, h0, (uint16_t*)fo_lm_at(x->state[1], lo, 2),
                                   (uint16_t*)fo_lm_at(x->state[2], lo, 2), len,
                                   (const fo_lm_rmsprop_coefficients*)x->c);
        break;
    }
}

/* A call over n elements, on `threads` OpenMP threads: items of FO_LM_CHUNK elements (whole
   blocks), one thread when there are fewer than two. Every element and block is computed
   by the same code on any thread: the result does not depend on the thread count. */
static void fo_lm_parallel(const fo_lm_call* x, Py_ssize_t n, int threads) {
    Py_ssize_t chunks = (n + FO_LM_CHUNK - 1) / FO_LM_CHUNK;
    if (threads < 1 || chunks < 2)
        threads = 1;
    #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (Py_ssize_t k = 0; k < chunks; k++) {
        Py_ssize_t lo = k * FO_LM_CHUNK;
        fo_lm_item(x, lo, n - lo < FO_LM_CHUNK ? n - lo : FO_LM_CHUNK);
    }
}

/* Adam with bfloat16 moments over n elements, on `threads` OpenMP threads. */
static inline void fo_lm_adam_bf16(float* param, const float* grad, uint16_t* exp_avg,
                                   uint16_t* exp_avg_sq, Py_ssize_t n,
                                   const fo_lm_adam_coefficients* c, int threads) {
    fo_lm_call x = {FO_LM_ADAM_BF16, param, grad, {exp_avg, exp_avg_sq, NULL}, {NULL, NULL},
                    c, NULL};
    fo_lm_parallel(&x, n, threads);
}

/* Adam with blockwise 8-bit moments over n elements (absmax: one per FO_Q8_BLOCK block). */
static inline void fo_lm_adam_q8(float* param, const float* grad, uint8_t* exp_avg,
                                 float* exp_avg_absmax, uint8_t* exp_avg_sq,
                                 float* exp_avg_sq_absmax, Py_ssize_t n,
                                 const fo_lm_adam_coefficients* c, const fo_lm_q8_tables* t,
                                 int threads) {
    fo_lm_call x = {FO_LM_ADAM_Q8, param, grad, {exp_avg, exp_avg_sq, NULL},
                    {exp_avg_absmax, exp_avg_sq_absmax}, c, t};
    fo_lm_parallel(&x, n, threads);
}

/* One fused low-memory step (`kind`: its rule and state encoding) over `count` arrays in
   one OpenMP region: array a has n[a] elements at param[a] and grad[a], and its state
   buffers at state0[a], state1[a], state2[a] (bfloat16 bits or 8-bit codes, in the order of
   the one-array function of that kind), with one absmax per block in scale0[a], scale1[a]
   for 8-bit codes. A pointer array the kind does not use may be NULL (RMSprop's
   momentum_buffer and grad_avg when off, the scales for bfloat16). `c` points to the kind's
   coefficient struct, `t` to the code tables (8-bit kinds). The items of FO_LM_CHUNK
   elements of every array are shared out together (an array of a few hundred elements is
   one item), on one thread when all of them hold fewer than 2 FO_LM_CHUNK elements (as a
   one-array call of that size: waking the threads costs more than they save). Each item is
   computed as the one-array call computes it, so the result is that call's on every array,
   for any thread count. Returns -1 (nothing written) when its index cannot be allocated. */
static inline int fo_lm_many(fo_lm_kind kind, float* const* param, const float* const* grad,
                             void* const* state0, void* const* state1, void* const* state2,
                             float* const* scale0, float* const* scale1, const Py_ssize_t* n,
                             int count, const void* c, const fo_lm_q8_tables* t,
                             int threads) {
    fo_lm_call* calls = (fo_lm_call*)malloc(sizeof(fo_lm_call) * (size_t)(count + 1));
    Py_ssize_t* first = (Py_ssize_t*)malloc(sizeof(Py_ssize_t) * (size_t)(count + 1));
    if (calls == NULL || first == NULL) {
        free(calls);
        free(first);
        return -1;
    }
    first[0] = 0;           /* first[a]: the items before array a's */
    Py_ssize_t total = 0;
    for (int a = 0; a < count; a++) {
        fo_lm_call x = {kind, param[a], grad[a],
                        {state0[a], state1 == NULL ? NULL : state1[a],
                         state2 == NULL ? NULL : state2[a]},
                        {scale0 == NULL ? NULL : scale0[a], scale1 == NULL ? NULL : scale1[a]},
                        c, t};
        calls[a] = x;
        first[a + 1] = first[a] + (n[a] + FO_LM_CHUNK - 1) / FO_LM_CHUNK;
        total += n[a];
    }
    Py_ssize_t items = first[count];
    if (threads < 1 || items < 2 || total < 2 * (Py_ssize_t)FO_LM_CHUNK)
        threads = 1;
    #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (Py_ssize_t k = 0; k < items; k++) {
        int lo = 0, hi = count - 1;         /* the array a with first[a] <= k < first[a + 1] */
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (first[mid] <= k)
                lo = mid;
            else
                hi = mid - 1;
        }
        Py_ssize_t start = (k - first[lo]) * FO_LM_CHUNK;
        Py_ssize_t len = n[lo] - start < FO_LM_CHUNK ? n[lo] - start : FO_LM_CHUNK;
        fo_lm_item(&calls[lo], start, len);
    }
    free(calls);
    free(first);
    return 0;
}

/* Lion with a bfloat16 moment over n elements, on `threads` OpenMP threads. */
static inline void fo_lm_lion_bf16(float* param, const float* grad, uint16_t* exp_avg,
                                   Py_ssize_t n, const fo_lm_lion_coefficients* c,
                                   int threads) {
    fo_lm_call x = {FO_LM_LION_BF16, param, grad, {exp_avg, NULL, NULL}, {NULL, NULL}, c,
                    NULL};
    fo_lm_parallel(&x, n, threads);
}

/* Lion with a blockwise 8-bit moment (absmax: one per FO_Q8_BLOCK block; t's signed
   code) over n elements, on `threads` OpenMP threads. */
static inline void fo_lm_lion_q8(float* param, const float* grad, uint8_t* codes, float* absmax,
                                 Py_ssize_t n, const fo_lm_lion_coefficients* c,
                                 const fo_lm_q8_tables* t, int threads) {
    fo_lm_call x = {FO_LM_LION_Q8, param, grad, {codes, NULL, NULL}, {absmax, NULL}, c, t};
    fo_lm_parallel(&x, n, threads);
}

/* SGD with momentum, its buffer bfloat16, over n elements, on `threads` OpenMP threads. */
static inline void fo_lm_momentum_bf16(float* param, const float* grad, uint16_t* buf,
                                       Py_ssize_t n, const fo_lm_momentum_coefficients* c,
                                       int threads) {
    fo_lm_call x = {FO_LM_MOMENTUM_BF16, param, grad, {buf, NULL, NULL}, {NULL, NULL}, c,
                    NULL};
    fo_lm_parallel(&x, n, threads);
}

/* SGD with momentum, its buffer blockwise 8-bit (absmax: one per FO_Q8_BLOCK block; t's
   signed code), over n elements, on `threads` OpenMP threads. */
static inline void fo_lm_momentum_q8(float* param, const float* grad, uint8_t* codes,
                                     float* absmax, Py_ssize_t n,
                                     const fo_lm_momentum_coefficients* c,
                                     const fo_lm_q8_tables* t, int threads) {
    fo_lm_call x = {FO_LM_MOMENTUM_Q8, param, grad, {codes, NULL, NULL}, {absmax, NULL}, c,
                    t};
    fo_lm_parallel(&x, n, threads);
}

/* RMSprop, its buffers bfloat16 (momentum_buffer, grad_avg NULL when unused), over n
   elements, on `threads` OpenMP threads. */
static inline void fo_lm_rmsprop_bf16(float* param, const float* grad, uint16_t* square_avg,
                                      uint16_t* momentum_buffer, uint16_t* grad_avg,
                                      Py_ssize_t n, const fo_lm_rmsprop_coefficients* c,
                                      int threads) {
    fo_lm_call x = {FO_LM_RMSPROP_BF16, param, grad, {square_avg, momentum_buffer, grad_avg},
                    {NULL, NULL}, c, NULL};
    fo_lm_parallel(&x, n, threads);
}

/* n bfloat16 values (bits) to float32, and float32 to bfloat16 rounded to nearest even
   (ml_dtypes' rule for NaN), single-threaded (a cache-sized chunk) */
static inline void fo_lm_bf16_decode(const uint16_t* src, float* dst, Py_ssize_t n) {
    fo_lm_decode_table[fo_lm_level()](src, dst, n);
}

static inline void fo_lm_bf16_encode(const float* src, uint16_t* dst, Py_ssize_t n) {
    fo_lm_encode_table[fo_lm_level()](src, dst, n);
}

/* n values of a blockwise 8-bit state (codes, one absmax per FO_Q8_BLOCK block from the
   first, code: the 256 code values) to float32, and float32 to codes and absmax
   (fastoptim.lowmem.quantize_blockwise's rule; bucket, shift, zero: code_tables' for the
   signed code (is_signed 1) or the unsigned one), single-threaded (a cache-sized chunk of
   whole blocks) */
static inline void fo_lm_q8_decode(const uint8_t* codes, const float* absmax,
                                   const float* code, float* dst, Py_ssize_t n) {
    fo_lm_q8_decode_table[fo_lm_level()](codes, absmax, code, NULL, dst, n);
}

/* fo_lm_q8_decode with the code's byte planes (fo_lm_q8_planes): at level 3 and above whole
   runs of 64 codes are dequantized by byte permutes instead of gathers; the same values */
static inline void fo_lm_q8_decode_planes(const uint8_t* codes, const float* absmax,
                                          const float* code, const uint8_t* planes, float* dst,
                                          Py_ssize_t n) {
    fo_lm_q8_decode_table[fo_lm_level()](codes, absmax, code, planes, dst, n);
}

static inline void fo_lm_q8_encode(const float* src, uint8_t* codes, float* absmax,
                                   Py_ssize_t n, const int32_t* bucket, int shift, uint8_t zero,
                                   int is_signed) {
    fo_lm_q8_encode_table[fo_lm_level()](src, codes, absmax, n, bucket, shift, zero,
                                         is_signed, NULL);
}

/* fo_lm_q8_encode with the code's arithmetic search table too (fastoptim.lowmem.code_tables
   entry 10 or 11, or NULL): the same codes, faster at the AVX-512 levels */
static inline void fo_lm_q8_encode_decades(const float* src, uint8_t* codes, float* absmax,
                                           Py_ssize_t n, const int32_t* bucket, int shift,
                                           uint8_t zero, int is_signed, const float* decades) {
    fo_lm_q8_encode_table[fo_lm_level()](src, codes, absmax, n, bucket, shift, zero,
                                         is_signed, decades);
}

FO_EXACT_END
#endif /* FASTOPTIM_ADAM_LOWMEM_H */

#else /* FO_LM_BODY: the loops, once per FO_QTARGET ---------------------------------------- */

#include "quant8.h"

/* the float32 update of one element; m and v in, the new m and v out; returns the new p */
FO_QINLINE float FO_QNAME(adam_update)(float p, float g, float* FO_RESTRICT m,
                                        float* FO_RESTRICT v,
                                        const fo_lm_adam_coefficients* FO_RESTRICT c,
                                        int use_wd, int scale) {
    float d = use_wd ? c->grad_sign * g + c->weight_decay * p : c->grad_sign * g;
    float mn = c->beta1 * *m + c->one_minus_beta1 * d;
    float vn = c->beta2 * *v + c->one_minus_beta2 * (d * d);
    float s = sqrtf(vn);
    float bound = c->m_bound * s;
    mn = mn > bound ? bound : (mn < -bound ? -bound : mn);
    *m = mn;
    *v = vn;
    float denom = s * c->inv_bias_correction2_sqrt + c->eps;
    return (scale ? c->param_scale * p : p) - c->step_size * mn / denom;
}

#if FO_LM_VEC
/* ---- eight lanes of adam_update (levels 1 and 2): the same operations in the same order,
   no FMA, so the same bits ------------------------------------------------------------------ */
typedef struct {
    __m256 gs, wd, ps, b1, omb1, omb1_gs, b2, omb2, ss, ibc, eps, mbound;
} FO_QNAME(adam_vec8);

FO_QINLINE FO_QNAME(adam_vec8) FO_QNAME(adam_vec8_of)(const fo_lm_adam_coefficients* c) {
    FO_QNAME(adam_vec8) k;
    k.gs = _mm256_set1_ps(c->grad_sign);
    k.wd = _mm256_set1_ps(c->weight_decay);
    k.ps = _mm256_set1_ps(c->param_scale);
    k.b1 = _mm256_set1_ps(c->beta1);
    k.omb1 = _mm256_set1_ps(c->one_minus_beta1);
    k.omb1_gs = _mm256_set1_ps(c->one_minus_beta1 * c->grad_sign);
    k.b2 = _mm256_set1_ps(c->beta2);
    k.omb2 = _mm256_set1_ps(c->one_minus_beta2);
    k.ss = _mm256_set1_ps(c->step_size);
    k.ibc = _mm256_set1_ps(c->inv_bias_correction2_sqrt);
    k.eps = _mm256_set1_ps(c->eps);
    k.mbound = _mm256_set1_ps(c->m_bound);
    return k;
}

/* m, v in and out; returns the new p (adam_update16's operations, eight lanes) */
FO_QINLINE __m256 FO_QNAME(adam_update8)(__m256 p, __m256 g, __m256* m, __m256* v,
                                         const FO_QNAME(adam_vec8)* k, int use_wd, int scale) {
    __m256 d, mn;
    if (use_wd) {
        d = _mm256_add_ps(_mm256_mul_ps(k->gs, g), _mm256_mul_ps(k->wd, p));
        mn = _mm256_add_ps(_mm256_mul_ps(k->b1, *m), _mm256_mul_ps(k->omb1, d));
    } else {                            /* adam_update16's fold of grad_sign */
        d = g;
        mn = _mm256_add_ps(_mm256_mul_ps(k->b1, *m), _mm256_mul_ps(k->omb1_gs, g));
    }
    __m256 vn = _mm256_add_ps(_mm256_mul_ps(k->b2, *v),
                              _mm256_mul_ps(k->omb2, _mm256_mul_ps(d, d)));
    __m256 s = _mm256_sqrt_ps(vn);
    __m256 bound = _mm256_mul_ps(k->mbound, s);
    __m256 nbound = _mm256_xor_ps(bound, _mm256_set1_ps(-0.0f));
    mn = _mm256_max_ps(nbound, _mm256_min_ps(bound, mn));     /* adam_update16's clamp */
    *m = mn;
    *v = vn;
    __m256 denom = _mm256_add_ps(_mm256_mul_ps(s, k->ibc), k->eps);
    __m256 base = scale ? _mm256_mul_ps(k->ps, p) : p;
    return _mm256_sub_ps(base, _mm256_div_ps(_mm256_mul_ps(k->ss, mn), denom));
}

/* bf16_store on eight lanes, each result in an int32 lane; the NaN lanes (rare: one test
   for the eight) take bf16_store's quiet NaN */
FO_QINLINE __m256i FO_QNAME(bf16_round8)(__m256 x) {
    __m256i u = _mm256_castps_si256(x);
    __m256i hi = _mm256_srli_epi32(u, 16);
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)),
                         _mm256_and_si256(hi, _mm256_set1_epi32(1))), 16);
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    if (!_mm256_testz_ps(nan, nan))
        r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_and_si256(hi, _mm256_set1_epi32(0x8000)),
                                                  _mm256_set1_epi32(0x7fc0)),
                               _mm256_castps_si256(nan));
    return r;
}

/* bf16_store of sixteen values, a's eight then b's: the results (at most 0xffff) packed
   without saturation, then the 64-bit quarters put back in order */
FO_QINLINE void FO_QNAME(bf16_store8x2)(uint16_t* out, __m256 a, __m256 b) {
    __m256i packed = _mm256_packus_epi32(FO_QNAME(bf16_round8)(a), FO_QNAME(bf16_round8)(b));
    _mm256_storeu_si256((__m256i*)out, _mm256_permute4x64_epi64(packed, 0xd8));
}

/* ---- eight lanes of Lion (lion_bf16_loop's scalar rule, the same operations) ---------- */
typedef struct {
    __m256 lr, gs, wd, b1, omb1, b2, omb2;
} FO_QNAME(lion_vec8);

FO_QINLINE FO_QNAME(lion_vec8) FO_QNAME(lion_vec8_of)(const fo_lm_lion_coefficients* c) {
    FO_QNAME(lion_vec8) k;
    k.lr = _mm256_set1_ps(c->lr);
    k.gs = _mm256_set1_ps(c->grad_sign);
    k.wd = _mm256_set1_ps(c->weight_decay);
    k.b1 = _mm256_set1_ps(c->beta1);
    k.omb1 = _mm256_set1_ps(c->one_minus_beta1);
    k.b2 = _mm256_set1_ps(c->beta2);
    k.omb2 = _mm256_set1_ps(c->one_minus_beta2);
    return k;
}

/* eight parameters at param stepped with their moments m (read); returns the new moments */
FO_QINLINE __m256 FO_QNAME(lion_update8)(float* param, const float* grad, __m256 m,
                                         const FO_QNAME(lion_vec8)* k, int use_wd) {
    const __m256 zero = _mm256_setzero_ps();
    __m256 p = _mm256_loadu_ps(param);
    __m256 d = _mm256_mul_ps(k->gs, _mm256_loadu_ps(grad));
    __m256 e = _mm256_add_ps(_mm256_mul_ps(k->b1, m), _mm256_mul_ps(k->omb1, d));
    /* 1, -1 or +0 as e > 0, e < 0 or e == 0; a NaN e kept */
    __m256 u = _mm256_blendv_ps(e, _mm256_set1_ps(1.0f), _mm256_cmp_ps(e, zero, _CMP_GT_OQ));
    u = _mm256_blendv_ps(u, _mm256_set1_ps(-1.0f), _mm256_cmp_ps(e, zero, _CMP_LT_OQ));
    u = _mm256_andnot_ps(_mm256_cmp_ps(e, zero, _CMP_EQ_OQ), u);
    __m256 step = use_wd ? _mm256_add_ps(u, _mm256_mul_ps(k->wd, p)) : u;
    _mm256_storeu_ps(param, _mm256_sub_ps(p, _mm256_mul_ps(k->lr, step)));
    return _mm256_add_ps(_mm256_mul_ps(k->b2, m), _mm256_mul_ps(k->omb2, d));
}

/* ---- eight lanes of SGD with momentum (momentum_bf16_loop's scalar rule, the same
   operations) --------------------------------------------------------------------------- */
typedef struct {
    __m256 lr, gs, wd, mu, omd;
} FO_QNAME(momentum_vec8);

FO_QINLINE FO_QNAME(momentum_vec8) FO_QNAME(momentum_vec8_of)(
    const fo_lm_momentum_coefficients* c) {
    FO_QNAME(momentum_vec8) k;
    k.lr = _mm256_set1_ps(c->lr);
    k.gs = _mm256_set1_ps(c->grad_sign);
    k.wd = _mm256_set1_ps(c->weight_decay);
    k.mu = _mm256_set1_ps(c->momentum);
    k.omd = _mm256_set1_ps(c->one_minus_dampening);
    return k;
}

/* eight parameters at param stepped with their buffer's values buf (read); returns the new
   buffer values */
FO_QINLINE __m256 FO_QNAME(momentum_update8)(float* param, const float* grad, __m256 buf,
                                             const FO_QNAME(momentum_vec8)* k, int use_wd,
                                             int nesterov) {
    __m256 p = _mm256_loadu_ps(param);
    __m256 d = _mm256_mul_ps(k->gs, _mm256_loadu_ps(grad));
    if (use_wd)
        d = _mm256_add_ps(d, _mm256_mul_ps(k->wd, p));
    __m256 v = _mm256_add_ps(_mm256_mul_ps(k->mu, buf), _mm256_mul_ps(k->omd, d));
    __m256 step = nesterov ? _mm256_add_ps(d, _mm256_mul_ps(k->mu, v)) : v;
    _mm256_storeu_ps(param, _mm256_sub_ps(p, _mm256_mul_ps(k->lr, step)));
    return v;
}
#endif

#if FO_LM_VEC >= 2
/* ---- sixteen lanes of adam_update (levels 2 to 4): the same operations in the same
   order, no FMA, so the same bits. Without weight decay grad_sign (+1 or -1) is folded
   into 1 - beta1: (1 - beta1) * (s * g) and (s * (1 - beta1)) * g are the same float (a sign
   flip is exact), and (s * g) * (s * g) is g * g, NaNs included (a product with a NaN
   operand is that NaN, quieted, its sign kept) ------------------------------------------ */
typedef struct {
    __m512 gs, wd, ps, b1, omb1, omb1_gs, b2, omb2, ss, ibc, eps, mbound;
} FO_QNAME(adam_vec);

FO_QINLINE FO_QNAME(adam_vec) FO_QNAME(adam_vec_of)(const fo_lm_adam_coefficients* c) {
    FO_QNAME(adam_vec) k;
    k.gs = _mm512_set1_ps(c->grad_sign);
    k.wd = _mm512_set1_ps(c->weight_decay);
    k.ps = _mm512_set1_ps(c->param_scale);
    k.b1 = _mm512_set1_ps(c->beta1);
    k.omb1 = _mm512_set1_ps(c->one_minus_beta1);
    k.omb1_gs = _mm512_set1_ps(c->one_minus_beta1 * c->grad_sign);
    k.b2 = _mm512_set1_ps(c->beta2);
    k.omb2 = _mm512_set1_ps(c->one_minus_beta2);
    k.ss = _mm512_set1_ps(c->step_size);
    k.ibc = _mm512_set1_ps(c->inv_bias_correction2_sqrt);
    k.eps = _mm512_set1_ps(c->eps);
    k.mbound = _mm512_set1_ps(c->m_bound);
    return k;
}

/* m, v in and out; returns the new p */
FO_QINLINE __m512 FO_QNAME(adam_update16)(__m512 p, __m512 g, __m512* m, __m512* v,
                                          const FO_QNAME(adam_vec)* k, int use_wd, int scale) {
    const __m512i signbit = _mm512_set1_epi32((int)0x80000000u);
    __m512 d, mn;
    if (use_wd) {
        d = _mm512_add_ps(_mm512_mul_ps(k->gs, g), _mm512_mul_ps(k->wd, p));
        mn = _mm512_add_ps(_mm512_mul_ps(k->b1, *m), _mm512_mul_ps(k->omb1, d));
    } else {
        d = g;
        mn = _mm512_add_ps(_mm512_mul_ps(k->b1, *m), _mm512_mul_ps(k->omb1_gs, g));
    }
    __m512 vn = _mm512_add_ps(_mm512_mul_ps(k->b2, *v),
                              _mm512_mul_ps(k->omb2, _mm512_mul_ps(d, d)));
    __m512 s = _mm512_sqrt_ps(vn);
    __m512 bound = _mm512_mul_ps(k->mbound, s);
    __m512 nbound = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(bound), signbit));
    /* mn > bound ? bound : mn, then mn < -bound ? -bound : mn: vminps(a, b) is a < b ? a : b
       and vmaxps(a, b) a > b ? a : b (b on a tie or a NaN), exactly these selections */
    mn = _mm512_max_ps(nbound, _mm512_min_ps(bound, mn));
    *m = mn;
    *v = vn;
    __m512 denom = _mm512_add_ps(_mm512_mul_ps(s, k->ibc), k->eps);
    __m512 base = scale ? _mm512_mul_ps(k->ps, p) : p;
    return _mm512_sub_ps(base, _mm512_div_ps(_mm512_mul_ps(k->ss, mn), denom));
}

/* sixteen bfloat16 values (16-bit lanes) to float32 */
FO_QINLINE __m512 FO_QNAME(bf16_load16)(const uint16_t* h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)h)), 16));
}

/* bf16_store on sixteen lanes, in integer operations */
FO_QINLINE __m256i FO_QNAME(bf16_round16)(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)),
                                                   lsb), 16);
    __m512i nan = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0x8000)),
                                  _mm512_set1_epi32(0x7fc0));
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), nan);
    return _mm512_cvtepi32_epi16(r);
}

/* ---- sixteen lanes of Lion (lion_update8's operations) --------------------------------- */
typedef struct {
    __m512 lr, gs, wd, b1, omb1, b2, omb2;
} FO_QNAME(lion_vec16);

FO_QINLINE FO_QNAME(lion_vec16) FO_QNAME(lion_vec16_of)(const fo_lm_lion_coefficients* c) {
    FO_QNAME(lion_vec16) k;
    k.lr = _mm512_set1_ps(c->lr);
    k.gs = _mm512_set1_ps(c->grad_sign);
    k.wd = _mm512_set1_ps(c->weight_decay);
    k.b1 = _mm512_set1_ps(c->beta1);
    k.omb1 = _mm512_set1_ps(c->one_minus_beta1);
    k.b2 = _mm512_set1_ps(c->beta2);
    k.omb2 = _mm512_set1_ps(c->one_minus_beta2);
    return k;
}

/* sixteen parameters at param stepped with their moments m (read); returns the new moments */
FO_QINLINE __m512 FO_QNAME(lion_update16)(float* param, const float* grad, __m512 m,
                                          const FO_QNAME(lion_vec16)* k, int use_wd) {
    const __m512 zero = _mm512_setzero_ps();
    __m512 p = _mm512_loadu_ps(param);
    __m512 d = _mm512_mul_ps(k->gs, _mm512_loadu_ps(grad));
    __m512 e = _mm512_add_ps(_mm512_mul_ps(k->b1, m), _mm512_mul_ps(k->omb1, d));
    /* 1, -1 or +0 as e > 0, e < 0 or e == 0; a NaN e kept */
    __m512 u = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(e, zero, _CMP_GT_OQ),
                                  _mm512_set1_ps(1.0f));
    u = _mm512_mask_mov_ps(u, _mm512_cmp_ps_mask(e, zero, _CMP_LT_OQ), _mm512_set1_ps(-1.0f));
    u = _mm512_mask_mov_ps(u, _mm512_cmp_ps_mask(e, zero, _CMP_EQ_OQ), zero);
    __m512 step = use_wd ? _mm512_add_ps(u, _mm512_mul_ps(k->wd, p)) : u;
    _mm512_storeu_ps(param, _mm512_sub_ps(p, _mm512_mul_ps(k->lr, step)));
    return _mm512_add_ps(_mm512_mul_ps(k->b2, m), _mm512_mul_ps(k->omb2, d));
}

/* ---- sixteen lanes of SGD with momentum (momentum_bf16_loop's scalar rule, the same
   operations) --------------------------------------------------------------------------- */
typedef struct {
    __m512 lr, gs, wd, mu, omd;
} FO_QNAME(momentum_vec16);

FO_QINLINE FO_QNAME(momentum_vec16) FO_QNAME(momentum_vec16_of)(
    const fo_lm_momentum_coefficients* c) {
    FO_QNAME(momentum_vec16) k;
    k.lr = _mm512_set1_ps(c->lr);
    k.gs = _mm512_set1_ps(c->grad_sign);
    k.wd = _mm512_set1_ps(c->weight_decay);
    k.mu = _mm512_set1_ps(c->momentum);
    k.omd = _mm512_set1_ps(c->one_minus_dampening);
    return k;
}

/* sixteen parameters at param stepped with their buffer's values buf (read); returns the
   new buffer values (unrounded: the parameter's step reads them so) */
FO_QINLINE __m512 FO_QNAME(momentum_update16)(float* param, const float* grad, __m512 buf,
                                              const FO_QNAME(momentum_vec16)* k, int use_wd,
                                              int nesterov) {
    __m512 p = _mm512_loadu_ps(param);
    __m512 d = _mm512_mul_ps(k->gs, _mm512_loadu_ps(grad));
    if (use_wd)
        d = _mm512_add_ps(d, _mm512_mul_ps(k->wd, p));
    __m512 v = _mm512_add_ps(_mm512_mul_ps(k->mu, buf), _mm512_mul_ps(k->omd, d));
    __m512 step = nesterov ? _mm512_add_ps(d, _mm512_mul_ps(k->mu, v)) : v;
    _mm512_storeu_ps(param, _mm512_sub_ps(p, _mm512_mul_ps(k->lr, step)));
    return v;
}

#if FO_LM_VEC == 4
/* the conversion instruction rounds to nearest even as bf16_store does, but reads a
   subnormal input as 0 and keeps a NaN's payload: those lanes take the integer rounding */
FO_QINLINE void FO_QNAME(bf16_store16)(uint16_t* out, __m512 x) {
    __m256i h = (__m256i)_mm512_cvtneps_pbh(x);
    __mmask16 odd = _mm512_fpclass_ps_mask(x, 0x01 | 0x80 | 0x20);   /* QNaN, SNaN, subnormal */
    if (odd)
        h = _mm256_mask_blend_epi16(odd, h, FO_QNAME(bf16_round16)(x));
    _mm256_storeu_si256((__m256i*)out, h);
}
#else
FO_QINLINE void FO_QNAME(bf16_store16)(uint16_t* out, __m512 x) {
    _mm256_storeu_si256((__m256i*)out, FO_QNAME(bf16_round16)(x));
}
#endif
#endif

FO_QINLINE void FO_QNAME(adam_bf16_loop)(float* FO_RESTRICT param,
                                          const float* FO_RESTRICT grad,
                                          uint16_t* FO_RESTRICT exp_avg,
                                          uint16_t* FO_RESTRICT exp_avg_sq, Py_ssize_t n,
                                          const fo_lm_adam_coefficients* FO_RESTRICT c,
                                          int use_wd, int scale) {
    Py_ssize_t i = 0;
#if FO_LM_VEC >= 2
    const FO_QNAME(adam_vec) k = FO_QNAME(adam_vec_of)(c);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, exp_avg, exp_avg_sq, NULL);
        __m512 m = FO_QNAME(bf16_load16)(exp_avg + i), v = FO_QNAME(bf16_load16)(exp_avg_sq + i);
        __m512 p = FO_QNAME(adam_update16)(_mm512_loadu_ps(param + i), _mm512_loadu_ps(grad + i),
                                           &m, &v, &k, use_wd, scale);
        _mm512_storeu_ps(param + i, p);
        FO_QNAME(bf16_store16)(exp_avg + i, m);
        FO_QNAME(bf16_store16)(exp_avg_sq + i, v);
    }
#elif FO_LM_VEC == 1
    const FO_QNAME(adam_vec8) k = FO_QNAME(adam_vec8_of)(c);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, exp_avg, exp_avg_sq, NULL);
        __m256 m0 = fo_bf16x8_to_f32_avx2(exp_avg + i);
        __m256 m1 = fo_bf16x8_to_f32_avx2(exp_avg + i + 8);
        __m256 v0 = fo_bf16x8_to_f32_avx2(exp_avg_sq + i);
        __m256 v1 = fo_bf16x8_to_f32_avx2(exp_avg_sq + i + 8);
        __m256 p0 = FO_QNAME(adam_update8)(_mm256_loadu_ps(param + i), _mm256_loadu_ps(grad + i),
                                           &m0, &v0, &k, use_wd, scale);
        __m256 p1 = FO_QNAME(adam_update8)(_mm256_loadu_ps(param + i + 8),
                                           _mm256_loadu_ps(grad + i + 8), &m1, &v1, &k, use_wd,
                                           scale);
        _mm256_storeu_ps(param + i, p0);
        _mm256_storeu_ps(param + i + 8, p1);
        FO_QNAME(bf16_store8x2)(exp_avg + i, m0, m1);
        FO_QNAME(bf16_store8x2)(exp_avg_sq + i, v0, v1);
    }
#endif
    for (; i < n; i++) {
        float m = FO_QNAME(bf16_load)(exp_avg[i]), v = FO_QNAME(bf16_load)(exp_avg_sq[i]);
        param[i] = FO_QNAME(adam_update)(param[i], grad[i], &m, &v, c, use_wd, scale);
        exp_avg[i] = FO_QNAME(bf16_store)(m);
        exp_avg_sq[i] = FO_QNAME(bf16_store)(v);
    }
}

FO_QTARGET static void FO_QNAME(adam_bf16_range)(float* param, const float* grad,
                                                  uint16_t* exp_avg, uint16_t* exp_avg_sq,
                                                  Py_ssize_t n,
                                                  const fo_lm_adam_coefficients* c) {
    fo_lm_adam_coefficients k = *c;    /* a local copy: no aliasing with the arrays */
    int w = k.weight_decay != 0, s = k.param_scale != 1;
    if (w && s)
        FO_QNAME(adam_bf16_loop)(param, grad, exp_avg, exp_avg_sq, n, &k, 1, 1);
    else if (w)
        FO_QNAME(adam_bf16_loop)(param, grad, exp_avg, exp_avg_sq, n, &k, 1, 0);
    else if (s)
        FO_QNAME(adam_bf16_loop)(param, grad, exp_avg, exp_avg_sq, n, &k, 0, 1);
    else
        FO_QNAME(adam_bf16_loop)(param, grad, exp_avg, exp_avg_sq, n, &k, 0, 0);
}

/* Lion (csrc/lion.h's formula) with its moment stored as bfloat16:
   u = sign(beta1*m + (1-beta1)*d), p = p - lr*(u (+ weight_decay*p)), m = beta2*m + (1-beta2)*d */
FO_QINLINE void FO_QNAME(lion_bf16_loop)(float* FO_RESTRICT param,
                                          const float* FO_RESTRICT grad,
                                          uint16_t* FO_RESTRICT exp_avg, Py_ssize_t n,
                                          const fo_lm_lion_coefficients* FO_RESTRICT c,
                                          int use_wd) {
    Py_ssize_t i = 0;
#if FO_LM_VEC >= 2
    const FO_QNAME(lion_vec16) k = FO_QNAME(lion_vec16_of)(c);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, exp_avg, NULL, NULL);
        FO_QNAME(bf16_store16)(exp_avg + i, FO_QNAME(lion_update16)(
            param + i, grad + i, FO_QNAME(bf16_load16)(exp_avg + i), &k, use_wd));
    }
#elif FO_LM_VEC == 1
    const FO_QNAME(lion_vec8) k = FO_QNAME(lion_vec8_of)(c);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, exp_avg, NULL, NULL);
        __m256 m0 = FO_QNAME(lion_update8)(param + i, grad + i,
                                           fo_bf16x8_to_f32_avx2(exp_avg + i), &k, use_wd);
        __m256 m1 = FO_QNAME(lion_update8)(param + i + 8, grad + i + 8,
                                           fo_bf16x8_to_f32_avx2(exp_avg + i + 8), &k, use_wd);
        FO_QNAME(bf16_store8x2)(exp_avg + i, m0, m1);
    }
#endif
    for (; i < n; i++) {
        float p = param[i], d = c->grad_sign * grad[i];
        float m = FO_QNAME(bf16_load)(exp_avg[i]);
        float e = c->beta1 * m + c->one_minus_beta1 * d;
        float u = e > 0 ? 1.0f : (e < 0 ? -1.0f : (e == 0 ? 0.0f : e));
        exp_avg[i] = FO_QNAME(bf16_store)(c->beta2 * m + c->one_minus_beta2 * d);
        param[i] = p - c->lr * (use_wd ? u + c->weight_decay * p : u);
    }
}

FO_QTARGET static void FO_QNAME(lion_bf16_range)(float* param, const float* grad,
                                                  uint16_t* exp_avg, Py_ssize_t n,
                                                  const fo_lm_lion_coefficients* c) {
    fo_lm_lion_coefficients k = *c;
    if (k.weight_decay != 0)
        FO_QNAME(lion_bf16_loop)(param, grad, exp_avg, n, &k, 1);
    else
        FO_QNAME(lion_bf16_loop)(param, grad, exp_avg, n, &k, 0);
}

/* SGD with momentum (csrc/momentum.h's formula) with its buffer stored as bfloat16:
   d = grad_sign*g (+ weight_decay*p), v = momentum*v + (1-dampening)*d (stored rounded to
   nearest even), p = p - lr*(nesterov ? d + momentum*v : v) with v unrounded */
FO_QINLINE void FO_QNAME(momentum_bf16_loop)(float* FO_RESTRICT param,
                                              const float* FO_RESTRICT grad,
                                              uint16_t* FO_RESTRICT buf, Py_ssize_t n,
                                              const fo_lm_momentum_coefficients* FO_RESTRICT c,
                                              int use_wd, int nesterov) {
    Py_ssize_t i = 0;
#if FO_LM_VEC >= 2
    const FO_QNAME(momentum_vec16) k = FO_QNAME(momentum_vec16_of)(c);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, buf, NULL, NULL);
        FO_QNAME(bf16_store16)(buf + i, FO_QNAME(momentum_update16)(
            param + i, grad + i, FO_QNAME(bf16_load16)(buf + i), &k, use_wd, nesterov));
    }
#endif
    for (; i < n; i++) {
        float p = param[i];
        float d = use_wd ? c->grad_sign * grad[i] + c->weight_decay * p
                         : c->grad_sign * grad[i];
        float v = c->momentum * FO_QNAME(bf16_load)(buf[i]) + c->one_minus_dampening * d;
        buf[i] = FO_QNAME(bf16_store)(v);
        param[i] = p - c->lr * (nesterov ? d + c->momentum * v : v);
    }
}

FO_QTARGET static void FO_QNAME(momentum_bf16_range)(float* param, const float* grad,
                                                      uint16_t* buf, Py_ssize_t n,
                                                      const fo_lm_momentum_coefficients* c) {
    fo_lm_momentum_coefficients k = *c;
    int w = k.weight_decay != 0;
    if (w && k.nesterov)
        FO_QNAME(momentum_bf16_loop)(param, grad, buf, n, &k, 1, 1);
    else if (w)
        FO_QNAME(momentum_bf16_loop)(param, grad, buf, n, &k, 1, 0);
    else if (k.nesterov)
        FO_QNAME(momentum_bf16_loop)(param, grad, buf, n, &k, 0, 1);
    else
        FO_QNAME(momentum_bf16_loop)(param, grad, buf, n, &k, 0, 0);
}

/* RMSprop (csrc/rmsprop.h's formula) with its buffers stored as bfloat16 (each rounded to
   nearest even after its update; the update reads the unrounded values):
   d = grad_sign*g (+ weight_decay*p), s = alpha*s + (1-alpha)*d*d,
   centered: a = alpha*a + (1-alpha)*d, variance s - a*a; avg = sqrt(variance (+ eps_root)) + eps;
   momentum: b = momentum*b + d/avg, p = p - lr*b; else p = p - lr*d/avg */
FO_QINLINE void FO_QNAME(rmsprop_bf16_loop)(float* FO_RESTRICT param,
                                             const float* FO_RESTRICT grad,
                                             uint16_t* FO_RESTRICT square_avg,
                                             uint16_t* FO_RESTRICT momentum_buffer,
                                             uint16_t* FO_RESTRICT grad_avg, Py_ssize_t n,
                                             const fo_lm_rmsprop_coefficients* FO_RESTRICT c,
                                             int centered, int use_momentum) {
    const int use_wd = c->weight_decay != 0, root = c->eps_root != 0;
    Py_ssize_t i = 0;
#if FO_LM_VEC >= 2
    const __m512 lr = _mm512_set1_ps(c->lr), gs = _mm512_set1_ps(c->grad_sign);
    const __m512 wd = _mm512_set1_ps(c->weight_decay), al = _mm512_set1_ps(c->alpha);
    const __m512 oma = _mm512_set1_ps(c->one_minus_alpha), eps = _mm512_set1_ps(c->eps);
    const __m512 mu = _mm512_set1_ps(c->momentum), er = _mm512_set1_ps(c->eps_root);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, square_avg, momentum_buffer, grad_avg);
        __m512 p = _mm512_loadu_ps(param + i);
        __m512 d = _mm512_mul_ps(gs, _mm512_loadu_ps(grad + i));
        if (use_wd)
            d = _mm512_add_ps(d, _mm512_mul_ps(wd, p));
        __m512 s = _mm512_add_ps(_mm512_mul_ps(al, FO_QNAME(bf16_load16)(square_avg + i)),
                                 _mm512_mul_ps(oma, _mm512_mul_ps(d, d)));
        FO_QNAME(bf16_store16)(square_avg + i, s);
        __m512 variance = s;
        if (centered) {
            __m512 a = _mm512_add_ps(_mm512_mul_ps(al, FO_QNAME(bf16_load16)(grad_avg + i)),
                                     _mm512_mul_ps(oma, d));
            FO_QNAME(bf16_store16)(grad_avg + i, a);
            variance = _mm512_sub_ps(s, _mm512_mul_ps(a, a));
        }
        __m512 avg = _mm512_add_ps(
            _mm512_sqrt_ps(root ? _mm512_add_ps(variance, er) : variance), eps);
        if (use_momentum) {
            __m512 b = _mm512_add_ps(_mm512_mul_ps(mu, FO_QNAME(bf16_load16)(momentum_buffer + i)),
                                     _mm512_div_ps(d, avg));
            FO_QNAME(bf16_store16)(momentum_buffer + i, b);
            p = _mm512_sub_ps(p, _mm512_mul_ps(lr, b));
        } else {
            p = _mm512_sub_ps(p, _mm512_div_ps(_mm512_mul_ps(lr, d), avg));
        }
        _mm512_storeu_ps(param + i, p);
    }
#elif FO_LM_VEC == 1
    const __m256 lr = _mm256_set1_ps(c->lr), gs = _mm256_set1_ps(c->grad_sign);
    const __m256 wd = _mm256_set1_ps(c->weight_decay), al = _mm256_set1_ps(c->alpha);
    const __m256 oma = _mm256_set1_ps(c->one_minus_alpha), eps = _mm256_set1_ps(c->eps);
    const __m256 mu = _mm256_set1_ps(c->momentum), er = _mm256_set1_ps(c->eps_root);
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, param, grad, NULL, square_avg, momentum_buffer, grad_avg);
        /* two halves of eight, then each buffer's sixteen values stored together */
        __m256 s[2], a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256 b[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int h = 0; h < 2; h++) {
            const Py_ssize_t k = i + 8 * h;
            __m256 p = _mm256_loadu_ps(param + k);
            __m256 d = _mm256_mul_ps(gs, _mm256_loadu_ps(grad + k));
            if (use_wd)
                d = _mm256_add_ps(d, _mm256_mul_ps(wd, p));
            s[h] = _mm256_add_ps(_mm256_mul_ps(al, fo_bf16x8_to_f32_avx2(square_avg + k)),
                                 _mm256_mul_ps(oma, _mm256_mul_ps(d, d)));
            __m256 variance = s[h];
            if (centered) {
                a[h] = _mm256_add_ps(_mm256_mul_ps(al, fo_bf16x8_to_f32_avx2(grad_avg + k)),
                                     _mm256_mul_ps(oma, d));
                variance = _mm256_sub_ps(s[h], _mm256_mul_ps(a[h], a[h]));
            }
            __m256 avg = _mm256_add_ps(
                _mm256_sqrt_ps(root ? _mm256_add_ps(variance, er) : variance), eps);
            if (use_momentum) {
                b[h] = _mm256_add_ps(
                    _mm256_mul_ps(mu, fo_bf16x8_to_f32_avx2(momentum_buffer + k)),
                    _mm256_div_ps(d, avg));
                p = _mm256_sub_ps(p, _mm256_mul_ps(lr, b[h]));
            } else {
                p = _mm256_sub_ps(p, _mm256_div_ps(_mm256_mul_ps(lr, d), avg));
            }
            _mm256_storeu_ps(param + k, p);
        }
        FO_QNAME(bf16_store8x2)(square_avg + i, s[0], s[1]);
        if (centered)
            FO_QNAME(bf16_store8x2)(grad_avg + i, a[0], a[1]);
        if (use_momentum)
            FO_QNAME(bf16_store8x2)(momentum_buffer + i, b[0], b[1]);
    }
#endif
    for (; i < n; i++) {
        float p = param[i];
        float d = use_wd ? c->grad_sign * grad[i] + c->weight_decay * p
                         : c->grad_sign * grad[i];
        float s = c->alpha * FO_QNAME(bf16_load)(square_avg[i]) + c->one_minus_alpha * (d * d);
        square_avg[i] = FO_QNAME(bf16_store)(s);
        float variance = s;
        if (centered) {
            float a = c->alpha * FO_QNAME(bf16_load)(grad_avg[i]) + c->one_minus_alpha * d;
            grad_avg[i] = FO_QNAME(bf16_store)(a);
            variance = s - a * a;
        }
        float avg = root ? sqrtf(variance + c->eps_root) + c->eps : sqrtf(variance) + c->eps;
        if (use_momentum) {
            float b = c->momentum * FO_QNAME(bf16_load)(momentum_buffer[i]) + d / avg;
            momentum_buffer[i] = FO_QNAME(bf16_store)(b);
            param[i] = p - c->lr * b;
        } else {
            param[i] = p - c->lr * d / avg;
        }
    }
}

/* momentum_buffer, grad_avg: NULL when unused (momentum 0, not centered) */
FO_QTARGET static void FO_QNAME(rmsprop_bf16_range)(float* param, const float* grad,
                                                     uint16_t* square_avg,
                                                     uint16_t* momentum_buffer,
                                                     uint16_t* grad_avg, Py_ssize_t n,
                                                     const fo_lm_rmsprop_coefficients* c) {
    fo_lm_rmsprop_coefficients k = *c;
    int centered = grad_avg != NULL, m = momentum_buffer != NULL;
    if (centered && m)
        FO_QNAME(rmsprop_bf16_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, &k,
                                    1, 1);
    else if (centered)
        FO_QNAME(rmsprop_bf16_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, &k,
                                    1, 0);
    else if (m)
        FO_QNAME(rmsprop_bf16_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, &k,
                                    0, 1);
    else
        FO_QNAME(rmsprop_bf16_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, &k,
                                    0, 0);
}

/* bfloat16 state <-> float32 scratch (the generic bfloat16 state of the element-wise
   classes, fastoptim.optimizers._state_dtype): bf16_load / bf16_store over a range */
FO_QTARGET static void FO_QNAME(bf16_decode_range)(const uint16_t* FO_RESTRICT src,
                                                   float* FO_RESTRICT dst, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        dst[i] = FO_QNAME(bf16_load)(src[i]);
}

FO_QTARGET static void FO_QNAME(bf16_encode_range)(const float* FO_RESTRICT src,
                                                   uint16_t* FO_RESTRICT dst, Py_ssize_t n) {
    Py_ssize_t i = 0;
#if FO_LM_VEC >= 2
    for (; i + 16 <= n; i += 16)
        FO_QNAME(bf16_store16)(dst + i, _mm512_loadu_ps(src + i));
#endif
    for (; i < n; i++)
        dst[i] = FO_QNAME(bf16_store)(src[i]);
}

/* one block of len <= FO_Q8_BLOCK elements: dequantize, update, write p; requantize */
FO_QINLINE void FO_QNAME(adam_q8_block)(float* FO_RESTRICT param,
                                         const float* FO_RESTRICT grad,
                                         uint8_t* FO_RESTRICT exp_avg,
                                         float* FO_RESTRICT m_absmax,
                                         uint8_t* FO_RESTRICT exp_avg_sq,
                                         float* FO_RESTRICT v_absmax, Py_ssize_t len,
                                         const fo_lm_adam_coefficients* FO_RESTRICT c,
                                         const fo_lm_q8_tables* FO_RESTRICT t,
                                         int use_wd, int scale) {
    float mb[FO_Q8_BLOCK], vb[FO_Q8_BLOCK];
    const float* FO_RESTRICT m_code = t->m_code;
    const float* FO_RESTRICT v_code = t->v_code;
    const float am = *m_absmax, av = *v_absmax;
    float new_am = 0.0f, new_av = 0.0f;
    for (Py_ssize_t j = 0; j < len; j++) {
        float m = m_code[exp_avg[j]] * am, v = v_code[exp_avg_sq[j]] * av;
        param[j] = FO_QNAME(adam_update)(param[j], grad[j], &m, &v, c, use_wd, scale);
        mb[j] = m;
        vb[j] = v;
    }
    for (Py_ssize_t j = 0; j < len; j++) {
        new_am = FO_QNAME(q8_max)(new_am, fabsf(mb[j]));
        new_av = FO_QNAME(q8_max)(new_av, vb[j]);
    }
    new_am = FO_QNAME(q8_absmax)(new_am);
    new_av = FO_QNAME(q8_absmax)(new_av);
    *m_absmax = new_am;
    *v_absmax = new_av;
    if (new_am > 0) {
        const float pre = FO_Q8_PRESCALE(new_am), inv = 1.0f / (new_am * pre);
        for (Py_ssize_t j = 0; j < len; j++)
            exp_avg[j] = FO_QNAME(q8_index)(t->m_bucket, t->m_shift, (mb[j] * pre) * inv);
    } else if (new_am == 0) {
        memset(exp_avg, t->m_zero, (size_t)len);
    } else {                                    /* NaN: every value NaN after dequantizing */
        memset(exp_avg, 0, (size_t)len);
    }
    if (new_av > 0) {
        const float pre = FO_Q8_PRESCALE(new_av), inv = 1.0f / (new_av * pre);
        for (Py_ssize_t j = 0; j < len; j++)
            exp_avg_sq[j] = FO_QNAME(q8_index)(t->v_bucket, t->v_shift, (vb[j] * pre) * inv);
    } else if (new_av == 0) {
        memset(exp_avg_sq, t->v_zero, (size_t)len);
    } else {
        memset(exp_avg_sq, 0, (size_t)len);
    }
}

/* A full block's new absmax (stored) and how the vector loops find its codes: 0 when they
   are stored here (absmax not > 0: requantize8's rule; absmax inf: its values are not all
   finite, so the scalar search, which reads NaN, takes the block), else 1, or 2 when the
   values are prescaled, with *pre and *inv = 1 / (absmax * pre). */
FO_QINLINE int FO_QNAME(q8_scale)(float absmax, float* out, uint8_t* FO_RESTRICT codes,
                                  const float* FO_RESTRICT buf, const int32_t* bucket,
                                  int shift, uint8_t zero, float* pre, float* inv) {
    absmax = FO_QNAME(q8_absmax)(absmax);
    *out = absmax;
    *pre = *inv = 1.0f;             /* defined when unused too: the loops copy them */
    if (!(absmax > 0)) {
        memset(codes, absmax == 0 ? zero : 0, FO_Q8_BLOCK);
        return 0;
    }
    *pre = FO_Q8_PRESCALE(absmax);
    *inv = 1.0f / (absmax * *pre);
    if (absmax > 0x1.fffffep127f) {
        for (int j = 0; j < FO_Q8_BLOCK; j++)
            codes[j] = FO_QNAME(q8_index)(bucket, shift, (buf[j] * *pre) * *inv);
        return 0;
    }
    return *pre == 1.0f ? 1 : 2;
}

#if FO_LM_VEC
/* ---- AVX2 intrinsics of a full block (levels 1 and 2): the same operations as
   adam_q8_block, eight lanes at a time, no FMA; the same bits ---------------------------- */

/* the 8-bit block loops' prefetch for the chunk at j of the block `blocks_ahead` blocks
   (fo_lm_q8_ahead) after the one at p_b, g_b, c1 and c2 (its codes; c2 NULL for one
   moment): the parameter's and gradient's line of the chunk, and for j < 64 a line of each
   code array (into L1, or L2: fo_prefetch_to_l2) */
FO_QINLINE void FO_QNAME(q8_prefetch_chunk)(const float* p_b, const float* g_b,
                                            const uint8_t* c1, const uint8_t* c2, int j,
                                            Py_ssize_t blocks_ahead) {
    const Py_ssize_t ahead = blocks_ahead * FO_Q8_BLOCK;
    int to_l2 = fo_prefetch_to_l2();
    fo_prefetch_line(p_b + ahead + j, to_l2);
    fo_prefetch_line(g_b + ahead + j, to_l2);
    if (j < 64) {
        fo_prefetch_line(c1 + ahead + 4 * j, to_l2);
        if (c2 != NULL)
            fo_prefetch_line(c2 + ahead + 4 * j, to_l2);
    }
}

/* the nearest-code search's constants of one table, eight lanes */
typedef struct {
    const int32_t* bucket;
    __m256i shift;                  /* 23 - mantissa bits of a key */
    __m256i low;                    /* the key of class 0: (FO_Q8_EXP_LOW - 1) << bits */
    __m256i negative;               /* the key offset of the negative half */
} FO_QNAME(q8_search8);

FO_QINLINE FO_QNAME(q8_search8) FO_QNAME(q8_search8_of)(const int32_t* bucket, int shift) {
    FO_QNAME(q8_search8) s;
    int bits = 23 - shift;
    s.bucket = bucket;
    s.shift = _mm256_set1_epi32(shift);
    s.low = _mm256_set1_epi32((FO_Q8_EXP_LOW - 1) << bits);
    s.negative = _mm256_set1_epi32(FO_Q8_NEGATIVE(bits));
    return s;
}

/* the nearest code index of 8 normalized values of a block with a finite absmax > 0
   (|x| <= 1 + 2**-23, no NaN): quant8.h's q8_index, lane-wise, with the exponent class
   clamped on the bits: a magnitude below 2**-25 (0, subnormals) lifted to 2**-25, class 0
   with mantissa key 0 (every key of class 0 has one table entry, code_tables). The unsigned
   code (`is_signed` 0) reads x's bits as they are: v >= +0, and any negative int32 lifts to
   class 0 like +0. */
FO_QINLINE __m256i FO_QNAME(q8_index8)(const FO_QNAME(q8_search8)* s, __m256 x, int is_signed) {
    __m256i u = _mm256_castps_si256(x);
    __m256i a = is_signed ? _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)) : u;
    a = _mm256_max_epi32(a, _mm256_set1_epi32(0x33000000));
    __m256i key = _mm256_sub_epi32(_mm256_srlv_epi32(a, s->shift), s->low);
    if (is_signed)
        key = _mm256_add_epi32(key, _mm256_and_si256(_mm256_srai_epi32(u, 31), s->negative));
    __m256i entry = _mm256_i32gather_epi32((const int*)s->bucket, key, 4);   /* next midpoint */
    __m256i up = _mm256_castps_si256(_mm256_cmp_ps(x, _mm256_castsi256_ps(entry),
                                                   _CMP_GT_OQ));             /* -1 or 0 */
    /* the index in the low byte (a count of at most 254: + 1 stays in it); store8 keeps it */
    return _mm256_sub_epi32(entry, up);
}

/* the low byte of each of 8 int32 lanes, stored to 8 bytes */
FO_QINLINE void FO_QNAME(store8)(uint8_t* out, __m256i v) {
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, -1, -1);
    __m256i bytes = _mm256_shuffle_epi8(v, pick);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    _mm_storel_epi64((__m128i*)out, _mm256_castsi256_si128(bytes));
}

/* the magnitudes' maximum, lane-wise, on the bits: |x| as an int32 orders as the float
   does, and every NaN's bits lie above inf's, so a NaN propagates (q8_absmax makes it the
   quiet NaN) */
FO_QINLINE __m256i FO_QNAME(absmax8)(__m256i acc, __m256 x) {
    return _mm256_max_epi32(acc, _mm256_andnot_si256(_mm256_set1_epi32((int)0x80000000u),
                                                     _mm256_castps_si256(x)));
}

/* the maximum over the lanes of absmax8 (the same value in any order) */
FO_QINLINE float FO_QNAME(hmax8)(__m256i acc) {
    __m128i h = _mm_max_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int32_t top = _mm_cvtsi128_si32(h);
    float r;
    memcpy(&r, &top, sizeof r);
    return r;
}

/* the codes of eight new values x of a block (requantize8's rule, lane-wise), with the
   block's pre and 1 / (absmax * pre) (q8_scale) */
FO_QINLINE void FO_QNAME(requantize_chunk8)(uint8_t* FO_RESTRICT codes, __m256 x, __m256 pre,
                                            __m256 inv, int prescaled, int is_signed,
                                            const FO_QNAME(q8_search8)* s) {
    if (prescaled)              /* else pre is 1: x * 1 is x */
        x = _mm256_mul_ps(x, pre);
    FO_QNAME(store8)(codes, FO_QNAME(q8_index8)(s, _mm256_mul_ps(x, inv), is_signed));
}

/* a block's moments, once updated: their new values and q8_scale's of each */
typedef struct {
    float m[FO_Q8_BLOCK] __attribute__((aligned(64)));
    float v[FO_Q8_BLOCK] __attribute__((aligned(64)));
    uint8_t* m_codes;
    uint8_t* v_codes;
    float m_pre, m_inv, v_pre, v_inv;
    int m_live, v_live;     /* q8_scale: 0 codes stored, 1 to search, 2 to search prescaled */
} FO_QNAME(q8_pending);

/* a one-moment block's pending search (the moment's new values in q->m): its new absmax
   from the lanes' maximum top (stored at absmax), its codes' place, and q8_scale's rule */
FO_QINLINE void FO_QNAME(q8_pend_one)(FO_QNAME(q8_pending)* q, float top, float* absmax,
                                      uint8_t* codes, const fo_lm_q8_tables* t) {
    q->m_codes = codes;
    q->v_codes = NULL;
    q->m_live = FO_QNAME(q8_scale)(top, absmax, codes, q->m, t->m_bucket, t->m_shift,
                                   t->m_zero, &q->m_pre, &q->m_inv);
    q->v_live = 0;
    q->v_pre = q->v_inv = 1.0f;
}

/* the pending block's search, in registers: a copy of its q8_pending that the loop keeps
   in a local variable (read from the ring's scalars, pre and 1 / (absmax * pre) were loaded
   and broadcast again for every chunk) */
typedef struct {
    const float* m;
    const float* v;
    uint8_t* m_codes;
    uint8_t* v_codes;
    __m256 m_pre, m_inv, v_pre, v_inv;
    int m_live, v_live;
} FO_QNAME(q8_flushing8);

FO_QINLINE void FO_QNAME(q8_flushing8_of)(FO_QNAME(q8_flushing8)* fl,
                                          const FO_QNAME(q8_pending)* q) {
    fl->m = q->m;
    fl->v = q->v;
    fl->m_codes = q->m_codes;
    fl->v_codes = q->v_codes;
    fl->m_live = q->m_live;
    fl->v_live = q->v_live;
    fl->m_pre = _mm256_set1_ps(q->m_pre);
    fl->m_inv = _mm256_set1_ps(q->m_inv);
    fl->v_pre = _mm256_set1_ps(q->v_pre);
    fl->v_inv = _mm256_set1_ps(q->v_inv);
}

/* the codes of the pending block's chunk of eight at j (nothing for a block already stored) */
FO_QINLINE void FO_QNAME(q8_flush8)(const FO_QNAME(q8_flushing8)* q, int j,
                                    const FO_QNAME(q8_search8)* ms,
                                    const FO_QNAME(q8_search8)* vs) {
    if (q->m_live)
        FO_QNAME(requantize_chunk8)(q->m_codes + j, _mm256_load_ps(q->m + j), q->m_pre,
                                    q->m_inv, q->m_live > 1, 1, ms);
    if (q->v_live)
        FO_QNAME(requantize_chunk8)(q->v_codes + j, _mm256_load_ps(q->v + j), q->v_pre,
                                    q->v_inv, q->v_live > 1, 0, vs);
}

/* `blocks` consecutive full blocks, software-pipelined: the update of block b (bound by the
   divider: sqrt and division) runs interleaved with the nearest-code search of block b - 1
   (gathers and integer work), so the two kinds of work overlap in the core; the next blocks'
   lines are prefetched fo_lm_q8_ahead() blocks ahead. The same operations on the same values as
   adam_q8_block, eight lanes at a time, no FMA: the same bits. */
FO_QINLINE void FO_QNAME(adam_q8_blocks_avx2)(float* FO_RESTRICT param,
                                               const float* FO_RESTRICT grad,
                                               uint8_t* FO_RESTRICT exp_avg,
                                               float* FO_RESTRICT m_absmax,
                                               uint8_t* FO_RESTRICT exp_avg_sq,
                                               float* FO_RESTRICT v_absmax, Py_ssize_t blocks,
                                               const fo_lm_adam_coefficients* FO_RESTRICT c,
                                               const fo_lm_q8_tables* FO_RESTRICT t,
                                               int use_wd, int scale) {
    FO_QNAME(q8_pending) ring[2];
    const FO_QNAME(adam_vec8) k = FO_QNAME(adam_vec8_of)(c);
    const FO_QNAME(q8_search8) ms = FO_QNAME(q8_search8_of)(t->m_bucket, t->m_shift);
    const FO_QNAME(q8_search8) vs = FO_QNAME(q8_search8_of)(t->v_bucket, t->v_shift);
    FO_QNAME(q8_flushing8) fl;
    fl.m_live = fl.v_live = 0;
    const Py_ssize_t ahead = fo_lm_q8_ahead();       /* blocks */
    for (Py_ssize_t b = 0; b < blocks; b++) {
        FO_QNAME(q8_pending)* cur = &ring[b & 1];
        const Py_ssize_t lo = b * FO_Q8_BLOCK;
        float* FO_RESTRICT p_b = param + lo;
        const float* FO_RESTRICT g_b = grad + lo;
        const uint8_t* mc = exp_avg + lo;
        const uint8_t* vc = exp_avg_sq + lo;
        const __m256 am = _mm256_set1_ps(m_absmax[b]), av = _mm256_set1_ps(v_absmax[b]);
        __m256i new_am = _mm256_setzero_si256(), new_av = _mm256_setzero_si256();
        for (int j = 0; j < FO_Q8_BLOCK; j += 8) {
            __m256i mi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(mc + j)));
            __m256i vi = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(vc + j)));
            __m256 m = _mm256_mul_ps(_mm256_i32gather_ps(t->m_code, mi, 4), am);
            __m256 v = _mm256_mul_ps(_mm256_i32gather_ps(t->v_code, vi, 4), av);
            __m256 p = FO_QNAME(adam_update8)(_mm256_loadu_ps(p_b + j), _mm256_loadu_ps(g_b + j),
                                              &m, &v, &k, use_wd, scale);
            _mm256_storeu_ps(p_b + j, p);
            _mm256_store_ps(cur->m + j, m);
            _mm256_store_ps(cur->v + j, v);
            new_am = FO_QNAME(absmax8)(new_am, m);
            new_av = FO_QNAME(absmax8)(new_av, v);
            if (b + ahead < blocks && (j & 15) == 0)
                FO_QNAME(q8_prefetch_chunk)(p_b, g_b, mc, vc, j, ahead);
            FO_QNAME(q8_flush8)(&fl, j, &ms, &vs);
        }
        cur->m_codes = exp_avg + lo;
        cur->v_codes = exp_avg_sq + lo;
        cur->m_live = FO_QNAME(q8_scale)(FO_QNAME(hmax8)(new_am), m_absmax + b, cur->m_codes,
                                         cur->m, t->m_bucket, t->m_shift, t->m_zero,
                                         &cur->m_pre, &cur->m_inv);
        cur->v_live = FO_QNAME(q8_scale)(FO_QNAME(hmax8)(new_av), v_absmax + b, cur->v_codes,
                                         cur->v, t->v_bucket, t->v_shift, t->v_zero,
                                         &cur->v_pre, &cur->v_inv);
        FO_QNAME(q8_flushing8_of)(&fl, cur);
    }
    for (int j = 0; j < FO_Q8_BLOCK; j += 8)
        FO_QNAME(q8_flush8)(&fl, j, &ms, &vs);
}

/* q8_one_blocks_avx512's pipeline (SGD with momentum: mk, or Lion: lk) eight lanes at a
   time, the moment dequantized by gathers: momentum_q8_block's and lion_q8_block's
   operations, the same bits */
FO_QINLINE void FO_QNAME(q8_one_blocks_avx2)(float* FO_RESTRICT param,
                                              const float* FO_RESTRICT grad,
                                              uint8_t* FO_RESTRICT codes,
                                              float* FO_RESTRICT absmax, Py_ssize_t blocks,
                                              const FO_QNAME(momentum_vec8)* mk,
                                              const FO_QNAME(lion_vec8)* lk,
                                              const fo_lm_q8_tables* FO_RESTRICT t,
                                              int use_wd, int nesterov) {
    FO_QNAME(q8_pending) ring[2];
    const FO_QNAME(q8_search8) ms = FO_QNAME(q8_search8_of)(t->m_bucket, t->m_shift);
    FO_QNAME(q8_flushing8) fl;
    fl.m_live = fl.v_live = 0;
    const Py_ssize_t ahead = fo_lm_q8_ahead();       /* blocks */
    for (Py_ssize_t b = 0; b < blocks; b++) {
        FO_QNAME(q8_pending)* cur = &ring[b & 1];
        const Py_ssize_t lo = b * FO_Q8_BLOCK;
        const uint8_t* c_b = codes + lo;
        const __m256 a8 = _mm256_set1_ps(absmax[b]);
        __m256i acc = _mm256_setzero_si256();
        for (int j = 0; j < FO_Q8_BLOCK; j += 8) {
            __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(c_b + j)));
            __m256 m = _mm256_mul_ps(_mm256_i32gather_ps(t->m_code, idx, 4), a8);
            m = lk != NULL
                ? FO_QNAME(lion_update8)(param + lo + j, grad + lo + j, m, lk, use_wd)
                : FO_QNAME(momentum_update8)(param + lo + j, grad + lo + j, m, mk, use_wd,
                                             nesterov);
            _mm256_store_ps(cur->m + j, m);
            acc = FO_QNAME(absmax8)(acc, m);
            if (b + ahead < blocks && (j & 15) == 0)
                FO_QNAME(q8_prefetch_chunk)(param + lo, grad + lo, c_b, NULL, j, ahead);
            FO_QNAME(q8_flush8)(&fl, j, &ms, &ms);
        }
        FO_QNAME(q8_pend_one)(cur, FO_QNAME(hmax8)(acc), absmax + b, codes + lo, t);
        FO_QNAME(q8_flushing8_of)(&fl, cur);
    }
    for (int j = 0; j < FO_Q8_BLOCK; j += 8)
        FO_QNAME(q8_flush8)(&fl, j, &ms, &ms);
}
#endif

#if FO_LM_VEC >= 2
/* ---- AVX-512 intrinsics of a full block (levels 2 to 4): adam_q8_block_avx2's operations,
   sixteen lanes at a time, no FMA; the same bits ----------------------------------------- */

/* the nearest-code search's constants of one table, sixteen lanes: the bucket search's
   and, when the table has one, the arithmetic search's (q8_decade16) */
typedef struct {
    const void* origin;             /* the address of key 0: bucket - 4 * low (bytes) */
    __m512i shift;                  /* 23 - mantissa bits of a key */
    int decades;                    /* 1: q8_decade16 first */
    __m512 start[2];                /* a region's start inside octave r (32 lanes) */
    __m512i region[2];              /* octave r's lowest region */
    __m512 slope, offset, clamp;    /* t' = |x| * slope - offset, min(t', clamp): region k */
    __m512 eps, minus_eps;
    __m512i zero;                   /* the index of the code value 0 */
} FO_QNAME(q8_search16);

/* the constants of a table; decades (FO_Q8_DECADE_TABLE floats) may be NULL: the bucket
   search alone */
FO_QINLINE FO_QNAME(q8_search16) FO_QNAME(q8_search16_of)(const int32_t* bucket, int shift,
                                                          const float* decades, int zero) {
    FO_QNAME(q8_search16) s;
    int bits = 23 - shift;
    /* the gather adds 4 * key to this base: bucket[key - low] without a subtraction per
       lane (integer arithmetic: the address itself is never dereferenced) */
    s.origin = (const void*)((uintptr_t)bucket - 4 * (uintptr_t)((FO_Q8_EXP_LOW - 1) << bits));
    s.shift = _mm512_set1_epi32(shift);
    s.decades = decades != NULL && fo_lm_arithmetic_search();
    const float* d = decades != NULL ? decades : fo_lm_no_decades;
    for (int h = 0; h < 2; h++) {
        s.start[h] = _mm512_loadu_ps(d + 16 * h);
        s.region[h] = _mm512_loadu_si512((const void*)(d + 32 + 16 * h));
    }
    s.slope = _mm512_loadu_ps(d + 64);
    s.offset = _mm512_loadu_ps(d + 80);
    s.clamp = _mm512_loadu_ps(d + 96);
    s.eps = _mm512_set1_ps(d[112]);
    s.minus_eps = _mm512_set1_ps(-d[112]);
    s.zero = _mm512_set1_epi32(zero);
    return s;
}

/* the bucket search (q8_index8) on sixteen lanes, the index in each lane's low byte (the
   bits above it are the next midpoint's: the codes' store keeps the low byte) */
FO_QINLINE __m512i FO_QNAME(q8_bucket16)(const FO_QNAME(q8_search16)* s, __m512 x,
                                        int is_signed) {
    /* signed: x's magnitude lifted to 2**-25, x's sign kept (vrangeps: the larger
       magnitude, the sign of the first operand), whose sign bit shifts into the key as the
       negative half's offset, FO_Q8_NEGATIVE; unsigned: the bits lifted as int32 */
    __m512i a = is_signed
        ? _mm512_castps_si512(_mm512_range_ps(x, _mm512_set1_ps(0x1p-25f), FO_Q8_RANGE_MAXABS))
        : _mm512_max_epi32(_mm512_castps_si512(x), _mm512_set1_epi32(0x33000000));
    __m512i key = _mm512_srlv_epi32(a, s->shift);
    __m512i entry = _mm512_i32gather_epi32(key, s->origin, 4);     /* the next midpoint */
    __mmask16 up = _mm512_cmp_ps_mask(x, _mm512_castsi512_ps(entry), _CMP_GT_OQ);
    /* the low byte is the count of midpoints below the bucket, at most 254: + 1 stays in it */
    return _mm512_mask_add_epi32(entry, up, entry, _mm512_set1_epi32(1));
}

/* the arithmetic search (fastoptim.lowmem._decade_table): the index of each lane's nearest
   code, valid in the lanes outside *near (those within eps of a midpoint, or NaN, which
   the bucket search takes). No table load: the octave's region and the region's line come
   from permutes of registers. */
FO_QINLINE __m512i FO_QNAME(q8_decade16)(const FO_QNAME(q8_search16)* s, __m512 x,
                                         int is_signed, __mmask16* near) {
    __m512 a;           /* max(|x|, 2**-25): below 2 (x is normalized by its block's absmax) */
    __mmask16 negative = 0;
    if (is_signed) {
        a = _mm512_range_ps(x, _mm512_set1_ps(0x1p-25f), FO_Q8_RANGE_MAXABS_UNSIGNED);
        negative = _mm512_movepi32_mask(_mm512_castps_si512(x));
    } else {    /* v: x < 0 (never, but -0) is below every midpoint, as 2**-25 */
        a = _mm512_castsi512_ps(_mm512_max_epi32(_mm512_castps_si512(x),
                                                 _mm512_set1_epi32(0x33000000)));
    }
    __m512i octave = _mm512_srli_epi32(_mm512_castps_si512(a), 23);  /* mod 32: the lane */
    __m512 start = _mm512_permutex2var_ps(s->start[0], octave, s->start[1]);
    __m512i region = _mm512_permutex2var_epi32(s->region[0], octave, s->region[1]);
    region = _mm512_mask_add_epi32(region, _mm512_cmp_ps_mask(a, start, _CMP_GT_OQ), region,
                                   _mm512_set1_epi32(1));
    __m512 t = _mm512_fmsub_ps(a, _mm512_permutexvar_ps(region, s->slope),
                               _mm512_permutexvar_ps(region, s->offset));
    /* t - the nearest integer within eps (or NaN: the unordered predicates are true) */
    __m512 frac = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    *near = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(frac, s->eps, _CMP_NGE_UQ), frac,
                                    s->minus_eps, _CMP_NLE_UQ);
    __m512i count = _mm512_cvt_roundps_epi32(_mm512_min_ps(t, _mm512_permutexvar_ps(
        region, s->clamp)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    if (!is_signed)
        return count;
    /* x < 0: the count of the midpoints below 0 that are >= x, 0 .. 128 (x <= -1 and the
       top region count 128: the index is then 0) */
    count = _mm512_mask_sub_epi32(count, negative, _mm512_setzero_si512(), count);
    return _mm512_max_epi32(_mm512_add_epi32(s->zero, count), _mm512_setzero_si512());
}

/* q8_index8 on sixteen lanes, the index in each lane's low byte (the bits above it are the
   next midpoint's: the codes' store keeps the low byte); the arithmetic search first when
   the table has one, the bucket search when a lane needs it */
FO_QINLINE __m512i FO_QNAME(q8_index16)(const FO_QNAME(q8_search16)* s, __m512 x,
                                        int is_signed) {
    if (s->decades) {
        __mmask16 near;
        __m512i idx = FO_QNAME(q8_decade16)(s, x, is_signed, &near);
        if (!near)
            return idx;
    }
    return FO_QNAME(q8_bucket16)(s, x, is_signed);
}

/* the magnitudes' maximum, lane-wise, on the bits: |x| as an int32 orders as the float
   does, and every NaN's bits lie above inf's, so a NaN propagates (q8_absmax makes it the
   quiet NaN) */
FO_QINLINE __m512i FO_QNAME(absmax16)(__m512i acc, __m512 x) {
    return _mm512_max_epi32(acc, _mm512_andnot_si512(_mm512_set1_epi32((int)0x80000000u),
                                                     _mm512_castps_si512(x)));
}

/* absmax16 of Adam's new v, beta2 * v + (1 - beta2) * d * d: products and sums of terms >= +0,
   so >= +0 (never -0) or NaN, and as unsigned every NaN's bits (either sign) lie above inf's:
   one maximum, no mask */
FO_QINLINE __m512i FO_QNAME(absmax16u)(__m512i acc, __m512 x) {
    return _mm512_max_epu32(acc, _mm512_castps_si512(x));
}

/* the maximum over the lanes of absmax16u, as unsigned */
FO_QINLINE float FO_QNAME(hmax16u)(__m512i acc) {
    uint32_t top = _mm512_reduce_max_epu32(acc);
    float r;
    memcpy(&r, &top, sizeof r);
    return r;
}

/* the maximum over the lanes of absmax16 (the same value in any order) */
FO_QINLINE float FO_QNAME(hmax16)(__m512i acc) {
    int32_t top = _mm512_reduce_max_epi32(acc);
    float r;
    memcpy(&r, &top, sizeof r);
    return r;
}

/* requantize_chunk8 on sixteen lanes */
FO_QINLINE void FO_QNAME(requantize_chunk16)(uint8_t* FO_RESTRICT codes, __m512 x, __m512 pre,
                                             __m512 inv, int prescaled, int is_signed,
                                             const FO_QNAME(q8_search16)* s) {
    if (prescaled)              /* else pre is 1: x * 1 is x */
        x = _mm512_mul_ps(x, pre);
    _mm512_mask_cvtepi32_storeu_epi8(codes, (__mmask16)0xffff, FO_QNAME(q8_index16)(
        s, _mm512_mul_ps(x, inv), is_signed));
}

#if FO_LM_VEC >= 3
/* ---- levels 3, 4: 64 codes dequantized by byte permutes (AVX512-VBMI), not gathers ---
   The 256 float32 code values as four byte planes (plane k: byte k of every value), each
   plane four registers of 64 bytes: vpermt2b looks up 64 codes in 128 bytes, so a plane
   takes two lookups and a blend on the codes' top bit. The planes' bytes are then
   interleaved into floats (unpacks within 128-bit lanes); the codes are first permuted so
   that the interleaved floats come out in order. Exact: the same values as code[q]. */
typedef struct {
    __m512i plane[4][4];
    __m512i order;          /* byte 16L + 4q + j reads code 16q + 4L + j (L: 128-bit lane) */
} FO_QNAME(q8_planes);

/* the planes from fo_lm_q8_planes' bytes */
FO_QINLINE void FO_QNAME(q8_planes_load)(const uint8_t* bytes, FO_QNAME(q8_planes)* out) {
    static const uint8_t order[64] __attribute__((aligned(64))) = {
        0, 1, 2, 3, 16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,
        4, 5, 6, 7, 20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,
        8, 9, 10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,
        12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63};
    for (int k = 0; k < 4; k++)
        for (int q = 0; q < 4; q++)
            out->plane[k][q] = _mm512_loadu_si512((const void*)(bytes + 256 * k + 64 * q));
    out->order = _mm512_load_si512((const void*)order);
}

FO_QINLINE void FO_QNAME(q8_planes_of)(const float* code, FO_QNAME(q8_planes)* out) {
    uint8_t bytes[FO_Q8_PLANES] __attribute__((aligned(64)));
    fo_lm_q8_planes(code, bytes);
    FO_QNAME(q8_planes_load)(bytes, out);
}

/* code[codes[i]] for 64 codes: out[q] holds values 16q .. 16q + 15 */
FO_QINLINE void FO_QNAME(q8_decode64)(const uint8_t* codes, const FO_QNAME(q8_planes)* t,
                                      __m512 out[4]) {
    __m512i idx = _mm512_permutexvar_epi8(t->order, _mm512_loadu_si512((const void*)codes));
    __mmask64 high = _mm512_movepi8_mask(idx);
    __m512i b[4];
    for (int k = 0; k < 4; k++) {
        __m512i lo = _mm512_permutex2var_epi8(t->plane[k][0], idx, t->plane[k][1]);
        __m512i hi = _mm512_permutex2var_epi8(t->plane[k][2], idx, t->plane[k][3]);
        b[k] = _mm512_mask_blend_epi8(high, lo, hi);
    }
    __m512i w01l = _mm512_unpacklo_epi8(b[0], b[1]), w01h = _mm512_unpackhi_epi8(b[0], b[1]);
    __m512i w23l = _mm512_unpacklo_epi8(b[2], b[3]), w23h = _mm512_unpackhi_epi8(b[2], b[3]);
    out[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01l, w23l));
    out[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01l, w23l));
    out[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w01h, w23h));
    out[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w01h, w23h));
}

/* the whole runs of 64 at the start of a block of len values by byte permutes (the rest is
   q8_decode_block's); returns the count decoded */
FO_QINLINE Py_ssize_t FO_QNAME(q8_decode_runs)(const uint8_t* FO_RESTRICT codes, float absmax,
                                              const FO_QNAME(q8_planes)* pl,
                                              float* FO_RESTRICT dst, Py_ssize_t len) {
    const __m512 a16 = _mm512_set1_ps(absmax);
    Py_ssize_t j = 0;
    for (; j + 64 <= len; j += 64) {
        __m512 v[4];
        FO_QNAME(q8_decode64)(codes + j, pl, v);
        for (int r = 0; r < 4; r++)
            _mm512_storeu_ps(dst + j + 16 * r, _mm512_mul_ps(v[r], a16));
    }
    return j;
}
#endif

/* q8_flushing8 for sixteen lanes */
typedef struct {
    const float* m;
    const float* v;
    uint8_t* m_codes;
    uint8_t* v_codes;
    __m512 m_pre, m_inv, v_pre, v_inv;
    int m_live, v_live;
} FO_QNAME(q8_flushing16);

FO_QINLINE void FO_QNAME(q8_flushing16_of)(FO_QNAME(q8_flushing16)* fl,
                                           const FO_QNAME(q8_pending)* q) {
    fl->m = q->m;
    fl->v = q->v;
    fl->m_codes = q->m_codes;
    fl->v_codes = q->v_codes;
    fl->m_live = q->m_live;
    fl->v_live = q->v_live;
    fl->m_pre = _mm512_set1_ps(q->m_pre);
    fl->m_inv = _mm512_set1_ps(q->m_inv);
    fl->v_pre = _mm512_set1_ps(q->v_pre);
    fl->v_inv = _mm512_set1_ps(q->v_inv);
}

/* q8_flush8 for sixteen lanes */
FO_QINLINE void FO_QNAME(q8_flush16)(const FO_QNAME(q8_flushing16)* q, int j,
                                     const FO_QNAME(q8_search16)* ms,
                                     const FO_QNAME(q8_search16)* vs) {
    if (q->m_live)
        FO_QNAME(requantize_chunk16)(q->m_codes + j, _mm512_load_ps(q->m + j), q->m_pre,
                                     q->m_inv, q->m_live > 1, 1, ms);
    if (q->v_live)
        FO_QNAME(requantize_chunk16)(q->v_codes + j, _mm512_load_ps(q->v + j), q->v_pre,
                                     q->v_inv, q->v_live > 1, 0, vs);
}

/* `blocks` consecutive full blocks, software-pipelined: the update of block b (bound by the
   divider: sqrt and division) runs interleaved with the nearest-code search of block b - 1
   (gathers and integer work), so the two kinds of work overlap in the core; the next blocks'
   lines are prefetched fo_lm_q8_ahead() blocks ahead. At levels 3 and 4 each block's m and v are
   dequantized by byte permutes before its update. adam_q8_blocks_avx2's operations, sixteen
   lanes at a time: the same bits. */
FO_QINLINE void FO_QNAME(adam_q8_blocks_avx512)(float* FO_RESTRICT param,
                                                 const float* FO_RESTRICT grad,
                                                 uint8_t* FO_RESTRICT exp_avg,
                                                 float* FO_RESTRICT m_absmax,
                                                 uint8_t* FO_RESTRICT exp_avg_sq,
                                                 float* FO_RESTRICT v_absmax, Py_ssize_t blocks,
                                                 const fo_lm_adam_coefficients* FO_RESTRICT c,
                                                 const fo_lm_q8_tables* FO_RESTRICT t,
                                                 int use_wd, int scale) {
    FO_QNAME(q8_pending) ring[2];
    const FO_QNAME(adam_vec) k = FO_QNAME(adam_vec_of)(c);
    const FO_QNAME(q8_search16) ms = FO_QNAME(q8_search16_of)(t->m_bucket, t->m_shift,
                                                                   t->m_decades, t->m_zero);
    const FO_QNAME(q8_search16) vs = FO_QNAME(q8_search16_of)(t->v_bucket, t->v_shift,
                                                                   t->v_decades, t->v_zero);
    FO_QNAME(q8_flushing16) fl;
    fl.m_live = fl.v_live = 0;
#if FO_LM_VEC >= 3
    FO_QNAME(q8_planes) m_planes, v_planes;
    FO_QNAME(q8_planes_of)(t->m_code, &m_planes);
    FO_QNAME(q8_planes_of)(t->v_code, &v_planes);
    float m_dec[FO_Q8_BLOCK] __attribute__((aligned(64)));
    float v_dec[FO_Q8_BLOCK] __attribute__((aligned(64)));
#endif
    const Py_ssize_t ahead = fo_lm_q8_ahead();       /* blocks */
    for (Py_ssize_t b = 0; b < blocks; b++) {
        FO_QNAME(q8_pending)* cur = &ring[b & 1];
        const Py_ssize_t lo = b * FO_Q8_BLOCK;
        float* FO_RESTRICT p_b = param + lo;
        const float* FO_RESTRICT g_b = grad + lo;
        const uint8_t* mc = exp_avg + lo;
        const uint8_t* vc = exp_avg_sq + lo;
        __m512i new_am = _mm512_setzero_si512(), new_av = _mm512_setzero_si512();
#if FO_LM_VEC < 3
        const __m512 am = _mm512_set1_ps(m_absmax[b]), av = _mm512_set1_ps(v_absmax[b]);
#else
        /* the block's moments first, one table at a time (its 16 plane registers then stay
           in registers; decoding m and v together in the update loop spilled them) */
        FO_QNAME(q8_decode_runs)(mc, m_absmax[b], &m_planes, m_dec, FO_Q8_BLOCK);
        FO_QNAME(q8_decode_runs)(vc, v_absmax[b], &v_planes, v_dec, FO_Q8_BLOCK);
#endif
        for (int j = 0; j < FO_Q8_BLOCK; j += 16) {
#if FO_LM_VEC >= 3
            __m512 m = _mm512_load_ps(m_dec + j);
            __m512 v = _mm512_load_ps(v_dec + j);
#else
            __m512i mi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(mc + j)));
            __m512i vi = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(vc + j)));
            __m512 m = _mm512_mul_ps(_mm512_i32gather_ps(mi, t->m_code, 4), am);
            __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(vi, t->v_code, 4), av);
#endif
            __m512 p = FO_QNAME(adam_update16)(_mm512_loadu_ps(p_b + j), _mm512_loadu_ps(g_b + j),
                                               &m, &v, &k, use_wd, scale);
            _mm512_storeu_ps(p_b + j, p);
            _mm512_store_ps(cur->m + j, m);
            _mm512_store_ps(cur->v + j, v);
            new_am = FO_QNAME(absmax16)(new_am, m);
            new_av = FO_QNAME(absmax16u)(new_av, v);
            if (b + ahead < blocks)
                FO_QNAME(q8_prefetch_chunk)(p_b, g_b, mc, vc, j, ahead);
            FO_QNAME(q8_flush16)(&fl, j, &ms, &vs);
        }
        cur->m_codes = exp_avg + lo;
        cur->v_codes = exp_avg_sq + lo;
        cur->m_live = FO_QNAME(q8_scale)(FO_QNAME(hmax16)(new_am), m_absmax + b, cur->m_codes,
                                         cur->m, t->m_bucket, t->m_shift, t->m_zero,
                                         &cur->m_pre, &cur->m_inv);
        cur->v_live = FO_QNAME(q8_scale)(FO_QNAME(hmax16u)(new_av), v_absmax + b, cur->v_codes,
                                         cur->v, t->v_bucket, t->v_shift, t->v_zero,
                                         &cur->v_pre, &cur->v_inv);
        FO_QNAME(q8_flushing16_of)(&fl, cur);
    }
    for (int j = 0; j < FO_Q8_BLOCK; j += 16)
        FO_QNAME(q8_flush16)(&fl, j, &ms, &vs);
}

/* `blocks` consecutive full blocks of a one-moment 8-bit step, SGD with momentum (mk) or
   Lion (lk; the other NULL), on the signed code (t's m_ tables), software-pipelined as
   adam_q8_blocks_avx512: the update of block b runs interleaved with the nearest-code search
   of block b - 1 (each block's update and search one after the other took SGD 0.86 ns per
   element on each core at 3e7 against 0.51 in cache; this loop 0.66 and 0.40); the next
   blocks' lines are prefetched fo_lm_q8_ahead() blocks ahead; at levels 3 and 4 each block's
   moment is dequantized by byte permutes first. momentum_q8_block's and lion_q8_block's
   operations: the same bits. */
FO_QINLINE void FO_QNAME(q8_one_blocks_avx512)(float* FO_RESTRICT param,
                                                const float* FO_RESTRICT grad,
                                                uint8_t* FO_RESTRICT codes,
                                                float* FO_RESTRICT absmax, Py_ssize_t blocks,
                                                const FO_QNAME(momentum_vec16)* mk,
                                                const FO_QNAME(lion_vec16)* lk,
                                                const fo_lm_q8_tables* FO_RESTRICT t,
                                                int use_wd, int nesterov) {
    FO_QNAME(q8_pending) ring[2];
    const FO_QNAME(q8_search16) ms = FO_QNAME(q8_search16_of)(t->m_bucket, t->m_shift,
                                                                   t->m_decades, t->m_zero);
    FO_QNAME(q8_flushing16) fl;
    fl.m_live = fl.v_live = 0;
#if FO_LM_VEC >= 3
    FO_QNAME(q8_planes) planes;
    FO_QNAME(q8_planes_of)(t->m_code, &planes);
    float dec[FO_Q8_BLOCK] __attribute__((aligned(64)));
#endif
    const Py_ssize_t ahead = fo_lm_q8_ahead();       /* blocks */
    for (Py_ssize_t b = 0; b < blocks; b++) {
        FO_QNAME(q8_pending)* cur = &ring[b & 1];
        const Py_ssize_t lo = b * FO_Q8_BLOCK;
        const uint8_t* c_b = codes + lo;
        __m512i acc = _mm512_setzero_si512();
#if FO_LM_VEC >= 3
        FO_QNAME(q8_decode_runs)(c_b, absmax[b], &planes, dec, FO_Q8_BLOCK);
#else
        const __m512 a16 = _mm512_set1_ps(absmax[b]);
#endif
        for (int j = 0; j < FO_Q8_BLOCK; j += 16) {
#if FO_LM_VEC >= 3
            __m512 m = _mm512_load_ps(dec + j);
#else
            __m512 m = _mm512_mul_ps(_mm512_i32gather_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                (const __m128i*)(c_b + j))), t->m_code, 4), a16);
#endif
            m = lk != NULL
                ? FO_QNAME(lion_update16)(param + lo + j, grad + lo + j, m, lk, use_wd)
                : FO_QNAME(momentum_update16)(param + lo + j, grad + lo + j, m, mk, use_wd,
                                              nesterov);
            _mm512_store_ps(cur->m + j, m);
            acc = FO_QNAME(absmax16)(acc, m);
            if (b + ahead < blocks)
                FO_QNAME(q8_prefetch_chunk)(param + lo, grad + lo, c_b, NULL, j, ahead);
            FO_QNAME(q8_flush16)(&fl, j, &ms, &ms);
        }
        FO_QNAME(q8_pend_one)(cur, FO_QNAME(hmax16)(acc), absmax + b, codes + lo, t);
        FO_QNAME(q8_flushing16_of)(&fl, cur);
    }
    for (int j = 0; j < FO_Q8_BLOCK; j += 16)
        FO_QNAME(q8_flush16)(&fl, j, &ms, &ms);
}

/* the arithmetic search against the bucket search (fastoptim._lowmem.decade_search_check):
   the float32 bit patterns first .. first + 16 * vectors - 1; counts[0]: the lanes where
   they differ outside q8_decade16's `near` (*first_bad: the first such pattern), counts[1]:
   the lanes q8_decade16 leaves to the bucket search */
FO_QTARGET static void FO_QNAME(q8_decade_check)(const int32_t* bucket, int shift,
                                                 const float* decades, int zero,
                                                 int is_signed, uint32_t first,
                                                 Py_ssize_t vectors, int64_t* counts,
                                                 uint32_t* first_bad) {
    const FO_QNAME(q8_search16) s = FO_QNAME(q8_search16_of)(bucket, shift, decades, zero);
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                            14, 15);
    const __m512i low_byte = _mm512_set1_epi32(0xff);
    int64_t bad = 0, left = 0;
    for (Py_ssize_t k = 0; k < vectors; k++) {
        __m512i bits = _mm512_add_epi32(_mm512_set1_epi32((int)(first + 16u * (uint32_t)k)),
                                        lanes);
        __m512 x = _mm512_castsi512_ps(bits);
        __mmask16 near;
        __m512i fast = FO_QNAME(q8_decade16)(&s, x, is_signed, &near);
        __m512i slow = _mm512_and_si512(FO_QNAME(q8_bucket16)(&s, x, is_signed), low_byte);
        __mmask16 differ = _mm512_mask_cmpneq_epi32_mask((__mmask16)~near, fast, slow);
        if (differ && bad == 0)
            *first_bad = first + 16u * (uint32_t)k + (uint32_t)__builtin_ctz(differ);
        bad += __builtin_popcount(differ);
        left += __builtin_popcount(near);
    }
    counts[0] = bad;
    counts[1] = left;
}
#endif

/* ---- blockwise 8-bit state <-> float32 scratch (the generic 8-bit state of the
   element-wise classes, fastoptim.optimizers._state_dtype): n values from their codes (code:
   the 256 code values) and one absmax per block of FO_Q8_BLOCK, and back
   (fastoptim.lowmem.quantize_blockwise's rule: absmax the NaN-propagating maximum of |x|, a
   NaN stored as the quiet NaN; each value the nearest code of (x * pre) * (1 / (absmax *
   pre)); absmax 0 the zero code, NaN index 0). Full blocks in vectors at levels >= 1 (the
   8-bit Adam loops' search: q8_scale, requantize_chunk8/16), partial ones in scalars. */
FO_QINLINE void FO_QNAME(q8_decode_block)(const uint8_t* FO_RESTRICT codes, float absmax,
                                          const float* FO_RESTRICT code,
                                          float* FO_RESTRICT dst, Py_ssize_t len) {
    Py_ssize_t j = 0;
#if FO_LM_VEC >= 2
    const __m512 a16 = _mm512_set1_ps(absmax);
    for (; j + 16 <= len; j += 16) {
        __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(codes + j)));
        _mm512_storeu_ps(dst + j, _mm512_mul_ps(_mm512_i32gather_ps(idx, code, 4), a16));
    }
#elif FO_LM_VEC
    const __m256 a8 = _mm256_set1_ps(absmax);
    for (; j + 8 <= len; j += 8) {
        __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(codes + j)));
        _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_i32gather_ps(code, idx, 4), a8));
    }
#endif
    for (; j < len; j++)
        dst[j] = code[codes[j]] * absmax;
}

/* planes: NULL, or fo_lm_q8_planes of code (byte permutes at levels 3 and 4) */
FO_QTARGET static void FO_QNAME(q8_decode_range)(const uint8_t* FO_RESTRICT codes,
                                                 const float* FO_RESTRICT absmax,
                                                 const float* FO_RESTRICT code,
                                                 const uint8_t* planes,
                                                 float* FO_RESTRICT dst, Py_ssize_t n) {
#if FO_LM_VEC >= 3
    FO_QNAME(q8_planes) pl;
    if (planes != NULL)
        FO_QNAME(q8_planes_load)(planes, &pl);
#else
    (void)planes;
#endif
    for (Py_ssize_t lo = 0, b = 0; lo < n; lo += FO_Q8_BLOCK, b++) {
        const Py_ssize_t len = n - lo < FO_Q8_BLOCK ? n - lo : FO_Q8_BLOCK;
        Py_ssize_t j = 0;
#if FO_LM_VEC >= 3
        if (planes != NULL)
            j = FO_QNAME(q8_decode_runs)(codes + lo, absmax[b], &pl, dst + lo, len);
#endif
        FO_QNAME(q8_decode_block)(codes + lo + j, absmax[b], code, dst + lo + j, len - j);
    }
}

/* one block of len <= FO_Q8_BLOCK values to codes and its absmax */
FO_QINLINE void FO_QNAME(q8_encode_block)(const float* FO_RESTRICT src,
                                          uint8_t* FO_RESTRICT codes,
                                          float* FO_RESTRICT absmax, Py_ssize_t len,
                                          const int32_t* FO_RESTRICT bucket, int shift,
                                          uint8_t zero, int is_signed, const float* decades) {
    float pre, inv;
#if FO_LM_VEC >= 2
    if (len == FO_Q8_BLOCK) {
        const FO_QNAME(q8_search16) s = FO_QNAME(q8_search16_of)(bucket, shift, decades, zero);
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < FO_Q8_BLOCK; j += 16)
            acc = FO_QNAME(absmax16)(acc, _mm512_loadu_ps(src + j));
        int live = FO_QNAME(q8_scale)(FO_QNAME(hmax16)(acc), absmax, codes, src, bucket, shift,
                                      zero, &pre, &inv);
        if (live) {
            const __m512 pre16 = _mm512_set1_ps(pre), inv16 = _mm512_set1_ps(inv);
            for (int j = 0; j < FO_Q8_BLOCK; j += 16)
                FO_QNAME(requantize_chunk16)(codes + j, _mm512_loadu_ps(src + j), pre16, inv16,
                                             live > 1, is_signed, &s);
        }
        return;
    }
#elif FO_LM_VEC
    if (len == FO_Q8_BLOCK) {
        const FO_QNAME(q8_search8) s = FO_QNAME(q8_search8_of)(bucket, shift);
        __m256i acc = _mm256_setzero_si256();
        for (int j = 0; j < FO_Q8_BLOCK; j += 8)
            acc = FO_QNAME(absmax8)(acc, _mm256_loadu_ps(src + j));
        int live = FO_QNAME(q8_scale)(FO_QNAME(hmax8)(acc), absmax, codes, src, bucket, shift,
                                      zero, &pre, &inv);
        if (live)
            for (int j = 0; j < FO_Q8_BLOCK; j += 8)
                FO_QNAME(requantize_chunk8)(codes + j, _mm256_loadu_ps(src + j),
                                            _mm256_set1_ps(pre), _mm256_set1_ps(inv),
                                            live > 1, is_signed, &s);
        return;
    }
#endif
    (void)is_signed;
    (void)decades;
    float a = 0.0f;
    for (Py_ssize_t j = 0; j < len; j++)
        a = FO_QNAME(q8_max)(a, fabsf(src[j]));
    a = FO_QNAME(q8_absmax)(a);
    *absmax = a;
    if (a > 0) {
        pre = FO_Q8_PRESCALE(a);
        inv = 1.0f / (a * pre);
        for (Py_ssize_t j = 0; j < len; j++)
            codes[j] = FO_QNAME(q8_index)(bucket, shift, (src[j] * pre) * inv);
    } else {
        memset(codes, a == 0 ? zero : 0, (size_t)len);
    }
}

FO_QTARGET static void FO_QNAME(q8_encode_range)(const float* FO_RESTRICT src,
                                                 uint8_t* FO_RESTRICT codes,
                                                 float* FO_RESTRICT absmax, Py_ssize_t n,
                                                 const int32_t* FO_RESTRICT bucket, int shift,
                                                 uint8_t zero, int is_signed,
                                                 const float* decades) {
    for (Py_ssize_t lo = 0, b = 0; lo < n; lo += FO_Q8_BLOCK, b++) {
        Py_ssize_t len = n - lo < FO_Q8_BLOCK ? n - lo : FO_Q8_BLOCK;
        if (is_signed)
            FO_QNAME(q8_encode_block)(src + lo, codes + lo, absmax + b, len, bucket, shift,
                                      zero, 1, decades);
        else
            FO_QNAME(q8_encode_block)(src + lo, codes + lo, absmax + b, len, bucket, shift,
                                      zero, 0, decades);
    }
}

/* SGD with momentum (momentum_bf16_loop's formula) with its buffer stored blockwise in 8
   bits (the signed code, t's m_ tables): per block the buffer dequantized, updated and the
   parameter written, then the block requantized with its new absmax (q8_encode_block); at
   levels 1 to 4 the full blocks take q8_one_blocks_avx2/avx512, this the last, partial one */
FO_QINLINE void FO_QNAME(momentum_q8_block)(float* FO_RESTRICT param,
                                             const float* FO_RESTRICT grad,
                                             uint8_t* FO_RESTRICT codes,
                                             float* FO_RESTRICT absmax, Py_ssize_t len,
                                             const fo_lm_momentum_coefficients* FO_RESTRICT c,
                                             const fo_lm_q8_tables* FO_RESTRICT t,
                                             int use_wd, int nesterov) {
    float vb[FO_Q8_BLOCK] __attribute__((aligned(64)));
    const float a = *absmax;
    Py_ssize_t j = 0;
#if FO_LM_VEC >= 2
    const FO_QNAME(momentum_vec16) k = FO_QNAME(momentum_vec16_of)(c);
    const __m512 a16 = _mm512_set1_ps(a);
    for (; j + 16 <= len; j += 16) {
        __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(codes + j)));
        __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(idx, t->m_code, 4), a16);
        _mm512_store_ps(vb + j, FO_QNAME(momentum_update16)(param + j, grad + j, v, &k, use_wd,
                                                            nesterov));
    }
#elif FO_LM_VEC == 1
    const FO_QNAME(momentum_vec8) k = FO_QNAME(momentum_vec8_of)(c);
    const __m256 a8 = _mm256_set1_ps(a);
    for (; j + 8 <= len; j += 8) {
        __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(codes + j)));
        __m256 v = _mm256_mul_ps(_mm256_i32gather_ps(t->m_code, idx, 4), a8);
        _mm256_store_ps(vb + j, FO_QNAME(momentum_update8)(param + j, grad + j, v, &k, use_wd,
                                                           nesterov));
    }
#endif
    for (; j < len; j++) {
        float p = param[j];
        float d = use_wd ? c->grad_sign * grad[j] + c->weight_decay * p
                         : c->grad_sign * grad[j];
        float v = c->momentum * (t->m_code[codes[j]] * a) + c->one_minus_dampening * d;
        vb[j] = v;
        param[j] = p - c->lr * (nesterov ? d + c->momentum * v : v);
    }
    FO_QNAME(q8_encode_block)(vb, codes, absmax, len, t->m_bucket, t->m_shift, t->m_zero, 1,
                              t->m_decades);
}

FO_QINLINE void FO_QNAME(momentum_q8_loop)(float* param, const float* grad, uint8_t* codes,
                                            float* absmax, Py_ssize_t n,
                                            const fo_lm_momentum_coefficients* c,
                                            const fo_lm_q8_tables* t, int use_wd,
                                            int nesterov) {
    /* the full blocks pipelined (levels 1 to 4), then the rest block by block */
    Py_ssize_t b = FO_LM_VEC ? n / FO_Q8_BLOCK : 0, lo = b * FO_Q8_BLOCK;
#if FO_LM_VEC >= 2
    const FO_QNAME(momentum_vec16) k = FO_QNAME(momentum_vec16_of)(c);
    if (b > 0)
        FO_QNAME(q8_one_blocks_avx512)(param, grad, codes, absmax, b, &k, NULL, t, use_wd,
                                       nesterov);
#elif FO_LM_VEC
    const FO_QNAME(momentum_vec8) k = FO_QNAME(momentum_vec8_of)(c);
    if (b > 0)
        FO_QNAME(q8_one_blocks_avx2)(param, grad, codes, absmax, b, &k, NULL, t, use_wd,
                                     nesterov);
#endif
    for (; lo < n; lo += FO_Q8_BLOCK, b++) {
        FO_QNAME(momentum_q8_block)(param + lo, grad + lo, codes + lo, absmax + b,
                                    n - lo < FO_Q8_BLOCK ? n - lo : FO_Q8_BLOCK, c, t,
                                    use_wd, nesterov);
    }
}

FO_QTARGET static void FO_QNAME(momentum_q8_range)(float* param, const float* grad,
                                                    uint8_t* codes, float* absmax,
                                                    Py_ssize_t n,
                                                    const fo_lm_momentum_coefficients* c,
                                                    const fo_lm_q8_tables* t) {
    fo_lm_momentum_coefficients k = *c;
    int w = k.weight_decay != 0;
    if (w && k.nesterov)
        FO_QNAME(momentum_q8_loop)(param, grad, codes, absmax, n, &k, t, 1, 1);
    else if (w)
        FO_QNAME(momentum_q8_loop)(param, grad, codes, absmax, n, &k, t, 1, 0);
    else if (k.nesterov)
        FO_QNAME(momentum_q8_loop)(param, grad, codes, absmax, n, &k, t, 0, 1);
    else
        FO_QNAME(momentum_q8_loop)(param, grad, codes, absmax, n, &k, t, 0, 0);
}

/* Lion (lion_bf16_loop's formula) with its moment stored blockwise in 8 bits (the signed
   code, t's m_ tables): per block the moment dequantized, the parameter written, the new
   moment requantized with its new absmax (q8_encode_block); at levels 1 to 4 the full
   blocks take q8_one_blocks_avx2/avx512, this the last, partial one */
FO_QINLINE void FO_QNAME(lion_q8_block)(float* FO_RESTRICT param,
                                         const float* FO_RESTRICT grad,
                                         uint8_t* FO_RESTRICT codes,
                                         float* FO_RESTRICT absmax, Py_ssize_t len,
                                         const fo_lm_lion_coefficients* FO_RESTRICT c,
                                         const fo_lm_q8_tables* FO_RESTRICT t, int use_wd) {
    float mb[FO_Q8_BLOCK] __attribute__((aligned(64)));
    const float a = *absmax;
    Py_ssize_t j = 0;
#if FO_LM_VEC >= 2
    const FO_QNAME(lion_vec16) k = FO_QNAME(lion_vec16_of)(c);
    const __m512 a16 = _mm512_set1_ps(a);
    for (; j + 16 <= len; j += 16) {
        __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(codes + j)));
        __m512 m = _mm512_mul_ps(_mm512_i32gather_ps(idx, t->m_code, 4), a16);
        _mm512_store_ps(mb + j, FO_QNAME(lion_update16)(param + j, grad + j, m, &k, use_wd));
    }
#elif FO_LM_VEC == 1
    const FO_QNAME(lion_vec8) k = FO_QNAME(lion_vec8_of)(c);
    const __m256 a8 = _mm256_set1_ps(a);
    for (; j + 8 <= len; j += 8) {
        __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(codes + j)));
        __m256 m = _mm256_mul_ps(_mm256_i32gather_ps(t->m_code, idx, 4), a8);
        _mm256_store_ps(mb + j, FO_QNAME(lion_update8)(param + j, grad + j, m, &k, use_wd));
    }
#endif
    for (; j < len; j++) {
        float p = param[j], d = c->grad_sign * grad[j];
        float m = t->m_code[codes[j]] * a;
        float e = c->beta1 * m + c->one_minus_beta1 * d;
        float u = e > 0 ? 1.0f : (e < 0 ? -1.0f : (e == 0 ? 0.0f : e));
        mb[j] = c->beta2 * m + c->one_minus_beta2 * d;
        param[j] = p - c->lr * (use_wd ? u + c->weight_decay * p : u);
    }
    FO_QNAME(q8_encode_block)(mb, codes, absmax, len, t->m_bucket, t->m_shift, t->m_zero, 1,
                              t->m_decades);
}

FO_QTARGET static void FO_QNAME(lion_q8_range)(float* param, const float* grad,
                                                uint8_t* codes, float* absmax, Py_ssize_t n,
                                                const fo_lm_lion_coefficients* c,
                                                const fo_lm_q8_tables* t) {
    fo_lm_lion_coefficients k = *c;
    int w = k.weight_decay != 0;
    /* the full blocks pipelined (levels 1 to 4), then the rest block by block */
    Py_ssize_t b = FO_LM_VEC ? n / FO_Q8_BLOCK : 0, lo = b * FO_Q8_BLOCK;
#if FO_LM_VEC >= 2
    const FO_QNAME(lion_vec16) k16 = FO_QNAME(lion_vec16_of)(&k);
    if (b > 0 && w)
        FO_QNAME(q8_one_blocks_avx512)(param, grad, codes, absmax, b, NULL, &k16, t, 1, 0);
    else if (b > 0)
        FO_QNAME(q8_one_blocks_avx512)(param, grad, codes, absmax, b, NULL, &k16, t, 0, 0);
#elif FO_LM_VEC
    const FO_QNAME(lion_vec8) k8 = FO_QNAME(lion_vec8_of)(&k);
    if (b > 0 && w)
        FO_QNAME(q8_one_blocks_avx2)(param, grad, codes, absmax, b, NULL, &k8, t, 1, 0);
    else if (b > 0)
        FO_QNAME(q8_one_blocks_avx2)(param, grad, codes, absmax, b, NULL, &k8, t, 0, 0);
#endif
    for (; lo < n; lo += FO_Q8_BLOCK, b++) {
        Py_ssize_t len = n - lo < FO_Q8_BLOCK ? n - lo : FO_Q8_BLOCK;
        if (w)
            FO_QNAME(lion_q8_block)(param + lo, grad + lo, codes + lo, absmax + b, len, &k, t,
                                    1);
        else
            FO_QNAME(lion_q8_block)(param + lo, grad + lo, codes + lo, absmax + b, len, &k, t,
                                    0);
    }
}

FO_QINLINE void FO_QNAME(adam_q8_loop)(float* param, const float* grad, uint8_t* exp_avg,
                                        float* m_absmax, uint8_t* exp_avg_sq,
                                        float* v_absmax, Py_ssize_t n,
                                        const fo_lm_adam_coefficients* c,
                                        const fo_lm_q8_tables* t, int use_wd, int scale) {
    for (Py_ssize_t lo = 0, b = 0; lo < n; lo += FO_Q8_BLOCK, b++) {
        Py_ssize_t len = n - lo < FO_Q8_BLOCK ? n - lo : FO_Q8_BLOCK;
#if FO_LM_VEC >= 2
        if (len == FO_Q8_BLOCK) {
            Py_ssize_t full = (n - lo) / FO_Q8_BLOCK;
            FO_QNAME(adam_q8_blocks_avx512)(param + lo, grad + lo, exp_avg + lo, m_absmax + b,
                                            exp_avg_sq + lo, v_absmax + b, full, c, t, use_wd,
                                            scale);
            lo += (full - 1) * FO_Q8_BLOCK;
            b += full - 1;
            continue;
        }
#elif FO_LM_VEC
        if (len == FO_Q8_BLOCK) {
            Py_ssize_t full = (n - lo) / FO_Q8_BLOCK;
            FO_QNAME(adam_q8_blocks_avx2)(param + lo, grad + lo, exp_avg + lo, m_absmax + b,
                                          exp_avg_sq + lo, v_absmax + b, full, c, t, use_wd,
                                          scale);
            lo += (full - 1) * FO_Q8_BLOCK;
            b += full - 1;
            continue;
        }
#endif
        FO_QNAME(adam_q8_block)(param + lo, grad + lo, exp_avg + lo, m_absmax + b,
                                exp_avg_sq + lo, v_absmax + b, len, c, t, use_wd, scale);
    }
}

FO_QTARGET static void FO_QNAME(adam_q8_range)(float* param, const float* grad,
                                                uint8_t* exp_avg, float* m_absmax,
                                                uint8_t* exp_avg_sq, float* v_absmax,
                                                Py_ssize_t n,
                                                const fo_lm_adam_coefficients* c,
                                                const fo_lm_q8_tables* t) {
    fo_lm_adam_coefficients k = *c;
    int w = k.weight_decay != 0, s = k.param_scale != 1;
    if (w && s)
        FO_QNAME(adam_q8_loop)(param, grad, exp_avg, m_absmax, exp_avg_sq, v_absmax, n, &k, t,
                               1, 1);
    else if (w)
        FO_QNAME(adam_q8_loop)(param, grad, exp_avg, m_absmax, exp_avg_sq, v_absmax, n, &k, t,
                               1, 0);
    else if (s)
        FO_QNAME(adam_q8_loop)(param, grad, exp_avg, m_absmax, exp_avg_sq, v_absmax, n, &k, t,
                               0, 1);
    else
        FO_QNAME(adam_q8_loop)(param, grad, exp_avg, m_absmax, exp_avg_sq, v_absmax, n, &k, t,
                               0, 0);
}

#endif
