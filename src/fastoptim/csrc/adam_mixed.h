/* Fused Adam/AdamW step for half-precision parameters (issue 14, item 2): the "cython"
 * backend of fastoptim.lowmem.adam_half_step (glue: fastoptim/_lowmem.pyx).
 * One pass: read g (half), w (float32 master, or the half parameter), m, v; write m, v,
 * master, and the rounded half parameter. Arithmetic in float32, in the operation order of
 * fastoptim.half_reference.adam_step_mixed (compiled with -ffp-contract=off for bitwise
 * parity). Per-call scalars (step_size, inv_bc2_sqrt, decay, SR key) are computed once by
 * the caller. Three loops: portable C, AVX2 + F16C (8 lanes) and AVX-512 (16 lanes)
 * intrinsics, chosen at run time where the CPU has them, all with the same operations in the
 * same order: the same bits.
 * Stochastic rounding's noise depends on the element's index only, so OpenMP chunks and
 * SIMD lanes give the same bits for any thread count.
 */
#ifndef FASTOPTIM_ADAM_MIXED_H
#define FASTOPTIM_ADAM_MIXED_H

#include <math.h>
#include "half_convert.h"     /* bit manipulation only */
#include "prefetch.h"         /* fo_prefetch_mixed: the vector loops' prefetch */
#include "fp_exact.h"
FO_EXACT_BEGIN        /* no FMA contraction whatever the includer's flags */

enum { FO_HALF_BF16 = 0, FO_HALF_F16 = 1 };

static inline float fo_half_load(const uint16_t *p, long long i, int kind) {
    return kind == FO_HALF_BF16 ? fo_bf16_to_f32(p[i]) : fo_f16_to_f32(p[i]);
}

/* param, grad: half bits (IN/OUT, IN); master: float32 or NULL (IN/OUT); m, v (IN/OUT).
 * wd_mode: 0 none, 1 L2 (g += wd*w), 2 decoupled (w *= decay). sr: stochastic rounding to
 * bfloat16 with key = fo_rounding_key(seed, step) (requires kind == FO_HALF_BF16, master NULL).
 * first: the index of element 0 in the whole array (the noise of element i is
 * fo_rounding_noise(key, first + i)). */
static void fo_adam_mixed_range(uint16_t *param, const uint16_t *grad, float *master, float *m,
                                float *v, long long n, int kind, float beta1,
                                float one_minus_beta1, float beta2, float one_minus_beta2,
                                float step_size, float inv_bc2_sqrt, float eps,
                                float weight_decay, float decay, int wd_mode, int maximize,
                                int sr, uint64_t key, long long first) {
    for (long long i = 0; i < n; i++) {
        float g = fo_half_load(grad, i, kind);
        if (maximize) g = -g;
        float w = master ? master[i] : fo_half_load(param, i, kind);
        if (wd_mode == 2) w = w * decay;
        else if (wd_mode == 1) g = g + weight_decay * w;
        float mi = beta1 * m[i] + one_minus_beta1 * g;
        float vi = beta2 * v[i] + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        w = w - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
        if (master) master[i] = w;
        if (sr)
            param[i] = fo_f32_to_bf16_stochastic(
                w, fo_rounding_noise(key, (uint64_t)(first + i)));
        else
            param[i] = kind == FO_HALF_BF16 ? fo_f32_to_bf16_rne(w) : fo_f32_to_f16_rne(w);
    }
}

/* ---- AVX2 + F16C: 8 lanes, the operations of fo_adam_mixed_range in the same order
   (no FMA), half conversions by half_convert.h's 8-lane helpers: the same bits ---------- */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FO_HALF_VECTOR 1
#include <cpuid.h>

/* F16C, from CPUID leaf 1 (ECX bit 29): clang before 15 has no "f16c" for
   __builtin_cpu_supports. The loops that use it also need AVX2, whose check covers the OS's
   saving of the ymm registers. Read once per process: in a virtual machine CPUID traps to
   the hypervisor, and asking on every call cost about 8 us per kernel call here (a step of
   20 small half arrays spent most of its time in it). Threads racing on the first call all
   store the same value. */
static int fo_f16c_known = -1;

static inline int fo_cpu_has_f16c(void) {
    int have = fo_f16c_known;
    if (have < 0) {
        unsigned int eax, ebx, ecx, edx;
        have = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
        fo_f16c_known = have;
    }
    return have;
}

