/* gru_plan.h: the plan struct shared by gru_plan.c, plan_ops.c and gru_stream.c (not public). */
#ifndef GRUINFER_GRU_PLAN_H
#define GRUINFER_GRU_PLAN_H

#include "gru_internal.h"

typedef struct {
    int32_t kind, input;        /* input: 0 the plan input, k the output of step k-1 */
    int32_t input2, op;         /* STEP_BINARY: second buffer (-1 for every other step, and for
                                 * a BINARY step reading the constant in Wp), op */
    int64_t in_w, out_w;
    const gruinfer_gru *gru;    /* STEP_GRU */
    float *Wp, *b;              /* one allocation: STEP_DENSE [in_w][round_up(out_w)] in panels,
                                 * then bias; STEP_LAYERNORM scale [in_w], then bias [in_w];
                                 * STEP_BINARY the constant [in_w]; STEP_EMBED the table [V][D] */
    int64_t rows, d;            /* STEP_EMBED: V, D */
    float eps, lo, hi;          /* STEP_LAYERNORM, STEP_CLIP */
    gruinfer_activation act;    /* STEP_ACT */
} gruinfer_plan_step;

struct gruinfer_plan {
    int64_t in_w;
    int64_t ids;                /* > 0: the plan input holds token ids in [-ids, ids) (EMBED steps) */
    int32_t n;
    gruinfer_plan_step *steps;
    const gruinfer_kernels *k;
};

/* plan_ops.c: a stateless step (any kind but GRU) over `rows` rows: in rows ldi apart, its
 * second buffer in2 (NULL: none, a BINARY step then reads its constant) rows ld2 apart, out
 * rows ldo apart.  Checked at plan creation: never fails, never allocates. */
void gruinfer_plan_op(const gruinfer_plan *p, const gruinfer_plan_step *st, const float *in,
                      int64_t ldi, const float *in2, int64_t ld2, float *out, int64_t ldo,
                      int64_t rows);

#endif
