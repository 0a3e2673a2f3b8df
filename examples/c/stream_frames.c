/* examples/c/stream_frames.c: stream frames read from stdin through a GRU + dense model built with gruinfer's C API, one output row per frame on stdout.
 *
 * Build against the library of an installed gruinfer (or the one `make -C src_c install` puts in
 * PREFIX: -I$PREFIX/include -L$PREFIX/lib):
 *   cc -std=c11 -O2 stream_frames.c -I"$(python -c 'import gruinfer; print(gruinfer.get_include())')" \
 *      -L"$(python -c 'import gruinfer; print(gruinfer.get_library_dir())')" -lgruinfer -lm -pthread -o stream_frames
 * Run: each stdin line holds INPUT_SIZE numbers (one frame); each stdout line holds the
 * model's OUTPUT_SIZE outputs for that frame (%.9g: float32 values exactly):
 *   printf '0.5 -1 0.25 2\n1 1 1 1\n' | ./stream_frames
 * GRUINFER_KERNEL=ref forces the reference kernel, as in Python.
 *
 * The model comes from open_model() alone: its weights follow weight() below (tests/test_clib.py
 * builds the same ONNX model for Python).  Opening a compiled model file instead replaces
 * open_model() and close_model(); the streaming loop in main() stays as it is. */
#include <stdio.h>
#include <stdlib.h>

#include "gru.h"

enum { INPUT_SIZE = 4, HIDDEN_SIZE = 8, OUTPUT_SIZE = 3 };

typedef struct {
    gruinfer_gru *gru;   /* borrowed by plan: freed after it */
    gruinfer_plan *plan;
} model;

/* Weight element i of table k: small multiples of 1/32, exact in float32. */
static float weight(int k, int i)
{
    return (float)((i * 37 + k * 11) % 29 - 14) / 32.0f;
}

static void fill(float *a, int n, int k)
{
    for (int i = 0; i < n; i++)
        a[i] = weight(k, i);
}

static void close_model(model *m)
{
    gruinfer_plan_free(m->plan);
    gruinfer_gru_free(m->gru);
    m->plan = NULL, m->gru = NULL;
}

/* A GRU [INPUT_SIZE -> HIDDEN_SIZE] (ONNX defaults: sigmoid, tanh, linear_before_reset 0),
 * then a dense layer [HIDDEN_SIZE -> OUTPUT_SIZE]: W tables 0-2 are W, R, B; 3-4 the dense W, b. */
static gruinfer_status open_model(model *m)
{
    static float W[3 * HIDDEN_SIZE * INPUT_SIZE], R[3 * HIDDEN_SIZE * HIDDEN_SIZE], B[6 * HIDDEN_SIZE];
    static float D[OUTPUT_SIZE * HIDDEN_SIZE], b[OUTPUT_SIZE];
    gruinfer_gru_config cfg = {0};
    cfg.input_size = INPUT_SIZE, cfg.hidden_size = HIDDEN_SIZE, cfg.direction = GRUINFER_FORWARD;
    cfg.f[0].kind = GRUINFER_ACT_SIGMOID, cfg.g[0].kind = GRUINFER_ACT_TANH;
    fill(W, 3 * HIDDEN_SIZE * INPUT_SIZE, 0), fill(R, 3 * HIDDEN_SIZE * HIDDEN_SIZE, 1);
    fill(B, 6 * HIDDEN_SIZE, 2), fill(D, OUTPUT_SIZE * HIDDEN_SIZE, 3), fill(b, OUTPUT_SIZE, 4);
    m->gru = NULL, m->plan = NULL;
    gruinfer_status st = gruinfer_gru_create(&cfg, W, R, B, NULL, &m->gru);
    if (st != GRUINFER_OK)
        return st;
    const gruinfer_step steps[2] = {gruinfer_step_gru(0, m->gru),
                                    gruinfer_step_dense(1, HIDDEN_SIZE, OUTPUT_SIZE, D, b)};
    st = gruinfer_plan_create(INPUT_SIZE, steps, 2, NULL, &m->plan, NULL);
    if (st != GRUINFER_OK)
        close_model(m);
    return st;
}

/* Reads one frame of width numbers; 1 on a frame, 0 at the end of input, -1 on a short line. */
static int read_frame(float *x, int64_t width)
{
    for (int64_t i = 0; i < width; i++) {
        int got = scanf("%f", &x[i]);
        if (got != 1)
            return i == 0 && got == EOF ? 0 : -1;
    }
    return 1;
}

int main(void)
{
    model m;
    gruinfer_status st = open_model(&m);
    if (st != GRUINFER_OK) {
        fprintf(stderr, "stream_frames: model: %s\n", gruinfer_status_text(st));
        return 1;
    }
    const int32_t n_steps = gruinfer_plan_steps(m.plan);
    const int64_t in_width = gruinfer_plan_width(m.plan, 0);
    const int64_t out_width = gruinfer_plan_width(m.plan, n_steps);  /* the last step's output */
    float *x = malloc(sizeof(float) * (size_t)in_width);
    float *y = malloc(sizeof(float) * (size_t)out_width);
    float **outs = calloc((size_t)n_steps, sizeof(float *));
    int64_t *zeros = calloc((size_t)n_steps, sizeof(int64_t));  /* T = N = 1: strides unused */
    gruinfer_stream *s = NULL;
    int rc = 1;
    if (!x || !y || !outs || !zeros) {
        fprintf(stderr, "stream_frames: out of memory\n");
        goto done;
    }
    outs[n_steps - 1] = y;
    st = gruinfer_stream_create(m.plan, 1, &s);
    for (int got; st == GRUINFER_OK && (got = read_frame(x, in_width)) != 0;) {
        if (got < 0) {
            fprintf(stderr, "stream_frames: a frame needs %lld numbers\n", (long long)in_width);
            goto done;
        }
        st = gruinfer_stream_run(s, 1, x, in_width, in_width, 1, outs, zeros, zeros);
        for (int64_t i = 0; st == GRUINFER_OK && i < out_width; i++)
            printf(i + 1 < out_width ? "%.9g " : "%.9g\n", (double)y[i]);
    }
    if (st != GRUINFER_OK)
        fprintf(stderr, "stream_frames: %s\n", gruinfer_status_text(st));
    else
        rc = 0;
done:
    gruinfer_stream_free(s);
    close_model(&m);
    free(zeros), free(outs), free(y), free(x);
    return rc;
}
