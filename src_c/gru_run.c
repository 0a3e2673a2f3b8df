/* gru_run.c: the ONNX GRU operator over a whole batch of sequences (both layouts, every direction, sequence_lens), on one thread or a team. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "gru_internal.h"

/* Layers narrower than this run on one thread: a step is too short to share. */
#define THREADS_MIN_HIDDEN 512

typedef struct {
    const gruinfer_gru *m;
    int64_t T, N;
    const float *X;
    const int32_t *lens;
    const float *h0;
    float *Y, *Y_h;
    int padded;
    int64_t xt, xn, yt, yn, yd, hn, hd;  /* element offsets, see gruinfer_gru_run */
    float *xp, *h, *scratch;
    const float **rows;                  /* [threads][N] */
    unsigned char *active;               /* [threads][N] */
    int threads;
    atomic_int arrived, sense;  /* the team's barrier: see barrier_sync */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate;
    int gate_open;
} run_ctx;

typedef struct {
    run_ctx *c;
    int tid;
    int sense;  /* this thread's view of the barrier's phase */
} run_arg;

/* A sense-reversing barrier: the last thread to arrive flips the phase; the
 * others spin briefly (a step of a wide layer is short), then yield the core.
 * A sleeping barrier costs tens of microseconds to wake from, every step. */
static void barrier_sync(void *arg)
{
    run_arg *a = arg;
    run_ctx *c = a->c;
    a->sense = !a->sense;
    if (atomic_fetch_add(&c->arrived, 1) == c->threads - 1) {
        atomic_store(&c->arrived, 0);
        atomic_store(&c->sense, a->sense);
        return;
    }
    for (int spins = 0; atomic_load(&c->sense) != a->sense;)
        if (++spins == 2000) {
            spins = 0;
            sched_yield();
        }
}

