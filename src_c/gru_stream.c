/* gru_stream.c: per-stream state and scratch for a plan; advances N slots by a chunk of frames with no allocation (GRU steps here, the stateless steps in plan_ops.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gru_plan.h"

struct gruinfer_stream {
    const gruinfer_plan *p;
    int64_t N, TB;         /* slots; frames per block */
    float **buf;           /* [n+1]: block buffers [TB*N][ld[k]]; buf[0] the input */
    int64_t *ld;           /* [n+1] */
    float **h;             /* [n]: GRU states [N][Hp], NULL for other steps */
    float *xp;             /* [TB*N][3Hp] for the widest GRU */
    float *scratch;        /* cell scratch for the widest GRU */
    const float **rows;    /* [threads][N]: the rows each team member steps */
    float *mem;
};

#define BLOCK_FLOATS ((int64_t)1 << 22)

gruinfer_status gruinfer_stream_create(const gruinfer_plan *p, int64_t N, gruinfer_stream **out)
{
    if (!out)
        return GRUINFER_E_NULL;
    *out = NULL;
    if (!p)
        return GRUINFER_E_NULL;
    if (N < 1 || N > GRUINFER_MAX_DIM)
        return GRUINFER_E_SIZE;
    const int32_t n = p->n;
    int64_t per_frame = 0, states = 0, xpw = 0, cell = 0, threads = 1;
    for (int32_t k = 0; k <= n; k++)
        per_frame += gruinfer_round_up(gruinfer_plan_width(p, k), GRUINFER_PAD);
    for (int32_t k = 0; k < n; k++) {
        const gruinfer_gru *m = p->steps[k].s.gru;
        if (!m)
            continue;
        states += N * m->Hp;
        if (3 * m->Hp > xpw)
            xpw = 3 * m->Hp;
        if (gruinfer_cell_scratch(m, N) > cell)
            cell = gruinfer_cell_scratch(m, N);
        if (gruinfer_threads(m) > threads)
            threads = gruinfer_threads(m);
    }
    per_frame = (per_frame + xpw) * N;
    int64_t TB = BLOCK_FLOATS / per_frame;
    TB = TB < 1 ? 1 : TB > 32 ? 32 : TB;
    const int64_t total = TB * per_frame + states + cell + threads * 2 * N + (n + 1) * GRUINFER_PAD;
    if (total > ((int64_t)1 << 40))
        return GRUINFER_E_SIZE;

    gruinfer_stream *s = calloc(1, sizeof *s);
    float **ptrs = calloc((size_t)(2 * n + 1), sizeof *ptrs);
    int64_t *ld = calloc((size_t)(n + 1), sizeof *ld);
    float *mem = gruinfer_alloc_floats(total);
    if (!s || !ptrs || !ld || !mem) {
        free(s), free(ptrs), free(ld);
        gruinfer_free_aligned(mem);
        return GRUINFER_E_NOMEM;
    }
    s->p = p, s->N = N, s->TB = TB, s->mem = mem, s->ld = ld;
    s->buf = ptrs, s->h = ptrs + n + 1;
    float *cur = mem;
    for (int32_t k = 0; k <= n; k++) {
        ld[k] = gruinfer_round_up(gruinfer_plan_width(p, k), GRUINFER_PAD);
        s->buf[k] = cur;
        cur += TB * N * ld[k];
    }
    for (int32_t k = 0; k < n; k++)
        if (p->steps[k].s.gru) {
            s->h[k] = cur;
            cur += N * p->steps[k].s.gru->Hp;
        }
    s->xp = cur, cur += TB * N * xpw;
    s->scratch = cur, cur += cell;
    s->rows = (const float **)cur;
    *out = s;
    return GRUINFER_OK;
}

void gruinfer_stream_free(gruinfer_stream *s)
{
    if (!s)
        return;
    gruinfer_free_aligned(s->mem);
    free(s->buf);
    free(s->ld);
    free(s);
}

/* A block of a GRU step shares the work with a team (started per call) when
 * the layer is wide and the block has at least this many multiply-adds. */
#define STREAM_TEAM_MIN_MACS ((int64_t)4 << 20)

