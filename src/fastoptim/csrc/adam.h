/* Adam (AdamW through param_scale, AMSGrad): the "cython" backend's kernel adam.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * AMSGrad's running maximum propagates NaN like np.maximum / torch.maximum.
 *
 * eps_root (optax's name) is added inside the square root of the bias-corrected second
 * moment: denom = sqrt(v_hat + eps_root) + eps. eps_root == 0 runs today's loop (root = 0:
 * denom = sqrt(v)*inv_bias_correction2_sqrt + eps, torch's form), bit for bit.
 */

FO_INLINE void FO_NAME(adam_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps, FO_T eps_root, FO_T inv_bias_correction2, int amsgrad, int use_wd,
        int scale, int root) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            FO_T m = FO_NAME(ewa_of)(exp_avg[i], d, beta1, one_minus_beta1);
            FO_T v = FO_NAME(ewa_of)(exp_avg_sq[i], d * d, beta2, one_minus_beta2);
            exp_avg[i] = m;
            exp_avg_sq[i] = v;
            if (amsgrad) {
                v = FO_NAME(nan_max)(v, max_exp_avg_sq[i]);
                max_exp_avg_sq[i] = v;
            }
            FO_T denom = root ? FO_SQRT(v * inv_bias_correction2 + eps_root) + eps
                              : FO_SQRT(v) * inv_bias_correction2_sqrt + eps;
            param[i] = (scale ? param_scale * p : p) - step_size * m / denom;
        }
    }
}

FO_INLINE void FO_NAME(adam_loops)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps, FO_T eps_root, FO_T inv_bias_correction2, int root) {
    /* one branch-free loop per (AMSGrad, L2 decay, decoupled decay) combination; L2 and
       decoupled decay never come together (the coefficients set one of them) */
    int a = max_exp_avg_sq != NULL, w = weight_decay != 0, s = param_scale != 1;
    if (a && w && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 1, 1, 1, root);
    else if (a && w)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 1, 1, 0, root);
    else if (a && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 1, 0, 1, root);
    else if (a)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 1, 0, 0, root);
    else if (w && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 0, 1, 1, root);
    else if (w)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 0, 1, 0, root);
    else if (s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 0, 0, 1, root);
    else
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           eps_root, inv_bias_correction2, 0, 0, 0, root);
}

FO_TARGET static void FO_NAME(adam)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps, FO_T eps_root) {
    /* eps_root branched once here: the eps_root == 0 loops are the ones without it */
    if (eps_root != 0) {
        FO_T inv_bias_correction2 = inv_bias_correction2_sqrt * inv_bias_correction2_sqrt;
        FO_NAME(adam_loops)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                            weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                            one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                            eps_root, inv_bias_correction2, 1);
    } else {
        FO_NAME(adam_loops)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                            weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                            one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                            eps_root, 1, 0);
    }
}
