/* gru_run.c: the ONNX GRU operator over a whole batch of sequences (both layouts, every direction, sequence_lens), on one thread or a team. */
#include <string.h>

#include "gru_internal.h"

typedef struct {
    const gruinfer_gru *m;
    int64_t T, N, TB;                    /* TB: time steps per block of input projections */
    const float *X;
    const int32_t *lens;
    const float *h0;
    float *Y, *Y_h;
    int padded;
    int64_t xt, xn, yt, yn, yd, hn, hd;  /* element offsets, see gruinfer_gru_run */
    float *xb, *xp, *h, *scratch;        /* xb [TB*N][I]: gathered input rows; xp [TB*N][3Hp] */
    const float **rows;                  /* [threads][N] */
    unsigned char *active;               /* [threads][N] */
} run_ctx;

/* The time index row n reads at step s of direction d (0 past its length). */
static inline int64_t step_time(const run_ctx *c, int reverse, int64_t s, int64_t n)
{
    const int64_t len = c->lens ? c->lens[n] : c->T;
    return s < len ? (reverse ? len - 1 - s : s) : 0;
}

/* Input projections of steps [s0, s0 + tb) for rows [r0, r1) of that block (row r: step s0 +
 * r / N, batch n = r % N): straight from X when those rows lie in it in order (forward,
 * time-major, no sequence_lens), else gathered into xb first. */
static void project_block(const run_ctx *c, int d, int reverse, int64_t s0, int64_t r0, int64_t r1)
{
    const gruinfer_gru *m = c->m;
    const int64_t N = c->N, I = m->I, w = 3 * m->Hp;
    if (r1 <= r0)
        return;
    if (!reverse && !c->lens && c->xn == 1 && c->xt == N) {
        gruinfer_gru_project(m, d, r1 - r0, c->X + (s0 * N + r0) * I, I, c->xp + r0 * w);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const int64_t s = s0 + r / N, n = r % N, t = step_time(c, reverse, s, n);
        memcpy(c->xb + r * I, c->X + (t * c->xt + n * c->xn) * I, (size_t)I * sizeof(float));
    }
    gruinfer_gru_project(m, d, r1 - r0, c->xb + r0 * I, I, c->xp + r0 * w);
}

/* One team member's share of the whole run (all of it without a team); every
 * member runs this in lockstep. */
static void run_share(void *arg, const gruinfer_team *tm)
{
    run_ctx *c = arg;
    const int tid = tm ? tm->tid : 0, threads = tm ? tm->n : 1;
    const gruinfer_gru *m = c->m;
    const int64_t T = c->T, N = c->N, H = m->H, Hp = m->Hp, w = 3 * Hp;
    const float **rows = c->rows + tid * N;
    unsigned char *active = c->active + tid * N;
    int64_t j0, j1;  /* the hidden units whose outputs this thread writes */
    gruinfer_team_units(tm, Hp, &j0, &j1);
    j1 = j1 < H ? j1 : H;
    for (int64_t d = 0; d < m->D; d++) {
        const int reverse = d == 1 || m->cfg.direction == GRUINFER_REVERSE;
        if (tid == 0)
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < H; j++)
                    c->h[n * Hp + j] = c->h0 ? c->h0[d * c->hd + n * c->hn + j] : 0.0f;
        for (int64_t s0 = 0; s0 < T; s0 += c->TB) {
            const int64_t tb = T - s0 < c->TB ? T - s0 : c->TB, R = tb * N;
            if (tm)
                tm->sync(tm->ctx);  /* the previous block's (or direction's) steps are done */
            project_block(c, (int)d, reverse, s0, R * tid / threads, R * (tid + 1) / threads);
            if (tm)
                tm->sync(tm->ctx);
            for (int64_t s = s0; s < s0 + tb; s++) {
                for (int64_t n = 0; n < N; n++) {
                    active[n] = s < (c->lens ? c->lens[n] : T);
                    rows[n] = c->xp + ((s - s0) * N + n) * w;
                }
                gruinfer_gru_cell(m, (int)d, N, rows, c->h, c->padded ? active : NULL,
                                  c->scratch, tm);
                if (!c->Y || j1 <= j0)
                    continue;
                for (int64_t n = 0; n < N; n++) {
                    if (!active[n])
                        continue;
                    const int64_t t = step_time(c, reverse, s, n);
                    memcpy(c->Y + t * c->yt + n * c->yn + d * c->yd + j0, c->h + n * Hp + j0,
                           (size_t)(j1 - j0) * sizeof(float));
                }
            }
        }
        if (c->Y_h && tid == 0)  /* the cell's last barrier: h is final */
            for (int64_t n = 0; n < N; n++) {
                float *o = c->Y_h + d * c->hd + n * c->hn;
                if (c->lens && c->lens[n] == 0)
                    memset(o, 0, (size_t)H * sizeof(float));
                else
                    memcpy(o, c->h + n * Hp, (size_t)H * sizeof(float));
            }
        if (tm)
            tm->sync(tm->ctx);  /* h and Y_h are read before the next direction resets h */
    }
}

