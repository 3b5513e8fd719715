/* Per-element helpers of the compressed optimizer states (csrc/adam_lowmem.h): bfloat16
 * load/store and bitsandbytes' blockwise dynamic 8-bit code.
 *
 * A template without include guard: csrc/adam_lowmem.h includes it once per SIMD target,
 * with FO_QNAME(x) (the per-target name) and FO_QTARGET (a gcc/clang target attribute,
 * empty for the baseline) defined. Everything is plain scalar C that the compiler
 * vectorizes for the target; integer bit manipulation and comparisons only, so every
 * target gives the same bits.
 *
 * bfloat16: the upper 16 bits of a float32. Loading shifts them back. Storing rounds to
 * nearest, ties to even, on the bits (u + 0x7fff + lsb) >> 16, with subnormals kept and
 * overflow to inf, as ml_dtypes' astype(bfloat16); a NaN becomes the quiet NaN 0x7fc0 with
 * its sign (ml_dtypes' rule).
 *
 * 8-bit code: the 256 sorted code values (fastoptim.lowmem.dynamic_map) and the 255
 * midpoints between neighbours (fastoptim.lowmem.code_tables), the low byte of each its own
 * index. A normalized value x is stored as the index of its nearest code value: the number
 * of midpoints below x (ties go to the lower value, NaN to index 0), read from a bucket
 * table indexed by x's bits whose entry is the next midpoint (its low byte the count below
 * the bucket), then one comparison.
 */

FO_QINLINE float FO_QNAME(bf16_load)(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

FO_QINLINE uint16_t FO_QNAME(bf16_store)(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t nan = ((u >> 16) & 0x8000u) | 0x7fc0u;
    return (uint16_t)(f != f ? nan : rounded);
}

/* index of the nearest code value of x: the number of midpoints below x (ties to the
   lower value, NaN to 0), from the bucket of x's bits (sign, exponent class, top mantissa
   bits: fastoptim.lowmem.code_tables) and one comparison */
FO_QINLINE uint8_t FO_QNAME(q8_index)(const int32_t* FO_RESTRICT bucket, int shift, float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    int bits = 23 - shift;
    int32_t e = (int32_t)((u >> 23) & 0xffu) - (FO_Q8_EXP_LOW - 1);
    e = e < 0 ? 0 : (e > FO_Q8_EXP_CLASSES - 1 ? FO_Q8_EXP_CLASSES - 1 : e);
    int32_t key = (int32_t)(u >> 31) * FO_Q8_NEGATIVE(bits) + e * (1 << bits)
                  + (int32_t)((u >> shift) & ((1u << bits) - 1u));
    uint32_t entry = (uint32_t)bucket[key];         /* the next midpoint */
    float next;
    memcpy(&next, &entry, sizeof next);
    int32_t idx = (int32_t)(entry & 0xffu) + (x > next ? 1 : 0);
    return (uint8_t)(x != x ? 0 : idx);
}

/* a block's absmax as stored: a NaN becomes the quiet NaN 0x7fc00000 (which NaN a maximum
   meets first, and its sign, depend on the order of the lanes) */
FO_QINLINE float FO_QNAME(q8_absmax)(float a) {
    const uint32_t quiet = 0x7fc00000u;
    float nan;
    memcpy(&nan, &quiet, sizeof nan);
    return a != a ? nan : a;
}

/* max(a, |b|)-style running maxima that propagate NaN (np.maximum) */
FO_QINLINE float FO_QNAME(q8_max)(float a, float b) {
    return (a > b || a != a) ? a : b;
}
