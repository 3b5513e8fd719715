/* Muon (torch.optim.Muon, torch 2.13): the element-wise passes of the "cython" backend,
 * used by fastoptim/_muon.pyx. The Newton-Schulz iteration between them is BLAS matrix
 * products (NumPy's matmul) in a preallocated workspace (fastoptim/optimizers/muon.py).
 *
 *   fo_muon_momentum  one pass over grad, buf, update (n elements):
 *       buf    = lerp(buf, g, w)          torch's buf.lerp_(grad, 1 - momentum), w = 1 - mu
 *       update = lerp(g, buf, mu)         nesterov (torch's grad.lerp(buf, momentum)),
 *              = buf                      otherwise
 *     and returns sum(update^2) in double precision, for the Frobenius norm that
 *     normalizes the Newton-Schulz input.
 *   fo_muon_apply     one pass over param, update:  p = p*param_scale + neg_lr*update
 *     (torch's param.mul_(1 - lr*weight_decay); param.add_(update, alpha=-adjusted_lr)).
 *
 * lerp(a, b, w) is torch's: a + w*(b - a) when |w| < 0.5, else b - (b - a)*(1 - w), the
 * form chosen once per call (the weight is a scalar), outside the loop; 1 - w is passed
 * in, computed in the element type as torch does.
 *
 * The sum is the same on any machine and thread count: the array is cut into chunks whose
 * boundaries depend on n alone (fo_muon_chunk_length, as LAMB's); within a chunk, eight
 * double lanes (lane k takes the chunk's elements i = k mod 8, in order; its last len mod 8
 * go to lane 0) combined pairwise in a fixed order; the chunks' sums added in chunk order.
 * The C loop runs the chunks serially (the pass is small next to the matrix products); the
 * Numba twin (numba_kernels/muon.py) runs them on threads and gives the same bits, as
 * -ffp-contract=off forbids fused multiply-adds here.
 *
 * This header includes itself once per element type with FO_MUON_BODY defined.
 */
#ifndef FO_MUON_BODY
#ifndef FASTOPTIM_MUON_H
#define FASTOPTIM_MUON_H

#include <Python.h>

#if defined(__GNUC__) || defined(__clang__)
#define FO_MUON_RESTRICT __restrict__
#define FO_MUON_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FO_MUON_RESTRICT
#define FO_MUON_ALWAYS_INLINE static inline
#endif

/* at most this many chunks per array, each of at least FO_MUON_MIN_CHUNK elements (a
   multiple of the 8 lanes): the per-chunk sums live on the stack */
#define FO_MUON_MAX_CHUNKS 64
#define FO_MUON_MIN_CHUNK 16384

/* The elements per chunk for an array of n: a function of n alone. */
static Py_ssize_t fo_muon_chunk_length(Py_ssize_t n) {
    Py_ssize_t chunks = (n + FO_MUON_MIN_CHUNK - 1) / FO_MUON_MIN_CHUNK, len;
    if (chunks > FO_MUON_MAX_CHUNKS)
        chunks = FO_MUON_MAX_CHUNKS;
    if (chunks < 1)
        chunks = 1;
    len = (n + chunks - 1) / chunks;
    return (len + 7) / 8 * 8;
}

#define FO_MUON_BODY 1
#define FO_MT float
#define FO_MNAME(x) fo_##x##_f32
#include "muon.h"
#undef FO_MT
#undef FO_MNAME

#define FO_MT double
#define FO_MNAME(x) fo_##x##_f64
#include "muon.h"
#undef FO_MT
#undef FO_MNAME
#undef FO_MUON_BODY

#endif /* FASTOPTIM_MUON_H */

#else /* FO_MUON_BODY: once per FO_MT ----------------------------------------------------- */

/* torch's lerp(a, b, w) with the form fixed by the caller (small = |w| < 0.5) */
FO_MUON_ALWAYS_INLINE FO_MT FO_MNAME(muon_lerp)(FO_MT a, FO_MT b, FO_MT w, FO_MT one_minus_w,
                                                int small) {
    return small ? a + w * (b - a) : b - (b - a) * one_minus_w;
}

