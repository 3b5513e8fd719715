/* Shared per-element helpers of the "cython" backend's C kernels, and the conventions of
 * csrc/: one header per kernel of the registry (fastoptim/_registry.py), csrc/<name>.h.
 *
 * These headers are templates, without include guards: _simd_kernels.h includes common.h and
 * then every kernel header once per (element type, SIMD target), with
 *   FO_T         float or double
 *   FO_SQRT      sqrtf or sqrt (a vector sqrt with -fno-math-errno)
 *   FO_NAME(x)   the function name for x, e.g. fo_adam_f32_l1
 *   FO_TARGET    a gcc/clang target attribute (empty for the baseline build)
 *   FO_INLINE    static inline, always inlined, compiled for FO_TARGET
 *   FO_RESTRICT  the compiler's restrict qualifier
 *
 * Per element, small `static inline` helpers compute each piece of a formula. Each kernel's
 * loop is an always-inline function whose option arguments (weight decay on or off, AMSGrad,
 * Nesterov, centered, momentum) are constants at every call site, so the compiler emits one
 * branch-free, vectorized loop per combination and the choice is made once per call.
 *
 * A kernel header defines `FO_TARGET static void FO_NAME(<name>)(...)` with the signature
 * of its registry entry: one pointer per array of Kernel.arrays (the second input, grad or
 * value, const), then Py_ssize_t n, then one scalar per coefficient (floating: FO_T,
 * bint: int). Argument meaning: kernels.pxd.
 *
 * Weight decay: when weight_decay == 0 the term weight_decay * param is not computed at all
 * (0 * inf would be NaN and poison the state where the reference and torch leave it finite).
 * The pointers are restrict: the validation layer guarantees that no two arrays overlap.
 */

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
