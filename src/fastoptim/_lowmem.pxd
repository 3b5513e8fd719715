# cython: language_level=3
# The compressed-state codecs of fastoptim._lowmem (csrc/adam_lowmem.h at this module's SIMD
# level), for fastoptim.kernels' fused generic step (_compressed_state.pxi): n values of a
# bfloat16 or blockwise 8-bit state to float32 and back. No validation.
from libc.stdint cimport int32_t, uint8_t, uint16_t

# IN src; OUT dst
cdef void bf16_decode_range(const uint16_t* src, float* dst, Py_ssize_t n) noexcept nogil
# IN src; OUT dst (rounded to nearest even)
cdef void bf16_encode_range(const float* src, uint16_t* dst, Py_ssize_t n) noexcept nogil
# IN code (the 256 values); OUT planes (Q8_PLANES bytes: its byte planes, built once per call)
cdef enum:
    Q8_PLANES = 1024
cdef void q8_planes(const float* code, uint8_t* planes) noexcept nogil
# IN codes, absmax (one per block of 256 from codes[0]), code (the 256 values), planes (q8_planes
# of code: byte permutes at avx512vbmi and above); OUT dst
cdef void q8_decode_range(const uint8_t* codes, const float* absmax, const float* code,
                          const uint8_t* planes, float* dst, Py_ssize_t n) noexcept nogil
# IN src, bucket, shift, zero, is_signed, decades (code_tables' of the code; decades may be
# NULL: the bucket search alone, the same codes); OUT codes, absmax
cdef void q8_encode_range(const float* src, uint8_t* codes, float* absmax, Py_ssize_t n,
                          const int32_t* bucket, int shift, uint8_t zero, int is_signed,
                          const float* decades) noexcept nogil