/* Thread a->tid's share of the whole run; every thread runs this in lockstep. */
static void run_share(run_arg *a)
{
    run_ctx *c = a->c;
    const int tid = a->tid;
    const gruinfer_gru *m = c->m;
    const int64_t T = c->T, N = c->N, I = m->I, H = m->H, Hp = m->Hp, w = 3 * Hp;
    const gruinfer_team team = {tid, c->threads, barrier_sync, a};
    const gruinfer_team *tm = c->threads > 1 ? &team : NULL;
    const float **rows = c->rows + tid * N;
    unsigned char *active = c->active + tid * N;
    int64_t j0, j1;  /* the hidden units whose outputs this thread writes */
    gruinfer_team_units(tm, Hp, &j0, &j1);
    j1 = j1 < H ? j1 : H;
    const int64_t r0 = T * N * tid / c->threads, r1 = T * N * (tid + 1) / c->threads;
    for (int64_t d = 0; d < m->D; d++) {
        const int reverse = d == 1 || m->cfg.direction == GRUINFER_REVERSE;
        if (tm)
            barrier_sync(a);  /* the previous direction's outputs are written */
        gruinfer_gru_project(m, (int)d, r1 - r0, c->X + r0 * I, I, c->xp + r0 * w);
        if (tid == 0)
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < H; j++)
                    c->h[n * Hp + j] = c->h0 ? c->h0[d * c->hd + n * c->hn + j] : 0.0f;
        if (tm)
            barrier_sync(a);
        for (int64_t s = 0; s < T; s++) {
            for (int64_t n = 0; n < N; n++) {
                const int64_t len = c->lens ? c->lens[n] : T;
                const int64_t t = s < len ? (reverse ? len - 1 - s : s) : 0;
                active[n] = s < len;
                rows[n] = c->xp + (t * c->xt + n * c->xn) * w;
            }
            gruinfer_gru_cell_team(m, (int)d, N, rows, c->h, c->padded ? active : NULL,
                                   c->scratch, tm);
            if (!c->Y || j1 <= j0)
                continue;
            for (int64_t n = 0; n < N; n++) {
                if (!active[n])
                    continue;
                const int64_t len = c->lens ? c->lens[n] : T;
                const int64_t t = reverse ? len - 1 - s : s;
                memcpy(c->Y + t * c->yt + n * c->yn + d * c->yd + j0, c->h + n * Hp + j0,
                       (size_t)(j1 - j0) * sizeof(float));
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
    }
}

static void *run_worker(void *p)
{
    run_arg *a = p;
    run_ctx *c = a->c;
    pthread_mutex_lock(&c->gate_lock);  /* wait until the team's size is final */
    while (!c->gate_open)
        pthread_cond_wait(&c->gate, &c->gate_lock);
    pthread_mutex_unlock(&c->gate_lock);
    if (a->tid < c->threads)  /* else the team had to shrink */
        run_share(a);
    return NULL;
}

/* Run the team, thread 0 being the caller.  Workers wait at a gate until all
 * are started, so a thread that cannot be started shrinks the team (and its
 * barrier count) before anyone depends on its size. */
static void run_team(run_ctx *c)
{
    enum { MAX_THREADS = 64 };
    pthread_t ids[MAX_THREADS];
    run_arg args[MAX_THREADS];
    int want = c->threads < MAX_THREADS ? c->threads : MAX_THREADS, started = 1;
    c->gate_open = 0;
    atomic_init(&c->arrived, 0);
    atomic_init(&c->sense, 0);
    args[0] = (run_arg){c, 0, 0};
    pthread_mutex_init(&c->gate_lock, NULL);
    pthread_cond_init(&c->gate, NULL);
    for (; started < want; started++) {
        args[started] = (run_arg){c, started, 0};
        if (pthread_create(&ids[started], NULL, run_worker, &args[started]) != 0)
            break;
    }
    c->threads = started;
    pthread_mutex_lock(&c->gate_lock);
    c->gate_open = 1;
    pthread_cond_broadcast(&c->gate);
    pthread_mutex_unlock(&c->gate_lock);
    run_share(&args[0]);
    for (int t = 1; t < started; t++)
        pthread_join(ids[t], NULL);
    pthread_cond_destroy(&c->gate);
    pthread_mutex_destroy(&c->gate_lock);
}

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
    c.threads = H >= THREADS_MIN_HIDDEN && m->cfg.threads > 1 ? m->cfg.threads : 1;
    c.xp = gruinfer_alloc_scratch(T * N * w);
    c.h = gruinfer_alloc_floats(N * Hp);
    c.scratch = gruinfer_alloc_scratch(gruinfer_cell_scratch(m, N));
    c.rows = (const float **)gruinfer_alloc_scratch((int64_t)c.threads * N * 2);
    c.active = (unsigned char *)gruinfer_alloc_scratch((int64_t)c.threads * N);
    gruinfer_status status = GRUINFER_E_NOMEM;
    if (c.xp && c.h && c.scratch && c.rows && c.active) {
        c.m = m, c.T = T, c.N = N, c.X = X, c.lens = lens, c.h0 = h0, c.Y = Y, c.Y_h = Y_h;
        c.padded = padded;
        /* Element offsets of (t, n) in X (rows of I), Y (rows of H) and of n in h0 / Y_h. */
        c.xt = layout ? 1 : N, c.xn = layout ? T : 1;
        c.yt = layout ? D * H : D * N * H, c.yn = layout ? T * D * H : H;
        c.yd = layout ? H : N * H;
        c.hn = layout ? D * H : H, c.hd = layout ? H : N * H;
        if (Y && padded)
            memset(Y, 0, (size_t)(T * D * N * H) * sizeof(float));
        if (c.threads > 1) {
            run_team(&c);
        } else {
            run_arg one = {&c, 0, 0};
            run_share(&one);
        }
        status = GRUINFER_OK;
    }
    gruinfer_free_aligned(c.xp);
    gruinfer_free_aligned(c.h);
    gruinfer_free_aligned(c.scratch);
    gruinfer_free_aligned((void *)c.rows);
    gruinfer_free_aligned(c.active);
    return status;
}
