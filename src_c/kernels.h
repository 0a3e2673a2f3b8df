/* kernels.h: internal contract between the portable GRU code and the per-ISA kernels (not public). */
#ifndef GRUINFER_KERNELS_H
#define GRUINFER_KERNELS_H

#include <stdint.h>

#include "gru.h"

/* Packed matrices ([k rows][n columns], n a multiple of GRUINFER_PAD) are cut
 * into column panels of the kernel's panel width (the last may be narrower,
 * still a multiple of GRUINFER_PAD).  Each panel is stored k-major and
 * contiguous: panel j starts at j * panel * k, and row p of it holds that
 * panel's columns for input p.  A kernel streams each panel sequentially with
 * no horizontal reduction; see gruinfer_pack. */
#define GRUINFER_PAD 16
#define GRUINFER_ALIGN 64

/* Threads sharing one GRU step: thread tid of n computes its share of every
 * GEMM (whole panels) and of the gate math (whole GRUINFER_PAD units); sync(ctx)
 * returns when all n threads have called it (a barrier). */
typedef struct {
    int tid, n;
    void (*sync)(void *ctx);
    void *ctx;
} gruinfer_team;

typedef struct gruinfer_kernels {
    const char *name;
    int64_t panel;  /* panel width in floats, a multiple of GRUINFER_PAD */
    /* C[i, 0:n] = bias[0:n] (zeros when NULL) + sum_p A[i, p] * B[p, 0:n] for
     * i < m; B packed in panels, A rows lda apart, C rows ldc apart. */
    void (*gemm)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                 const float *B, const float *bias, float *C, int64_t ldc);
    /* In place over n floats; accurate to 1e-6 absolute against float64. */
    void (*sigmoid)(float *x, int64_t n);
    void (*tanh)(float *x, int64_t n);
    /* 1 if no float of x[0:n] is NaN or Inf. */
    int (*all_finite)(const float *x, int64_t n);
    /* gru_cell_arch.h compiled for this ISA: see gruinfer_gru_project / _cell. */
    void (*project)(const gruinfer_gru *m, int d, int64_t rows, const float *X, int64_t lda,
                    float *xp);
    void (*cell)(const gruinfer_gru *m, int d, int64_t N, const float *const *xrow, float *h,
                 const unsigned char *active, float *scratch, const gruinfer_team *team);
} gruinfer_kernels;

extern const gruinfer_kernels gruinfer_kernels_ref;
#if defined(__x86_64__) || defined(_M_X64)
#define GRUINFER_HAVE_X86 1
extern const gruinfer_kernels gruinfer_kernels_avx2;
extern const gruinfer_kernels gruinfer_kernels_avx512;
#endif

/* Pack a row-major [k][n] matrix src (rows ld apart) into dst in panels of
 * `panel` columns; dst holds k * n floats. */
void gruinfer_pack(float *dst, const float *src, int64_t ld, int64_t k, int64_t n,
                   int64_t panel);

/* cpu.c: the kernel for a name (NULL: GRUINFER_KERNEL, else the best the CPU runs). */
const gruinfer_kernels *gruinfer_kernels_find(const char *name);

#endif
