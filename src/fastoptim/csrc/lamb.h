/* LAMB (optax's lamb): the "cython" backend's kernel, used by fastoptim/_lamb.pyx.
 *
 * LAMB is not element-wise: each array's update is scaled by the trust ratio
 * ||param|| / ||r|| of the whole array, so it cannot be a kernel of the registry (whose loops
 * and multi-tensor chunking assume element-wise updates). It takes the fewest passes the
 * maths allows, with no temporary array:
 *
 *   pass 1  m = beta1*m + (1-beta1)*g,  v = beta2*v + (1-beta2)*g^2  (g = grad_sign*grad),
 *           stored in place; r = (m*inv_bc1) / (sqrt(v*inv_bc2 + eps_root) + eps)
 *           (+ weight_decay*p) is computed, not stored; sum p^2 and sum r^2 accumulated;
 *   pass 2  r recomputed from the stored m and v (the same expression, so the same bits),
 *           p = p - (lr*trust) * r,  trust = ||p|| / ||r||  (1 where either norm is 0).
 *
 * Fixed-order sums. The array is cut into chunks whose boundaries depend on n alone
 * (fo_lamb_chunk_length); within a chunk the squares are accumulated in double precision
 * in eight lanes (lane k takes the elements i = k mod 8 of the chunk, in order; the tail
 * goes to lane 0) combined pairwise in a fixed order; the chunks' sums are then added in
 * chunk order. Threads (OpenMP, over chunks) and the SIMD level (the chunk loops are
 * compiled for the baseline and for AVX2 and picked at run time) change nothing: the
 * additions are the same, in the same order, and -ffp-contract=off forbids FMA contraction.
 *
 * Both passes ask for the lines fo_prefetch_ahead() elements ahead before each group of
 * FO_LAMB_GROUP elements (csrc/prefetch.h).
 *
 * Weight decay: when weight_decay == 0 the term weight_decay * p is not computed (0 * inf
 * would be NaN), the option branched once per chunk through an always-inline loop with a
 * constant flag, as in adam.h.
 *
 * This header includes itself once per (element type, SIMD target) with FO_LAMB_BODY
 * defined, then defines the dispatching entry points fo_lamb_f32 / fo_lamb_f64.
 */
#ifndef FO_LAMB_BODY
#ifndef FASTOPTIM_LAMB_H
#define FASTOPTIM_LAMB_H

#include <Python.h>
#include <math.h>
#include "prefetch.h"

#if defined(__GNUC__) || defined(__clang__)
#define FO_LAMB_RESTRICT __restrict__
#define FO_LAMB_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FO_LAMB_RESTRICT
#define FO_LAMB_ALWAYS_INLINE static inline
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FO_LAMB_DISPATCH 1
#else
#define FO_LAMB_DISPATCH 0
#endif

/* at most this many chunks per array, each of at least FO_LAMB_MIN_CHUNK elements (a
   multiple of the 8 lanes): the per-chunk sums live on the stack, O(1) memory */
#define FO_LAMB_MAX_CHUNKS 64
#define FO_LAMB_MIN_CHUNK 16384
/* elements buffered at a time by pass 1 (a multiple of 8), and per prefetch of both passes */
#define FO_LAMB_GROUP 64

/* The elements per chunk for an array of n: a function of n alone. */
static Py_ssize_t fo_lamb_chunk_length(Py_ssize_t n) {
    Py_ssize_t chunks = (n + FO_LAMB_MIN_CHUNK - 1) / FO_LAMB_MIN_CHUNK, len;
    if (chunks > FO_LAMB_MAX_CHUNKS)
        chunks = FO_LAMB_MAX_CHUNKS;
    if (chunks < 1)
        chunks = 1;
    len = (n + chunks - 1) / chunks;
    return (len + 7) / 8 * 8;
}

/* ---- the chunk loops, per (type, target) ------------------------------------------------ */
#define FO_LAMB_BODY 1

#define FO_LT float
#define FO_LSQRT sqrtf
#define FO_LNAME(x) fo_##x##_f32_l0
#define FO_LTARGET
#include "lamb.h"
#undef FO_LT
#undef FO_LSQRT
#undef FO_LNAME
#undef FO_LTARGET

