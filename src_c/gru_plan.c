/* gru_plan.c: a plan is an immutable list of frame-wise steps (forward GRU layers, dense layers, activations, softmax, layer norm, binary ops, clip, embedding lookup) that streams run, each checked once here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gru_plan.h"

/* Copies into one allocation: src (n floats) at st->Wp, then src2 (n2 floats, or none when
 * NULL) at st->b; refused unless all finite. */
static gruinfer_status copy_table(gruinfer_plan_step *st, const float *src, int64_t n,
                                  const float *src2, int64_t n2)
{
    if (!gruinfer_all_finite(src, n) || (src2 && !gruinfer_all_finite(src2, n2)))
        return GRUINFER_E_NONFINITE;
    st->Wp = gruinfer_alloc_floats(n + n2);
    if (!st->Wp)
        return GRUINFER_E_NOMEM;
    memcpy(st->Wp, src, (size_t)n * sizeof(float));
    st->b = src2 ? st->Wp + n : NULL;
    if (src2)
        memcpy(st->b, src2, (size_t)n2 * sizeof(float));
    return GRUINFER_OK;
}

static void plan_release(gruinfer_plan *p)
{
    for (int32_t i = 0; i < p->n; i++)
        gruinfer_free_aligned(p->steps[i].Wp);
    free(p->steps);
    free(p);
}

static gruinfer_status add_step(gruinfer_plan *p, int32_t i, const gruinfer_step *in)
{
    gruinfer_plan_step *st = &p->steps[i];
    if (in->input < 0 || in->input > i)
        return GRUINFER_E_PLAN;
    st->kind = in->kind;
    st->input = in->input;
    st->input2 = -1; /* a second buffer: BINARY steps only */
    st->in_w = in->input == 0 ? p->in_w : p->steps[in->input - 1].out_w;
    switch (in->kind) {
    case GRUINFER_STEP_GRU:
        if (!in->gru)
            return GRUINFER_E_NULL;
        if (in->gru->D != 1 || in->gru->cfg.direction != GRUINFER_FORWARD)
            return GRUINFER_E_PLAN;
        if (in->gru->I != st->in_w)
            return GRUINFER_E_SIZE;
        st->gru = in->gru;
        st->out_w = in->gru->H;
        return GRUINFER_OK;
    case GRUINFER_STEP_DENSE: {
        if (!in->weight)
            return GRUINFER_E_NULL;
        if (in->out_width < 1 || in->out_width > GRUINFER_MAX_DIM)
            return GRUINFER_E_SIZE;
        const int64_t ow = in->out_width, owp = gruinfer_round_up(ow, GRUINFER_PAD);
        if (owp * (st->in_w + 1) > GRUINFER_MAX_WEIGHTS)
            return GRUINFER_E_SIZE;
        if (!gruinfer_all_finite(in->weight, ow * st->in_w) ||
            (in->bias && !gruinfer_all_finite(in->bias, ow)))
            return GRUINFER_E_NONFINITE;
        st->out_w = ow;
        st->Wp = gruinfer_alloc_floats(owp * (st->in_w + 1));
        float *tmp = gruinfer_alloc_floats(owp * st->in_w);
        if (!st->Wp || !tmp) {
            gruinfer_free_aligned(tmp);
            return GRUINFER_E_NOMEM;
        }
        st->b = st->Wp + owp * st->in_w;
        for (int64_t o = 0; o < ow; o++) {
            for (int64_t k = 0; k < st->in_w; k++)
                tmp[k * owp + o] = in->weight[o * st->in_w + k];
            st->b[o] = in->bias ? in->bias[o] : 0.0f;
        }
        gruinfer_pack(st->Wp, tmp, owp, st->in_w, owp, p->k->panel);
        gruinfer_free_aligned(tmp);
        return GRUINFER_OK;
    }
    case GRUINFER_STEP_ACT: {
        gruinfer_status s = gruinfer_act_check(&in->act);
        if (s != GRUINFER_OK)
            return s;
        st->act = in->act;
        st->out_w = st->in_w;
        return GRUINFER_OK;
    }
    case GRUINFER_STEP_SOFTMAX:
    case GRUINFER_STEP_LOGSOFTMAX:
        st->out_w = st->in_w;
        return GRUINFER_OK;
    case GRUINFER_STEP_LAYERNORM:
        if (!in->weight)
            return GRUINFER_E_NULL;
        if (!isfinite(in->eps) || in->eps < 0.0f)
            return GRUINFER_E_ATTR;
        st->eps = in->eps;
        st->out_w = st->in_w;
        return copy_table(st, in->weight, st->in_w, in->bias, in->bias ? st->in_w : 0);
    case GRUINFER_STEP_BINARY:
        if (in->op < 0 || in->op >= GRUINFER_BINARY_COUNT)
            return GRUINFER_E_ATTR;
        st->op = in->op;
        st->input2 = in->input2 < 0 ? -1 : in->input2;
        st->out_w = st->in_w;
        if (in->input2 >= 0) {
            if (in->input2 > i)
                return GRUINFER_E_PLAN;
            const int64_t w2 = in->input2 == 0 ? p->in_w : p->steps[in->input2 - 1].out_w;
            return w2 == st->in_w ? GRUINFER_OK : GRUINFER_E_SIZE;
        }
        if (!in->weight)
            return GRUINFER_E_NULL;
        return copy_table(st, in->weight, st->in_w, NULL, 0);
    case GRUINFER_STEP_CLIP:
        if (isnan(in->lo) || isnan(in->hi))
            return GRUINFER_E_NONFINITE;
        st->lo = in->lo, st->hi = in->hi;
        st->out_w = st->in_w;
        return GRUINFER_OK;
    case GRUINFER_STEP_EMBED:
        if (in->input != 0)
            return GRUINFER_E_PLAN;
        if (!in->weight)
            return GRUINFER_E_NULL;
        if (in->rows < 1 || in->rows > GRUINFER_MAX_IDS || in->out_width < 1 ||
            in->out_width > GRUINFER_MAX_DIM || st->in_w * in->out_width > GRUINFER_MAX_DIM ||
            in->rows * in->out_width > GRUINFER_MAX_WEIGHTS)
            return GRUINFER_E_SIZE;
        st->rows = in->rows, st->d = in->out_width;
        st->out_w = st->in_w * in->out_width;
        if (p->ids == 0 || in->rows < p->ids)
            p->ids = in->rows;
        return copy_table(st, in->weight, in->rows * in->out_width, NULL, 0);
    }
    return GRUINFER_E_PLAN;
}

gruinfer_status gruinfer_plan_create(int64_t input_width, const gruinfer_step *steps,
                                     int32_t n_steps, const char *kernel,
                                     gruinfer_plan **out)
{
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
