/* kernels_avx2.c: the SIMD kernels for AVX2 + FMA (8 floats a vector); built with -mavx2 -mfma only. */
#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels_avx2.c must be compiled with -mavx2 -mfma"
#endif
#define GRUINFER_VLEN 8
#define GRUINFER_SUFFIX avx2
#include "../kernels_simd.h"
