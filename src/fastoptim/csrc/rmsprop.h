/* RMSprop (centered, with momentum): the "cython" backend's kernel rmsprop.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * eps_root (optax's name) is added inside the square root: avg = sqrt(s + eps_root) + eps
 * (centered: sqrt(s - a*a + eps_root) + eps). eps_root == 0 runs today's loop (root = 0),
 * bit for bit.
 */

FO_INLINE void FO_NAME(rmsprop_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum, FO_T eps_root, int centered, int use_momentum, int use_wd, int root) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, square_avg, momentum_buffer, grad_avg);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T d = FO_NAME(direction)(grad[i], param[i], grad_sign, weight_decay, use_wd);
            FO_T s = FO_NAME(ewa_of)(square_avg[i], d * d, alpha, one_minus_alpha);
            square_avg[i] = s;
            FO_T variance = s;
            if (centered) {
                FO_T a = FO_NAME(ewa_of)(grad_avg[i], d, alpha, one_minus_alpha);
                grad_avg[i] = a;
                variance = s - a * a;
            }
            FO_T avg = root ? FO_SQRT(variance + eps_root) + eps : FO_SQRT(variance) + eps;
            if (use_momentum) {
                FO_T b = momentum * momentum_buffer[i] + d / avg;
                momentum_buffer[i] = b;
                param[i] = param[i] - lr * b;
            } else {
                param[i] = param[i] - lr * d / avg;
            }
        }
    }
}

FO_INLINE void FO_NAME(rmsprop_loops)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum, FO_T eps_root, int root) {
    /* one branch-free loop per (centered, momentum, weight decay) combination */
    int c = grad_avg != NULL, m = momentum_buffer != NULL, w = weight_decay != 0;
    if (c && m && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 1, 1, 1, root);
    else if (c && m)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 1, 1, 0, root);
    else if (c && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 1, 0, 1, root);
    else if (c)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 1, 0, 0, root);
    else if (m && w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 0, 1, 1, root);
    else if (m)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 0, 1, 0, root);
    else if (w)
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 0, 0, 1, root);
    else
        FO_NAME(rmsprop_loop)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                              grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                              eps_root, 0, 0, 0, root);
}

FO_TARGET static void FO_NAME(rmsprop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT square_avg,
        FO_T* FO_RESTRICT momentum_buffer, FO_T* FO_RESTRICT grad_avg, Py_ssize_t n, FO_T lr,
        FO_T grad_sign, FO_T weight_decay, FO_T alpha, FO_T one_minus_alpha, FO_T eps,
        FO_T momentum, FO_T eps_root) {
    /* eps_root branched once here: the eps_root == 0 loops are the ones without it */
    if (eps_root != 0)
        FO_NAME(rmsprop_loops)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                               grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                               eps_root, 1);
    else
        FO_NAME(rmsprop_loops)(param, grad, square_avg, momentum_buffer, grad_avg, n, lr,
                               grad_sign, weight_decay, alpha, one_minus_alpha, eps, momentum,
                               eps_root, 0);
}