#define FO_LT double
#define FO_LSQRT sqrt
#define FO_LNAME(x) fo_##x##_f64_l0
#define FO_LTARGET
#include "lamb.h"
#undef FO_LT
#undef FO_LSQRT
#undef FO_LNAME
#undef FO_LTARGET

#if FO_LAMB_DISPATCH
#define FO_LT float
#define FO_LSQRT sqrtf
#define FO_LNAME(x) fo_##x##_f32_l1
#define FO_LTARGET __attribute__((target("avx2")))
#include "lamb.h"
#undef FO_LT
#undef FO_LSQRT
#undef FO_LNAME
#undef FO_LTARGET

#define FO_LT double
#define FO_LSQRT sqrt
#define FO_LNAME(x) fo_##x##_f64_l1
#define FO_LTARGET __attribute__((target("avx2")))
#include "lamb.h"
#undef FO_LT
#undef FO_LSQRT
#undef FO_LNAME
#undef FO_LTARGET
#endif

#undef FO_LAMB_BODY

/* ---- SIMD level ------------------------------------------------------------------------- */
/* 0: baseline, 1: AVX2; -1 until chosen (the best the CPU has, on first use) */
static int fo_lamb_level_ = -1;

static int fo_lamb_supported(int level) {
    if (level == 0)
        return 1;
#if FO_LAMB_DISPATCH
    if (level == 1) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    }
#endif
    return 0;
}

/* Select a level (tests and benchmarks); returns the active level afterwards. */
static int fo_lamb_select(int level) {
    if (level >= 0 && fo_lamb_supported(level))
        fo_lamb_level_ = level;
    else if (fo_lamb_level_ < 0)
        fo_lamb_level_ = fo_lamb_supported(1) ? 1 : 0;
    return fo_lamb_level_;
}

static int fo_lamb_level(void) {
    return fo_lamb_level_ < 0 ? fo_lamb_select(-1) : fo_lamb_level_;
}

/* ---- the entry points: fo_lamb_f32, fo_lamb_f64 ---------------------------------------- */
#define FO_LAMB_BODY 2

#define FO_LT float
#define FO_LNAME(x) fo_##x##_f32
#define FO_LNAME0(x) fo_##x##_f32_l0
#define FO_LNAME1(x) fo_##x##_f32_l1
#include "lamb.h"
#undef FO_LT
#undef FO_LNAME
#undef FO_LNAME0
#undef FO_LNAME1

#define FO_LT double
#define FO_LNAME(x) fo_##x##_f64
#define FO_LNAME0(x) fo_##x##_f64_l0
#define FO_LNAME1(x) fo_##x##_f64_l1
#include "lamb.h"
#undef FO_LT
#undef FO_LNAME
#undef FO_LNAME0
#undef FO_LNAME1

#undef FO_LAMB_BODY

#endif /* FASTOPTIM_LAMB_H */

#elif FO_LAMB_BODY == 1 /* the chunk loops, once per (FO_LT, FO_LTARGET) ------------------- */

/* r = m_hat / (sqrt(v_hat + eps_root) + eps) (+ weight_decay * p when use_wd) */
FO_LAMB_ALWAYS_INLINE FO_LTARGET FO_LT FO_LNAME(lamb_direction)(
        FO_LT m, FO_LT v, FO_LT p, FO_LT inv_bc1, FO_LT inv_bc2, FO_LT eps_root, FO_LT eps,
        FO_LT weight_decay, int use_wd) {
    FO_LT r = (m * inv_bc1) / (FO_LSQRT(v * inv_bc2 + eps_root) + eps);
    return use_wd ? r + weight_decay * p : r;
}

