/* Adamax (Adam with the infinity norm): the "cython" backend's kernel adamax.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * The running infinity norm u = max(beta2*u, |g| + eps) propagates NaN like torch.maximum
 * (a NaN in either operand gives NaN).
 */

/* |x|, as a select (vectorizes at every SIMD level; NaN stays NaN; only the sign of a zero
   differs from fabs, and |g| + eps with eps > 0 never sees it) */
FO_INLINE FO_T FO_NAME(adamax_abs)(FO_T x) {
    return x < 0 ? -x : x;
}

FO_INLINE void FO_NAME(adamax_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_inf, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T eps, FO_T step_size, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, exp_avg, exp_inf, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            FO_T m = FO_NAME(ewa_of)(exp_avg[i], d, beta1, one_minus_beta1);
            FO_T u = FO_NAME(nan_max)(beta2 * exp_inf[i], FO_NAME(adamax_abs)(d) + eps);
            exp_avg[i] = m;
            exp_inf[i] = u;
            param[i] = p - step_size * m / u;
        }
    }
}

FO_TARGET static void FO_NAME(adamax)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_inf, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T eps, FO_T step_size) {
    if (weight_decay != 0)
        FO_NAME(adamax_loop)(param, grad, exp_avg, exp_inf, n, grad_sign, weight_decay, beta1,
                             one_minus_beta1, beta2, eps, step_size, 1);
    else
        FO_NAME(adamax_loop)(param, grad, exp_avg, exp_inf, n, grad_sign, weight_decay, beta1,
                             one_minus_beta1, beta2, eps, step_size, 0);
}
