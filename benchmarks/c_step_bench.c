/* c_step_bench.c: C-level time of one batch-1 stream step per kernel and hidden size, against the weight-streaming bound. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gru.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const int sizes[] = {32, 64, 256, 1024};
    const int batch = argc > 1 ? atoi(argv[1]) : 1;
    printf("batch %d; median of 15 rounds; ns per step\n", batch);
    printf("%-8s %6s %12s %12s\n", "kernel", "H", "ns/step", "GB/s(weights)");
    for (const char *const *k = gruinfer_kernel_names(); *k; k++) {
        if (!gruinfer_kernel_supported(*k))
            continue;
        for (int si = 0; si < 4; si++) {
            const int H = sizes[si], I = H;
            float *W = malloc(sizeof(float) * 3 * H * I), *R = malloc(sizeof(float) * 3 * H * H);
            float *B = calloc(6 * H, sizeof(float));
            for (int i = 0; i < 3 * H * I; i++) W[i] = (float)((i * 7919 % 1000) - 500) * 1e-4f;
            for (int i = 0; i < 3 * H * H; i++) R[i] = (float)((i * 104729 % 1000) - 500) * 1e-4f;
            gruinfer_gru_config cfg = {I, H, GRUINFER_FORWARD, 1, 0, 0.0f,
                                       {{GRUINFER_ACT_SIGMOID, 0, 0}, {0, 0, 0}},
                                       {{GRUINFER_ACT_TANH, 0, 0}, {0, 0, 0}}};
            gruinfer_gru *m;
            gruinfer_plan *p;
            gruinfer_stream *s;
            if (gruinfer_gru_create(&cfg, W, R, B, *k, &m)) return 1;
            gruinfer_step st = {GRUINFER_STEP_GRU, 0, m, 0, NULL, NULL, {0, 0, 0}};
            if (gruinfer_plan_create(I, &st, 1, *k, &p) || gruinfer_stream_create(p, batch, &s))
                return 1;
            float *x = calloc((size_t)I * batch, sizeof(float)), *y = calloc((size_t)H * batch, sizeof(float));
            for (int i = 0; i < I * batch; i++) x[i] = 0.01f * (i % 17);
            float *outs[1] = {y};
            int64_t ost[1] = {0}, osn[1] = {H};
            const int reps = H >= 1024 ? 200 : H >= 256 ? 2000 : 20000;
            double med[15];
            for (int r = 0; r < 15; r++) {
                double t0 = now();
                for (int i = 0; i < reps; i++)
                    gruinfer_stream_run(s, 1, x, 0, I, 1, outs, ost, osn);
                med[r] = (now() - t0) / reps;
            }
            qsort(med, 15, sizeof med[0], cmp);
            const double bytes = 4.0 * 3 * H * (I + H);
            printf("%-8s %6d %12.0f %12.1f\n", *k, H, med[7] * 1e9, bytes / med[7] * 1e-9);
            gruinfer_stream_free(s);
            gruinfer_plan_free(p);
            gruinfer_gru_free(m);
            free(W), free(R), free(B), free(x), free(y);
        }
    }
    return 0;
}
