/* Adadelta: the "cython" backend's kernel adadelta.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 */

/* the step of one element: sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g (torch's
   order: two square roots, not the root of the quotient) */
FO_INLINE FO_T FO_NAME(adadelta_delta)(FO_T acc_delta, FO_T square_avg, FO_T eps, FO_T d) {
    return FO_SQRT(acc_delta + eps) / FO_SQRT(square_avg + eps) * d;
}

FO_INLINE void FO_NAME(adadelta_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT acc_delta, Py_ssize_t n, FO_T lr, FO_T grad_sign, FO_T weight_decay,
        FO_T rho, FO_T one_minus_rho, FO_T eps, int use_wd) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, square_avg, acc_delta, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            FO_T s = FO_NAME(ewa_of)(square_avg[i], d * d, rho, one_minus_rho);
            FO_T a = acc_delta[i];
            FO_T delta = FO_NAME(adadelta_delta)(a, s, eps, d);
            square_avg[i] = s;
            acc_delta[i] = FO_NAME(ewa_of)(a, delta * delta, rho, one_minus_rho);
            param[i] = p - lr * delta;
        }
    }
}

FO_TARGET static void FO_NAME(adadelta)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT acc_delta, Py_ssize_t n, FO_T lr, FO_T grad_sign, FO_T weight_decay,
        FO_T rho, FO_T one_minus_rho, FO_T eps) {
    if (weight_decay != 0)
        FO_NAME(adadelta_loop)(param, grad, square_avg, acc_delta, n, lr, grad_sign,
                               weight_decay, rho, one_minus_rho, eps, 1);
    else
        FO_NAME(adadelta_loop)(param, grad, square_avg, acc_delta, n, lr, grad_sign,
                               weight_decay, rho, one_minus_rho, eps, 0);
}