/* a * b modulo 2**64 in each of 4 lanes, from 32-bit products */
__attribute__((target("avx2"))) static inline __m256i fo_mul64x4_avx2(__m256i a, __m256i b) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                     _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* fo_splitmix64 in each of 4 lanes */
__attribute__((target("avx2"))) static inline __m256i fo_splitmix64x4_avx2(__m256i z) {
    z = _mm256_add_epi64(z, _mm256_set1_epi64x((long long)0x9E3779B97F4A7C15ull));
    z = fo_mul64x4_avx2(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)),
                        _mm256_set1_epi64x((long long)0xBF58476D1CE4E5B9ull));
    z = fo_mul64x4_avx2(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)),
                        _mm256_set1_epi64x((long long)0x94D049BB133111EBull));
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

/* fo_rounding_noise(key, i + k) for k = 0..7, as 8 32-bit lanes in order */
__attribute__((target("avx2"))) static inline __m256i fo_rounding_noise8_avx2(uint64_t key,
                                                                               uint64_t i) {
    __m256i base = _mm256_set1_epi64x((long long)(key + i));
    __m256i lo = fo_splitmix64x4_avx2(_mm256_add_epi64(base, _mm256_setr_epi64x(0, 1, 2, 3)));
    __m256i hi = fo_splitmix64x4_avx2(_mm256_add_epi64(base, _mm256_setr_epi64x(4, 5, 6, 7)));
    lo = _mm256_srli_epi64(lo, 48);
    hi = _mm256_srli_epi64(hi, 48);
    const __m256i evens = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    return _mm256_blend_epi32(_mm256_permutevar8x32_epi32(lo, evens),
                              _mm256_permutevar8x32_epi32(hi, evens), 0xF0);
}

/* stochastic rounding of 8 lanes to bfloat16 (fo_f32_to_bf16_stochastic, lane-wise) */
__attribute__((target("avx2"))) static inline void fo_f32x8_to_bf16_sr_avx2(
        __m256 x, __m256i noise, uint16_t *out) {
    __m256i b = _mm256_castps_si256(x);
    __m256i expo = _mm256_set1_epi32(0x7F800000);
    __m256i special = _mm256_cmpeq_epi32(_mm256_and_si256(b, expo), expo);   /* inf, NaN */
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(b, noise), 16);
    __m256i mant = _mm256_and_si256(b, _mm256_set1_epi32(0x007FFFFF));
    __m256i nan = _mm256_andnot_si256(_mm256_cmpeq_epi32(mant, _mm256_setzero_si256()),
                                      _mm256_set1_epi32(0x0040));
    __m256i s = _mm256_or_si256(_mm256_srli_epi32(b, 16), nan);
    r = _mm256_blendv_epi8(r, s, special);
    __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
    _mm_storeu_si128((__m128i *)out, _mm_packus_epi32(lo, hi));
}

__attribute__((target("avx2,f16c"))) static inline __m256 fo_half8_load(const uint16_t *p,
                                                                         int kind) {
    return kind == FO_HALF_BF16 ? fo_bf16x8_to_f32_avx2(p) : fo_f16x8_to_f32_f16c(p);
}

__attribute__((target("avx2,f16c"))) static void fo_adam_mixed_range_avx2(
        uint16_t *param, const uint16_t *grad, float *master, float *m, float *v, long long n,
        int kind, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
        float step_size, float inv_bc2_sqrt, float eps, float weight_decay, float decay,
        int wd_mode, int maximize, int sr, uint64_t key, long long first) {
    const __m256 b1 = _mm256_set1_ps(beta1), omb1 = _mm256_set1_ps(one_minus_beta1);
    const __m256 b2 = _mm256_set1_ps(beta2), omb2 = _mm256_set1_ps(one_minus_beta2);
    const __m256 ss = _mm256_set1_ps(step_size), ibc = _mm256_set1_ps(inv_bc2_sqrt);
    const __m256 ep = _mm256_set1_ps(eps), wd = _mm256_set1_ps(weight_decay);
    const __m256 dc = _mm256_set1_ps(decay), sign = _mm256_set1_ps(-0.0f);
    long long i = 0;
    for (; i + 8 <= n; i += 8) {
        fo_prefetch_mixed(i, n, m, v, master, grad, param, NULL);
        __m256 g = fo_half8_load(grad + i, kind);
        if (maximize) g = _mm256_xor_ps(g, sign);
        __m256 w = master ? _mm256_loadu_ps(master + i) : fo_half8_load(param + i, kind);
        if (wd_mode == 2) w = _mm256_mul_ps(w, dc);
        else if (wd_mode == 1) g = _mm256_add_ps(g, _mm256_mul_ps(wd, w));
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)),
                                  _mm256_mul_ps(omb1, g));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(omb2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        w = _mm256_sub_ps(w, _mm256_div_ps(_mm256_mul_ps(ss, mi),
                                           _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), ibc),
                                                         ep)));
        if (master) _mm256_storeu_ps(master + i, w);
        if (sr) {
            fo_f32x8_to_bf16_sr_avx2(w, fo_rounding_noise8_avx2(key, (uint64_t)(first + i)),
                                     param + i);
        } else if (kind == FO_HALF_BF16) {
            fo_f32x8_to_bf16_rne_avx2(w, param + i);
        } else {
            fo_f32x8_to_f16_rne_f16c(w, param + i);
        }
    }
    fo_adam_mixed_range(param + i, grad + i, master ? master + i : NULL, m + i, v + i, n - i,
                        kind, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                        inv_bc2_sqrt, eps, weight_decay, decay, wd_mode, maximize, sr, key,
                        first + i);
}

