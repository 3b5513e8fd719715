/* SGD: the "cython" backend's kernel sgd.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 */

FO_INLINE void FO_NAME(sgd_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, NULL, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++)
            param[i] = param[i] - lr * FO_NAME(direction)(grad[i], param[i], grad_sign,
                                                          weight_decay, use_wd);
    }
}

FO_TARGET static void FO_NAME(sgd)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay) {
    if (weight_decay != 0) FO_NAME(sgd_loop)(param, grad, n, lr, grad_sign, weight_decay, 1);
    else FO_NAME(sgd_loop)(param, grad, n, lr, grad_sign, weight_decay, 0);
}