/* A GRU step over a block of frames. */
typedef struct {
    gruinfer_stream *s;
    int32_t k;
    const float *in;
    int64_t ldi, tb;
    float *out;
} gru_block;

static void gru_block_share(void *arg, const gruinfer_team *tm)
{
    const gru_block *b = arg;
    gruinfer_stream *s = b->s;
    const gruinfer_gru *m = s->p->steps[b->k].s.gru;
    const int tid = tm ? tm->tid : 0, threads = tm ? tm->n : 1;
    const int64_t N = s->N, Hp = m->Hp, w = 3 * Hp, rows = b->tb * N;
    const int64_t r0 = rows * tid / threads, r1 = rows * (tid + 1) / threads;
    const float **xrow = s->rows + tid * N;
    int64_t j0, j1;  /* the units of the output this member copies */
    gruinfer_team_units(tm, Hp, &j0, &j1);
    gruinfer_gru_project(m, 0, r1 - r0, b->in + r0 * b->ldi, b->ldi, s->xp + r0 * w);
    if (tm)
        tm->sync(tm->ctx);
    for (int64_t t = 0; t < b->tb; t++) {
        for (int64_t n = 0; n < N; n++)
            xrow[n] = s->xp + (t * N + n) * w;
        gruinfer_gru_cell(m, 0, N, xrow, s->h[b->k], NULL, s->scratch, tm);
        for (int64_t n = 0; n < N && j1 > j0; n++)
            memcpy(b->out + (t * N + n) * Hp + j0, s->h[b->k] + n * Hp + j0,
                   (size_t)(j1 - j0) * sizeof(float));
    }
}

/* Run every step over one block of tb frames already in buf[0]: GRU steps here (they carry
 * state and may share the work with a team), the others in plan_ops.c. */
static void run_block(gruinfer_stream *s, int64_t tb)
{
    const gruinfer_plan *p = s->p;
    const int64_t N = s->N, rows = tb * N;
    for (int32_t k = 0; k < p->n; k++) {
        const gruinfer_plan_step *st = &p->steps[k];
        const float *in = s->buf[st->s.input];
        const int64_t ldi = s->ld[st->s.input], ldo = s->ld[k + 1];
        float *out = s->buf[k + 1];
        if (st->s.kind != GRUINFER_STEP_GRU) {
            const int32_t k2 = st->s.input2; /* < 0: none */
            gruinfer_plan_op(p, st, in, ldi, k2 < 0 ? NULL : s->buf[k2], k2 < 0 ? 0 : s->ld[k2],
                             out, ldo, rows);
            continue;
        }
        gru_block b = {s, k, in, ldi, tb, out};
        const gruinfer_gru *m = st->s.gru;
        const int64_t macs = rows * 3 * m->Hp * (m->I + m->H);
        gruinfer_team_run(macs >= STREAM_TEAM_MIN_MACS ? gruinfer_threads(m) : 1, gru_block_share,
                          &b);
    }
}

/* dst[t, n, 0:w] = src[t, n, 0:w] for t < T, n < N: frame (t, n) at t*st + n*sn floats from
 * each base, with its own strides. */
static void copy_frames(float *dst, int64_t d_st, int64_t d_sn, const float *src, int64_t s_st,
                        int64_t s_sn, int64_t T, int64_t N, int64_t w)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++)
            memcpy(dst + t * d_st + n * d_sn, src + t * s_st + n * s_sn, (size_t)w * sizeof(float));
}

