/* Rprop (resilient backpropagation): the "cython" backend's kernel rprop.
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 *
 * torch.optim.Rprop's element-wise rule, with torch's sign semantics: the factor of the step
 * size follows the sign of the product g * prev as computed in the element type (a product
 * that underflows to 0 counts as 0, like torch.sign(grad.mul(prev))), and torch.sign(NaN) is
 * 0, so a NaN product keeps the step size and a NaN gradient moves nothing. The clamp
 * propagates NaN like torch.clamp. Every choice is a select, so the loop vectorizes.
 */

/* etaplus where g * prev > 0, etaminus where < 0, 1 where 0 or NaN */
FO_INLINE FO_T FO_NAME(rprop_factor)(FO_T product, FO_T etaminus, FO_T etaplus) {
    FO_T grow = product > 0 ? etaplus : (FO_T)1;     /* (two flat selects: gcc does not */
    return product < 0 ? etaminus : grow;            /*  if-convert the nested form)     */
}

/* min(max(x, lo), hi), NaN propagating (torch.clamp; hi wins when lo > hi) */
FO_INLINE FO_T FO_NAME(rprop_clamp)(FO_T x, FO_T lo, FO_T hi) {
    FO_T y = x < lo ? lo : x;
    return y > hi ? hi : y;
}

/* torch.sign: -1, 0 or +1, and 0 for NaN */
FO_INLINE FO_T FO_NAME(rprop_sign)(FO_T x) {
    return (x > 0 ? (FO_T)1 : (FO_T)0) - (x < 0 ? (FO_T)1 : (FO_T)0);
}

FO_INLINE void FO_NAME(rprop_loop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT prev,
        FO_T* FO_RESTRICT step_size, Py_ssize_t n, FO_T grad_sign, FO_T lr, FO_T etaminus,
        FO_T etaplus, FO_T step_size_min, FO_T step_size_max, int first_step) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, param, grad, prev, step_size, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++) {
            FO_T g = grad_sign * grad[i];
            FO_T product = g * prev[i];
            FO_T previous_step = first_step ? lr : step_size[i];
            FO_T s = FO_NAME(rprop_clamp)(
                previous_step * FO_NAME(rprop_factor)(product, etaminus, etaplus),
                step_size_min, step_size_max);
            g = product < 0 ? (FO_T)0 : g;
            step_size[i] = s;
            prev[i] = g;
            param[i] = param[i] - FO_NAME(rprop_sign)(g) * s;
        }
    }
}

FO_TARGET static void FO_NAME(rprop)(
        FO_T* FO_RESTRICT param, const FO_T* FO_RESTRICT grad, FO_T* FO_RESTRICT prev,
        FO_T* FO_RESTRICT step_size, Py_ssize_t n, FO_T grad_sign, FO_T lr, FO_T etaminus,
        FO_T etaplus, FO_T step_size_min, FO_T step_size_max, int first_step) {
    /* the first step starts from lr (torch fills step_size with lr): the buffer is only
       written */
    if (first_step)
        FO_NAME(rprop_loop)(param, grad, prev, step_size, n, grad_sign, lr, etaminus, etaplus,
                            step_size_min, step_size_max, 1);
    else
        FO_NAME(rprop_loop)(param, grad, prev, step_size, n, grad_sign, lr, etaminus, etaplus,
                            step_size_min, step_size_max, 0);
}
