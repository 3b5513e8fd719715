/* Adafactor (torch 2.13's torch.optim.Adafactor): the "cython" backend's kernel, used by
 * fastoptim/_adafactor.pyx.
 *
 * Adafactor is not element-wise: a matrix's second moment is the outer product of a row
 * factor R and a column factor C (the means of g^2 over each row and each column), and the
 * step is scaled by the RMS of the parameter and clipped by the RMS of the whole update.
 * A matrix here is the last two dimensions of the array (rows x cols in memory order);
 * leading dimensions are `batches` independent matrices, as in torch. The fewest passes the
 * maths allows, no temporary array of the parameter's size:
 *
 *   factored (>= 2-D), three passes over g:
 *     pass 1  row sums and column sums of g^2 and the sum of p^2 (reads p, g);
 *             then R = lerp(R, rowsum/cols, w), C = lerp(C, colsum/rows, w) (w = t**beta2_decay),
 *             rm = max(mean(R), eps1) (small: O(rows + cols));
 *     pass 2  sum of u^2, u = g * min(ir_i * ic_j, 1/eps1)  (reads g), with the factors'
 *             inverse square roots ir_i = 1/sqrt(R_i), ic_j = 1/sqrt(C_j/rm) computed once
 *             per row and column: torch's g / sqrt(max(R_i*C_j/rm, eps1^2)) without a
 *             square root or a division per element (equal up to rounding). The clipping
 *             needs the RMS of the whole update before any element is written;
 *     pass 3  p = p*(1 - lr*wd) - (alpha/denom) * u               (reads p, g; writes p)
 *   unfactored (1-D, 0-D), two passes: the variance is element-wise, so pass 1 updates it in
 *     place and sums p^2 and u^2 at once; pass 2 recomputes u from the stored variance.
 *
 *   alpha = max(eps2, RMS(p)) * min(lr, 1/sqrt(t)),  denom = max(1, RMS(u)/d).
 *
 * Fixed-order sums. Each matrix is cut into blocks of consecutive rows whose boundaries
 * depend on (rows, cols) alone (fo_af_blocks); a vector into chunks that depend on n alone.
 * Within a row the squares are accumulated in double precision in eight lanes (lane k: the
 * elements j = k mod 8 of the row, in order; the tail to lane 0) combined pairwise; rows are
 * added in order within a block, blocks in order; the column sums of a block go to its own
 * row of the workspace and are added in block order. Threads (OpenMP over blocks) and the
 * SIMD level (baseline and AVX2 variants picked at run time) change nothing, bitwise; and
 * -ffp-contract=off forbids FMA contraction.
 *
 * The caller passes a workspace of fo_af_workspace(batches, rows, cols) doubles (O(rows +
 * cols) per matrix: up to FO_AF_MAX_BLOCKS rows of column partial sums).
 *
 * Every pass walks its rows (or run) in tiles of FO_AF_TILE (64) elements and, before each,
 * asks for the lines fo_prefetch_ahead() elements ahead (csrc/prefetch.h); the lanes' additions
 * are those above.
 */
#ifndef FO_AF_BODY
#ifndef FASTOPTIM_ADAFACTOR_H
#define FASTOPTIM_ADAFACTOR_H

#include <Python.h>
#include <math.h>
#include "prefetch.h"

/* elements per prefetch tile of every pass (a multiple of the 8 lanes) */
#define FO_AF_TILE 64

#if defined(__GNUC__) || defined(__clang__)
#define FO_AF_RESTRICT __restrict__
#define FO_AF_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FO_AF_RESTRICT
#define FO_AF_ALWAYS_INLINE static inline
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FO_AF_DISPATCH 1
#else
#define FO_AF_DISPATCH 0
#endif

/* a matrix: at most this many row blocks, each of at least FO_AF_MIN_BLOCK elements */
#define FO_AF_MAX_BLOCKS 16
#define FO_AF_MIN_BLOCK 16384
/* a vector: at most this many chunks (a multiple of 8 elements each) */
#define FO_AF_MAX_CHUNKS 64

