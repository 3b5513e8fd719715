/* ASGD (averaged stochastic gradient descent): the "cython" backend's kernel asgd.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * torch.optim.ASGD's order of operations: the decay multiplies the parameter first, then
 * the gradient step is subtracted (two roundings, as torch's mul_ and add_); the average
 * is a copy of the parameter while mu == 1 (torch's ax.copy_), else ax + (p - ax) * mu.
 */

FO_INLINE void FO_NAME(asgd_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT ax,
        Py_ssize_t n, FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T eta, FO_T mu,
        int use_wd, int average) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, ax, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T p = param[i];
            FO_T d = FO_NAME(direction)(grad[i], p, grad_sign, weight_decay, use_wd);
            p = p * param_scale;
            p = p - eta * d;
            param[i] = p;
            ax[i] = average ? ax[i] + (p - ax[i]) * mu : p;
        }
    }
}

FO_TARGET static void FO_NAME(asgd)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT ax,
        Py_ssize_t n, FO_T grad_sign, FO_T weight_decay, FO_T param_scale, FO_T eta, FO_T mu) {
    int w = weight_decay != 0, a = mu != 1;
    if (w && a)
        FO_NAME(asgd_loop)(param, grad, ax, n, grad_sign, weight_decay, param_scale, eta, mu, 1, 1);
    else if (w)
        FO_NAME(asgd_loop)(param, grad, ax, n, grad_sign, weight_decay, param_scale, eta, mu, 1, 0);
    else if (a)
        FO_NAME(asgd_loop)(param, grad, ax, n, grad_sign, weight_decay, param_scale, eta, mu, 0, 1);
    else
        FO_NAME(asgd_loop)(param, grad, ax, n, grad_sign, weight_decay, param_scale, eta, mu, 0, 0);
}
