/* gru_plan.h: the plan struct shared by gru_plan.c and gru_stream.c (not public). */
#ifndef GRUINFER_GRU_PLAN_H
#define GRUINFER_GRU_PLAN_H

#include "gru_internal.h"

typedef struct {
    int32_t kind, input;        /* input: 0 the plan input, k the output of step k-1 */
    int64_t in_w, out_w;
    const gruinfer_gru *gru;    /* STEP_GRU */
    float *Wp, *b;              /* STEP_DENSE: [in_w][round_up(out_w)] in panels, then bias; one allocation */
    gruinfer_activation act;    /* STEP_ACT */
} gruinfer_plan_step;

struct gruinfer_plan {
    int64_t in_w;
    int32_t n;
    gruinfer_plan_step *steps;
    const gruinfer_kernels *k;
};

#endif
