/* Half-precision conversions for half-precision parameters (issue 14, item 2).
 *
 * Not a registry kernel template: a plain header with an include guard, included once.
 * Scalar helpers are portable; the _avx2 variants need AVX2 (+F16C for float16) and carry
 * their own target attributes, so callers dispatch at runtime as _simd_kernels.h does.
 * Every variant gives the same bits as the scalar one (round to nearest, ties to even;
 * stochastic rounding from the same counter hash), matching fastoptim.half_reference.
 */
#ifndef FASTOPTIM_HALF_CONVERT_H
#define FASTOPTIM_HALF_CONVERT_H

#include <stdint.h>
#include <string.h>

/* ---- bfloat16 --------------------------------------------------------------------- */
static inline float fo_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Round to nearest, ties to even: add 0x7FFF + lsb and keep the top half; NaN stays a
 * (quiet) NaN. */
static inline uint16_t fo_f32_to_bf16_rne(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((bits >> 16) | 0x0040u);
    uint32_t lsb = (bits >> 16) & 1u;
    return (uint16_t)((bits + 0x7FFFu + lsb) >> 16);
}

/* ---- counter-based noise: splitmix64 of (seed, step, index) ----------------------- */
static inline uint64_t fo_splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Per-call key, computed once per step. */
static inline uint64_t fo_rounding_key(uint64_t seed, uint64_t step) {
    return fo_splitmix64(seed ^ (step * 0x9E3779B97F4A7C15ull));
}

/* 16 random bits for element i: depends only on (key, i), never on threads or lanes. */
static inline uint32_t fo_rounding_noise(uint64_t key, uint64_t i) {
    return (uint32_t)(fo_splitmix64(key + i) >> 48);
}

/* Stochastic rounding to bfloat16: E[result] = f for finite f; inf/NaN pass through. */
static inline uint16_t fo_f32_to_bf16_stochastic(float f, uint32_t noise16) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7F800000u) == 0x7F800000u) {
        uint32_t out = bits >> 16;
        if (bits & 0x007FFFFFu) out |= 0x0040u;
        return (uint16_t)out;
    }
    return (uint16_t)((bits + noise16) >> 16);
}

/* ---- float16 (IEEE binary16), scalar, round to nearest even ----------------------- */
static inline float fo_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0x1Fu) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {                           /* subnormal: normalize */
        int e = -1;
        do { e++; man <<= 1; } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FFu) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t fo_f32_to_f16_rne(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t absb = bits & 0x7FFFFFFFu;
    if (absb > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((absb >> 13) & 0x3FFu));
    if (absb >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);   /* rounds to >= 65520: inf */
    if (absb < 0x38800000u) {                                      /* |f| < 2**-14: subnormal */
        if (absb < 0x33000000u) return sign;                       /* < 2**-25: to zero */
        uint32_t e = absb >> 23, man = (absb & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - e;                                 /* 14..24 -> 2**-24 units */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t lsb = (absb >> 13) & 1u;
    absb += 0xFFFu + lsb;
    return (uint16_t)(sign | (((absb >> 23) - 112u) << 10) | ((absb >> 13) & 0x3FFu));
}

/* ---- AVX2 / F16C: 8 lanes, the same bits as the scalar helpers --------------------- */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256 fo_bf16x8_to_f32_avx2(const uint16_t *p) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2"))) static inline void fo_f32x8_to_bf16_rne_avx2(__m256 x,
                                                                               uint16_t *out) {
    __m256i b = _mm256_castps_si256(x);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7FFF)),
                                                   lsb), 16);
    __m256i absb = _mm256_and_si256(b, _mm256_set1_epi32(0x7FFFFFFF));
    __m256i isnan = _mm256_cmpgt_epi32(absb, _mm256_set1_epi32(0x7F800000));
    __m256i qnan = _mm256_or_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x0040));
    r = _mm256_blendv_epi8(r, qnan, isnan);
    /* pack 8 x u32 (each < 65536) to 8 x u16 */
    __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
    _mm_storeu_si128((__m128i *)out, _mm_packus_epi32(lo, hi));
}

__attribute__((target("avx2,f16c"))) static inline __m256 fo_f16x8_to_f32_f16c(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

__attribute__((target("avx2,f16c"))) static inline void fo_f32x8_to_f16_rne_f16c(__m256 x,
                                                                                  uint16_t *out) {
    _mm_storeu_si128((__m128i *)out, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}
#endif

#endif /* FASTOPTIM_HALF_CONVERT_H */
