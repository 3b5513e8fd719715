/* Fused Adam/AdamW step for half-precision parameters (issue 14, item 2), scalar baseline.
 * One pass: read g (half), w (float32 master, or the half parameter), m, v; write m, v,
 * master, and the rounded half parameter. Arithmetic in float32, in the operation order of
 * fastoptim.half_reference.adam_step_mixed (compile with -ffp-contract=off for bitwise
 * parity). Per-call scalars (step_size, inv_bc2_sqrt, decay, SR key) are computed once by
 * the caller. SIMD variants and the Cython glue are still to come.
 */
#ifndef FASTOPTIM_ADAM_MIXED_H
#define FASTOPTIM_ADAM_MIXED_H

#include <math.h>
#include "half_convert.h"

enum { FO_HALF_BF16 = 0, FO_HALF_F16 = 1 };

static inline float fo_half_load(const uint16_t *p, long long i, int kind) {
    return kind == FO_HALF_BF16 ? fo_bf16_to_f32(p[i]) : fo_f16_to_f32(p[i]);
}

/* param, grad: half bits (IN/OUT, IN); master: float32 or NULL (IN/OUT); m, v (IN/OUT).
 * wd_mode: 0 none, 1 L2 (g += wd*w), 2 decoupled (w *= decay). sr: stochastic rounding to
 * bfloat16 with key = fo_rounding_key(seed, step) (requires kind == FO_HALF_BF16, master NULL). */
static void fo_adam_mixed(uint16_t *param, const uint16_t *grad, float *master, float *m,
                          float *v, long long n, int kind, float beta1, float one_minus_beta1,
                          float beta2, float one_minus_beta2, float step_size,
                          float inv_bc2_sqrt, float eps, float weight_decay, float decay,
                          int wd_mode, int maximize, int sr, uint64_t key) {
    for (long long i = 0; i < n; i++) {
        float g = fo_half_load(grad, i, kind);
        if (maximize) g = -g;
        float w = master ? master[i] : fo_half_load(param, i, kind);
        if (wd_mode == 2) w = w * decay;
        else if (wd_mode == 1) g = g + weight_decay * w;
        float mi = beta1 * m[i] + one_minus_beta1 * g;
        float vi = beta2 * v[i] + one_minus_beta2 * g * g;
        m[i] = mi;
        v[i] = vi;
        w = w - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
        if (master) master[i] = w;
        if (sr) param[i] = fo_f32_to_bf16_stochastic(w, fo_rounding_noise(key, (uint64_t)i));
        else param[i] = kind == FO_HALF_BF16 ? fo_f32_to_bf16_rne(w) : fo_f32_to_f16_rne(w);
    }
}

#endif /* FASTOPTIM_ADAM_MIXED_H */
