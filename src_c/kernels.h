/* kernels.h: internal contract between the portable GRU code and the per-ISA kernels (not public). */
#ifndef GRUINFER_KERNELS_H
#define GRUINFER_KERNELS_H

#include <stdint.h>

/* Every packed matrix is k-major: row k holds the weights of input k for all
 * output columns, rows ldb floats apart (ldb a multiple of GRUINFER_PAD, rows
 * 64-byte aligned), so a kernel streams it sequentially and needs no
 * horizontal reduction. */
#define GRUINFER_PAD 16
#define GRUINFER_ALIGN 64

typedef struct {
    const char *name;
    /* C[i, 0:n] += sum_k A[i, k] * B[k, 0:n] for i < m.
     * A rows lda apart, B rows ldb apart, C rows ldc apart. */
    void (*gemm_acc)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float *C, int64_t ldc);
    /* In place over n floats; accurate to 1e-6 absolute against float64. */
    void (*sigmoid)(float *x, int64_t n);
    void (*tanh)(float *x, int64_t n);
} gruinfer_kernels;

extern const gruinfer_kernels gruinfer_kernels_ref;
#if defined(__x86_64__) || defined(_M_X64)
#define GRUINFER_HAVE_X86 1
extern const gruinfer_kernels gruinfer_kernels_avx2;
extern const gruinfer_kernels gruinfer_kernels_avx512;
#endif

/* cpu.c: the kernel for a name (NULL: GRUINFER_KERNEL, else the best the CPU runs). */
const gruinfer_kernels *gruinfer_kernels_find(const char *name);

#endif