/* Rows per block of a rows x cols matrix: a function of the shape alone. */
static Py_ssize_t fo_af_block_rows(Py_ssize_t rows, Py_ssize_t cols) {
    Py_ssize_t blocks = (rows * cols + FO_AF_MIN_BLOCK - 1) / FO_AF_MIN_BLOCK;
    if (blocks > FO_AF_MAX_BLOCKS)
        blocks = FO_AF_MAX_BLOCKS;
    if (blocks > rows)
        blocks = rows;
    if (blocks < 1)
        blocks = 1;
    return rows > 0 ? (rows + blocks - 1) / blocks : 1;
}

/* Row blocks of a rows x cols matrix. */
static Py_ssize_t fo_af_blocks(Py_ssize_t rows, Py_ssize_t cols) {
    Py_ssize_t len = fo_af_block_rows(rows, cols);
    return rows > 0 ? (rows + len - 1) / len : 1;
}

/* Doubles of workspace a step of `batches` rows x cols matrices needs: the column partial
   sums of every block, then per block the sums of p^2 and of u^2, then the batches*cols
   column factors ic (held in doubles, as the element type). */
static Py_ssize_t fo_af_workspace(Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols) {
    Py_ssize_t tasks = batches * fo_af_blocks(rows, cols);
    return tasks * cols + 2 * tasks + batches * cols;
}

/* Elements per chunk of a vector of n: a function of n alone (a multiple of 8). */
static Py_ssize_t fo_af_chunk_length(Py_ssize_t n) {
    Py_ssize_t chunks = (n + FO_AF_MIN_BLOCK - 1) / FO_AF_MIN_BLOCK, len;
    if (chunks > FO_AF_MAX_CHUNKS)
        chunks = FO_AF_MAX_CHUNKS;
    if (chunks < 1)
        chunks = 1;
    len = (n + chunks - 1) / chunks;
    return (len + 7) / 8 * 8;
}

static double fo_af_lanes(const double* l) {
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* ---- the block loops, per (type, target) ------------------------------------------------ */
#define FO_AF_BODY 1

#define FO_AT float
#define FO_ASQRT sqrtf
#define FO_ANAME(x) fo_##x##_f32_l0
#define FO_ATARGET
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRT
#undef FO_ANAME
#undef FO_ATARGET

#define FO_AT double
#define FO_ASQRT sqrt
#define FO_ANAME(x) fo_##x##_f64_l0
#define FO_ATARGET
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRT
#undef FO_ANAME
#undef FO_ATARGET

#if FO_AF_DISPATCH
#define FO_AT float
#define FO_ASQRT sqrtf
#define FO_ANAME(x) fo_##x##_f32_l1
#define FO_ATARGET __attribute__((target("avx2")))
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRT
#undef FO_ANAME
#undef FO_ATARGET

#define FO_AT double
#define FO_ASQRT sqrt
#define FO_ANAME(x) fo_##x##_f64_l1
#define FO_ATARGET __attribute__((target("avx2")))
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRT
#undef FO_ANAME
#undef FO_ATARGET
#endif

#undef FO_AF_BODY

/* ---- SIMD level: 0 baseline, 1 AVX2; -1 until chosen ------------------------------------ */
static int fo_af_level_ = -1;

static int fo_af_supported(int level) {
    if (level == 0)
        return 1;
#if FO_AF_DISPATCH
    if (level == 1) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    }
#endif
    return 0;
}

static int fo_af_select(int level) {
    if (level >= 0 && fo_af_supported(level))
        fo_af_level_ = level;
    else if (fo_af_level_ < 0)
        fo_af_level_ = fo_af_supported(1) ? 1 : 0;
    return fo_af_level_;
}

static int fo_af_level(void) {
    return fo_af_level_ < 0 ? fo_af_select(-1) : fo_af_level_;
}

/* ---- the entry points ------------------------------------------------------------------- */
#define FO_AF_BODY 2

#define FO_AT float
#define FO_ASQRTT sqrtf
#define FO_ANAME(x) fo_##x##_f32
#define FO_ANAME0(x) fo_##x##_f32_l0
#define FO_ANAME1(x) fo_##x##_f32_l1
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRTT
#undef FO_ANAME
#undef FO_ANAME0
#undef FO_ANAME1

#define FO_AT double
#define FO_ASQRTT sqrt
#define FO_ANAME(x) fo_##x##_f64
#define FO_ANAME0(x) fo_##x##_f64_l0
#define FO_ANAME1(x) fo_##x##_f64_l1
#include "adafactor.h"
#undef FO_AT
#undef FO_ASQRTT
#undef FO_ANAME
#undef FO_ANAME0
#undef FO_ANAME1

