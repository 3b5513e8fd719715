/* Runtime SIMD dispatch for the "cython" backend's kernels.
 *
 * The default build is portable (no -march=native), yet the kernels should use the widest
 * vectors the CPU running them has. So the kernels' loops (csrc/<kernel>.h, with the helpers of
 * csrc/common.h) are compiled several times, once per target, and a table of function
 * pointers picks one set at import time:
 *
 *   level 0  "sse2"    the build's baseline (x86-64 always has SSE2); "generic" elsewhere
 *   level 1  "avx2"    AVX2 + FMA, 256-bit vectors (x86-64-v3 class CPUs)
 *   level 2  "avx512"  AVX-512 F/VL/BW/DQ, 512-bit vectors (x86-64-v4 class CPUs)
 *
 * Only gcc and clang on x86 get levels 1-2 (target attributes, __builtin_cpu_supports); any
 * other compiler or architecture compiles the baseline alone, with the same names.
 *
 * The kernels are called as fo_<kernel>_f32(...) / fo_<kernel>_f64(...); these names go
 * through the active table. fo_simd_select(level) switches tables (tests run every level
 * this CPU has); fo_simd_best() is the level chosen at import.
 */
#ifndef FASTOPTIM_SIMD_KERNELS_H
#define FASTOPTIM_SIMD_KERNELS_H

#include <Python.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define FO_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define FO_RESTRICT __restrict
#else
#define FO_RESTRICT
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FO_DISPATCH 1
#else
#define FO_DISPATCH 0
#endif

#define FO_INLINE static inline __attribute__((always_inline)) FO_TARGET

/* ---- level 0: the build's baseline -------------------------------------------------- */
#define FO_TARGET
#define FO_T float
#define FO_SQRT sqrtf
#define FO_NAME(x) fo_##x##_f32_l0
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#define FO_T double
#define FO_SQRT sqrt
#define FO_NAME(x) fo_##x##_f64_l0
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#undef FO_TARGET

#if FO_DISPATCH
/* ---- level 1: AVX2 + FMA ------------------------------------------------------------ */
#define FO_TARGET __attribute__((target("avx2,fma")))
#define FO_T float
#define FO_SQRT sqrtf
#define FO_NAME(x) fo_##x##_f32_l1
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#define FO_T double
#define FO_SQRT sqrt
#define FO_NAME(x) fo_##x##_f64_l1
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#undef FO_TARGET

/* ---- level 2: AVX-512 (gcc's generic tuning would stay at 256 bits without the hint) - */
#if defined(__clang__)
#define FO_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#else
#define FO_TARGET __attribute__((target( \
    "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")))
#endif
#define FO_T float
#define FO_SQRT sqrtf
#define FO_NAME(x) fo_##x##_f32_l2
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#define FO_T double
#define FO_SQRT sqrt
#define FO_NAME(x) fo_##x##_f64_l2
#include "csrc/common.h"
#include "csrc/sgd.h"
#include "csrc/momentum.h"
#include "csrc/rmsprop.h"
#include "csrc/adam.h"
#include "csrc/adagrad.h"
#include "csrc/ewa.h"
#undef FO_T
#undef FO_SQRT
#undef FO_NAME
#undef FO_TARGET
#define FO_LEVELS 3
#else
#define FO_LEVELS 1
#endif
#undef FO_INLINE

