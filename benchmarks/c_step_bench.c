/* c_step_bench.c: C-level time of one stream step per kernel and hidden size, next to the time to read the layer's fp32 weights once (the weight-streaming bound). */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gru.h"

/* Usage: c_step_bench [-b batch] [-k kernel|all] [-s 32,64,256,1024] [-r rounds] [-t seconds]
 *   -b  slots stepped together (default 1)
 *   -k  one kernel name, or "all" supported kernels (default all)
 *   -s  comma-separated hidden sizes; the input size equals the hidden size
 *   -r  timed rounds per measurement; the median is reported (default 15)
 *   -t  target seconds per measurement, all rounds together (default 0.3)
 * Output: one header line starting with '#', then one line per kernel and size:
 *   kernel H I batch ns_per_step weight_bytes read_ns read_GBps
 * ns_per_step: median over rounds of gruinfer_stream_run(T=1), check_finite off.
 * The read and every kernel of one size are timed in interleaved rounds.
 * read_ns: median time to read weight_bytes (= 4*3H(I+H), the ONNX fp32 W and R)
 * once from a buffer of that size read over and over, i.e. the weights'
 * streaming time from whatever cache level holds that size on this machine. */

#define MAX_SIZES 16
#define MAX_ROUNDS 101

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

/* Vectors by the compiler's vector extension, as wide as the target's loads
 * (64 bytes with AVX-512 under -march=native, else 32: wider-than-native
 * vectors compile to slow code). */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#else
#define VEC_BYTES 32
#endif
#define VEC_LANES (VEC_BYTES / 4)
typedef float vecf __attribute__((vector_size(VEC_BYTES)));

static volatile float sink;

/* Read n_vec vectors with eight independent accumulators. */
static void read_once(const vecf *p, size_t n_vec)
{
    vecf a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    size_t i = 0;
    for (; i + 8 <= n_vec; i += 8) {
        a0 += p[i];     a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
        a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
    }
    for (; i < n_vec; i++)
        a0 += p[i];
    a0 += a1 + a2 + a3 + a4 + a5 + a6 + a7;
    float s = 0;
    for (int j = 0; j < VEC_LANES; j++)
        s += a0[j];
    sink = s;
}

static int reps_for(double one, double budget, int rounds)
{
    double r = budget / rounds / (one > 1e-9 ? one : 1e-9);
    return r < 1 ? 1 : r > 1e7 ? 10000000 : (int)r;
}