#undef FO_AF_BODY

#endif /* FASTOPTIM_ADAFACTOR_H */

#elif FO_AF_BODY == 1 /* the block loops, once per (FO_AT, FO_ATARGET) --------------------- */

/* torch's lerp: a + w*(b - a) for |w| < 0.5, else b - (b - a)*(1 - w) */
FO_AF_ALWAYS_INLINE FO_ATARGET FO_AT FO_ANAME(af_lerp)(FO_AT a, FO_AT b, FO_AT w) {
    return (w < (FO_AT)0.5 && w > (FO_AT)-0.5) ? a + w * (b - a) : b - (b - a) * ((FO_AT)1 - w);
}

/* u = (1 / sqrt(max(v, eps1^2))) * g, as torch's clamp_, rsqrt_, mul_ (NaN kept) */
FO_AF_ALWAYS_INLINE FO_ATARGET FO_AT FO_ANAME(af_update)(FO_AT v, FO_AT g, FO_AT eps1_sq) {
    v = v < eps1_sq ? eps1_sq : v;
    return ((FO_AT)1 / FO_ASQRT(v)) * g;
}

/* before a tile of FO_AF_TILE elements at offset `at` of x, y and z: prefetch the tile
   fo_prefetch_ahead() ahead in each (NULL: absent) while it lies before `end` */
FO_AF_ALWAYS_INLINE FO_ATARGET void FO_ANAME(af_prefetch)(const FO_AT* x, const FO_AT* y,
                                                          const FO_AT* z, Py_ssize_t at,
                                                          Py_ssize_t end) {
    fo_prefetch_tile(at, FO_AF_TILE, end, sizeof(FO_AT), x, y, z, NULL, NULL);
}

/* u = min(ir * ic, cap) * g (cap = 1/eps1; NaN kept): a factored array's update */
FO_AF_ALWAYS_INLINE FO_ATARGET FO_AT FO_ANAME(af_factored)(FO_AT ir, FO_AT ic, FO_AT g,
                                                           FO_AT cap) {
    FO_AT s = ir * ic;
    return (s > cap ? cap : s) * g;
}

/* pass 1 over rows [r0, r1) of a matrix: R_i = lerp(R_i, sum_j g_ij^2 / cols, w); the
   block's column sums of g^2 to colpart[0..cols); returns the block's sum of p^2 */
