/* Momentum (classical, EWA form, Nesterov): the "cython" backend's kernel momentum.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 */

FO_INLINE void FO_NAME(momentum_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad,
        FO_T* FO_RESTRICT momentum_buffer, Py_ssize_t n, FO_T lr, FO_T grad_sign,
        FO_T weight_decay, FO_T momentum, FO_T one_minus_dampening, int nesterov,
        int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, momentum_buffer, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
            FO_T v = FO_NAME(ewa_of)(momentum_buffer[i], d, momentum, one_minus_dampening);
            momentum_buffer[i] = v;
            param[i] = param[i] - lr * (nesterov ? d + momentum * v : v);
        }
    }
}

FO_TARGET static void FO_NAME(momentum)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad,
        FO_T* FO_RESTRICT momentum_buffer, Py_ssize_t n, FO_T lr, FO_T grad_sign,
        FO_T weight_decay, FO_T momentum, FO_T one_minus_dampening, int nesterov) {
    int wd = weight_decay != 0;
    if (nesterov && wd)
        FO_NAME(momentum_loop)(param, grad, momentum_buffer, n, lr, grad_sign, weight_decay,
                               momentum, one_minus_dampening, 1, 1);
    else if (nesterov)
        FO_NAME(momentum_loop)(param, grad, momentum_buffer, n, lr, grad_sign, weight_decay,
                               momentum, one_minus_dampening, 1, 0);
    else if (wd)
        FO_NAME(momentum_loop)(param, grad, momentum_buffer, n, lr, grad_sign, weight_decay,
                               momentum, one_minus_dampening, 0, 1);
    else
        FO_NAME(momentum_loop)(param, grad, momentum_buffer, n, lr, grad_sign, weight_decay,
                               momentum, one_minus_dampening, 0, 0);
}
