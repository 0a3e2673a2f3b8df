/* gru_cell.c: one GRU time step for a batch of rows (the gate math around the kernel GEMMs), and the activations. */
#include <math.h>
#include <string.h>

#include "gru_internal.h"

gruinfer_status gruinfer_act_check(const gruinfer_activation *a)
{
    if (a->kind < 0 || a->kind >= GRUINFER_ACT_COUNT)
        return GRUINFER_E_ACTIVATION;
    if (!isfinite(a->alpha) || !isfinite(a->beta))
        return GRUINFER_E_NONFINITE;
    return GRUINFER_OK;
}

void gruinfer_act_apply(const gruinfer_kernels *k, const gruinfer_activation *a, float *x,
                        int64_t n)
{
    const float al = a->alpha, be = a->beta;
    switch (a->kind) {
    case GRUINFER_ACT_SIGMOID: k->sigmoid(x, n); return;
    case GRUINFER_ACT_TANH: k->tanh(x, n); return;
    case GRUINFER_ACT_RELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    case GRUINFER_ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) x[i] = fmaxf(0.0f, fminf(1.0f, al * x[i] + be));
        return;
    case GRUINFER_ACT_LEAKYRELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : al * x[i];
        return;
    case GRUINFER_ACT_THRESHOLDEDRELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > al ? x[i] : 0.0f;
        return;
    case GRUINFER_ACT_SCALEDTANH:
        for (int64_t i = 0; i < n; i++) x[i] = be * x[i];
        k->tanh(x, n);
        for (int64_t i = 0; i < n; i++) x[i] = al * x[i];
        return;
    case GRUINFER_ACT_AFFINE:
        for (int64_t i = 0; i < n; i++) x[i] = al * x[i] + be;
        return;
    case GRUINFER_ACT_ELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : al * expm1f(x[i]);
        return;
    case GRUINFER_ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + fabsf(x[i]));
        return;
    case GRUINFER_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
        return;
    }
}

static void clip(float *x, int64_t n, float c)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = fminf(c, fmaxf(-c, x[i]));
}

void gruinfer_gru_project(const gruinfer_gru *m, int d, int64_t rows, const float *X,
                          int64_t lda, float *xp)
{
    const int64_t w = 3 * m->Hp;
    for (int64_t i = 0; i < rows; i++)
        memcpy(xp + i * w, m->bx[d], (size_t)w * sizeof(float));
    m->k->gemm_acc(rows, w, m->I, X, lda, m->Wp[d], xp, w);
}

void gruinfer_gru_cell(const gruinfer_gru *m, int d, int64_t N, const float *const *xrow,
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
    for (int64_t n = 0; n < N; n++) {
        memset(hp + n * w, 0, (size_t)(2 * Hp) * sizeof(float));
        if (lbr)
            memcpy(hp + n * w + 2 * Hp, m->rbh[d], (size_t)Hp * sizeof(float));
        else
            memset(hp + n * w + 2 * Hp, 0, (size_t)Hp * sizeof(float));
    }
    m->k->gemm_acc(N, 2 * Hp, H, h, Hp, m->Rzr[d], hp, w);
    if (lbr)
        m->k->gemm_acc(N, Hp, H, h, Hp, m->Rh[d], hp + 2 * Hp, w);

    for (int64_t n = 0; n < N; n++) {
        float *zr = hp + n * w;
        const float *x = xrow[n];
        for (int64_t j = 0; j < 2 * Hp; j++)
            zr[j] += x[j];
        if (has_clip)
            clip(zr, 2 * Hp, c);
        gruinfer_act_apply(m->k, f, zr, 2 * Hp);
    }
    if (!lbr) {
        for (int64_t n = 0; n < N; n++) {
            const float *r = hp + n * w + Hp, *hn = h + n * Hp;
            float *o = rh + n * Hp;
            for (int64_t j = 0; j < Hp; j++)
                o[j] = r[j] * hn[j];
        }
        m->k->gemm_acc(N, Hp, H, rh, Hp, m->Rh[d], hp + 2 * Hp, w);
    }
    for (int64_t n = 0; n < N; n++) {
        if (active && !active[n])
            continue;
        float *row = hp + n * w;
        const float *z = row, *r = row + Hp, *x = xrow[n] + 2 * Hp;
        float *hh = row + 2 * Hp, *hn = h + n * Hp;
        if (lbr)
            for (int64_t j = 0; j < Hp; j++) hh[j] = x[j] + r[j] * hh[j];
        else
            for (int64_t j = 0; j < Hp; j++) hh[j] += x[j];
        if (has_clip)
            clip(hh, Hp, c);
        gruinfer_act_apply(m->k, g, hh, Hp);
        for (int64_t j = 0; j < H; j++)
            hn[j] = hh[j] + z[j] * (hn[j] - hh[j]);
    }
}