FO_ATARGET static double FO_ANAME(af_rows)(
        const FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        FO_AT* FO_AF_RESTRICT rvar, double* FO_AF_RESTRICT colpart, Py_ssize_t r0,
        Py_ssize_t r1, Py_ssize_t cols, FO_AT w) {
    double pl[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t body = cols - cols % 8;
    for (Py_ssize_t j = 0; j < cols; j++)
        colpart[j] = 0.0;
    for (Py_ssize_t i = r0; i < r1; i++) {
        const FO_AT* FO_AF_RESTRICT g = grad + i * cols;
        const FO_AT* FO_AF_RESTRICT p = param + i * cols;
        double rl[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        Py_ssize_t j;
        for (Py_ssize_t t = 0; t < body; t += FO_AF_TILE) {
            Py_ssize_t end = fo_tile_end(t, FO_AF_TILE, body);
            FO_ANAME(af_prefetch)(grad, param, NULL, i * cols + t, r1 * cols);
            for (j = t; j < end; j += 8)
                for (int k = 0; k < 8; k++) {
                    double x = (double)g[j + k] * (double)g[j + k];
                    rl[k] += x;
                    colpart[j + k] += x;
                    pl[k] += (double)p[j + k] * (double)p[j + k];
                }
        }
        j = body;
        for (; j < cols; j++) {
            double x = (double)g[j] * (double)g[j];
            rl[0] += x;
            colpart[j] += x;
            pl[0] += (double)p[j] * (double)p[j];
        }
        rvar[i] = FO_ANAME(af_lerp)(rvar[i], (FO_AT)(fo_af_lanes(rl) / (double)cols), w);
    }
    return fo_af_lanes(pl);
}

/* pass 2 over rows [r0, r1): the block's sum of u^2, u_ij = factored(ir_i, ic_j, g_ij) */
FO_ATARGET static double FO_ANAME(af_usum)(
        const FO_AT* FO_AF_RESTRICT grad, const FO_AT* FO_AF_RESTRICT rvar,
        const FO_AT* FO_AF_RESTRICT ic, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t cols,
        FO_AT cap) {
    double ul[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t body = cols - cols % 8;
    for (Py_ssize_t i = r0; i < r1; i++) {
        const FO_AT* FO_AF_RESTRICT g = grad + i * cols;
        FO_AT ir = (FO_AT)1 / FO_ASQRT(rvar[i]);
        Py_ssize_t j;
        for (Py_ssize_t t = 0; t < body; t += FO_AF_TILE) {
            Py_ssize_t end = fo_tile_end(t, FO_AF_TILE, body);
            FO_ANAME(af_prefetch)(grad, NULL, NULL, i * cols + t, r1 * cols);
            for (j = t; j < end; j += 8)
                for (int k = 0; k < 8; k++) {
                    FO_AT u = FO_ANAME(af_factored)(ir, ic[j + k], g[j + k], cap);
                    ul[k] += (double)u * (double)u;
                }
        }
        j = body;
        for (; j < cols; j++) {
            FO_AT u = FO_ANAME(af_factored)(ir, ic[j], g[j], cap);
            ul[0] += (double)u * (double)u;
        }
    }
    return fo_af_lanes(ul);
}

/* pass 3 over rows [r0, r1): p = p*decay (when use_wd) + step*u, u with g = grad_sign*grad */
FO_AF_ALWAYS_INLINE FO_ATARGET void FO_ANAME(af_apply_loop)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        const FO_AT* FO_AF_RESTRICT rvar, const FO_AT* FO_AF_RESTRICT ic, Py_ssize_t r0,
        Py_ssize_t r1, Py_ssize_t cols, FO_AT cap, FO_AT grad_sign, FO_AT decay, FO_AT step,
        int use_wd) {
    for (Py_ssize_t i = r0; i < r1; i++) {
        FO_AT* FO_AF_RESTRICT p = param + i * cols;
        const FO_AT* FO_AF_RESTRICT g = grad + i * cols;
        FO_AT ir = (FO_AT)1 / FO_ASQRT(rvar[i]);
        for (Py_ssize_t t = 0; t < cols; t += FO_AF_TILE) {
            Py_ssize_t end = fo_tile_end(t, FO_AF_TILE, cols);
            FO_ANAME(af_prefetch)(grad, param, NULL, i * cols + t, r1 * cols);
            for (Py_ssize_t j = t; j < end; j++) {
                FO_AT u = FO_ANAME(af_factored)(ir, ic[j], grad_sign * g[j], cap);
                FO_AT q = use_wd ? p[j] * decay : p[j];
                p[j] = q + step * u;
            }
        }
    }
}

FO_ATARGET static void FO_ANAME(af_apply)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        const FO_AT* FO_AF_RESTRICT rvar, const FO_AT* FO_AF_RESTRICT ic, Py_ssize_t r0,
        Py_ssize_t r1, Py_ssize_t cols, FO_AT cap, FO_AT grad_sign, FO_AT decay, FO_AT step,
        int use_wd) {
    if (use_wd)
        FO_ANAME(af_apply_loop)(param, grad, rvar, ic, r0, r1, cols, cap, grad_sign, decay,
                                step, 1);
    else
        FO_ANAME(af_apply_loop)(param, grad, rvar, ic, r0, r1, cols, cap, grad_sign, decay,
                                step, 0);
}

/* vector pass 1 over [lo, hi): v = lerp(v, g^2, w) in place; sums[0] += p^2, sums[1] += u^2 */
FO_ATARGET static void FO_ANAME(af_vec_sums)(
        const FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        FO_AT* FO_AF_RESTRICT var, Py_ssize_t lo, Py_ssize_t hi, FO_AT grad_sign, FO_AT w,
        FO_AT eps1_sq, double* sums) {
    double pl[8] = {0, 0, 0, 0, 0, 0, 0, 0}, ul[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t i = lo, body = lo + (hi - lo) - (hi - lo) % 8;
    for (Py_ssize_t t = lo; t < body; t += FO_AF_TILE) {
        Py_ssize_t end = fo_tile_end(t, FO_AF_TILE, body);
        FO_ANAME(af_prefetch)(grad, param, var, t, hi);
        for (i = t; i < end; i += 8)
            for (int k = 0; k < 8; k++) {
                FO_AT g = grad_sign * grad[i + k];
                FO_AT v = FO_ANAME(af_lerp)(var[i + k], g * g, w);
                FO_AT u = FO_ANAME(af_update)(v, g, eps1_sq);
                var[i + k] = v;
                pl[k] += (double)param[i + k] * (double)param[i + k];
                ul[k] += (double)u * (double)u;
            }
    }
    i = body;
    for (; i < hi; i++) {
        FO_AT g = grad_sign * grad[i];
        FO_AT v = FO_ANAME(af_lerp)(var[i], g * g, w);
        FO_AT u = FO_ANAME(af_update)(v, g, eps1_sq);
        var[i] = v;
        pl[0] += (double)param[i] * (double)param[i];
        ul[0] += (double)u * (double)u;
    }
    sums[0] = fo_af_lanes(pl);
    sums[1] = fo_af_lanes(ul);
}

/* vector pass 2 over [lo, hi): p = p*decay (when use_wd) + step*u, u from the stored v */
FO_AF_ALWAYS_INLINE FO_ATARGET void FO_ANAME(af_vec_apply_loop)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        const FO_AT* FO_AF_RESTRICT var, Py_ssize_t lo, Py_ssize_t hi, FO_AT grad_sign,
        FO_AT eps1_sq, FO_AT decay, FO_AT step, int use_wd) {
    for (Py_ssize_t t = lo; t < hi; t += FO_AF_TILE) {
        Py_ssize_t end = fo_tile_end(t, FO_AF_TILE, hi);
        FO_ANAME(af_prefetch)(grad, param, var, t, hi);
        for (Py_ssize_t i = t; i < end; i++) {
            FO_AT u = FO_ANAME(af_update)(var[i], grad_sign * grad[i], eps1_sq);
            FO_AT q = use_wd ? param[i] * decay : param[i];
            param[i] = q + step * u;
        }
    }
}

FO_ATARGET static void FO_ANAME(af_vec_apply)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        const FO_AT* FO_AF_RESTRICT var, Py_ssize_t lo, Py_ssize_t hi, FO_AT grad_sign,
        FO_AT eps1_sq, FO_AT decay, FO_AT step, int use_wd) {
    if (use_wd)
        FO_ANAME(af_vec_apply_loop)(param, grad, var, lo, hi, grad_sign, eps1_sq, decay, step, 1);
    else
        FO_ANAME(af_vec_apply_loop)(param, grad, var, lo, hi, grad_sign, eps1_sq, decay, step, 0);
}

