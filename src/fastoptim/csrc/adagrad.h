/* Adagrad: the "cython" backend's kernel adagrad.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 */

FO_INLINE void FO_NAME(adagrad_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT state_sum,
        Py_ssize_t n, FO_T clr, FO_T grad_sign, FO_T weight_decay, FO_T eps, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, state_sum, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
            FO_T s = state_sum[i] + d * d;
            state_sum[i] = s;
            param[i] = param[i] - clr * d / (FO_SQRT(s) + eps);
        }
    }
}

FO_TARGET static void FO_NAME(adagrad)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT state_sum,
        Py_ssize_t n, FO_T clr, FO_T grad_sign, FO_T weight_decay, FO_T eps) {
    if (weight_decay != 0)
        FO_NAME(adagrad_loop)(param, grad, state_sum, n, clr, grad_sign, weight_decay, eps, 1);
    else
        FO_NAME(adagrad_loop)(param, grad, state_sum, n, clr, grad_sign, weight_decay, eps, 0);
}
