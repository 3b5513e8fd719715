/* No floating-point contraction (FMA) in the functions between FO_EXACT_BEGIN and
 * FO_EXACT_END, whatever the includer's flags. fastoptim's build passes -ffp-contract=off; a
 * Cython consumer of a .pxd need not, and gcc contracts by default: a contracted a * b + c
 * rounds once, so its bits would differ from every other backend's (tests/test_extending.py
 * builds such a consumer). Used by the headers that lowmem_kernels.pxd exposes.
 */
#ifndef FASTOPTIM_FP_EXACT_H
#define FASTOPTIM_FP_EXACT_H

#if defined(__clang__)
#define FO_EXACT_BEGIN _Pragma("float_control(push)") _Pragma("clang fp contract(off)")
#define FO_EXACT_END _Pragma("float_control(pop)")
#elif defined(__GNUC__)
#define FO_EXACT_BEGIN _Pragma("GCC push_options") _Pragma("GCC optimize(\"fp-contract=off\")")
#define FO_EXACT_END _Pragma("GCC pop_options")
#else
#define FO_EXACT_BEGIN
#define FO_EXACT_END
#endif

#endif /* FASTOPTIM_FP_EXACT_H */
