/* gru_internal.h: the layer struct and the helpers shared by the model, run, plan and stream files (not public). */
#ifndef GRUINFER_GRU_INTERNAL_H
#define GRUINFER_GRU_INTERNAL_H

#include <stddef.h>

#include "gru.h"
#include "kernels.h"

struct gruinfer_gru {
    gruinfer_gru_config cfg;
    int64_t D, I, H, Hp;          /* Hp: H rounded up to GRUINFER_PAD */
    const gruinfer_kernels *k;
    float *Wp[2];                 /* [I][3Hp] in panels, columns z | r | h */
    float *Rzr[2];                /* [H][2Hp] in panels, columns z | r */
    float *Rh[2];                 /* [H][Hp] in panels */
    float *bx[2];                 /* [3Hp]: Wb + Rb for z, r; Wbh (+ Rbh when lbr = 0) for h */
    float *rbh[2];                /* [Hp]: Rbh, applied inside r * (.) when lbr = 1 */
    void *mem;
};

static inline int64_t gruinfer_round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* Aligned allocation of n floats, zeroed; free with gruinfer_free_aligned. */
float *gruinfer_alloc_floats(int64_t n);
/* The same, left uninitialised: for scratch that is written before it is read. */
float *gruinfer_alloc_scratch(int64_t n);
void gruinfer_free_aligned(void *p);

/* 1 if every one of n floats is finite. */
int gruinfer_all_finite(const float *x, int64_t n);

/* x = act(x) over n floats. */
void gruinfer_act_apply(const gruinfer_kernels *k, const gruinfer_activation *a, float *x,
                        int64_t n);
gruinfer_status gruinfer_act_check(const gruinfer_activation *a);

/* Scratch floats gruinfer_gru_cell needs for N rows. */
static inline int64_t gruinfer_cell_scratch(const gruinfer_gru *m, int64_t N)
{
    return N * 4 * m->Hp;
}

/* Layers narrower than this run on one thread: a step is too short to share. */
#define GRUINFER_THREADS_MIN_HIDDEN 512

/* team.c: run fn(arg, team) on `threads` threads (fewer if some cannot be
 * started), each with its own team member; returns when all have returned.
 * With one thread, fn(arg, NULL) runs on the caller. */
typedef void (*gruinfer_team_fn)(void *arg, const gruinfer_team *team);
void gruinfer_team_run(int threads, gruinfer_team_fn fn, void *arg);

/* The threads a layer's computation may use. */
static inline int gruinfer_threads(const gruinfer_gru *m)
{
    return m->H >= GRUINFER_THREADS_MIN_HIDDEN && m->cfg.threads > 1 ? m->cfg.threads : 1;
}

/* The hidden units [j0, j1) a team member owns in element-wise work: whole
 * GRUINFER_PAD blocks of [0, Hp), split evenly (all of them without a team). */
static inline void gruinfer_team_units(const gruinfer_team *team, int64_t Hp, int64_t *j0,
                                       int64_t *j1)
{
    const int64_t units = Hp / GRUINFER_PAD;
    *j0 = team ? units * team->tid / team->n * GRUINFER_PAD : 0;
    *j1 = team ? units * (team->tid + 1) / team->n * GRUINFER_PAD : Hp;
}

/* One time step of direction d for N rows.
 *   xrow[n]: the input projection of row n ([3Hp], biases included).
 *   h: the states [N][Hp], updated in place for rows with active[n] != 0
 *      (every row when active is NULL).
 *   scratch: gruinfer_cell_scratch(m, N) floats.
 *   team: NULL for one thread; else every member of the team makes the call
 *   with the same rows, h and scratch, and its own tid. */
static inline void gruinfer_gru_cell(const gruinfer_gru *m, int d, int64_t N,
                                     const float *const *xrow, float *h,
                                     const unsigned char *active, float *scratch,
                                     const gruinfer_team *team)
{
    m->k->cell(m, d, N, xrow, h, active, scratch, team);
}

/* xp[i] = X[i] . W_d^T + bias for `rows` input rows lda apart; xp rows 3Hp apart. */
static inline void gruinfer_gru_project(const gruinfer_gru *m, int d, int64_t rows,
                                        const float *X, int64_t lda, float *xp)
{
    m->k->project(m, d, rows, X, lda, xp);
}

#endif
