/* gru_cell_arch.h: one GRU time step and the input projection, written once and compiled per ISA (included by each kernel file). */
/* The including file defines NAME(f) (a per-ISA suffix) and provides
 * NAME(gemm), NAME(sigmoid) and NAME(tanh) before including this. */
#include "gru_internal.h"

/* Clamp to [-c, c]; a NaN stays NaN. */
static inline void NAME(clip)(float *restrict x, int64_t n, float c)
{
    for (int64_t j = 0; j < n; j++)
        x[j] = x[j] > c ? c : x[j] < -c ? -c : x[j];
}

static inline void NAME(apply)(const gruinfer_kernels *k, const gruinfer_activation *a,
                               float *x, int64_t n)
{
    if (a->kind == GRUINFER_ACT_SIGMOID)
        NAME(sigmoid)(x, n);
    else if (a->kind == GRUINFER_ACT_TANH)
        NAME(tanh)(x, n);
    else
        gruinfer_act_apply(k, a, x, n);
}

static void NAME(project)(const gruinfer_gru *m, int d, int64_t rows, const float *X,
                          int64_t lda, float *xp)
{
    NAME(gemm)(rows, 3 * m->Hp, m->I, X, lda, m->Wp[d], m->bx[d], xp, 3 * m->Hp);
}

static void NAME(cell)(const gruinfer_gru *m, int d, int64_t N, const float *const *xrow,
                       float *h, const unsigned char *active, float *scratch)
{
    const int64_t H = m->H, Hp = m->Hp, w = 3 * Hp;
    const int lbr = m->cfg.linear_before_reset;
    const int has_clip = m->cfg.has_clip;
    const float c = m->cfg.clip;
    const gruinfer_activation *f = &m->cfg.f[d], *g = &m->cfg.g[d];
    float *hp = scratch;          /* [N][3Hp]: recurrent projections, then gates */
    float *rh = scratch + N * w;  /* [N][Hp]: r * h when lbr = 0 */

    /* Recurrent projections: z, r always; h too when lbr = 1 (bias Rbh inside). */
    NAME(gemm)(N, 2 * Hp, H, h, Hp, m->Rzr[d], NULL, hp, w);
    if (lbr)
        NAME(gemm)(N, Hp, H, h, Hp, m->Rh[d], m->rbh[d], hp + 2 * Hp, w);

    for (int64_t n = 0; n < N; n++) {
        float *restrict zr = hp + n * w;
        const float *restrict x = xrow[n];
        for (int64_t j = 0; j < 2 * Hp; j++)
            zr[j] += x[j];
        if (has_clip)
            NAME(clip)(zr, 2 * Hp, c);
        NAME(apply)(m->k, f, zr, 2 * Hp);
    }
    if (!lbr) {
        for (int64_t n = 0; n < N; n++) {
            const float *restrict r = hp + n * w + Hp, *restrict hn = h + n * Hp;
            float *restrict o = rh + n * Hp;
            for (int64_t j = 0; j < Hp; j++)
                o[j] = r[j] * hn[j];
        }
        NAME(gemm)(N, Hp, H, rh, Hp, m->Rh[d], NULL, hp + 2 * Hp, w);
    }
    for (int64_t n = 0; n < N; n++) {
        if (active && !active[n])
            continue;
        float *row = hp + n * w;
        const float *restrict z = row, *restrict r = row + Hp, *restrict x = xrow[n] + 2 * Hp;
        float *restrict hh = row + 2 * Hp, *restrict hn = h + n * Hp;
        if (lbr)
            for (int64_t j = 0; j < Hp; j++) hh[j] = x[j] + r[j] * hh[j];
        else
            for (int64_t j = 0; j < Hp; j++) hh[j] += x[j];
        if (has_clip)
            NAME(clip)(hh, Hp, c);
        NAME(apply)(m->k, g, hh, Hp);
        for (int64_t j = 0; j < H; j++)
            hn[j] = hh[j] + z[j] * (hn[j] - hh[j]);
    }
}