#else /* FO_AF_BODY == 2: the entry points, once per FO_AT -------------------------------- */

#if FO_AF_DISPATCH
#define FO_AF_CALL(level, fn, ...) \
    ((level) == 1 ? FO_ANAME1(fn)(__VA_ARGS__) : FO_ANAME0(fn)(__VA_ARGS__))
#else
#define FO_AF_CALL(level, fn, ...) FO_ANAME0(fn)(__VA_ARGS__)
#endif

/* alpha/denom of torch: max(eps2, RMS(p)) * rho / max(1, RMS(u)/d), negated */
static double FO_ANAME(af_step)(double sum_p2, double sum_u2, Py_ssize_t n, double eps2,
                                double rho, double d) {
    double root_n = sqrt((double)n);
    double rms_p = sqrt(sum_p2) / root_n, alpha = (rms_p > eps2 ? rms_p : eps2) * rho;
    double clip = sqrt(sum_u2) / (root_n * d);
    return -alpha / (clip > 1.0 ? clip : 1.0);
}

/* Everything a task of a factored step reads: the arrays, the shape, the coefficients. */
typedef struct {
    FO_AT* param;
    const FO_AT* grad;
    FO_AT* rvar;
    FO_AT* cvar;
    double* work;
    double* psum;
    double* usum;
    FO_AT* ic;
    Py_ssize_t rows, cols, len, nb;
    FO_AT grad_sign, w, cap, decay, step;
    int use_wd, level;
} FO_ANAME(af_args);

