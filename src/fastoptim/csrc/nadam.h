/* NAdam (Adam with Nesterov momentum, Dozat 2016; decoupled weight decay through
 * param_scale): the "cython" backend's kernel nadam.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * The momentum schedule (mu_t, mu_{t+1} and the running product of mu) is per call: the
 * coefficients hold the two step sizes
 *   grad_coef    = -lr * (1 - mu_t) / (1 - prod_{i<=t} mu_i)
 *   exp_avg_coef = -lr * mu_{t+1} / (1 - prod_{i<=t+1} mu_i)
 * and the update is evaluated in torch's for-loop order:
 *   denom = sqrt(v / bias_correction2) + eps
 *   p = (p + grad_coef * d / denom) + exp_avg_coef * m / denom
 */

FO_INLINE void FO_NAME(nadam_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T param_scale, FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2,
        FO_T bias_correction2, FO_T eps, FO_T grad_coef, FO_T exp_avg_coef, int use_wd,
        int scale) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, exp_avg, exp_avg_sq, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            FO_T m = FO_NAME(ewa_of)(exp_avg[i], d, beta1, one_minus_beta1);
            FO_T v = FO_NAME(ewa_of)(exp_avg_sq[i], d * d, beta2, one_minus_beta2);
            exp_avg[i] = m;
            exp_avg_sq[i] = v;
            FO_T denom = FO_SQRT(v / bias_correction2) + eps;
            FO_T q = (scale ? param_scale * p : p) + grad_coef * d / denom;
            param[i] = q + exp_avg_coef * m / denom;
        }
    }
}

FO_TARGET static void FO_NAME(nadam)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, Py_ssize_t n, FO_T grad_sign, FO_T weight_decay,
        FO_T param_scale, FO_T beta1, FO_T one_minus_beta1, FO_T beta2, FO_T one_minus_beta2,
        FO_T bias_correction2, FO_T eps, FO_T grad_coef, FO_T exp_avg_coef) {
    /* one branch-free loop per weight decay form (none, L2, decoupled); L2 and decoupled
       decay never come together (the coefficients set one of them) */
    if (weight_decay != 0)
        FO_NAME(nadam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                            param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                            bias_correction2, eps, grad_coef, exp_avg_coef, 1, 0);
    else if (param_scale != 1)
        FO_NAME(nadam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                            param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                            bias_correction2, eps, grad_coef, exp_avg_coef, 0, 1);
    else
        FO_NAME(nadam_loop)(param, grad, exp_avg, exp_avg_sq, n, grad_sign, weight_decay,
                            param_scale, beta1, one_minus_beta1, beta2, one_minus_beta2,
                            bias_correction2, eps, grad_coef, exp_avg_coef, 0, 0);
}
