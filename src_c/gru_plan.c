/* gru_plan.c: a plan is an immutable list of frame-wise steps that streams run: each step checked once here against what its kind reads (see gru.h), its tables copied. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gru_plan.h"

static const char *const kind_names[GRUINFER_STEP_COUNT] = {
    [GRUINFER_STEP_GRU] = "gru",         [GRUINFER_STEP_DENSE] = "dense",
    [GRUINFER_STEP_ACT] = "act",         [GRUINFER_STEP_SOFTMAX] = "softmax",
    [GRUINFER_STEP_LOGSOFTMAX] = "logsoftmax", [GRUINFER_STEP_LAYERNORM] = "layernorm",
    [GRUINFER_STEP_BINARY] = "binary",   [GRUINFER_STEP_CLIP] = "clip",
    [GRUINFER_STEP_EMBED] = "embed",     [GRUINFER_STEP_CONCAT] = "concat",
};

const char *gruinfer_step_kind_name(int32_t kind)
{
    return kind >= 0 && kind < GRUINFER_STEP_COUNT ? kind_names[kind] : NULL;
}

/* The checks of step i's own kind: sets st->out_w (st->s.gru and st->s.input2 when the kind
 * reads them), need[t], the floats table t must hold (0: none may be given), and opt[t], 1
 * when table t may be NULL instead. */
static gruinfer_status check_kind(gruinfer_plan *p, int32_t i, gruinfer_plan_step *st,
                                  const gruinfer_step *in, int64_t *need, int *opt)
{
    const int64_t w = st->in_w;
    st->out_w = w;
    switch (in->kind) {
    case GRUINFER_STEP_GRU:
        if (!in->gru)
            return GRUINFER_E_NULL;
        if (in->gru->D != 1 || in->gru->cfg.direction != GRUINFER_FORWARD)
            return GRUINFER_E_PLAN;
        if (in->gru->I != w)
            return GRUINFER_E_SIZE;
        st->s.gru = in->gru;
        st->out_w = in->gru->H;
        return GRUINFER_OK;
    case GRUINFER_STEP_DENSE: {
        const int64_t o = in->ints[0];
        if (o < 1 || o > GRUINFER_MAX_DIM ||
            gruinfer_round_up(o, GRUINFER_PAD) * (w + 1) > GRUINFER_MAX_WEIGHTS)
            return GRUINFER_E_SIZE;
        st->out_w = o;
        need[0] = o * w, need[1] = o, opt[1] = 1;
        return GRUINFER_OK;
    }
    case GRUINFER_STEP_ACT: {
        if (in->ints[0] < 0 || in->ints[0] >= GRUINFER_ACT_COUNT)
            return GRUINFER_E_ACTIVATION;
        const gruinfer_activation a = {(int32_t)in->ints[0], in->floats[0], in->floats[1]};
        return gruinfer_act_check(&a);
    }
    case GRUINFER_STEP_SOFTMAX:
    case GRUINFER_STEP_LOGSOFTMAX:
        return GRUINFER_OK;
    case GRUINFER_STEP_LAYERNORM:
        if (!isfinite(in->floats[0]) || in->floats[0] < 0.0f)
            return GRUINFER_E_ATTR;
        need[0] = need[1] = w, opt[1] = 1;
        return GRUINFER_OK;
    case GRUINFER_STEP_BINARY:
        if (in->ints[0] < 0 || in->ints[0] >= GRUINFER_BINARY_COUNT)
            return GRUINFER_E_ATTR;
        if (in->input2 < 0) {
            need[0] = w;
            return GRUINFER_OK;
        }
        if (in->input2 > i)
            return GRUINFER_E_PLAN;
        st->s.input2 = in->input2;
        return gruinfer_plan_width(p, in->input2) == w ? GRUINFER_OK : GRUINFER_E_SIZE;
    case GRUINFER_STEP_CLIP:
        return isnan(in->floats[0]) || isnan(in->floats[1]) ? GRUINFER_E_NONFINITE : GRUINFER_OK;
    case GRUINFER_STEP_CONCAT: {
        if (in->input2 < 0 || in->input2 > i)
            return GRUINFER_E_PLAN;
        const int64_t w2 = gruinfer_plan_width(p, in->input2);
        if (w + w2 > GRUINFER_MAX_DIM)
            return GRUINFER_E_SIZE;
        st->s.input2 = in->input2;
        st->out_w = w + w2;
        return GRUINFER_OK;
    }
    case GRUINFER_STEP_EMBED: {
        const int64_t V = in->ints[0], D = in->ints[1];
        if (in->input != 0)
            return GRUINFER_E_PLAN;
        if (V < 1 || V > GRUINFER_MAX_IDS || D < 1 || D > GRUINFER_MAX_DIM ||
            w * D > GRUINFER_MAX_DIM || V * D > GRUINFER_MAX_WEIGHTS)
            return GRUINFER_E_SIZE;
        st->out_w = w * D;
        need[0] = V * D;
        if (p->ids == 0 || V < p->ids)
            p->ids = V;
        return GRUINFER_OK;
    }
    }
    return GRUINFER_E_PLAN;
}

/* The tables given against what the kind needs (see gru.h for the statuses), then finite. */
static gruinfer_status check_tables(const gruinfer_step *in, const int64_t *need, const int *opt)
{
    for (int t = 0; t < GRUINFER_STEP_TABLES; t++) {
        if (!in->tables[t]) {
            if (in->table_len[t] != 0 || (need[t] > 0 && !opt[t]))
                return GRUINFER_E_NULL;
        } else if (need[t] == 0) {
            return GRUINFER_E_PLAN;
        } else if (in->table_len[t] != need[t]) {
            return GRUINFER_E_SIZE;
        }
    }
    for (int t = 0; t < GRUINFER_STEP_TABLES; t++)
        if (in->tables[t] && !gruinfer_all_finite(in->tables[t], need[t]))
            return GRUINFER_E_NONFINITE;
    return GRUINFER_OK;
}

