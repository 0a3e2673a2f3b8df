/* kernels_ref.c: scalar reference kernels, always built; the oracle the SIMD kernels are tested against. */
#include <math.h>

#include "kernels.h"

#define PANEL GRUINFER_PAD
#define NAME(f) f##_ref

static void gemm_ref(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                     const float *B, const float *bias, float *C, int64_t ldc)
{
    for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
        const int64_t w = n - j0 < PANEL ? n - j0 : PANEL;
        const float *panel = B + j0 * k;
        for (int64_t i = 0; i < m; i++) {
            float *c = C + i * ldc + j0;
            const float *a = A + i * lda;
            for (int64_t j = 0; j < w; j++)
                c[j] = bias ? bias[j0 + j] : 0.0f;
            for (int64_t p = 0; p < k; p++) {
                const float ap = a[p];
                const float *b = panel + p * w;
                for (int64_t j = 0; j < w; j++)
                    c[j] += ap * b[j];
            }
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

#include "gru_cell_arch.h"

const gruinfer_kernels gruinfer_kernels_ref = {"ref", PANEL, gemm_ref, sigmoid_ref, tanh_ref,
                                               gruinfer_all_finite, project_ref, cell_ref};