/* ---- the dispatch table ------------------------------------------------------------- */
typedef struct {
    const char* name;
    void (*sgd_f32)(float*, const float*, Py_ssize_t, float, float, float);
    void (*sgd_f64)(double*, const double*, Py_ssize_t, double, double, double);
    void (*momentum_f32)(float*, const float*, float*, Py_ssize_t, float, float, float, float,
                         float, int);
    void (*momentum_f64)(double*, const double*, double*, Py_ssize_t, double, double, double,
                         double, double, int);
    void (*rmsprop_f32)(float*, const float*, float*, float*, float*, Py_ssize_t, float, float,
                        float, float, float, float, float);
    void (*rmsprop_f64)(double*, const double*, double*, double*, double*, Py_ssize_t, double,
                        double, double, double, double, double, double);
    void (*adam_f32)(float*, const float*, float*, float*, float*, Py_ssize_t, float, float,
                     float, float, float, float, float, float, float, float);
    void (*adam_f64)(double*, const double*, double*, double*, double*, Py_ssize_t, double,
                     double, double, double, double, double, double, double, double, double);
    void (*adagrad_f32)(float*, const float*, float*, Py_ssize_t, float, float, float, float);
    void (*adagrad_f64)(double*, const double*, double*, Py_ssize_t, double, double, double,
                        double);
    void (*ewa_f32)(float*, const float*, Py_ssize_t, float, float);
    void (*ewa_f64)(double*, const double*, Py_ssize_t, double, double);
} fo_simd_table;

#define FO_TABLE(level, label) { label, \
    fo_sgd_f32_##level, fo_sgd_f64_##level, fo_momentum_f32_##level, fo_momentum_f64_##level, \
    fo_rmsprop_f32_##level, fo_rmsprop_f64_##level, fo_adam_f32_##level, fo_adam_f64_##level, \
    fo_adagrad_f32_##level, fo_adagrad_f64_##level, fo_ewa_f32_##level, fo_ewa_f64_##level }

static const fo_simd_table fo_simd_tables[FO_LEVELS] = {
#if FO_DISPATCH
    FO_TABLE(l0, "sse2"), FO_TABLE(l1, "avx2"), FO_TABLE(l2, "avx512"),
#else
    FO_TABLE(l0, "generic"),
#endif
};
#undef FO_TABLE

static const fo_simd_table* fo_simd_active = &fo_simd_tables[0];

/* Number of levels compiled into this build. */
static int fo_simd_levels(void) { return FO_LEVELS; }

/* Whether this CPU (and OS: the runtime check includes XSAVE state) can run `level`. */
static int fo_simd_supported(int level) {
    if (level < 0 || level >= FO_LEVELS) return 0;
#if FO_DISPATCH
    __builtin_cpu_init();
    if (level >= 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 0;
    if (level >= 2 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                        && __builtin_cpu_supports("avx512bw")
                        && __builtin_cpu_supports("avx512dq")))
        return 0;
#endif
    return 1;
}

/* The highest level this CPU supports. */
static int fo_simd_best(void) {
    int level = FO_LEVELS - 1;
    while (level > 0 && !fo_simd_supported(level)) level--;
    return level;
}

/* Make `level` the active one; -1 (and no change) if this CPU cannot run it. */
static int fo_simd_select(int level) {
    if (!fo_simd_supported(level)) return -1;
    fo_simd_active = &fo_simd_tables[level];
    return level;
}

static int fo_simd_level(void) { return (int)(fo_simd_active - fo_simd_tables); }
static const char* fo_simd_name(int level) { return fo_simd_tables[level].name; }

#define fo_sgd_f32 (fo_simd_active->sgd_f32)
#define fo_sgd_f64 (fo_simd_active->sgd_f64)
#define fo_momentum_f32 (fo_simd_active->momentum_f32)
#define fo_momentum_f64 (fo_simd_active->momentum_f64)
#define fo_rmsprop_f32 (fo_simd_active->rmsprop_f32)
#define fo_rmsprop_f64 (fo_simd_active->rmsprop_f64)
#define fo_adam_f32 (fo_simd_active->adam_f32)
#define fo_adam_f64 (fo_simd_active->adam_f64)
#define fo_adagrad_f32 (fo_simd_active->adagrad_f32)
#define fo_adagrad_f64 (fo_simd_active->adagrad_f64)
#define fo_ewa_f32 (fo_simd_active->ewa_f32)
#define fo_ewa_f64 (fo_simd_active->ewa_f64)

#endif /* FASTOPTIM_SIMD_KERNELS_H */