/* pass 1 over len elements from i: the moments in place, p and r to the buffers */
FO_LAMB_ALWAYS_INLINE FO_LTARGET void FO_LNAME(lamb_moments)(
        const FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT grad,
        FO_LT* FO_LAMB_RESTRICT exp_avg, FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t len,
        FO_LT grad_sign, FO_LT beta1, FO_LT one_minus_beta1, FO_LT beta2,
        FO_LT one_minus_beta2, FO_LT inv_bc1, FO_LT inv_bc2, FO_LT eps_root, FO_LT eps,
        FO_LT weight_decay, FO_LT* FO_LAMB_RESTRICT pb, FO_LT* FO_LAMB_RESTRICT rb,
        int use_wd) {
    for (Py_ssize_t j = 0; j < len; j++) {
        FO_LT p = param[j], d = grad_sign * grad[j];
        FO_LT m = beta1 * exp_avg[j] + one_minus_beta1 * d;
        FO_LT v = beta2 * exp_avg_sq[j] + one_minus_beta2 * (d * d);
        exp_avg[j] = m;
        exp_avg_sq[j] = v;
        pb[j] = p;
        rb[j] = FO_LNAME(lamb_direction)(m, v, p, inv_bc1, inv_bc2, eps_root, eps,
                                         weight_decay, use_wd);
    }
}

/* lane k += x[j]^2 for the elements j = k mod 8 of 8*groups buffered ones, in order */
FO_LAMB_ALWAYS_INLINE FO_LTARGET void FO_LNAME(lamb_lanes)(
        double* FO_LAMB_RESTRICT lanes, const FO_LT* FO_LAMB_RESTRICT x, int groups) {
    for (int j = 0; j < groups; j++)
        for (int k = 0; k < 8; k++)
            lanes[k] += (double)x[8 * j + k] * (double)x[8 * j + k];
}

/* pass 1 over one chunk: the moments in place; sums[0] = sum p^2, sums[1] = sum r^2, each in
   eight lanes (lane k: the elements i = k mod 8, in order; the last n mod 8 in lane 0),
   combined pairwise. The elements go through small stack buffers (FO_LAMB_GROUP of them at
   a time) so that the moments and the sums vectorize as two plain loops. */
