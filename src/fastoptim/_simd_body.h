/* The update formulas of the "cython" backend: the one place they are written in C.
 *
 * This file is a template, included by _simd_kernels.h once per (element type, SIMD target):
 *   FO_T        float or double
 *   FO_SQRT     __builtin_sqrtf or __builtin_sqrt (a vector sqrt with -fno-math-errno)
 *   FO_NAME(x)  the function name for x, e.g. fo_adam_f32_l1
 *   FO_TARGET   a gcc/clang target attribute (empty for the baseline build)
 *
 * Per element, small `static inline` helpers compute each piece of a formula. Each kernel's
 * loop is an always-inline function whose option arguments (weight decay on or off, AMSGrad,
 * Nesterov, centered, momentum) are constants at every call site, so the compiler emits one
 * branch-free, vectorized loop per combination and the choice is made once per call.
 *
 * Weight decay: when weight_decay == 0 the term weight_decay * param is not computed at all
 * (0 * inf would be NaN and poison the state where the reference and torch leave it finite).
 * AMSGrad's running maximum propagates NaN like np.maximum / torch.maximum.
 * The pointers are restrict: the validation layer guarantees that no two arrays overlap.
 * Argument meaning: kernels.pxd.
 */

#define FO_INLINE static inline __attribute__((always_inline)) FO_TARGET

/* g = grad_sign * grad (+ weight_decay * param when use_wd) */
FO_INLINE FO_T FO_NAME(direction)(FO_T grad, FO_T param, FO_T grad_sign, FO_T weight_decay,
                                  int use_wd) {
    return use_wd ? grad_sign * grad + weight_decay * param : grad_sign * grad;
}

/* beta * average + one_minus_beta * value: every moving average of the kernels */
FO_INLINE FO_T FO_NAME(ewa_of)(FO_T average, FO_T value, FO_T beta, FO_T one_minus_beta) {
    return beta * average + one_minus_beta * value;
}

/* max(a, b) with NaN propagation (np.maximum): NaN if either is NaN */
FO_INLINE FO_T FO_NAME(nan_max)(FO_T a, FO_T b) {
    return (a > b || a != a) ? a : b;
}

/* ---- SGD ------------------------------------------------------------------------------ */
FO_INLINE void FO_NAME(sgd_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, int use_wd) {
    for (Py_ssize_t i = 0; i < n; i++)
        param[i] = param[i] - lr * FO_NAME(direction)(grad[i], param[i], grad_sign,
                                                      weight_decay, use_wd);
}

FO_TARGET static void FO_NAME(sgd)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay) {
    if (weight_decay != 0) FO_NAME(sgd_loop)(param, grad, n, lr, grad_sign, weight_decay, 1);
    else FO_NAME(sgd_loop)(param, grad, n, lr, grad_sign, weight_decay, 0);
}

/* ---- momentum (classical, EWA form, Nesterov) ----------------------------------------- */
FO_INLINE void FO_NAME(momentum_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad,
        FO_T* FO_RESTRICT momentum_buffer, Py_ssize_t n, FO_T lr, FO_T grad_sign,
        FO_T weight_decay, FO_T momentum, FO_T one_minus_dampening, int nesterov,
        int use_wd) {
    for (Py_ssize_t i = 0; i < n; i++) {
        FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
        FO_T v = FO_NAME(ewa_of)(momentum_buffer[i], d, momentum, one_minus_dampening);
        momentum_buffer[i] = v;
        param[i] = param[i] - lr * (nesterov ? d + momentum * v : v);
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

/* ---- RMSprop (centered, with momentum) ------------------------------------------------ */
FO_INLINE void FO_NAME(rmsprop_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum, int centered, int use_momentum, int use_wd) {
    for (Py_ssize_t i = 0; i < n; i++) {
        FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
        FO_T s = FO_NAME(ewa_of)(square_avg[i], d * d, alpha, one_minus_alpha);
        square_avg[i] = s;
        FO_T variance = s;
        if (centered) {
            FO_T a = FO_NAME(ewa_of)(grad_avg[i], d, alpha, one_minus_alpha);
            grad_avg[i] = a;
            variance = s - a * a;
        }
        FO_T avg = FO_SQRT(variance) + eps;
        if (use_momentum) {
            FO_T b = momentum * momentum_buffer[i] + d / avg;
            momentum_buffer[i] = b;
            param[i] = param[i] - lr * b;
        } else {
            param[i] = param[i] - lr * d / avg;
        }
    }
}

FO_TARGET static void FO_NAME(rmsprop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum) {
    /* one branch-free loop per (centered, momentum, weight decay) combination */
    int c = grad_avg != NULL, m = momentum_buffer != NULL, w = weight_decay != 0;
    if (c && m && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              1, 1, 1);
    else if (c && m)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              1, 1, 0);
    else if (c && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              1, 0, 1);
    else if (c)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              1, 0, 0);
    else if (m && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              0, 1, 1);
    else if (m)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              0, 1, 0);
    else if (w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              0, 0, 1);
    else
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              0, 0, 0);
}

/* ---- Adam (AdamW through param_scale, AMSGrad) ----------------------------------------- */
FO_INLINE void FO_NAME(adam_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps, int amsgrad, int use_wd, int scale) {
    for (Py_ssize_t i = 0; i < n; i++) {
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
        FO_T denom = FO_SQRT(v) * inv_bias_correction2_sqrt + eps;
        param[i] = (scale ? param_scale * p : p) - step_size * m / denom;
    }
}

FO_TARGET static void FO_NAME(adam)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps) {
    /* one branch-free loop per (AMSGrad, L2 decay, decoupled decay) combination; L2 and
       decoupled decay never come together (the coefficients set one of them) */
    int a = max_exp_avg_sq != NULL, w = weight_decay != 0, s = param_scale != 1;
    if (a && w && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           1, 1, 1);
    else if (a && w)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           1, 1, 0);
    else if (a && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           1, 0, 1);
    else if (a)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           1, 0, 0);
    else if (w && s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           0, 1, 1);
    else if (w)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           0, 1, 0);
    else if (s)
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           0, 0, 1);
    else
        FO_NAME(adam_loop)(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, grad_sign,
                           weight_decay, param_scale, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps,
                           0, 0, 0);
}

/* ---- Adagrad --------------------------------------------------------------------------- */
FO_INLINE void FO_NAME(adagrad_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT state_sum,
        Py_ssize_t n, FO_T clr, FO_T grad_sign, FO_T weight_decay, FO_T eps, int use_wd) {
    for (Py_ssize_t i = 0; i < n; i++) {
        FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
        FO_T s = state_sum[i] + d * d;
        state_sum[i] = s;
        param[i] = param[i] - clr * d / (FO_SQRT(s) + eps);
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

/* ---- EWA --------------------------------------------------------------------------------- */
FO_TARGET static void FO_NAME(ewa)(
        FO_T* FO_RESTRICT average, const FO_T* FO_RESTRICT value, Py_ssize_t n, FO_T beta,
        FO_T one_minus_beta) {
    for (Py_ssize_t i = 0; i < n; i++)
        average[i] = FO_NAME(ewa_of)(average[i], value[i], beta, one_minus_beta);
}

#undef FO_INLINE
