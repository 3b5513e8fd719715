/* Exponentially weighted average: the "cython" backend's kernel ewa
 * (average = beta * average + (1 - beta) * value).
 *
 * A template, included by _simd_kernels.h after common.h (conventions and helpers)
 * once per (element type, SIMD target).
 */

FO_TARGET static void FO_NAME(ewa)(
        FO_T* FO_RESTRICT average, const FO_T* FO_RESTRICT value, Py_ssize_t n, FO_T beta,
        FO_T one_minus_beta) {
    for (Py_ssize_t t = 0; t < n; t += FO_TILE) {
        FO_NAME(prefetch_ahead)(t, n, average, value, NULL, NULL, NULL);
        for (Py_ssize_t i = t, end = FO_NAME(tile_end)(t, n); i < end; i++)
            average[i] = FO_NAME(ewa_of)(average[i], value[i], beta, one_minus_beta);
    }
}