/* The given tables copied one after the other into st->mem; st->s.tables point at them. */
static gruinfer_status copy_tables(gruinfer_plan_step *st, const gruinfer_step *in)
{
    int64_t total = 0;
    for (int t = 0; t < GRUINFER_STEP_TABLES; t++)
        total += in->tables[t] ? in->table_len[t] : 0;
    if (total == 0)
        return GRUINFER_OK;
    float *dst = st->mem = gruinfer_alloc_scratch(total);
    if (!dst)
        return GRUINFER_E_NOMEM;
    for (int t = 0; t < GRUINFER_STEP_TABLES; t++)
        if (in->tables[t]) {
            memcpy(dst, in->tables[t], (size_t)in->table_len[t] * sizeof(float));
            st->s.tables[t] = dst;
            dst += in->table_len[t];
        }
    return GRUINFER_OK;
}

/* DENSE: W^T packed in the kernel's panels, then the bias (zeros when none), in st->mem. */
static gruinfer_status pack_dense(const gruinfer_plan *p, gruinfer_plan_step *st,
                                  const gruinfer_step *in)
{
    const int64_t w = st->in_w, ow = st->out_w, owp = gruinfer_round_up(ow, GRUINFER_PAD);
    const float *W = in->tables[0], *bias = in->tables[1];
    st->mem = gruinfer_alloc_floats(owp * (w + 1));
    float *tmp = gruinfer_alloc_floats(owp * w);
    if (!st->mem || !tmp) {
        gruinfer_free_aligned(tmp);
        return GRUINFER_E_NOMEM;
    }
    float *b = st->mem + owp * w;
    for (int64_t o = 0; o < ow; o++) {
        for (int64_t k = 0; k < w; k++)
            tmp[k * owp + o] = W[o * w + k];
        b[o] = bias ? bias[o] : 0.0f;
    }
    gruinfer_pack(st->mem, tmp, owp, w, owp, p->k->panel);
    gruinfer_free_aligned(tmp);
    st->s.tables[0] = st->mem, st->s.tables[1] = b;
    return GRUINFER_OK;
}

static void plan_release(gruinfer_plan *p)
{
    for (int32_t i = 0; i < p->n; i++)
        gruinfer_free_aligned(p->steps[i].mem);
    free(p->steps);
    free(p);
}

static gruinfer_status add_step(gruinfer_plan *p, int32_t i, const gruinfer_step *in)
{
    gruinfer_plan_step *st = &p->steps[i];
    if (in->input < 0 || in->input > i)
        return GRUINFER_E_PLAN;
    st->s = *in;
    st->s.gru = NULL, st->s.input2 = -1; /* until the kind says it reads them */
    for (int t = 0; t < GRUINFER_STEP_TABLES; t++)
        st->s.tables[t] = NULL;          /* until copied */
    st->in_w = gruinfer_plan_width(p, in->input);
    int64_t need[GRUINFER_STEP_TABLES] = {0};
    int opt[GRUINFER_STEP_TABLES] = {0};
    gruinfer_status s = check_kind(p, i, st, in, need, opt);
    if (s == GRUINFER_OK)
        s = check_tables(in, need, opt);
    if (s != GRUINFER_OK)
        return s;
    return in->kind == GRUINFER_STEP_DENSE ? pack_dense(p, st, in) : copy_tables(st, in);
}

gruinfer_status gruinfer_plan_create(int64_t input_width, const gruinfer_step *steps,
                                     int32_t n_steps, const char *kernel, gruinfer_plan **out,
                                     int32_t *bad_step)
{
    if (bad_step)
        *bad_step = -1;
    if (!out)
        return GRUINFER_E_NULL;
    *out = NULL;
    if (!steps && n_steps > 0)
        return GRUINFER_E_NULL;
    if (input_width < 1 || input_width > GRUINFER_MAX_DIM || n_steps < 1 || n_steps > 4096)
        return GRUINFER_E_SIZE;
    const gruinfer_kernels *k = gruinfer_kernels_find(kernel);
    if (!k)
        return GRUINFER_E_KERNEL;
    gruinfer_plan *p = calloc(1, sizeof *p);
    if (!p)
        return GRUINFER_E_NOMEM;
    p->steps = calloc((size_t)n_steps, sizeof *p->steps);
    if (!p->steps) {
        free(p);
        return GRUINFER_E_NOMEM;
    }
    p->in_w = input_width;
    p->k = k;
    for (int32_t i = 0; i < n_steps; i++) {
        p->n = i + 1;
        gruinfer_status s = add_step(p, i, &steps[i]);
        if (s != GRUINFER_OK) {
            plan_release(p);
            if (bad_step)
                *bad_step = i;
            return s;
        }
    }
    *out = p;
    return GRUINFER_OK;
}

void gruinfer_plan_free(gruinfer_plan *p)
{
    if (p)
        plan_release(p);
}

int32_t gruinfer_plan_steps(const gruinfer_plan *p) { return p ? p->n : 0; }

int64_t gruinfer_plan_width(const gruinfer_plan *p, int32_t k)
{
    if (!p || k < 0 || k > p->n)
        return 0;
    return k == 0 ? p->in_w : p->steps[k - 1].out_w;
}
