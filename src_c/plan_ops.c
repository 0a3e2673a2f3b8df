/* plan_ops.c: the bodies of the stateless frame-wise plan steps (dense, act, softmax, logsoftmax, layernorm, binary, clip, embed, concat) over a block of rows, and token ids as the float32 an embed step reads. */
#include <math.h>
#include <string.h>

#include "gru_plan.h"

static void softmax_rows(const float *in, int64_t ldi, float *out, int64_t ldo, int64_t rows,
                         int64_t w, int log_form)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        float *y = out + r * ldo;
        float mx = x[0];
        for (int64_t i = 1; i < w; i++)
            mx = x[i] > mx ? x[i] : mx;
        double sum = 0.0;
        if (log_form) {
            for (int64_t i = 0; i < w; i++) {
                y[i] = x[i] - mx;
                sum += exp((double)y[i]);
            }
            const float ls = (float)log(sum);
            for (int64_t i = 0; i < w; i++)
                y[i] -= ls;
        } else {
            for (int64_t i = 0; i < w; i++) {
                y[i] = expf(x[i] - mx);
                sum += y[i];
            }
            const float inv = (float)(1.0 / sum);
            for (int64_t i = 0; i < w; i++)
                y[i] *= inv;
        }
    }
}

static void layernorm_rows(const gruinfer_plan_step *st, const float *in, int64_t ldi,
                           float *out, int64_t ldo, int64_t rows)
{
    const int64_t w = st->in_w;
    const float *scale = st->s.tables[0], *bias = st->s.tables[1];
    const float eps = st->s.floats[0];
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in + r * ldi;
        float *y = out + r * ldo;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < w; i++)
            mean += x[i];
        mean /= (double)w;
        for (int64_t i = 0; i < w; i++)
            var += ((double)x[i] - mean) * ((double)x[i] - mean);
        const double inv = 1.0 / sqrt(var / (double)w + (double)eps);
        for (int64_t i = 0; i < w; i++)
            y[i] = (float)(((double)x[i] - mean) * inv) * scale[i] + (bias ? bias[i] : 0.0f);
    }
}

static void binary_rows(const gruinfer_plan_step *st, const float *a, int64_t lda,
                        const float *b, int64_t ldb, float *out, int64_t ldo, int64_t rows)
{
    const int64_t w = st->in_w;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = a + r * lda, *c = b + r * ldb;
        float *y = out + r * ldo;
        switch (st->s.ints[0]) {
        case GRUINFER_BINARY_ADD: for (int64_t i = 0; i < w; i++) y[i] = x[i] + c[i]; break;
        case GRUINFER_BINARY_SUB: for (int64_t i = 0; i < w; i++) y[i] = x[i] - c[i]; break;
        case GRUINFER_BINARY_MUL: for (int64_t i = 0; i < w; i++) y[i] = x[i] * c[i]; break;
        case GRUINFER_BINARY_DIV: for (int64_t i = 0; i < w; i++) y[i] = x[i] / c[i]; break;
        case GRUINFER_BINARY_RSUB: for (int64_t i = 0; i < w; i++) y[i] = c[i] - x[i]; break;
        case GRUINFER_BINARY_RDIV: for (int64_t i = 0; i < w; i++) y[i] = c[i] / x[i]; break;
        }
    }
}

/* An id clamped to +-2^25: past any table's rows (<= GRUINFER_MAX_IDS), exact in float32. */
static inline float id_float(int64_t v)
{
    const int64_t lim = (int64_t)1 << 25;
    return (float)(v < -lim ? -lim : v > lim ? lim : v);
}

gruinfer_status gruinfer_ids_to_float(const void *ids, int32_t elem_bytes, int64_t n, float *out)
{
    if (!ids || !out)
        return GRUINFER_E_NULL;
    if (elem_bytes != 4 && elem_bytes != 8)
        return GRUINFER_E_ATTR;
    if (n < 0)
        return GRUINFER_E_SIZE;
    const int32_t *i32 = ids;
    const int64_t *i64 = ids;
    if (elem_bytes == 4)
        for (int64_t i = 0; i < n; i++)
            out[i] = id_float(i32[i]);
    else
        for (int64_t i = 0; i < n; i++)
            out[i] = id_float(i64[i]);
    return GRUINFER_OK;
}

/* Rows of token ids (already checked) to the concatenated table rows. */
static void embed_rows(const gruinfer_plan_step *st, const float *in, int64_t ldi, float *out,
                       int64_t ldo, int64_t rows)
{
    const int64_t w = st->in_w, V = st->s.ints[0], D = st->s.ints[1];
    const float *table = st->s.tables[0];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < w; i++) {
            int64_t id = (int64_t)in[r * ldi + i];
            id = id < 0 ? id + V : id;
            memcpy(out + r * ldo + i * D, table + id * D, (size_t)D * sizeof(float));
        }
}

static void clip_rows(const gruinfer_plan_step *st, const float *in, int64_t ldi, float *out,
                      int64_t ldo, int64_t rows)
{
    const float lo = st->s.floats[0], hi = st->s.floats[1];
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < st->in_w; i++) {
            float v = in[r * ldi + i];
            v = v < lo ? lo : v;
            out[r * ldo + i] = v > hi ? hi : v;
        }
}

/* Rows of a then rows of b, side by side: out[r] = [a[r, 0:w] | b[r, 0:w2]]. */
static void concat_rows(const gruinfer_plan_step *st, const float *a, int64_t lda, const float *b,
                        int64_t ldb, float *out, int64_t ldo, int64_t rows)
{
    const int64_t w = st->in_w, w2 = st->out_w - w;
    for (int64_t r = 0; r < rows; r++) {
        memcpy(out + r * ldo, a + r * lda, (size_t)w * sizeof(float));
        memcpy(out + r * ldo + w, b + r * ldb, (size_t)w2 * sizeof(float));
    }
}

void gruinfer_plan_op(const gruinfer_plan *p, const gruinfer_plan_step *st, const float *in,
                      int64_t ldi, const float *in2, int64_t ld2, float *out, int64_t ldo,
                      int64_t rows)
{
    const gruinfer_step *s = &st->s;
    switch (s->kind) {
    case GRUINFER_STEP_DENSE:
        p->k->gemm(rows, ldo, st->in_w, in, ldi, s->tables[0], s->tables[1], out, ldo);
        return;
    case GRUINFER_STEP_ACT: {
        const gruinfer_activation a = {(int32_t)s->ints[0], s->floats[0], s->floats[1]};
        memcpy(out, in, (size_t)(rows * ldo) * sizeof(float));
        gruinfer_act_apply(p->k, &a, out, rows * ldo);
        return;
    }
    case GRUINFER_STEP_SOFTMAX:
    case GRUINFER_STEP_LOGSOFTMAX:
        softmax_rows(in, ldi, out, ldo, rows, st->in_w, s->kind == GRUINFER_STEP_LOGSOFTMAX);
        return;
    case GRUINFER_STEP_LAYERNORM:
        layernorm_rows(st, in, ldi, out, ldo, rows);
        return;
    case GRUINFER_STEP_BINARY:
        binary_rows(st, in, ldi, in2 ? in2 : s->tables[0], in2 ? ld2 : 0, out, ldo, rows);
        return;
    case GRUINFER_STEP_CLIP:
        clip_rows(st, in, ldi, out, ldo, rows);
        return;
    case GRUINFER_STEP_EMBED:
        embed_rows(st, in, ldi, out, ldo, rows);
        return;
    case GRUINFER_STEP_CONCAT:
        concat_rows(st, in, ldi, in2, ld2, out, ldo, rows);
        return;
    }
}