FO_LAMB_ALWAYS_INLINE FO_LTARGET void FO_LNAME(lamb_sums_loop)(
        const FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT grad,
        FO_LT* FO_LAMB_RESTRICT exp_avg, FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t n,
        FO_LT grad_sign, FO_LT beta1, FO_LT one_minus_beta1, FO_LT beta2,
        FO_LT one_minus_beta2, FO_LT inv_bc1, FO_LT inv_bc2, FO_LT eps_root, FO_LT eps,
        FO_LT weight_decay, double* sums, int use_wd) {
    double sp[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sr[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    FO_LT pb[FO_LAMB_GROUP], rb[FO_LAMB_GROUP];
    Py_ssize_t i = 0, len;
    while (i < n) {
        len = fo_tile_end(i, FO_LAMB_GROUP, n) - i;
        fo_prefetch_tile(i, FO_LAMB_GROUP, n, sizeof(FO_LT), param, grad, exp_avg, exp_avg_sq,
                         NULL);
        FO_LNAME(lamb_moments)(param + i, grad + i, exp_avg + i, exp_avg_sq + i, len,
                               grad_sign, beta1, one_minus_beta1, beta2, one_minus_beta2,
                               inv_bc1, inv_bc2, eps_root, eps, weight_decay, pb, rb, use_wd);
        if (len == FO_LAMB_GROUP) {
            FO_LNAME(lamb_lanes)(sp, pb, FO_LAMB_GROUP / 8);
            FO_LNAME(lamb_lanes)(sr, rb, FO_LAMB_GROUP / 8);
        } else {
            int groups = (int)(len / 8);
            FO_LNAME(lamb_lanes)(sp, pb, groups);
            FO_LNAME(lamb_lanes)(sr, rb, groups);
            for (Py_ssize_t j = 8 * groups; j < len; j++) {
                sp[0] += (double)pb[j] * (double)pb[j];
                sr[0] += (double)rb[j] * (double)rb[j];
            }
        }
        i += len;
    }
    sums[0] = ((sp[0] + sp[1]) + (sp[2] + sp[3])) + ((sp[4] + sp[5]) + (sp[6] + sp[7]));
    sums[1] = ((sr[0] + sr[1]) + (sr[2] + sr[3])) + ((sr[4] + sr[5]) + (sr[6] + sr[7]));
}

FO_LTARGET static void FO_LNAME(lamb_sums)(
        const FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT grad,
        FO_LT* FO_LAMB_RESTRICT exp_avg, FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t n,
        FO_LT grad_sign, FO_LT beta1, FO_LT one_minus_beta1, FO_LT beta2,
        FO_LT one_minus_beta2, FO_LT inv_bc1, FO_LT inv_bc2, FO_LT eps_root, FO_LT eps,
        FO_LT weight_decay, double* sums) {
    if (weight_decay != 0)
        FO_LNAME(lamb_sums_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, beta1,
                                 one_minus_beta1, beta2, one_minus_beta2, inv_bc1, inv_bc2,
                                 eps_root, eps, weight_decay, sums, 1);
    else
        FO_LNAME(lamb_sums_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, beta1,
                                 one_minus_beta1, beta2, one_minus_beta2, inv_bc1, inv_bc2,
                                 eps_root, eps, weight_decay, sums, 0);
}

/* pass 2 over one chunk: p = p - scale * r, r recomputed from the stored moments */
FO_LAMB_ALWAYS_INLINE FO_LTARGET void FO_LNAME(lamb_apply_loop)(
        FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT exp_avg,
        const FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t n, FO_LT inv_bc1, FO_LT inv_bc2,
        FO_LT eps_root, FO_LT eps, FO_LT weight_decay, FO_LT scale, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_LAMB_GROUP) {
        Py_ssize_t end = fo_tile_end(t, FO_LAMB_GROUP, n);
        fo_prefetch_tile(t, FO_LAMB_GROUP, n, sizeof(FO_LT), param, exp_avg, exp_avg_sq, NULL,
                         NULL);
        for (Py_ssize_t i = t; i < end; i++) {
            FO_LT p = param[i];
            param[i] = p - scale * FO_LNAME(lamb_direction)(exp_avg[i], exp_avg_sq[i], p,
                                                            inv_bc1, inv_bc2, eps_root, eps,
                                                            weight_decay, use_wd);
        }
    }
}

FO_LTARGET static void FO_LNAME(lamb_apply)(
        FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT exp_avg,
        const FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t n, FO_LT inv_bc1, FO_LT inv_bc2,
        FO_LT eps_root, FO_LT eps, FO_LT weight_decay, FO_LT scale) {
    if (weight_decay != 0)
        FO_LNAME(lamb_apply_loop)(param, exp_avg, exp_avg_sq, n, inv_bc1, inv_bc2, eps_root,
                                  eps, weight_decay, scale, 1);
    else
        FO_LNAME(lamb_apply_loop)(param, exp_avg, exp_avg_sq, n, inv_bc1, inv_bc2, eps_root,
                                  eps, weight_decay, scale, 0);
}

#else /* FO_LAMB_BODY == 2: the entry point, once per FO_LT ------------------------------- */

/* pass 1 over chunk c (of length len) of the array of n, at SIMD level `level`: its sums
   go to sums[2c], sums[2c + 1] */
static void FO_LNAME(lamb_chunk_sums)(
        int level, Py_ssize_t c, Py_ssize_t len, Py_ssize_t n, const FO_LT* param,
        const FO_LT* grad, FO_LT* exp_avg, FO_LT* exp_avg_sq, FO_LT grad_sign, FO_LT beta1,
        FO_LT one_minus_beta1, FO_LT beta2, FO_LT one_minus_beta2, FO_LT inv_bc1,
        FO_LT inv_bc2, FO_LT eps_root, FO_LT eps, FO_LT weight_decay, double* sums) {
    Py_ssize_t lo = c * len, m = (n - lo < len) ? n - lo : len;
#if FO_LAMB_DISPATCH
    if (level == 1) {
        FO_LNAME1(lamb_sums)(param + lo, grad + lo, exp_avg + lo, exp_avg_sq + lo, m,
                             grad_sign, beta1, one_minus_beta1, beta2, one_minus_beta2,
                             inv_bc1, inv_bc2, eps_root, eps, weight_decay, sums + 2 * c);
        return;
    }
#endif
    FO_LNAME0(lamb_sums)(param + lo, grad + lo, exp_avg + lo, exp_avg_sq + lo, m, grad_sign,
                         beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bc1, inv_bc2,
                         eps_root, eps, weight_decay, sums + 2 * c);
}

/* pass 2 over chunk c, at SIMD level `level` */
static void FO_LNAME(lamb_chunk_apply)(
        int level, Py_ssize_t c, Py_ssize_t len, Py_ssize_t n, FO_LT* param,
        const FO_LT* exp_avg, const FO_LT* exp_avg_sq, FO_LT inv_bc1, FO_LT inv_bc2,
        FO_LT eps_root, FO_LT eps, FO_LT weight_decay, FO_LT scale) {
    Py_ssize_t lo = c * len, m = (n - lo < len) ? n - lo : len;
#if FO_LAMB_DISPATCH
    if (level == 1) {
        FO_LNAME1(lamb_apply)(param + lo, exp_avg + lo, exp_avg_sq + lo, m, inv_bc1, inv_bc2,
                              eps_root, eps, weight_decay, scale);
        return;
    }
#endif
    FO_LNAME0(lamb_apply)(param + lo, exp_avg + lo, exp_avg_sq + lo, m, inv_bc1, inv_bc2,
                          eps_root, eps, weight_decay, scale);
}

/* One LAMB step of one array of n elements, in place; returns the trust ratio it used.
 * The scalars after n are the fields of LAMBCoefficients (coefficients.pxd), in order;
 * threads: OpenMP threads over the chunks (1: no parallel region at all, as in a forked
 * child). */
static double FO_LNAME(lamb)(
        FO_LT* FO_LAMB_RESTRICT param, const FO_LT* FO_LAMB_RESTRICT grad,
        FO_LT* FO_LAMB_RESTRICT exp_avg, FO_LT* FO_LAMB_RESTRICT exp_avg_sq, Py_ssize_t n,
        FO_LT grad_sign, FO_LT beta1, FO_LT one_minus_beta1, FO_LT beta2,
        FO_LT one_minus_beta2, FO_LT inv_bias_correction1, FO_LT inv_bias_correction2,
        FO_LT eps_root, FO_LT eps, FO_LT weight_decay, double lr, int threads) {
    double sums[2 * FO_LAMB_MAX_CHUNKS], sp = 0.0, sr = 0.0, trust;
    Py_ssize_t len = fo_lamb_chunk_length(n), chunks = n > 0 ? (n + len - 1) / len : 0, c;
    int level = fo_lamb_level();
    FO_LT scale;
    if (threads > 1 && chunks > 1) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (c = 0; c < chunks; c++)
            FO_LNAME(lamb_chunk_sums)(level, c, len, n, param, grad, exp_avg, exp_avg_sq,
                                      grad_sign, beta1, one_minus_beta1, beta2,
                                      one_minus_beta2, inv_bias_correction1,
                                      inv_bias_correction2, eps_root, eps, weight_decay, sums);
    } else {
        for (c = 0; c < chunks; c++)
            FO_LNAME(lamb_chunk_sums)(level, c, len, n, param, grad, exp_avg, exp_avg_sq,
                                      grad_sign, beta1, one_minus_beta1, beta2,
                                      one_minus_beta2, inv_bias_correction1,
                                      inv_bias_correction2, eps_root, eps, weight_decay, sums);
    }
    for (c = 0; c < chunks; c++) {      /* in chunk order */
        sp += sums[2 * c];
        sr += sums[2 * c + 1];
    }
    trust = (sp == 0.0 || sr == 0.0) ? 1.0 : sqrt(sp) / sqrt(sr);
    scale = (FO_LT)(lr * trust);
    if (threads > 1 && chunks > 1) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (c = 0; c < chunks; c++)
            FO_LNAME(lamb_chunk_apply)(level, c, len, n, param, exp_avg, exp_avg_sq,
                                       inv_bias_correction1, inv_bias_correction2, eps_root,
                                       eps, weight_decay, scale);
    } else {
        for (c = 0; c < chunks; c++)
            FO_LNAME(lamb_chunk_apply)(level, c, len, n, param, exp_avg, exp_avg_sq,
                                       inv_bias_correction1, inv_bias_correction2, eps_root,
                                       eps, weight_decay, scale);
    }
    return trust;
}

#endif /* FO_LAMB_BODY */
