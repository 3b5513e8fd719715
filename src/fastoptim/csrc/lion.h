/* Lion (evolved sign momentum): the "cython" backend's kernel lion.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * The update direction is the sign of the interpolation beta1*m + (1-beta1)*g, computed
 * exactly as np.sign: +1, -1, 0 for either zero, NaN for NaN. It is made of comparisons,
 * a select and the exact difference of two 0/1 values, so every SIMD level and the scalar
 * tail give the same bits.
 */

/* np.sign(x): 1 if x > 0, -1 if x < 0, +0 if x is +-0, NaN if x is NaN. Written as a
   difference of comparisons and one select: the nested selects were not vectorized below
   AVX-512 (branches that mispredict on random signs, 3 ns per element at AVX2). */
FO_INLINE FO_T FO_NAME(lion_sign)(FO_T x) {
    FO_T sign = (FO_T)(x > 0) - (FO_T)(x < 0);
    return x != x ? x : sign;
}

FO_INLINE void FO_NAME(lion_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        Py_ssize_t n, FO_T lr, FO_T grad_sign, FO_T weight_decay, FO_T beta1,
        FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, exp_avg, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = grad_sign * grad[i];
            FO_T m = exp_avg[i];
            FO_T u = FO_NAME(lion_sign)(FO_NAME(ewa_of)(m, d, beta1, one_minus_beta1));
            exp_avg[i] = FO_NAME(ewa_of)(m, d, beta2, one_minus_beta2);
            param[i] = p - lr * (use_wd ? u + weight_decay * p : u);
        }
    }
}

FO_TARGET static void FO_NAME(lion)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        Py_ssize_t n, FO_T lr, FO_T grad_sign, FO_T weight_decay, FO_T beta1,
        FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2) {
    /* decoupled weight decay: lr*wd*p is part of the step, never 0*p (NaN for an inf p) */
    if (weight_decay != 0)
        FO_NAME(lion_loop)(param, grad, exp_avg, n, lr, grad_sign, weight_decay, beta1,
                           one_minus_beta1, beta2, one_minus_beta2, 1);
    else
        FO_NAME(lion_loop)(param, grad, exp_avg, n, lr, grad_sign, weight_decay, beta1,
                           one_minus_beta1, beta2, one_minus_beta2, 0);
}