/* Task c (matrix c / nb, its row block c % nb) of pass 1, 2 or 3. */
static void FO_ANAME(af_task)(const FO_ANAME(af_args)* a, int pass, Py_ssize_t c) {
    Py_ssize_t b = c / a->nb, rows = a->rows, cols = a->cols;
    Py_ssize_t r0 = (c % a->nb) * a->len, r1 = r0 + a->len < rows ? r0 + a->len : rows;
    Py_ssize_t base = b * rows * cols;
    if (pass == 1)
        a->psum[c] = FO_AF_CALL(a->level, af_rows, a->param + base, a->grad + base,
                                a->rvar + b * rows, a->work + c * cols, r0, r1, cols, a->w);
    else if (pass == 2)
        a->usum[c] = FO_AF_CALL(a->level, af_usum, a->grad + base, a->rvar + b * rows,
                                a->ic + b * cols, r0, r1, cols, a->cap);
    else
        FO_AF_CALL(a->level, af_apply, a->param + base, a->grad + base, a->rvar + b * rows,
                   a->ic + b * cols, r0, r1, cols, a->cap, a->grad_sign, a->decay, a->step,
                   a->use_wd);
}

/* Every task of a pass: on `threads` OpenMP threads, or with no parallel region at all
   (a small call, or a forked child) when par is 0. */
static void FO_ANAME(af_pass)(const FO_ANAME(af_args)* a, int pass, Py_ssize_t tasks,
                              int par, int threads) {
    Py_ssize_t c;
    if (par) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (c = 0; c < tasks; c++)
            FO_ANAME(af_task)(a, pass, c);
    } else {
        for (c = 0; c < tasks; c++)
            FO_ANAME(af_task)(a, pass, c);
    }
}

/* One Adafactor step of `batches` factored rows x cols matrices (C order), in place.
 * rvar: batches*rows row factors, cvar: batches*cols column factors; norm_by_cols: rm is
 * the mean of the column factors (a transposed, F-ordered matrix: its torch rows are the
 * memory columns). work: fo_af_workspace(batches, rows, cols) doubles. The scalars are
 * AdafactorCoefficients (_adafactor.pxd). threads: OpenMP threads over the row blocks. */
static void FO_ANAME(adafactor)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        FO_AT* FO_AF_RESTRICT rvar, FO_AT* FO_AF_RESTRICT cvar, double* FO_AF_RESTRICT work,
        Py_ssize_t batches, Py_ssize_t rows, Py_ssize_t cols, int norm_by_cols,
        FO_AT grad_sign, FO_AT w, FO_AT eps1, FO_AT eps1_sq, double eps2, double rho,
        FO_AT decay, int use_wd, double d, int threads) {
    FO_ANAME(af_args) a;
    Py_ssize_t n = batches * rows * cols, tasks, c;
    double sum_p2 = 0.0, sum_u2 = 0.0;
    int par;
    if (n == 0)
        return;
    a.param = param, a.grad = grad, a.rvar = rvar, a.cvar = cvar, a.work = work;
    a.rows = rows, a.cols = cols;
    a.len = fo_af_block_rows(rows, cols), a.nb = fo_af_blocks(rows, cols);
    tasks = batches * a.nb;
    a.psum = work + tasks * cols, a.usum = a.psum + tasks;
    a.ic = (FO_AT*)(a.usum + tasks);
    a.grad_sign = grad_sign, a.w = w, a.cap = (FO_AT)1 / FO_ASQRTT(eps1_sq);
    a.decay = decay, a.use_wd = use_wd, a.level = fo_af_level();
    par = threads > 1 && tasks > 1;
    FO_ANAME(af_pass)(&a, 1, tasks, par, threads);
    /* the factors (O(rows + cols) per matrix), sums in block and row order */
    for (Py_ssize_t b = 0; b < batches; b++) {
        FO_AT* cv = cvar + b * cols;
        const FO_AT* rv = rvar + b * rows;
        double mean = 0.0;
        FO_AT m;
        for (Py_ssize_t j = 0; j < cols; j++) {
            double s = 0.0;
            for (Py_ssize_t k = 0; k < a.nb; k++)
                s += work[(b * a.nb + k) * cols + j];
            cv[j] = FO_ANAME0(af_lerp)(cv[j], (FO_AT)(s / (double)rows), w);
        }
        if (norm_by_cols) {
            for (Py_ssize_t j = 0; j < cols; j++)
                mean += (double)cv[j];
            m = (FO_AT)(mean / (double)cols);
        } else {
            for (Py_ssize_t i = 0; i < rows; i++)
                mean += (double)rv[i];
            m = (FO_AT)(mean / (double)rows);
        }
        m = m < eps1 ? eps1 : m;                    /* torch's clamp_(min=eps1), NaN kept */
        for (Py_ssize_t j = 0; j < cols; j++)
            a.ic[b * cols + j] = (FO_AT)1 / FO_ASQRTT(cv[j] / m);
    }
    FO_ANAME(af_pass)(&a, 2, tasks, par, threads);
    for (c = 0; c < tasks; c++) {      /* in task order */
        sum_p2 += a.psum[c];
        sum_u2 += a.usum[c];
    }
    a.step = (FO_AT)FO_ANAME(af_step)(sum_p2, sum_u2, n, eps2, rho, d);
    FO_ANAME(af_pass)(&a, 3, tasks, par, threads);
}

