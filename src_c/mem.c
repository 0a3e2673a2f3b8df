/* mem.c: the memory helpers every part shares: aligned float arrays, the finiteness test, packing matrices into kernel panels. */
#include <stdlib.h>
#include <string.h>

#include "gru_internal.h"

float *gruinfer_alloc_scratch(int64_t n)
{
    if (n < 1 || n > ((int64_t)1 << 40))
        return NULL;
    return aligned_alloc(GRUINFER_ALIGN,
                         (size_t)gruinfer_round_up(n * (int64_t)sizeof(float), GRUINFER_ALIGN));
}

float *gruinfer_alloc_floats(int64_t n)
{
    float *p = gruinfer_alloc_scratch(n);
    if (p)
        memset(p, 0, (size_t)gruinfer_round_up(n * (int64_t)sizeof(float), GRUINFER_ALIGN));
    return p;
}

void gruinfer_free_aligned(void *p) { free(p); }

int gruinfer_all_finite(const float *x, int64_t n)
{
    /* The sum of x*0 is NaN exactly when some x is NaN or Inf. */
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += x[i] * 0.0f;
    return acc == 0.0f;
}

void gruinfer_pack(float *dst, const float *src, int64_t ld, int64_t k, int64_t n,
                   int64_t panel)
{
    for (int64_t j0 = 0; j0 < n; j0 += panel) {
        const int64_t w = n - j0 < panel ? n - j0 : panel;
        float *d = dst + j0 * k;
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < w; j++)
                d[p * w + j] = src[p * ld + j0 + j];
    }
}