/* ---- AVX-512 (F, BW, DQ, VL): 16 lanes, the same operations and bits ------------------ */
#define FO_HALF_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,f16c")))

FO_HALF_AVX512 static inline __m512 fo_half16_load(const uint16_t *p, int kind) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    return kind == FO_HALF_BF16
        ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
        : _mm512_cvtph_ps(h);
}

/* fo_f32_to_bf16_rne on 16 lanes */
FO_HALF_AVX512 static inline void fo_f32x16_to_bf16_rne(__m512 x, uint16_t *out) {
    __m512i b = _mm512_castps_si512(x);
    __m512i hi = _mm512_srli_epi32(b, 16);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(
        _mm512_add_epi32(b, _mm512_set1_epi32(0x7FFF)),
        _mm512_and_si512(hi, _mm512_set1_epi32(1))), 16);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7FFFFFFF)),
                                            _mm512_set1_epi32(0x7F800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x0040)));
    _mm256_storeu_si256((__m256i *)out, _mm512_cvtepi32_epi16(r));
}

/* fo_splitmix64 on 8 lanes */
FO_HALF_AVX512 static inline __m512i fo_splitmix64x8(__m512i z) {
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9E3779B97F4A7C15ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* fo_f32_to_bf16_stochastic on 16 lanes, element k's noise fo_rounding_noise(key, i + k) */
FO_HALF_AVX512 static inline void fo_f32x16_to_bf16_sr(__m512 x, uint64_t key, uint64_t i,
                                                       uint16_t *out) {
    __m512i base = _mm512_set1_epi64((long long)(key + i));
    const __m512i lanes = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    __m512i lo = _mm512_srli_epi64(fo_splitmix64x8(_mm512_add_epi64(base, lanes)), 48);
    __m512i hi = _mm512_srli_epi64(fo_splitmix64x8(
        _mm512_add_epi64(base, _mm512_add_epi64(lanes, _mm512_set1_epi64(8)))), 48);
    __m512i noise = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo)),
                                       _mm512_cvtepi64_epi32(hi), 1);
    __m512i b = _mm512_castps_si512(x);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(b, noise), 16);
    __mmask16 special = _mm512_cmpeq_epi32_mask(
        _mm512_and_si512(b, _mm512_set1_epi32(0x7F800000)), _mm512_set1_epi32(0x7F800000));
    __mmask16 nan = special & _mm512_test_epi32_mask(b, _mm512_set1_epi32(0x007FFFFF));
    r = _mm512_mask_mov_epi32(r, special, _mm512_srli_epi32(b, 16));
    r = _mm512_mask_or_epi32(r, nan, r, _mm512_set1_epi32(0x0040));
    _mm256_storeu_si256((__m256i *)out, _mm512_cvtepi32_epi16(r));
}

FO_HALF_AVX512 static void fo_adam_mixed_range_avx512(
        uint16_t *param, const uint16_t *grad, float *master, float *m, float *v, long long n,
        int kind, float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
        float step_size, float inv_bc2_sqrt, float eps, float weight_decay, float decay,
        int wd_mode, int maximize, int sr, uint64_t key, long long first) {
    const __m512 b1 = _mm512_set1_ps(beta1), omb1 = _mm512_set1_ps(one_minus_beta1);
    const __m512 b2 = _mm512_set1_ps(beta2), omb2 = _mm512_set1_ps(one_minus_beta2);
    const __m512 ss = _mm512_set1_ps(step_size), ibc = _mm512_set1_ps(inv_bc2_sqrt);
    const __m512 ep = _mm512_set1_ps(eps), wd = _mm512_set1_ps(weight_decay);
    const __m512 dc = _mm512_set1_ps(decay), sign = _mm512_set1_ps(-0.0f);
    long long i = 0;
    for (; i + 16 <= n; i += 16) {
        fo_prefetch_mixed(i, n, m, v, master, grad, param, NULL);
        __m512 g = fo_half16_load(grad + i, kind);
        if (maximize) g = _mm512_xor_ps(g, sign);
        __m512 w = master ? _mm512_loadu_ps(master + i) : fo_half16_load(param + i, kind);
        if (wd_mode == 2) w = _mm512_mul_ps(w, dc);
        else if (wd_mode == 1) g = _mm512_add_ps(g, _mm512_mul_ps(wd, w));
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(m + i)),
                                  _mm512_mul_ps(omb1, g));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(omb2, g), g));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        w = _mm512_sub_ps(w, _mm512_div_ps(_mm512_mul_ps(ss, mi),
                                           _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), ibc),
                                                         ep)));
        if (master) _mm512_storeu_ps(master + i, w);
        if (sr)
            fo_f32x16_to_bf16_sr(w, key, (uint64_t)(first + i), param + i);
        else if (kind == FO_HALF_BF16)
            fo_f32x16_to_bf16_rne(w, param + i);
        else
            _mm256_storeu_si256((__m256i *)(param + i),
                                _mm512_cvtps_ph(w, _MM_FROUND_TO_NEAREST_INT));
    }
    fo_adam_mixed_range(param + i, grad + i, master ? master + i : NULL, m + i, v + i, n - i,
                        kind, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
                        inv_bc2_sqrt, eps, weight_decay, decay, wd_mode, maximize, sr, key,
                        first + i);
}