/* the momentum pass with the options fixed (constant flags after inlining) */
FO_MUON_ALWAYS_INLINE double FO_MNAME(muon_momentum_loop)(
        const FO_MT* FO_MUON_RESTRICT grad, FO_MT* FO_MUON_RESTRICT buf,
        FO_MT* FO_MUON_RESTRICT update, Py_ssize_t n, FO_MT w, FO_MT one_minus_w,
        int w_small, int nesterov, FO_MT mu, FO_MT one_minus_mu, int mu_small) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t body = n - n % 8, i;
    int k;
    for (i = 0; i < body; i += 8) {
        for (k = 0; k < 8; k++) {
            FO_MT g = grad[i + k];
            FO_MT b = FO_MNAME(muon_lerp)(buf[i + k], g, w, one_minus_w, w_small);
            FO_MT u = nesterov ? FO_MNAME(muon_lerp)(g, b, mu, one_minus_mu, mu_small) : b;
            buf[i + k] = b;
            update[i + k] = u;
            s[k] += (double)u * (double)u;
        }
    }
    for (i = body; i < n; i++) {
        FO_MT g = grad[i];
        FO_MT b = FO_MNAME(muon_lerp)(buf[i], g, w, one_minus_w, w_small);
        FO_MT u = nesterov ? FO_MNAME(muon_lerp)(g, b, mu, one_minus_mu, mu_small) : b;
        buf[i] = b;
        update[i] = u;
        s[0] += (double)u * (double)u;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* The momentum pass over one chunk; returns its sum(update^2). */
static double FO_MNAME(muon_momentum_chunk)(
        const FO_MT* FO_MUON_RESTRICT grad, FO_MT* FO_MUON_RESTRICT buf,
        FO_MT* FO_MUON_RESTRICT update, Py_ssize_t n, FO_MT w, FO_MT one_minus_w,
        int w_small, int nesterov, FO_MT mu, FO_MT one_minus_mu, int mu_small) {
    if (nesterov) {
        if (w_small)
            return mu_small
                ? FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 1, 1,
                                               mu, one_minus_mu, 1)
                : FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 1, 1,
                                               mu, one_minus_mu, 0);
        return mu_small
            ? FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 0, 1, mu,
                                           one_minus_mu, 1)
            : FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 0, 1, mu,
                                           one_minus_mu, 0);
    }
    return w_small
        ? FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 1, 0, mu,
                                       one_minus_mu, 0)
        : FO_MNAME(muon_momentum_loop)(grad, buf, update, n, w, one_minus_w, 0, 0, mu,
                                       one_minus_mu, 0);
}

/* The momentum pass (see the top of the file); returns sum(update^2). */
static double FO_MNAME(muon_momentum)(
        const FO_MT* FO_MUON_RESTRICT grad, FO_MT* FO_MUON_RESTRICT buf,
        FO_MT* FO_MUON_RESTRICT update, Py_ssize_t n, FO_MT w, FO_MT one_minus_w,
        int w_small, int nesterov, FO_MT mu, FO_MT one_minus_mu, int mu_small) {
    Py_ssize_t len = fo_muon_chunk_length(n), lo, m;
    double total = 0.0;
    for (lo = 0; lo < n; lo += len) {      /* in chunk order */
        m = n - lo < len ? n - lo : len;
        total += FO_MNAME(muon_momentum_chunk)(grad + lo, buf + lo, update + lo, m, w,
                                               one_minus_w, w_small, nesterov, mu,
                                               one_minus_mu, mu_small);
    }
    return total;
}

/* p = p*param_scale + neg_lr*update, in place */
static void FO_MNAME(muon_apply)(FO_MT* FO_MUON_RESTRICT param,
                                 const FO_MT* FO_MUON_RESTRICT update, Py_ssize_t n,
                                 FO_MT param_scale, FO_MT neg_lr) {
    for (Py_ssize_t i = 0; i < n; i++)
        param[i] = param[i] * param_scale + neg_lr * update[i];
}

#endif /* FO_MUON_BODY */