gruinfer_status gruinfer_stream_run(gruinfer_stream *s, int64_t T, const float *x,
                                    int64_t x_st, int64_t x_sn, int32_t check_finite,
                                    float *const *outs, const int64_t *o_st,
                                    const int64_t *o_sn)
{
    if (!s || !x)
        return GRUINFER_E_NULL;
    if (outs && (!o_st || !o_sn))
        return GRUINFER_E_NULL;
    if (T < 1)
        return GRUINFER_E_SIZE;
    const gruinfer_plan *p = s->p;
    const int64_t N = s->N, I = p->in_w;
    if (check_finite)
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                if (!p->k->all_finite(x + t * x_st + n * x_sn, I))
                    return GRUINFER_E_NONFINITE;
    if (p->ids > 0) {
        const float lim = (float)p->ids;
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) {
                const float *row = x + t * x_st + n * x_sn;
                for (int64_t i = 0; i < I; i++)
                    if (!(row[i] >= -lim && row[i] < lim) || row[i] != floorf(row[i]))
                        return GRUINFER_E_INDEX;
            }
    }
    for (int64_t t0 = 0; t0 < T; t0 += s->TB) {
        const int64_t tb = T - t0 < s->TB ? T - t0 : s->TB;
        copy_frames(s->buf[0], N * s->ld[0], s->ld[0], x + t0 * x_st, x_st, x_sn, tb, N, I);
        run_block(s, tb);
        if (!outs)
            continue;
        for (int32_t k = 0; k < p->n; k++) {
            if (!outs[k])
                continue;
            const int64_t ld = s->ld[k + 1];
            copy_frames(outs[k] + t0 * o_st[k], o_st[k], o_sn[k], s->buf[k + 1], N * ld, ld, tb, N,
                        p->steps[k].out_w);
        }
    }
    return GRUINFER_OK;
}

/* The layer of GRU step k, once the stream, k and the state array h are checked. */
static gruinfer_status state_of(const gruinfer_stream *s, int32_t k, const float *h,
                                const gruinfer_gru **m)
{
    if (!s)
        return GRUINFER_E_NULL;
    if (k < 0 || k >= s->p->n || !s->p->steps[k].s.gru)
        return GRUINFER_E_PLAN;
    if (!h)
        return GRUINFER_E_NULL;
    *m = s->p->steps[k].s.gru;
    return GRUINFER_OK;
}

gruinfer_status gruinfer_stream_get_state(const gruinfer_stream *s, int32_t k, float *h)
{
    const gruinfer_gru *m;
    const gruinfer_status st = state_of(s, k, h, &m);
    if (st == GRUINFER_OK)
        copy_frames(h, 0, m->H, s->h[k], 0, m->Hp, 1, s->N, m->H);
    return st;
}

gruinfer_status gruinfer_stream_set_state(gruinfer_stream *s, int32_t k, const float *h)
{
    const gruinfer_gru *m;
    gruinfer_status st = state_of(s, k, h, &m);
    if (st == GRUINFER_OK && !gruinfer_all_finite(h, s->N * m->H))
        st = GRUINFER_E_NONFINITE;
    if (st == GRUINFER_OK)
        copy_frames(s->h[k], 0, m->Hp, h, 0, m->H, 1, s->N, m->H);
    return st;
}

gruinfer_status gruinfer_stream_set_slot_state(gruinfer_stream *s, int32_t k, int64_t slot,
                                               const float *h)
{
    const gruinfer_gru *m;
    gruinfer_status st = state_of(s, k, h, &m);
    if (st == GRUINFER_OK && (slot < 0 || slot >= s->N))
        st = GRUINFER_E_SLOT;
    if (st == GRUINFER_OK && !gruinfer_all_finite(h, m->H))
        st = GRUINFER_E_NONFINITE;
    if (st == GRUINFER_OK)
        memcpy(s->h[k] + slot * m->Hp, h, (size_t)m->H * sizeof(float));
    return st;
}

gruinfer_status gruinfer_stream_reset(gruinfer_stream *s, const int64_t *slots, int64_t n)
{
    if (!s)
        return GRUINFER_E_NULL;
    if (slots)
        for (int64_t i = 0; i < n; i++)
            if (slots[i] < 0 || slots[i] >= s->N)
                return GRUINFER_E_SLOT;
    for (int32_t k = 0; k < s->p->n; k++) {
        const gruinfer_gru *m = s->p->steps[k].s.gru;
        if (!m)
            continue;
        if (!slots)
            memset(s->h[k], 0, (size_t)(s->N * m->Hp) * sizeof(float));
        else
            for (int64_t i = 0; i < n; i++)
                memset(s->h[k] + slots[i] * m->Hp, 0, (size_t)m->Hp * sizeof(float));
    }
    return GRUINFER_OK;
}
