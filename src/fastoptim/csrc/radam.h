/* RAdam (rectified Adam; decoupled weight decay through param_scale): the "cython"
 * backend's kernel radam.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * Whether the variance is rectified (rho_t > 5) depends on the step only: the coefficients
 * decide it once per call (rectify), and the loop is chosen outside the element loop. The
 * update is evaluated in torch's for-loop order:
 *   rectified:   p - ((m / bias_correction1) * lr * (bias_correction2_sqrt / (sqrt(v) + eps)))
 *                  * rect
 *   otherwise:   p - (m / bias_correction1) * lr
 */

FO_INLINE void FO_NAME(radam_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T param_scale, FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2,
        FO_T bias_correction1, FO_T lr, FO_T rect, FO_T bias_correction2_sqrt, FO_T eps,
        int rectified, int use_wd, int scale) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, exp_avg, exp_avg_sq, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            FO_T m = FO_NAME(ewa_of)(exp_avg[i], d, beta1, one_minus_beta1);
            FO_T v = FO_NAME(ewa_of)(exp_avg_sq[i], d * d, beta2, one_minus_beta2);
            exp_avg[i] = m;
            exp_avg_sq[i] = v;
            FO_T u = m / bias_correction1 * lr;
            if (rectified)
                u = u * (bias_correction2_sqrt / (FO_SQRT(v) + eps)) * rect;
            param[i] = (scale ? param_scale * p : p) - u;
        }
    }
}

FO_TARGET static void FO_NAME(radam)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T param_scale, FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2,
        FO_T bias_correction1, FO_T lr, int rectify, FO_T rect, FO_T bias_correction2_sqrt,
        FO_T eps) {
    /* one branch-free loop per (rectified, L2 decay, decoupled decay) combination; L2 and
       decoupled decay never come together (the coefficients set one of them) */
    int w = weight_decay != 0, s = param_scale != 1;
    if (rectify) {
        if (w)
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                1, 1, 0);
        else if (s)
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                1, 0, 1);
        else
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                1, 0, 0);
    } else {
        if (w)
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                0, 1, 0);
        else if (s)
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                0, 0, 1);
        else
            FO_NAME(radam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                                param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                                bias_correction1, lr, rect, bias_correction2_sqrt, eps,
                                0, 0, 0);
    }
}
