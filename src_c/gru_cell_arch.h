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

/* C[:, panels p0 .. p1) of an n-column packed matrix (k rows): the slice a thread owns. */
static inline void NAME(gemm_panels)(int64_t N, int64_t n, int64_t k, const float *A, int64_t lda,
                                     const float *B, const float *bias, float *C, int64_t ldc,
                                     const gruinfer_team *team)
{
    const int64_t P = PANEL, panels = (n + P - 1) / P;
    const int64_t p0 = team ? panels * team->tid / team->n : 0;
    const int64_t p1 = team ? panels * (team->tid + 1) / team->n : panels;
    if (p1 <= p0)
        return;
    const int64_t c0 = p0 * P, c1 = p1 * P < n ? p1 * P : n;
    NAME(gemm)(N, c1 - c0, k, A, lda, B + c0 * k, bias ? bias + c0 : NULL, C + c0, ldc);
}

static inline void NAME(sync)(const gruinfer_team *team)
{
    if (team)
        team->sync(team->ctx);
}

static void NAME(cell)(const gruinfer_gru *m, int d, int64_t N, const float *const *xrow,
                       float *h, const unsigned char *active, float *scratch,
                       const gruinfer_team *team)
{
    const int64_t H = m->H, Hp = m->Hp, w = 3 * Hp;
    const int lbr = m->cfg.linear_before_reset;
    const int has_clip = m->cfg.has_clip;
    const float c = m->cfg.clip;
    const gruinfer_activation *f = &m->cfg.f[d], *g = &m->cfg.g[d];
    float *hp = scratch;          /* [N][3Hp]: recurrent projections, then gates */
    float *rh = scratch + N * w;  /* [N][Hp]: r * h when lbr = 0 */
    /* Element-wise work on hidden units [j0, j1): whole vectors of GRUINFER_PAD. */
    int64_t j0, j1;
    gruinfer_team_units(team, Hp, &j0, &j1);
    const int64_t nj = j1 - j0, jH = (H < j1 ? H : j1) - j0;

    /* Recurrent projections: z, r always; h too when lbr = 1 (bias Rbh inside). */
    NAME(gemm_panels)(N, 2 * Hp, H, h, Hp, m->Rzr[d], NULL, hp, w, team);
    if (lbr)
        NAME(gemm_panels)(N, Hp, H, h, Hp, m->Rh[d], m->rbh[d], hp + 2 * Hp, w, team);
    NAME(sync)(team);

#ifdef VLEN
    /* SIMD kernels, default activations (f sigmoid, g tanh) with linear_before_reset:
     * the whole gate math of a vector of units in registers, one pass. */
    if (lbr && f->kind == GRUINFER_ACT_SIGMOID && g->kind == GRUINFER_ACT_TANH) {
        for (int64_t n = 0; n < N && nj > 0; n++)
            if (!active || active[n])
                NAME(gates_lbr)(hp + n * w + j0, xrow[n] + j0, h + n * Hp + j0, Hp, nj,
                                has_clip, c);
        NAME(sync)(team);
        return;
    }
#endif
    for (int64_t n = 0; n < N && nj > 0; n++)
        for (int gate = 0; gate < (nj == Hp ? 1 : 2); gate++) {
            /* z and r side by side: one pass over both when this call owns every unit */
            const int64_t len = nj == Hp ? 2 * Hp : nj;
            float *restrict zr = hp + n * w + gate * Hp + j0;
            const float *restrict x = xrow[n] + gate * Hp + j0;
            for (int64_t j = 0; j < len; j++)
                zr[j] += x[j];
            if (has_clip)
                NAME(clip)(zr, len, c);
            NAME(apply)(m->k, f, zr, len);
        }
    if (!lbr) {
        for (int64_t n = 0; n < N; n++) {
            const float *restrict r = hp + n * w + Hp, *restrict hn = h + n * Hp;
            float *restrict o = rh + n * Hp;
            for (int64_t j = j0; j < j1; j++)
                o[j] = r[j] * hn[j];
        }
        NAME(sync)(team);
        NAME(gemm_panels)(N, Hp, H, rh, Hp, m->Rh[d], NULL, hp + 2 * Hp, w, team);
        NAME(sync)(team);
    }
    for (int64_t n = 0; n < N && nj > 0; n++) {
        if (active && !active[n])
            continue;
        float *row = hp + n * w;
        const float *restrict z = row + j0, *restrict r = row + Hp + j0;
        const float *restrict x = xrow[n] + 2 * Hp + j0;
        float *restrict hh = row + 2 * Hp + j0, *restrict hn = h + n * Hp + j0;
        if (lbr)
            for (int64_t j = 0; j < nj; j++) hh[j] = x[j] + r[j] * hh[j];
        else
            for (int64_t j = 0; j < nj; j++) hh[j] += x[j];
        if (has_clip)
            NAME(clip)(hh, nj, c);
        NAME(apply)(m->k, g, hh, nj);
        for (int64_t j = 0; j < jH; j++)
            hn[j] = hh[j] + z[j] * (hn[j] - hh[j]);
    }
    /* Every unit of h is written before any thread reads h again. */
    NAME(sync)(team);
}
