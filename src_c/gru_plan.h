/* gru_plan.h: the plan struct shared by gru_plan.c, plan_ops.c and gru_stream.c (not public). */
#ifndef GRUINFER_GRU_PLAN_H
#define GRUINFER_GRU_PLAN_H

#include "gru_internal.h"

/* A checked step: the public step as given, except that s.tables point at the plan's own
 * copies (NULL where none was given), s.gru is NULL unless the kind is GRU and s.input2 is -1
 * unless a second buffer is read.  DENSE keeps W packed for the kernel's gemm instead:
 * tables[0] = W^T [in_w][round_up(out_w)] in panels, tables[1] = the bias [round_up(out_w)]
 * (zeros when none was given). */
typedef struct {
    gruinfer_step s;
    int64_t in_w, out_w;        /* widths of the buffers it reads and writes */
    float *mem;                 /* the one allocation holding its tables, or NULL */
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
