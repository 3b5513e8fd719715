/* Software prefetch for the kernels' loops (csrc/common.h's tiles, csrc/lamb.h's groups,
 * csrc/adafactor.h's passes, csrc/adam_lowmem.h's and csrc/adam_mixed.h's vector loops), and
 * the tiles' bound.
 *
 * On large arrays the hardware prefetchers alone leave a loop with arithmetic to do waiting
 * on memory; asking for the lines about 1,024 elements ahead, a few at a time, keeps it fed
 * (measured in bench/README.md). A prefetch never faults and changes no result; the loops
 * still only ask for lines inside their arrays.
 */
#ifndef FASTOPTIM_PREFETCH_H
#define FASTOPTIM_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

/* elements ahead that the tiled, the mixed and (in whole blocks of 256) the 8-bit block
   loops prefetch (fo_prefetch_ahead, fo_lm_q8_ahead in csrc/adam_lowmem.h):
   FO_PREFETCH_AHEAD on Intel and others (Sapphire Rapids, Adam at 3e7 on 2 cores: 256 to
   2048 alike, none about 20% slower), FO_PREFETCH_AHEAD_AMD on AMD CPUs; -D...=... in
   CFLAGS to measure others */
#ifndef FO_PREFETCH_AHEAD
#define FO_PREFETCH_AHEAD 1024
#endif
#ifndef FO_PREFETCH_AHEAD_AMD
#define FO_PREFETCH_AHEAD_AMD 256
#endif

/* 1 where the compiler has a prefetch builtin (gcc, clang), else 0: the loops then prefetch
   nothing (fastoptim.kernels.prefetch_target() says "none") */
#if defined(__GNUC__) || defined(__clang__)
#define FO_HAS_PREFETCH 1
#else
#define FO_HAS_PREFETCH 0
#endif

/* 1 on an AMD CPU: gcc's and clang's CPU model word (a load and a compare, set when the
   module loads); 0 elsewhere and on other compilers */
static inline int fo_cpu_is_amd(void) {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

/* Where the lines go: into L1 (prefetcht0), except on AMD CPUs, where into L2 (prefetcht1).
   Float32 Adam on 2 cores, torch's fused step / ours, medians of 6 alternating runs:
   - Intel Sapphire Rapids: L1 measured faster than no prefetch (bench/README.md);
   - AMD Zen 4 (EPYC, 32 KB L1 per core): at 3e7 L1 0.89, none 1.06, L2 1.14; at 1e7 1.01,
     1.13, 1.23; at 1e6 1.30, 1.51, 1.51. Five arrays' lines 1,024 elements ahead fill most
     of that L1.
   The test is gcc's and clang's CPU model word (a load and a compare, set when the module
   loads); the hint changes no result. */
static inline int fo_prefetch_to_l2(void) {
    return fo_cpu_is_amd();
}

/* How far ahead, in elements: on AMD CPUs 256, where 1,024 asked for the lines too early on
   a Zen 4 EPYC (2026-12-05, 2 cores; bench/README.md): float32 Adam, SGD and Lion and
   bfloat16-state Adam 2-7% faster at 3e7 and 3-6% at 1e7 (medians of 4 alternating pairs of
   processes), alike at 1e6; no prefetch at all was as fast as 256 there, 512 to 4,096
   slower than both. (Another Zen 4 host, of an earlier session, measured 1,024 ahead 7%
   faster than no prefetch at 3e7; 256 was not measured there.) */
static inline ptrdiff_t fo_prefetch_ahead(void) {
    return fo_cpu_is_amd() ? FO_PREFETCH_AHEAD_AMD : FO_PREFETCH_AHEAD;
}

/* ask for the cache line at p (nothing without FO_HAS_PREFETCH), into fo_prefetch_to_l2's
   level when `to_l2`, else L1 */
static inline void fo_prefetch_line(const void* p, int to_l2) {
#if FO_HAS_PREFETCH
    if (to_l2)
        __builtin_prefetch(p, 0, 2);
    else
        __builtin_prefetch(p, 0, 3);
#else
    (void)p, (void)to_l2;
#endif
}

/* ask for the cache lines of the `bytes` bytes at p */
static inline void fo_prefetch_bytes(const void* p, size_t bytes) {
    int to_l2 = fo_prefetch_to_l2();
    for (size_t byte = 0; byte < bytes; byte += 64)
        fo_prefetch_line((const char*)p + byte, to_l2);
}

/* the end of the tile of `len` elements that starts at element `at` of n */
static inline ptrdiff_t fo_tile_end(ptrdiff_t at, ptrdiff_t len, ptrdiff_t n) {
    return n - at < len ? n : at + len;
}

/* Before a tile of `len` elements (of `itemsize` bytes) at element `at` of arrays of n: the
   tile fo_prefetch_ahead() elements ahead in each array (NULL: absent), while it lies inside
   the n elements. The tiled loops' prefetch (common.h, lamb.h, adafactor.h). */
static inline void fo_prefetch_tile(ptrdiff_t at, ptrdiff_t len, ptrdiff_t n, size_t itemsize,
                                    const void* a, const void* b, const void* c,
                                    const void* d, const void* e) {
    const void* arrays[5] = {a, b, c, d, e};
    const ptrdiff_t ahead = fo_prefetch_ahead();
    if (at + ahead + len > n)
        return;
    for (int k = 0; k < 5; k++)
        if (arrays[k] != NULL)
            fo_prefetch_bytes((const char*)arrays[k] + (at + ahead) * itemsize,
                              (size_t)len * itemsize);
}

/* The vector loops of float32 and 16-bit arrays side by side (csrc/adam_lowmem.h's
   bfloat16 state, csrc/adam_mixed.h's half parameters), called at every element i of n a
   loop step starts at (a multiple of 8): every 16 elements the line fo_prefetch_ahead()
   elements ahead in each float32 array, every 32 in each 16-bit array (NULL: absent), while
   that stays inside the n elements. */
static inline void fo_prefetch_mixed(ptrdiff_t i, ptrdiff_t n, const float* f0,
                                     const float* f1, const float* f2, const uint16_t* h0,
                                     const uint16_t* h1, const uint16_t* h2) {
    const float* f[3] = {f0, f1, f2};
    const uint16_t* h[3] = {h0, h1, h2};
    if ((i & 15) != 0)
        return;
    const ptrdiff_t ahead = fo_prefetch_ahead();
    if (i + ahead + 16 > n)
        return;
    for (int k = 0; k < 3; k++)
        if (f[k] != NULL)
            fo_prefetch_bytes(f[k] + i + ahead, 1);
    if ((i & 31) != 0)
        return;
    for (int k = 0; k < 3; k++)
        if (h[k] != NULL)
            fo_prefetch_bytes(h[k] + i + ahead, 1);
}

#endif /* FASTOPTIM_PREFETCH_H */
