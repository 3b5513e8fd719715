/* Software prefetch for the kernels' loops (csrc/common.h's tiles, csrc/lamb.h's groups).
 *
 * On large arrays the hardware prefetchers alone leave a loop with arithmetic to do waiting
 * on memory; asking for the lines about 1,024 elements ahead, a few at a time, keeps it fed
 * (measured in bench/README.md). A prefetch never faults and changes no result; the loops
 * still only ask for lines inside their arrays.
 */
#ifndef FASTOPTIM_PREFETCH_H
#define FASTOPTIM_PREFETCH_H

#include <stddef.h>

/* ask for the cache lines of the `bytes` bytes at p (gcc and clang; nothing elsewhere) */
static inline void fo_prefetch_bytes(const void* p, size_t bytes) {
#if defined(__GNUC__) || defined(__clang__)
    for (size_t byte = 0; byte < bytes; byte += 64)
        __builtin_prefetch((const char*)p + byte);
#else
    (void)p, (void)bytes;
#endif
}

#endif /* FASTOPTIM_PREFETCH_H */