/* the best loop this CPU runs, at most `wanted`: 0 portable, 1 AVX2 + F16C, 2 AVX-512 */
static inline int fo_half_vector_level(int wanted) {
    __builtin_cpu_init();
    if (wanted >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
        && fo_cpu_has_f16c())
        return 2;
    if (wanted >= 1 && __builtin_cpu_supports("avx2") && fo_cpu_has_f16c())
        return 1;
    return 0;
}
#else
#define FO_HALF_VECTOR 0
static inline int fo_half_vector_level(int wanted) { (void)wanted; return 0; }
#endif

/* the whole array from element 0 */
static inline void fo_adam_mixed(uint16_t *param, const uint16_t *grad, float *master, float *m,
                          float *v, long long n, int kind, float beta1, float one_minus_beta1,
                          float beta2, float one_minus_beta2, float step_size,
                          float inv_bc2_sqrt, float eps, float weight_decay, float decay,
                          int wd_mode, int maximize, int sr, uint64_t key) {
    fo_adam_mixed_range(param, grad, master, m, v, n, kind, beta1, one_minus_beta1, beta2,
                        one_minus_beta2, step_size, inv_bc2_sqrt, eps, weight_decay, decay,
                        wd_mode, maximize, sr, key, 0);
}

/* elements per OpenMP work item */
#define FO_HALF_CHUNK 32768

/* the whole array on `threads` OpenMP threads, in chunks of FO_HALF_CHUNK; vector: the
   widest loop to use where the CPU has it (0 portable, 1 AVX2 + F16C, 2 AVX-512) */
static inline void fo_adam_mixed_threads(uint16_t *param, const uint16_t *grad, float *master,
                                         float *m, float *v, long long n, int kind, float beta1,
                                         float one_minus_beta1, float beta2,
                                         float one_minus_beta2, float step_size,
                                         float inv_bc2_sqrt, float eps, float weight_decay,
                                         float decay, int wd_mode, int maximize, int sr,
                                         uint64_t key, int vector, int threads) {
    long long chunks = (n + FO_HALF_CHUNK - 1) / FO_HALF_CHUNK;
    vector = fo_half_vector_level(vector);
    if (threads < 1 || chunks < 2)
        threads = 1;
    #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (long long k = 0; k < chunks; k++) {
        long long lo = k * FO_HALF_CHUNK;
        long long len = n - lo < FO_HALF_CHUNK ? n - lo : FO_HALF_CHUNK;
#if FO_HALF_VECTOR
        if (vector == 2) {
            fo_adam_mixed_range_avx512(param + lo, grad + lo, master ? master + lo : NULL,
                                       m + lo, v + lo, len, kind, beta1, one_minus_beta1,
                                       beta2, one_minus_beta2, step_size, inv_bc2_sqrt, eps,
                                       weight_decay, decay, wd_mode, maximize, sr, key, lo);
            continue;
        }
        if (vector == 1) {
            fo_adam_mixed_range_avx2(param + lo, grad + lo, master ? master + lo : NULL,
                                     m + lo, v + lo, len, kind, beta1, one_minus_beta1, beta2,
                                     one_minus_beta2, step_size, inv_bc2_sqrt, eps,
                                     weight_decay, decay, wd_mode, maximize, sr, key, lo);
            continue;
        }
#endif
        fo_adam_mixed_range(param + lo, grad + lo, master ? master + lo : NULL, m + lo, v + lo,
                            len, kind, beta1, one_minus_beta1, beta2, one_minus_beta2,
                            step_size, inv_bc2_sqrt, eps, weight_decay, decay, wd_mode,
                            maximize, sr, key, lo);
    }
}

FO_EXACT_END
#endif /* FASTOPTIM_ADAM_MIXED_H */