/* Everything a chunk of an unfactored step reads. */
typedef struct {
    FO_AT* param;
    const FO_AT* grad;
    FO_AT* var;
    double* sums;
    Py_ssize_t n, len;
    FO_AT grad_sign, w, eps1_sq, decay, step;
    int use_wd, level;
} FO_ANAME(af_vec_args);

static void FO_ANAME(af_vec_task)(const FO_ANAME(af_vec_args)* a, int pass, Py_ssize_t c) {
    Py_ssize_t lo = c * a->len, hi = lo + a->len < a->n ? lo + a->len : a->n;
    if (pass == 1)
        FO_AF_CALL(a->level, af_vec_sums, a->param, a->grad, a->var, lo, hi, a->grad_sign,
                   a->w, a->eps1_sq, a->sums + 2 * c);
    else
        FO_AF_CALL(a->level, af_vec_apply, a->param, a->grad, a->var, lo, hi, a->grad_sign,
                   a->eps1_sq, a->decay, a->step, a->use_wd);
}

static void FO_ANAME(af_vec_pass)(const FO_ANAME(af_vec_args)* a, int pass,
                                  Py_ssize_t chunks, int par, int threads) {
    Py_ssize_t c;
    if (par) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (c = 0; c < chunks; c++)
            FO_ANAME(af_vec_task)(a, pass, c);
    } else {
        for (c = 0; c < chunks; c++)
            FO_ANAME(af_vec_task)(a, pass, c);
    }
}

/* One Adafactor step of an unfactored array of n (1-D or 0-D in torch), in place. */
static void FO_ANAME(adafactor_vec)(
        FO_AT* FO_AF_RESTRICT param, const FO_AT* FO_AF_RESTRICT grad,
        FO_AT* FO_AF_RESTRICT var, Py_ssize_t n, FO_AT grad_sign, FO_AT w, FO_AT eps1_sq,
        double eps2, double rho, FO_AT decay, int use_wd, double d, int threads) {
    double sums[2 * FO_AF_MAX_CHUNKS], sum_p2 = 0.0, sum_u2 = 0.0;
    FO_ANAME(af_vec_args) a;
    Py_ssize_t chunks, c;
    int par;
    if (n == 0)
        return;
    a.param = param, a.grad = grad, a.var = var, a.sums = sums, a.n = n;
    a.len = fo_af_chunk_length(n);
    chunks = (n + a.len - 1) / a.len;
    a.grad_sign = grad_sign, a.w = w, a.eps1_sq = eps1_sq, a.decay = decay;
    a.use_wd = use_wd, a.level = fo_af_level();
    par = threads > 1 && chunks > 1;
    FO_ANAME(af_vec_pass)(&a, 1, chunks, par, threads);
    for (c = 0; c < chunks; c++) {
        sum_p2 += sums[2 * c];
        sum_u2 += sums[2 * c + 1];
    }
    a.step = (FO_AT)FO_ANAME(af_step)(sum_p2, sum_u2, n, eps2, rho, d);
    FO_ANAME(af_vec_pass)(&a, 2, chunks, par, threads);
}

#undef FO_AF_CALL

#endif /* FO_AF_BODY */
