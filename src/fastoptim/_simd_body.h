/* The update formulas of the "cython" backend: the one place they are written.
 *
 * This file is a template, included by _simd_kernels.h once per (element type, SIMD target):
 *   FO_T        float or double
 *   FO_SQRT     __builtin_sqrtf or __builtin_sqrt (a vector sqrt with -fno-math-errno)
 *   FO_NAME(x)  the function name for kernel x, e.g. fo_adam_f32_avx2
 *   FO_TARGET   a gcc/clang target attribute (empty for the baseline build)
 * Each function is one loop over n elements that the compiler vectorizes for FO_TARGET;
 * choices that do not change per element (AMSGrad, Nesterov, centered, momentum) are hoisted
 * out of the loop so the loop body has no branch. The pointers are restrict: the validation
 * layer guarantees that no two arrays overlap. Argument meaning: kernels.pxd.
 */

FO_TARGET static void FO_NAME(sgd)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay) {
    for (Py_ssize_t i = 0; i < n; i++)
        param[i] = param[i] - lr * (grad_sign * grad[i] + weight_decay * param[i]);
}

FO_TARGET static void FO_NAME(momentum)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT velocity,
        Py_ssize_t n, FO_T lr, FO_T grad_sign, FO_T weight_decay, FO_T momentum,
        FO_T one_minus_dampening, int nesterov) {
    if (nesterov) {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_T d = grad_sign * grad[i] + weight_decay * param[i];
            FO_T v = momentum * velocity[i] + one_minus_dampening * d;
            velocity[i] = v;
            param[i] = param[i] - lr * (d + momentum * v);
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_T d = grad_sign * grad[i] + weight_decay * param[i];
            FO_T v = momentum * velocity[i] + one_minus_dampening * d;
            velocity[i] = v;
            param[i] = param[i] - lr * v;
        }
    }
}

FO_TARGET static void FO_NAME(rmsprop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum) {
#define FO_RMS_D_S \
        FO_T d = grad_sign * grad[i] + weight_decay * param[i]; \
        FO_T s = alpha * square_avg[i] + one_minus_alpha * d * d; \
        square_avg[i] = s;
#define FO_RMS_A \
        FO_T a = alpha * grad_avg[i] + one_minus_alpha * d; \
        grad_avg[i] = a;
    if (grad_avg == NULL && momentum_buffer == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_RMS_D_S
            param[i] = param[i] - lr * d / (FO_SQRT(s) + eps);
        }
    } else if (grad_avg == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_RMS_D_S
            FO_T b = momentum * momentum_buffer[i] + d / (FO_SQRT(s) + eps);
            momentum_buffer[i] = b;
            param[i] = param[i] - lr * b;
        }
    } else if (momentum_buffer == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_RMS_D_S
            FO_RMS_A
            param[i] = param[i] - lr * d / (FO_SQRT(s - a * a) + eps);
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_RMS_D_S
            FO_RMS_A
            FO_T b = momentum * momentum_buffer[i] + d / (FO_SQRT(s - a * a) + eps);
            momentum_buffer[i] = b;
            param[i] = param[i] - lr * b;
        }
    }
#undef FO_RMS_D_S
#undef FO_RMS_A
}

FO_TARGET static void FO_NAME(adam)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT exp_avg,
        FO_T* FO_RESTRICT exp_avg_sq, FO_T* FO_RESTRICT max_exp_avg_sq, Py_ssize_t n,
        FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T beta1, FO_T one_minus_beta1,
        FO_T beta2, FO_T one_minus_beta2, FO_T step_size, FO_T inv_bias_correction2_sqrt,
        FO_T eps) {
#define FO_ADAM_M_V \
        FO_T p = param[i]; \
        FO_T d = grad_sign * grad[i] + weight_decay * p; \
        FO_T m = beta1 * exp_avg[i] + one_minus_beta1 * d; \
        FO_T v = beta2 * exp_avg_sq[i] + one_minus_beta2 * d * d; \
        exp_avg[i] = m; \
        exp_avg_sq[i] = v;
#define FO_ADAM_P(v) \
        param[i] = param_scale * p - step_size * m / (FO_SQRT(v) * inv_bias_correction2_sqrt + eps);
    if (max_exp_avg_sq == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_ADAM_M_V
            FO_ADAM_P(v)
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            FO_ADAM_M_V
            FO_T vmax = max_exp_avg_sq[i];
            vmax = v > vmax ? v : vmax;
            max_exp_avg_sq[i] = vmax;
            FO_ADAM_P(vmax)
        }
    }
#undef FO_ADAM_M_V
#undef FO_ADAM_P
}

FO_TARGET static void FO_NAME(adagrad)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT state_sum,
        Py_ssize_t n, FO_T clr, FO_T grad_sign, FO_T weight_decay, FO_T eps) {
    for (Py_ssize_t i = 0; i < n; i++) {
        FO_T d = grad_sign * grad[i] + weight_decay * param[i];
        FO_T s = state_sum[i] + d * d;
        state_sum[i] = s;
        param[i] = param[i] - clr * d / (FO_SQRT(s) + eps);
    }
}

FO_TARGET static void FO_NAME(ewa)(
        FO_T* FO_RESTRICT average, const FO_T* FO_RESTRICT value, Py_ssize_t n, FO_T beta,
        FO_T one_minus_beta) {
    for (Py_ssize_t i = 0; i < n; i++)
        average[i] = beta * average[i] + one_minus_beta * value[i];
}