/* Floats of input rows and projections one block may hold: the block is as many time steps as
 * fit, at most RUN_BLOCK_STEPS, so a long sequence is not projected into memory all at once. */
#define RUN_BLOCK_FLOATS ((int64_t)1 << 21)
#define RUN_BLOCK_STEPS 64

gruinfer_status gruinfer_gru_run(const gruinfer_gru *m, int32_t layout, int64_t T, int64_t N,
                                 const float *X, const int32_t *lens, const float *h0,
                                 int32_t check_finite, float *Y, float *Y_h)
{
    if (!m || !X)
        return GRUINFER_E_NULL;
    if (layout != 0 && layout != 1)
        return GRUINFER_E_ATTR;
    if (T < 1 || N < 1 || T > GRUINFER_MAX_DIM || N > GRUINFER_MAX_DIM)
        return GRUINFER_E_SIZE;
    const int64_t D = m->D, I = m->I, H = m->H, Hp = m->Hp, w = 3 * Hp;
    if (T * N > ((int64_t)1 << 40) / (w + I + 1))
        return GRUINFER_E_SIZE;
    int padded = 0;
    if (lens)
        for (int64_t n = 0; n < N; n++) {
            if (lens[n] < 0 || lens[n] > T)
                return GRUINFER_E_SEQLEN;
            padded |= lens[n] < T;
        }
    if (check_finite && (!m->k->all_finite(X, T * N * I) ||
                         (h0 && !m->k->all_finite(h0, D * N * H))))
        return GRUINFER_E_NONFINITE;

    run_ctx c = {0};
    const int threads = gruinfer_threads(m);
    int64_t TB = RUN_BLOCK_FLOATS / (N * (I + w));
    TB = TB < 1 ? 1 : TB > RUN_BLOCK_STEPS ? RUN_BLOCK_STEPS : TB > T ? T : TB;
    c.TB = TB;
    c.xb = gruinfer_alloc_scratch(TB * N * I);
    c.xp = gruinfer_alloc_scratch(TB * N * w);
    c.h = gruinfer_alloc_floats(N * Hp);
    c.scratch = gruinfer_alloc_scratch(gruinfer_cell_scratch(m, N));
    c.rows = (const float **)gruinfer_alloc_scratch((int64_t)threads * N * 2);
    c.active = (unsigned char *)gruinfer_alloc_scratch((int64_t)threads * N);
    gruinfer_status status = GRUINFER_E_NOMEM;
    if (c.xb && c.xp && c.h && c.scratch && c.rows && c.active) {
        c.m = m, c.T = T, c.N = N, c.X = X, c.lens = lens, c.h0 = h0, c.Y = Y, c.Y_h = Y_h;
        c.padded = padded;
        /* Element offsets of (t, n) in X (rows of I), Y (rows of H) and of n in h0 / Y_h. */
        c.xt = layout ? 1 : N, c.xn = layout ? T : 1;
        c.yt = layout ? D * H : D * N * H, c.yn = layout ? T * D * H : H;
        c.yd = layout ? H : N * H;
        c.hn = layout ? D * H : H, c.hd = layout ? H : N * H;
        if (Y && padded)
            memset(Y, 0, (size_t)(T * D * N * H) * sizeof(float));
        gruinfer_team_run(threads, run_share, &c);
        status = GRUINFER_OK;
    }
    gruinfer_free_aligned(c.xb);
    gruinfer_free_aligned(c.xp);
    gruinfer_free_aligned(c.h);
    gruinfer_free_aligned(c.scratch);
    gruinfer_free_aligned((void *)c.rows);
    gruinfer_free_aligned(c.active);
    return status;
}
