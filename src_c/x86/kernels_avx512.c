/* kernels_avx512.c: the SIMD kernels for AVX-512F (16 floats a vector); built with -mavx512f -mfma only. */
#if !defined(__AVX512F__) || !defined(__FMA__)
#error "kernels_avx512.c must be compiled with -mavx512f -mfma"
#endif
#define GRUINFER_VLEN 16
#define GRUINFER_SUFFIX avx512
#include "../kernels_simd.h"
