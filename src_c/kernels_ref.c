/* kernels_ref.c: scalar reference kernels, always built; the oracle the SIMD kernels are tested against. */
#include <math.h>

#include "kernels.h"

static void gemm_acc_ref(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                         const float *B, int64_t ldb, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++) {
        float *c = C + i * ldc;
        const float *a = A + i * lda;
        for (int64_t p = 0; p < k; p++) {
            const float ap = a[p];
            const float *b = B + p * ldb;
            for (int64_t j = 0; j < n; j++)
                c[j] += ap * b[j];
        }
    }
}

static void sigmoid_ref(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}

static void tanh_ref(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

const gruinfer_kernels gruinfer_kernels_ref = {"ref", gemm_acc_ref, sigmoid_ref, tanh_ref};