static double median_of(double *v, int n)
{
    qsort(v, n, sizeof v[0], cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One thing timed: the weight read (k == NULL) or a step of kernel k. */
typedef struct {
    const char *k;
    gruinfer_gru *m;
    gruinfer_plan *p;
    gruinfer_stream *s;
    int reps;
    double t[MAX_ROUNDS];
} item;

typedef struct {
    const vecf *buf;
    size_t n_vec;
    const float *x;
    float *y;
    int64_t I, H;
} shared;

static void run_item(const item *it, const shared *sh, int reps)
{
    if (!it->k) {
        for (int i = 0; i < reps; i++)
            read_once(sh->buf, sh->n_vec);
        return;
    }
    float *outs[1] = {sh->y};
    int64_t ost[1] = {0}, osn[1] = {sh->H};
    for (int i = 0; i < reps; i++)
        gruinfer_stream_run(it->s, 1, sh->x, 0, sh->I, 0, outs, ost, osn);
}

static int make_item(item *it, const char *k, int H, int batch, const float *W, const float *R,
                     const float *B)
{
    memset(it, 0, sizeof *it);
    it->k = k;
    gruinfer_gru_config cfg = {H, H, GRUINFER_FORWARD, 1, 0, 0.0f,
                               {{GRUINFER_ACT_SIGMOID, 0, 0}, {0, 0, 0}},
                               {{GRUINFER_ACT_TANH, 0, 0}, {0, 0, 0}}};
    if (gruinfer_gru_create(&cfg, W, R, B, k, &it->m) != GRUINFER_OK)
        return -1;
    const gruinfer_step st = gruinfer_step_gru(0, it->m);
    if (gruinfer_plan_create(H, &st, 1, k, &it->p, NULL) != GRUINFER_OK
        || gruinfer_stream_create(it->p, batch, &it->s) != GRUINFER_OK)
        return -1;
    return 0;
}

static void free_item(item *it)
{
    gruinfer_stream_free(it->s);
    gruinfer_plan_free(it->p);
    gruinfer_gru_free(it->m);
}

/* One size: the weight read and every selected kernel's step, in interleaved
 * rounds (a rotating order, so a noisy spell hits all of them); prints a row
 * per kernel.  Returns 0, or 1 when something could not be created. */
static int bench_size(int H, int batch, const char *kernel, int rounds, double budget)
{
    const int I = H;
    const size_t bytes = 4 * (size_t)3 * H * (I + H);
    const size_t n_vec = (bytes + VEC_BYTES - 1) / VEC_BYTES;
    int failed = 0, n = 0;
    item items[16];
    float *W = malloc(sizeof(float) * 3 * H * I), *R = malloc(sizeof(float) * 3 * H * H);
    float *B = calloc(6 * (size_t)H, sizeof(float));
    float *x = calloc((size_t)I * batch, sizeof(float)), *y = calloc((size_t)H * batch, sizeof(float));
    vecf *buf = aligned_alloc(64, (n_vec * VEC_BYTES + 63) / 64 * 64);
    if (!W || !R || !B || !x || !y || !buf) {
        fprintf(stderr, "H %d: out of memory\n", H);
        failed = 1;
        goto done;
    }
    for (size_t i = 0; i < n_vec * VEC_LANES; i++) ((float *)buf)[i] = (float)(i % 97) * 1e-3f;
    for (int i = 0; i < 3 * H * I; i++) W[i] = (float)((int)((int64_t)i * 7919 % 1000) - 500) * 1e-4f;
    for (int i = 0; i < 3 * H * H; i++) R[i] = (float)((int)((int64_t)i * 104729 % 1000) - 500) * 1e-4f;
    for (int i = 0; i < I * batch; i++) x[i] = 0.01f * (i % 17);
    shared sh = {buf, n_vec, x, y, I, H};

    memset(&items[n++], 0, sizeof items[0]);                  /* the weight read */
    for (const char *const *k = gruinfer_kernel_names(); *k && n < 16; k++) {
        if (!gruinfer_kernel_supported(*k) || (strcmp(kernel, "all") && strcmp(kernel, *k)))
            continue;
        if (make_item(&items[n], *k, H, batch, W, R, B)) {
            fprintf(stderr, "kernel %s H %d: creating the layer, plan or stream failed\n", *k, H);
            free_item(&items[n]);
            failed = 1;
            continue;
        }
        n++;
    }
    for (int j = 0; j < n; j++) {                            /* warm up, then calibrate */
        run_item(&items[j], &sh, 2);
        double t0 = now();
        run_item(&items[j], &sh, 3);
        items[j].reps = reps_for((now() - t0) / 3, budget, rounds);
    }
    for (int r = 0; r < rounds; r++)
        for (int jj = 0; jj < n; jj++) {
            item *it = &items[(jj + r) % n];
            double t0 = now();
            run_item(it, &sh, it->reps);
            it->t[r] = (now() - t0) / it->reps;
        }
    const double rd = median_of(items[0].t, rounds);
    for (int j = 1; j < n; j++)
        printf("%s %d %d %d %.1f %zu %.1f %.1f\n", items[j].k, H, I, batch,
               median_of(items[j].t, rounds) * 1e9, bytes, rd * 1e9, bytes / rd * 1e-9);
    fflush(stdout);
    for (int j = 1; j < n; j++)
        free_item(&items[j]);
done:
    free(W), free(R), free(B), free(x), free(y), free(buf);
    return failed;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-b batch] [-k kernel|all] [-s 32,64,256,1024] [-r rounds] [-t seconds]\n",
            prog);
    return 2;
}

int main(int argc, char **argv)
{
    int sizes[MAX_SIZES] = {32, 64, 256, 1024}, n_sizes = 4, batch = 1, rounds = 15;
    double budget = 0.3;
    const char *kernel = "all";
    for (int a = 1; a < argc; a++) {
        if (a + 1 >= argc || argv[a][0] != '-' || strlen(argv[a]) != 2)
            return usage(argv[0]);
        const char *v = argv[++a];
        switch (argv[a - 1][1]) {
        case 'b': batch = atoi(v); break;
        case 'k': kernel = v; break;
        case 'r': rounds = atoi(v); break;
        case 't': budget = atof(v); break;
        case 's':
            n_sizes = 0;
            for (const char *c = v; *c && n_sizes < MAX_SIZES;) {
                sizes[n_sizes++] = atoi(c);
                c = strchr(c, ',');
                if (!c) break;
                c++;
            }
            break;
        default: return usage(argv[0]);
        }
    }
    if (batch < 1 || rounds < 1 || rounds > MAX_ROUNDS || budget <= 0 || n_sizes < 1)
        return usage(argv[0]);
    for (int i = 0; i < n_sizes; i++)
        if (sizes[i] < 1 || sizes[i] > 16384)
            return usage(argv[0]);
    if (strcmp(kernel, "all") && !gruinfer_kernel_supported(kernel)) {
        fprintf(stderr, "kernel %s is not built in or not supported on this CPU\n", kernel);
        return 1;
    }
    printf("# kernel H I batch ns_per_step weight_bytes read_ns read_GBps "
           "(median of %d rounds, default kernel %s)\n", rounds,
           gruinfer_kernel_default() ? gruinfer_kernel_default() : "none");
    int failed = 0;
    for (int si = 0; si < n_sizes; si++)
        failed |= bench_size(sizes[si], batch, kernel, rounds, budget);
    return failed;
}
