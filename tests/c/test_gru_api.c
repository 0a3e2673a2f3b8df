/* test_gru_api.c: tests the public C API (src_c/gru.h) with no Python: layers, status codes, plans and streams, for every kernel this CPU runs, against a double-precision scalar ONNX GRU. */
#define _POSIX_C_SOURCE 200809L /* setenv / unsetenv for the GRUINFER_KERNEL checks */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gru.h"

/* ------------------------------------------------------------------ harness */
static int n_pass, n_fail;
static const char *ctx_kernel = "-"; /* kernel under test, printed with failures */

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            n_pass++;                                                             \
        } else {                                                                  \
            n_fail++;                                                             \
            printf("FAIL [kernel %s] %s:%d: ", ctx_kernel, __FILE__, __LINE__);   \
            printf(__VA_ARGS__);                                                  \
            printf("\n");                                                         \
        }                                                                         \
    } while (0)

#define CHECK_STATUS(expr, want)                                                    \
    do {                                                                            \
        gruinfer_status got_ = (expr);                                              \
        CHECK(got_ == (want), "%s returned %d (%s), expected %d (%s)", #expr,        \
              (int)got_, gruinfer_status_text(got_), (int)(want),                   \
              gruinfer_status_text(want));                                          \
    } while (0)

#define TOL 1e-5

/* Deterministic uniform numbers in [-a, a]. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float urand(float a)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (double)(rng_state >> 11) / 9007199254740992.0; /* [0, 1) */
    return (float)((2.0 * u - 1.0) * a);
}
static float *rand_array(int64_t n, float a)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = urand(a);
    return p;
}
static float *fill_array(int64_t n, float v)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++)
        p[i] = v;
    return p;
}

/* max |got - want| over n, NaN counted as infinite. */
static double max_diff_fd(const float *got, const double *want, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}
static double max_diff_ff(const float *got, const float *want, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ------------------------------------------------------------------ reference */
static gruinfer_activation act(int kind, float alpha, float beta)
{
    gruinfer_activation a;
    a.kind = kind;
    a.alpha = alpha;
    a.beta = beta;
    return a;
}

static double act_ref(gruinfer_activation a, double x)
{
    const double al = a.alpha, be = a.beta;
    switch (a.kind) {
    case GRUINFER_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case GRUINFER_ACT_TANH: return tanh(x);
    case GRUINFER_ACT_RELU: return x > 0 ? x : 0.0;
    case GRUINFER_ACT_HARDSIGMOID: return fmax(0.0, fmin(1.0, al * x + be));
    case GRUINFER_ACT_LEAKYRELU: return x >= 0 ? x : al * x;
    case GRUINFER_ACT_THRESHOLDEDRELU: return x > al ? x : 0.0;
    case GRUINFER_ACT_SCALEDTANH: return al * tanh(be * x);
    case GRUINFER_ACT_AFFINE: return al * x + be;
    case GRUINFER_ACT_ELU: return x >= 0 ? x : al * (exp(x) - 1.0);
    case GRUINFER_ACT_SOFTSIGN: return x / (1.0 + fabs(x));
    case GRUINFER_ACT_SOFTPLUS: return log1p(exp(x));
    }
    return NAN;
}

static double clipped(const gruinfer_gru_config *c, double x)
{
    if (!c->has_clip)
        return x;
    return x < -c->clip ? -c->clip : x > c->clip ? c->clip : x;
}

/* The ONNX GRU equations, straight from the spec, in double, layout 0:
 * X [T, N, I], h0 [D, N, H] or NULL, lens [N] or NULL;
 * Y [T, D, N, H] (zeros past a row's length), Yh [D, N, H] (zeros for length 0). */
static void gru_ref(const gruinfer_gru_config *c, const float *W, const float *R, const float *B,
                    int64_t T, int64_t N, const float *X, const int32_t *lens, const float *h0,
                    double *Y, double *Yh)
{
    const int64_t D = c->direction == GRUINFER_BIDIRECTIONAL ? 2 : 1;
    const int64_t I = c->input_size, H = c->hidden_size;
    double *h = malloc((size_t)H * sizeof *h), *hn = malloc((size_t)H * sizeof *hn);
    double *z = malloc((size_t)H * sizeof *z), *r = malloc((size_t)H * sizeof *r);
    for (int64_t i = 0; i < T * D * N * H; i++)
        Y[i] = 0.0;
    for (int64_t d = 0; d < D; d++) {
        const int reverse = d == 1 || c->direction == GRUINFER_REVERSE;
        const float *Wd = W + d * 3 * H * I, *Rd = R + d * 3 * H * H;
        const float *Wb = B ? B + d * 6 * H : NULL, *Rb = B ? B + d * 6 * H + 3 * H : NULL;
        const gruinfer_activation f = c->f[d], g = c->g[d];
        for (int64_t n = 0; n < N; n++) {
            const int64_t len = lens ? lens[n] : T;
            for (int64_t j = 0; j < H; j++)
                h[j] = h0 ? h0[(d * N + n) * H + j] : 0.0;
            for (int64_t s = 0; s < len; s++) {
                const int64_t t = reverse ? len - 1 - s : s;
                const float *x = X + (t * N + n) * I;
                for (int64_t j = 0; j < H; j++) {
                    double az = 0, ar = 0;
                    for (int64_t k = 0; k < I; k++) {
                        az += (double)Wd[(0 * H + j) * I + k] * x[k];
                        ar += (double)Wd[(1 * H + j) * I + k] * x[k];
                    }
                    for (int64_t k = 0; k < H; k++) {
                        az += (double)Rd[(0 * H + j) * H + k] * h[k];
                        ar += (double)Rd[(1 * H + j) * H + k] * h[k];
                    }
                    if (B) {
                        az += (double)Wb[0 * H + j] + Rb[0 * H + j];
                        ar += (double)Wb[1 * H + j] + Rb[1 * H + j];
                    }
                    z[j] = act_ref(f, clipped(c, az));
                    r[j] = act_ref(f, clipped(c, ar));
                }
                for (int64_t j = 0; j < H; j++) {
                    double xh = 0, rec = 0;
                    for (int64_t k = 0; k < I; k++)
                        xh += (double)Wd[(2 * H + j) * I + k] * x[k];
                    if (B)
                        xh += Wb[2 * H + j];
                    if (c->linear_before_reset) {
                        for (int64_t k = 0; k < H; k++)
                            rec += (double)Rd[(2 * H + j) * H + k] * h[k];
                        if (B)
                            rec += Rb[2 * H + j];
                        rec *= r[j];
                    } else {
                        for (int64_t k = 0; k < H; k++)
                            rec += (double)Rd[(2 * H + j) * H + k] * (r[k] * h[k]);
                        if (B)
                            rec += Rb[2 * H + j];
                    }
                    const double hh = act_ref(g, clipped(c, xh + rec));
                    hn[j] = (1.0 - z[j]) * hh + z[j] * h[j];
                }
                for (int64_t j = 0; j < H; j++) {
                    h[j] = hn[j];
                    Y[((t * D + d) * N + n) * H + j] = h[j];
                }
            }
            for (int64_t j = 0; j < H; j++)
                Yh[(d * N + n) * H + j] = len == 0 ? 0.0 : h[j];
        }
    }
    free(h), free(hn), free(z), free(r);
}

static gruinfer_gru_config make_cfg(int64_t I, int64_t H, int direction, int lbr)
{
    gruinfer_gru_config c;
    memset(&c, 0, sizeof c);
    c.input_size = I;
    c.hidden_size = H;
    c.direction = direction;
    c.linear_before_reset = lbr;
    for (int d = 0; d < 2; d++) {
        c.f[d] = act(GRUINFER_ACT_SIGMOID, 0, 0);
        c.g[d] = act(GRUINFER_ACT_TANH, 0, 0);
    }
    return c;
}

/* ------------------------------------------------------------------ whole-sequence runs */
/* Create a layer with `kernel`, run it on random data in layout 0 (and layout 1 when
 * `also_layout1`), compare Y and Y_h against gru_ref. */
static void check_run(const char *name, const gruinfer_gru_config *c, int with_bias, int64_t T,
                      int64_t N, const int32_t *lens, int with_h0, int also_layout1,
                      const char *kernel)
{
    const int64_t D = c->direction == GRUINFER_BIDIRECTIONAL ? 2 : 1;
    const int64_t I = c->input_size, H = c->hidden_size;
    const float ws = 1.0f / sqrtf((float)(H > I ? H : I));
    float *W = rand_array(D * 3 * H * I, 1.5f * ws), *R = rand_array(D * 3 * H * H, 1.5f * ws);
    float *B = with_bias ? rand_array(D * 6 * H, 0.5f) : NULL;
    float *X = rand_array(T * N * I, 1.0f);
    float *h0 = with_h0 ? rand_array(D * N * H, 0.8f) : NULL;
    double *Yw = malloc((size_t)(T * D * N * H) * sizeof *Yw);
    double *Yhw = malloc((size_t)(D * N * H) * sizeof *Yhw);
    float *Y = fill_array(T * D * N * H, -777.0f), *Yh = fill_array(D * N * H, -777.0f);
    gru_ref(c, W, R, B, T, N, X, lens, h0, Yw, Yhw);

    gruinfer_gru *m = NULL;
    CHECK_STATUS(gruinfer_gru_create(c, W, R, B, kernel, &m), GRUINFER_OK);
    if (!m) {
        CHECK(0, "%s: no layer created", name);
        goto done;
    }
    CHECK(strcmp(gruinfer_gru_kernel(m), kernel) == 0, "%s: layer runs kernel %s", name,
          gruinfer_gru_kernel(m));
    const gruinfer_gru_config *got = gruinfer_gru_get_config(m);
    CHECK(got && got->input_size == I && got->hidden_size == H &&
              got->direction == c->direction &&
              got->linear_before_reset == c->linear_before_reset,
          "%s: gruinfer_gru_get_config does not give back the config", name);

    CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, lens, h0, 1, Y, Yh), GRUINFER_OK);
    double e = max_diff_fd(Y, Yw, T * D * N * H);
    CHECK(e < TOL, "%s: Y differs from the reference by %g", name, e);
    e = max_diff_fd(Yh, Yhw, D * N * H);
    CHECK(e < TOL, "%s: Y_h differs from the reference by %g", name, e);

    /* Only Y_h, only Y, neither: the same values. */
    float *Y2 = fill_array(T * D * N * H, -777.0f), *Yh2 = fill_array(D * N * H, -777.0f);
    CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, lens, h0, 1, NULL, Yh2), GRUINFER_OK);
    CHECK(max_diff_ff(Yh2, Yh, D * N * H) == 0.0, "%s: Y_h alone differs from Y_h with Y", name);
    CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, lens, h0, 1, Y2, NULL), GRUINFER_OK);
    CHECK(max_diff_ff(Y2, Y, T * D * N * H) == 0.0, "%s: Y alone differs from Y with Y_h", name);
    CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, lens, h0, 1, NULL, NULL), GRUINFER_OK);

    if (also_layout1) {
        /* layout 1: X [N, T, I], h0 / Y_h [N, D, H], Y [N, T, D, H]. */
        float *X1 = malloc((size_t)(T * N * I) * sizeof *X1);
        float *h01 = with_h0 ? malloc((size_t)(D * N * H) * sizeof *h01) : NULL;
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                memcpy(X1 + (n * T + t) * I, X + (t * N + n) * I, (size_t)I * sizeof(float));
        if (h01)
            for (int64_t d = 0; d < D; d++)
                for (int64_t n = 0; n < N; n++)
                    memcpy(h01 + (n * D + d) * H, h0 + (d * N + n) * H, (size_t)H * sizeof(float));
        CHECK_STATUS(gruinfer_gru_run(m, 1, T, N, X1, lens, h01, 1, Y2, Yh2), GRUINFER_OK);
        double e1 = 0.0, eh1 = 0.0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t d = 0; d < D; d++)
                for (int64_t n = 0; n < N; n++)
                    for (int64_t j = 0; j < H; j++) {
                        const double dd = fabs(Y2[((n * T + t) * D + d) * H + j] -
                                               Yw[((t * D + d) * N + n) * H + j]);
                        e1 = dd > e1 || isnan(dd) ? (isnan(dd) ? INFINITY : dd) : e1;
                    }
        for (int64_t d = 0; d < D; d++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < H; j++) {
                    const double dd = fabs(Yh2[(n * D + d) * H + j] - Yhw[(d * N + n) * H + j]);
                    eh1 = dd > eh1 || isnan(dd) ? (isnan(dd) ? INFINITY : dd) : eh1;
                }
        CHECK(e1 < TOL, "%s, layout 1: Y differs from the reference by %g", name, e1);
        CHECK(eh1 < TOL, "%s, layout 1: Y_h differs from the reference by %g", name, eh1);
        free(X1);
        free(h01);
    }
    free(Y2);
    free(Yh2);
    gruinfer_gru_free(m);
done:
    free(W), free(R), free(B), free(X), free(h0), free(Yw), free(Yhw), free(Y), free(Yh);
}

static void test_runs(const char *kernel)
{
    /* I=3, H=4, forward, linear_before_reset=1, biases, initial_h. */
    gruinfer_gru_config c = make_cfg(3, 4, GRUINFER_FORWARD, 1);
    check_run("fwd lbr=1", &c, 1, 5, 2, NULL, 1, 1, kernel);
    check_run("fwd lbr=1 no B no h0", &c, 0, 5, 2, NULL, 0, 0, kernel);

    /* Bidirectional, linear_before_reset=0, other activations on the backward
     * direction, sequence_lens with a full, a short and an empty row. */
    c = make_cfg(3, 4, GRUINFER_BIDIRECTIONAL, 0);
    check_run("bidi lbr=0", &c, 1, 5, 3, NULL, 1, 1, kernel);
    const int32_t lens3[3] = {5, 2, 0};
    check_run("bidi lbr=0 lens", &c, 1, 5, 3, lens3, 1, 1, kernel);
    c.f[1] = act(GRUINFER_ACT_HARDSIGMOID, 0.2f, 0.5f);
    c.g[1] = act(GRUINFER_ACT_SOFTSIGN, 0, 0);
    check_run("bidi lbr=0 hardsigmoid/softsign", &c, 1, 5, 3, lens3, 1, 0, kernel);

    /* Reverse with clip and sequence_lens. */
    c = make_cfg(3, 4, GRUINFER_REVERSE, 1);
    c.has_clip = 1;
    c.clip = 0.4f;
    const int32_t lens2[2] = {3, 5};
    check_run("reverse lbr=1 clip", &c, 1, 5, 2, lens2, 1, 1, kernel);

    /* A few more activation pairs (continuous ones: float vs double stays within TOL). */
    const gruinfer_activation pairs[][2] = {
        {{GRUINFER_ACT_SIGMOID, 0, 0}, {GRUINFER_ACT_RELU, 0, 0}},
        {{GRUINFER_ACT_HARDSIGMOID, 0.3f, 0.4f}, {GRUINFER_ACT_LEAKYRELU, 0.1f, 0}},
        {{GRUINFER_ACT_SIGMOID, 0, 0}, {GRUINFER_ACT_SCALEDTANH, 1.3f, 0.7f}},
        {{GRUINFER_ACT_SOFTSIGN, 0, 0}, {GRUINFER_ACT_ELU, 0.9f, 0}},
        {{GRUINFER_ACT_SIGMOID, 0, 0}, {GRUINFER_ACT_SOFTPLUS, 0, 0}},
        {{GRUINFER_ACT_AFFINE, 0.5f, 0.25f}, {GRUINFER_ACT_TANH, 0, 0}},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        for (int lbr = 0; lbr < 2; lbr++) {
            c = make_cfg(3, 4, GRUINFER_FORWARD, lbr);
            c.f[0] = pairs[i][0];
            c.g[0] = pairs[i][1];
            char name[64];
            snprintf(name, sizeof name, "activations #%d lbr=%d", (int)i, lbr);
            check_run(name, &c, 1, 4, 2, NULL, 1, 0, kernel);
        }
    }

    /* Sizes that are not multiples of any vector width, both directions, bigger batch. */
    c = make_cfg(19, 37, GRUINFER_FORWARD, 0);
    check_run("I=19 H=37 fwd lbr=0", &c, 1, 6, 5, NULL, 1, 0, kernel);
    c = make_cfg(19, 37, GRUINFER_BIDIRECTIONAL, 1);
    const int32_t lens5[5] = {6, 1, 4, 0, 6};
    check_run("I=19 H=37 bidi lbr=1 lens", &c, 1, 6, 5, lens5, 1, 1, kernel);
    c = make_cfg(40, 64, GRUINFER_REVERSE, 0);
    check_run("I=40 H=64 reverse lbr=0", &c, 0, 3, 9, NULL, 1, 0, kernel);

    /* Longer than the blocks of steps projected at a time (64): forward straight from X and
     * gathered (layout 1), both directions with rows ending in different blocks. */
    c = make_cfg(5, 6, GRUINFER_FORWARD, 1);
    check_run("T=150 fwd", &c, 1, 150, 2, NULL, 1, 1, kernel);
    c = make_cfg(5, 6, GRUINFER_BIDIRECTIONAL, 0);
    const int32_t lens_long[3] = {150, 70, 1};
    check_run("T=150 bidi lens", &c, 1, 150, 3, lens_long, 1, 1, kernel);
}

/* ------------------------------------------------------------------ status codes */
static void test_bad_configs(const char *kernel)
{
    const int64_t I = 3, H = 4;
    float *W = rand_array(2 * 3 * H * I, 0.5f), *R = rand_array(2 * 3 * H * H, 0.5f);
    float *B = rand_array(2 * 6 * H, 0.5f);
    gruinfer_gru *m = NULL;
    gruinfer_gru_config c;

#define BAD_CFG(mutate, want)                                                      \
    do {                                                                           \
        c = make_cfg(I, H, GRUINFER_FORWARD, 1);                                   \
        mutate;                                                                    \
        m = NULL;                                                                  \
        CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, &m), want);          \
        gruinfer_gru_free(m);                                                      \
    } while (0)

    BAD_CFG((void)0, GRUINFER_OK);
    BAD_CFG(c.hidden_size = 0, GRUINFER_E_SIZE);
    BAD_CFG(c.hidden_size = -4, GRUINFER_E_SIZE);
    BAD_CFG(c.input_size = 0, GRUINFER_E_SIZE);
    BAD_CFG(c.hidden_size = GRUINFER_MAX_DIM + 1, GRUINFER_E_SIZE);
    BAD_CFG(c.direction = 7, GRUINFER_E_ATTR);
    BAD_CFG(c.direction = -1, GRUINFER_E_ATTR);
    BAD_CFG(c.linear_before_reset = 2, GRUINFER_E_ATTR);
    BAD_CFG((c.has_clip = 1, c.clip = 0.0f), GRUINFER_E_ATTR);
    BAD_CFG((c.has_clip = 1, c.clip = -1.0f), GRUINFER_E_ATTR);
    BAD_CFG((c.has_clip = 1, c.clip = NAN), GRUINFER_E_ATTR);
    BAD_CFG(c.f[0].kind = 99, GRUINFER_E_ACTIVATION);
    BAD_CFG(c.g[0].kind = -1, GRUINFER_E_ACTIVATION);
    BAD_CFG(c.g[0].kind = GRUINFER_ACT_COUNT, GRUINFER_E_ACTIVATION);
    BAD_CFG((c.direction = GRUINFER_BIDIRECTIONAL, c.g[1].kind = 42), GRUINFER_E_ACTIVATION);
    BAD_CFG((c.f[0] = act(GRUINFER_ACT_HARDSIGMOID, NAN, 0.5f)), GRUINFER_E_NONFINITE);
#undef BAD_CFG

    c = make_cfg(I, H, GRUINFER_FORWARD, 1);
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, NULL), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_gru_create(NULL, W, R, B, kernel, &m), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_gru_create(&c, NULL, R, B, kernel, &m), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_gru_create(&c, W, NULL, B, kernel, &m), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, "nope", &m), GRUINFER_E_KERNEL);
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, "REF", &m), GRUINFER_E_KERNEL);

    /* Non-finite weights, in each of W, R, B. */
    float *arrs[3] = {W, R, B};
    const int64_t sizes[3] = {3 * H * I, 3 * H * H, 6 * H};
    const float bads[2] = {NAN, -INFINITY};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++) {
            const int64_t at = sizes[a] - 1 - b; /* the last elements: past any vector body */
            const float keep = arrs[a][at];
            arrs[a][at] = bads[b];
            m = NULL;
            CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, &m), GRUINFER_E_NONFINITE);
            gruinfer_gru_free(m);
            arrs[a][at] = keep;
        }
    arrs[0][0] = NAN;
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, &m), GRUINFER_E_NONFINITE);
    arrs[0][0] = 0.1f;

    /* Run-time errors. */
    const int64_t T = 4, N = 2;
    float *X = rand_array(T * N * I, 1.0f), *h0 = rand_array(N * H, 0.5f);
    float *Y = fill_array(T * N * H, -777.0f), *Yh = fill_array(N * H, -777.0f);
    m = NULL;
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, &m), GRUINFER_OK);
    if (m) {
        const int32_t too_long[2] = {4, 5}, negative[2] = {-1, 4}, ok[2] = {4, 0};
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, too_long, h0, 1, Y, Yh), GRUINFER_E_SEQLEN);
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, negative, h0, 1, Y, Yh), GRUINFER_E_SEQLEN);
        CHECK_STATUS(gruinfer_gru_run(m, 1, T, N, X, too_long, h0, 1, Y, Yh), GRUINFER_E_SEQLEN);
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, ok, h0, 1, Y, Yh), GRUINFER_OK);
        CHECK_STATUS(gruinfer_gru_run(m, 0, 0, N, X, NULL, h0, 1, Y, Yh), GRUINFER_E_SIZE);
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, 0, X, NULL, h0, 1, Y, Yh), GRUINFER_E_SIZE);
        CHECK_STATUS(gruinfer_gru_run(m, 0, -1, N, X, NULL, h0, 1, Y, Yh), GRUINFER_E_SIZE);
        CHECK_STATUS(gruinfer_gru_run(m, 2, T, N, X, NULL, h0, 1, Y, Yh), GRUINFER_E_ATTR);
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, NULL, NULL, h0, 1, Y, Yh), GRUINFER_E_NULL);
        CHECK_STATUS(gruinfer_gru_run(NULL, 0, T, N, X, NULL, h0, 1, Y, Yh), GRUINFER_E_NULL);

        /* check_finite: NaN / Inf in X or initial_h is refused before anything is written. */
        float *Ys = fill_array(T * N * H, -777.0f), *Yhs = fill_array(N * H, -777.0f);
        memcpy(Y, Ys, (size_t)(T * N * H) * sizeof(float));
        memcpy(Yh, Yhs, (size_t)(N * H) * sizeof(float));
        X[T * N * I - 1] = NAN;
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 1, Y, Yh), GRUINFER_E_NONFINITE);
        CHECK(memcmp(Y, Ys, (size_t)(T * N * H) * sizeof(float)) == 0 &&
                  memcmp(Yh, Yhs, (size_t)(N * H) * sizeof(float)) == 0,
              "a refused run (NaN in X) wrote Y or Y_h");
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 0, Y, Yh), GRUINFER_OK);
        X[T * N * I - 1] = 0.25f;
        X[1] = INFINITY;
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 1, Ys, Yhs), GRUINFER_E_NONFINITE);
        X[1] = 0.25f;
        h0[N * H - 1] = -INFINITY;
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 1, Ys, Yhs), GRUINFER_E_NONFINITE);
        h0[N * H - 1] = 0.0f;
        CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 1, Ys, Yhs), GRUINFER_OK);
        free(Ys), free(Yhs);
        gruinfer_gru_free(m);
    }
    free(W), free(R), free(B), free(X), free(h0), free(Y), free(Yh);
}

/* ------------------------------------------------------------------ plans and streams */
/* Y [T, 1, N, H] and Y_h [1, N, H] of one whole-sequence run. */
static void whole_run(const gruinfer_gru *m, int64_t T, int64_t N, const float *X,
                      const float *h0, float *Y, float *Yh)
{
    CHECK_STATUS(gruinfer_gru_run(m, 0, T, N, X, NULL, h0, 1, Y, Yh), GRUINFER_OK);
}

/* The status of creating (and freeing again) a plan of these steps; *bad (when not NULL)
 * the step it blames.  A refused plan leaves no plan behind. */
static gruinfer_status try_plan(int64_t width, const gruinfer_step *steps, int32_t n,
                                const char *kernel, int32_t *bad)
{
    gruinfer_plan *p = NULL;
    const gruinfer_status s = gruinfer_plan_create(width, steps, n, kernel, &p, bad);
    CHECK((s == GRUINFER_OK) == (p != NULL), "plan_create returned %d with a plan %p", (int)s,
          (void *)p);
    gruinfer_plan_free(p);
    return s;
}

static void test_streams(const char *kernel)
{
    const int64_t I = 3, H = 4, H2 = 5, O = 2, N = 2, T = 7;
    gruinfer_gru_config c = make_cfg(I, H, GRUINFER_FORWARD, 1);
    gruinfer_gru_config c2 = make_cfg(H, H2, GRUINFER_FORWARD, 0);
    float *W = rand_array(3 * H * I, 0.6f), *R = rand_array(3 * H * H, 0.6f);
    float *B = rand_array(6 * H, 0.3f);
    float *W2 = rand_array(3 * H2 * H, 0.6f), *R2 = rand_array(3 * H2 * H2, 0.6f);
    float *B2 = rand_array(6 * H2, 0.3f);
    float *DW = rand_array(O * H, 0.8f), *Db = rand_array(O, 0.3f);
    gruinfer_gru *m = NULL, *m2 = NULL, *bidi = NULL, *rev = NULL;
    gruinfer_plan *p = NULL;
    gruinfer_stream *s = NULL, *s2 = NULL;
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, B, kernel, &m), GRUINFER_OK);
    CHECK_STATUS(gruinfer_gru_create(&c2, W2, R2, B2, kernel, &m2), GRUINFER_OK);
    if (!m || !m2)
        goto done;

    /* step 0: GRU(x) [H]; step 1: dense(step 0) [O]; step 2: tanh(step 1) [O];
     * step 3: GRU2(step 0) [H2]: a stacked GRU. */
    const gruinfer_step steps[4] = {
        gruinfer_step_gru(0, m),
        gruinfer_step_dense(1, H, O, DW, Db),
        gruinfer_step_act(2, act(GRUINFER_ACT_TANH, 0, 0)),
        gruinfer_step_gru(1, m2),
    };
    int32_t bad = 99;
    CHECK_STATUS(gruinfer_plan_create(I, steps, 4, kernel, &p, &bad), GRUINFER_OK);
    CHECK(bad == -1, "a plan created blames step %d", (int)bad);
    if (!p)
        goto done;
    CHECK(gruinfer_plan_steps(p) == 4, "plan_steps gives %d", (int)gruinfer_plan_steps(p));
    CHECK(gruinfer_plan_width(p, 0) == I && gruinfer_plan_width(p, 1) == H &&
              gruinfer_plan_width(p, 2) == O && gruinfer_plan_width(p, 3) == O &&
              gruinfer_plan_width(p, 4) == H2,
          "plan widths wrong");

    /* Whole-sequence oracle: X [T, N, I] -> Y [T, N, H] -> Y2 [T, N, H2]. */
    float *X = rand_array(T * N * I, 1.0f);
    float *Y = malloc((size_t)(T * N * H) * sizeof *Y), *Yh = malloc((size_t)(N * H) * sizeof *Yh);
    float *Y2 = malloc((size_t)(T * N * H2) * sizeof *Y2);
    float *Y2h = malloc((size_t)(N * H2) * sizeof *Y2h);
    whole_run(m, T, N, X, NULL, Y, Yh);
    whole_run(m2, T, N, Y, NULL, Y2, Y2h);
    double *dense = malloc((size_t)(T * N * O) * sizeof *dense);
    double *acted = malloc((size_t)(T * N * O) * sizeof *acted);
    for (int64_t r = 0; r < T * N; r++)
        for (int64_t o = 0; o < O; o++) {
            double acc = Db[o];
            for (int64_t k = 0; k < H; k++)
                acc += (double)DW[o * H + k] * Y[r * H + k];
            dense[r * O + o] = acc;
            acted[r * O + o] = tanh(acc);
        }

    /* Stream 1: frame by frame (T = 1 per call), outputs [T, N, width]. */
    CHECK_STATUS(gruinfer_stream_create(p, N, &s), GRUINFER_OK);
    if (!s)
        goto free_seq;
    float *o0 = fill_array(T * N * H, -777.0f), *o1 = fill_array(T * N * O, -777.0f);
    float *o2 = fill_array(T * N * O, -777.0f), *o3 = fill_array(T * N * H2, -777.0f);
    const int64_t o_sn[4] = {H, O, O, H2};
    const int64_t o_st1[4] = {0, 0, 0, 0};
    for (int64_t t = 0; t < T; t++) {
        float *outs[4] = {o0 + t * N * H, o1 + t * N * O, o2 + t * N * O, o3 + t * N * H2};
        CHECK_STATUS(gruinfer_stream_run(s, 1, X + t * N * I, N * I, I, 1, outs, o_st1, o_sn),
                     GRUINFER_OK);
    }
    double e = max_diff_ff(o0, Y, T * N * H);
    CHECK(e < TOL, "stream frame by frame: GRU output differs from gruinfer_gru_run by %g", e);
    e = max_diff_fd(o1, dense, T * N * O);
    CHECK(e < TOL, "stream frame by frame: dense output differs by %g", e);
    e = max_diff_fd(o2, acted, T * N * O);
    CHECK(e < TOL, "stream frame by frame: activation output differs by %g", e);
    e = max_diff_ff(o3, Y2, T * N * H2);
    CHECK(e < TOL, "stream frame by frame: stacked GRU output differs by %g", e);
    float *st = malloc((size_t)(N * H) * sizeof *st), *st2 = malloc((size_t)(N * H) * sizeof *st2);
    float *st3 = malloc((size_t)(N * H2) * sizeof *st3);
    CHECK_STATUS(gruinfer_stream_get_state(s, 0, st), GRUINFER_OK);
    e = max_diff_ff(st, Yh, N * H);
    CHECK(e < TOL, "stream state after T frames differs from Y_h by %g", e);
    CHECK_STATUS(gruinfer_stream_get_state(s, 3, st3), GRUINFER_OK);
    e = max_diff_ff(st3, Y2h, N * H2);
    CHECK(e < TOL, "stacked GRU stream state differs from Y_h by %g", e);
    CHECK_STATUS(gruinfer_stream_get_state(s, 1, st2), GRUINFER_E_PLAN);
    CHECK_STATUS(gruinfer_stream_get_state(s, 4, st2), GRUINFER_E_PLAN);
    CHECK_STATUS(gruinfer_stream_get_state(s, -1, st2), GRUINFER_E_PLAN);

    /* Stream 2: the whole sequence in one call, x in [N, T, I] order, GRU output
     * written [N, T, H] (strides), other outputs skipped. */
    CHECK_STATUS(gruinfer_stream_create(p, N, &s2), GRUINFER_OK);
    if (s2) {
        float *Xnt = malloc((size_t)(T * N * I) * sizeof *Xnt);
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                memcpy(Xnt + (n * T + t) * I, X + (t * N + n) * I, (size_t)I * sizeof(float));
        float *ont = fill_array(T * N * H, -777.0f);
        float *outs[4] = {ont, NULL, NULL, NULL};
        const int64_t o_st[4] = {H, 0, 0, 0}, o_snt[4] = {T * H, 0, 0, 0};
        CHECK_STATUS(gruinfer_stream_run(s2, T, Xnt, I, T * I, 1, outs, o_st, o_snt), GRUINFER_OK);
        double e2 = 0.0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++)
                for (int64_t j = 0; j < H; j++) {
                    const double d = fabs((double)ont[(n * T + t) * H + j] - Y[(t * N + n) * H + j]);
                    e2 = d > e2 || isnan(d) ? (isnan(d) ? INFINITY : d) : e2;
                }
        CHECK(e2 < TOL, "stream in one chunk (strided): GRU output differs by %g", e2);
        /* No outputs at all: the state still advances. */
        CHECK_STATUS(gruinfer_stream_reset(s2, NULL, 0), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_run(s2, T, X, N * I, I, 1, NULL, NULL, NULL), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s2, 0, st2), GRUINFER_OK);
        e2 = max_diff_ff(st2, Yh, N * H);
        CHECK(e2 < TOL, "stream without outputs: state differs from Y_h by %g", e2);
        free(Xnt);
        free(ont);
    }

    /* Reset slot 1 of stream 1, then continue: slot 0 goes on from its state, slot 1
     * from zeros. */
    {
        const int64_t T2 = 4;
        float *X2 = rand_array(T2 * N * I, 1.0f);
        float *h0 = malloc((size_t)(N * H) * sizeof *h0);
        float *Yc = malloc((size_t)(T2 * N * H) * sizeof *Yc), *Ych = malloc((size_t)(N * H) * sizeof *Ych);
        float *oc = fill_array(T2 * N * H, -777.0f);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st), GRUINFER_OK);
        const int64_t slot1[1] = {1};
        CHECK_STATUS(gruinfer_stream_reset(s, slot1, 1), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st2), GRUINFER_OK);
        int zero = 1;
        for (int64_t j = 0; j < H; j++)
            zero &= st2[H + j] == 0.0f;
        CHECK(zero, "reset slot 1: its state is not zero");
        CHECK(memcmp(st2, st, (size_t)H * sizeof(float)) == 0, "reset slot 1 changed slot 0");
        CHECK_STATUS(gruinfer_stream_get_state(s, 3, st3), GRUINFER_OK);
        zero = 1;
        for (int64_t j = 0; j < H2; j++)
            zero &= st3[H2 + j] == 0.0f;
        CHECK(zero, "reset slot 1: the stacked GRU's state of slot 1 is not zero");
        memcpy(h0, st, (size_t)H * sizeof(float));
        memset(h0 + H, 0, (size_t)H * sizeof(float));
        whole_run(m, T2, N, X2, h0, Yc, Ych);
        for (int64_t t = 0; t < T2; t++) {
            float *outs[4] = {oc + t * N * H, NULL, NULL, NULL};
            CHECK_STATUS(gruinfer_stream_run(s, 1, X2 + t * N * I, N * I, I, 1, outs, o_st1, o_sn),
                         GRUINFER_OK);
        }
        e = max_diff_ff(oc, Yc, T2 * N * H);
        CHECK(e < TOL, "after resetting slot 1: stream differs from gruinfer_gru_run by %g", e);

        /* set_state / set_slot_state, then continue from the set state. */
        float *S = rand_array(N * H, 0.9f), *V = rand_array(H, 0.9f);
        CHECK_STATUS(gruinfer_stream_set_state(s, 0, S), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st2), GRUINFER_OK);
        CHECK(memcmp(st2, S, (size_t)(N * H) * sizeof(float)) == 0,
              "get_state does not give back what set_state set");
        CHECK_STATUS(gruinfer_stream_set_slot_state(s, 0, 1, V), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st2), GRUINFER_OK);
        CHECK(memcmp(st2, S, (size_t)H * sizeof(float)) == 0 &&
                  memcmp(st2 + H, V, (size_t)H * sizeof(float)) == 0,
              "set_slot_state(slot 1) did not set exactly slot 1");
        memcpy(h0, st2, (size_t)(N * H) * sizeof(float));
        whole_run(m, T2, N, X2, h0, Yc, Ych);
        float *outs[4] = {oc, NULL, NULL, NULL};
        const int64_t o_stc[4] = {N * H, 0, 0, 0};
        CHECK_STATUS(gruinfer_stream_run(s, T2, X2, N * I, I, 1, outs, o_stc, o_sn), GRUINFER_OK);
        e = max_diff_ff(oc, Yc, T2 * N * H);
        CHECK(e < TOL, "after set_state: stream differs from gruinfer_gru_run by %g", e);

        /* Errors that must leave every state as it was. */
        float *before = malloc((size_t)(N * H) * sizeof *before);
        float *before3 = malloc((size_t)(N * H2) * sizeof *before3);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, before), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s, 3, before3), GRUINFER_OK);
#define UNCHANGED(what)                                                                        \
    do {                                                                                       \
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st2), GRUINFER_OK);                       \
        CHECK_STATUS(gruinfer_stream_get_state(s, 3, st3), GRUINFER_OK);                       \
        CHECK(memcmp(st2, before, (size_t)(N * H) * sizeof(float)) == 0 &&                     \
                  memcmp(st3, before3, (size_t)(N * H2) * sizeof(float)) == 0,                 \
              "%s changed the state", what);                                                   \
    } while (0)
        const int64_t bad_slots[][2] = {{0, 2}, {-1, 0}, {N, N}};
        for (int i = 0; i < 3; i++) {
            CHECK_STATUS(gruinfer_stream_reset(s, bad_slots[i], 2), GRUINFER_E_SLOT);
            UNCHANGED("a reset with a bad slot index");
        }
        CHECK_STATUS(gruinfer_stream_set_slot_state(s, 0, 2, V), GRUINFER_E_SLOT);
        CHECK_STATUS(gruinfer_stream_set_slot_state(s, 0, -1, V), GRUINFER_E_SLOT);
        UNCHANGED("set_slot_state with a bad slot index");
        CHECK_STATUS(gruinfer_stream_set_slot_state(s, 1, 0, V), GRUINFER_E_PLAN);

        /* NaN / Inf input: refused before any state changes, even in the last frame. */
        float *Xbad = rand_array(3 * N * I, 1.0f);
        Xbad[3 * N * I - 1] = NAN;
        CHECK_STATUS(gruinfer_stream_run(s, 3, Xbad, N * I, I, 1, NULL, NULL, NULL),
                     GRUINFER_E_NONFINITE);
        UNCHANGED("a stream run refused for NaN input");
        Xbad[3 * N * I - 1] = 0.5f;
        Xbad[0] = INFINITY;
        float *outs1[4] = {oc, o1, o2, o3};
        CHECK_STATUS(gruinfer_stream_run(s, 1, Xbad, N * I, I, 1, outs1, o_st1, o_sn),
                     GRUINFER_E_NONFINITE);
        UNCHANGED("a stream run refused for Inf input");
        S[N * H - 1] = NAN;
        CHECK_STATUS(gruinfer_stream_set_state(s, 0, S), GRUINFER_E_NONFINITE);
        UNCHANGED("set_state refused for NaN");
        V[0] = INFINITY;
        CHECK_STATUS(gruinfer_stream_set_slot_state(s, 0, 0, V), GRUINFER_E_NONFINITE);
        UNCHANGED("set_slot_state refused for Inf");
        CHECK_STATUS(gruinfer_stream_run(s, 0, X, N * I, I, 1, NULL, NULL, NULL), GRUINFER_E_SIZE);
        CHECK_STATUS(gruinfer_stream_run(s, 1, NULL, N * I, I, 1, NULL, NULL, NULL), GRUINFER_E_NULL);
        CHECK_STATUS(gruinfer_stream_run(NULL, 1, X, N * I, I, 1, NULL, NULL, NULL), GRUINFER_E_NULL);
        UNCHANGED("refused stream runs");
#undef UNCHANGED
        /* Reset all slots. */
        CHECK_STATUS(gruinfer_stream_reset(s, NULL, 0), GRUINFER_OK);
        CHECK_STATUS(gruinfer_stream_get_state(s, 0, st2), GRUINFER_OK);
        int allzero = 1;
        for (int64_t j = 0; j < N * H; j++)
            allzero &= st2[j] == 0.0f;
        CHECK(allzero, "reset(NULL) left a nonzero state");
        free(X2), free(h0), free(Yc), free(Ych), free(oc), free(S), free(V), free(before),
            free(before3), free(Xbad);
    }
    free(o0), free(o1), free(o2), free(o3), free(st), free(st2), free(st3);

free_seq:
    free(X), free(Y), free(Yh), free(Y2), free(Y2h), free(dense), free(acted);

    /* Plan and stream creation errors. */
    {
        gruinfer_plan *q = NULL;
        gruinfer_stream *t = NULL;
        gruinfer_gru_config cb = make_cfg(I, H, GRUINFER_BIDIRECTIONAL, 1);
        gruinfer_gru_config cr = make_cfg(I, H, GRUINFER_REVERSE, 1);
        float *Wb = rand_array(2 * 3 * H * I, 0.5f), *Rb = rand_array(2 * 3 * H * H, 0.5f);
        CHECK_STATUS(gruinfer_gru_create(&cb, Wb, Rb, NULL, kernel, &bidi), GRUINFER_OK);
        CHECK_STATUS(gruinfer_gru_create(&cr, Wb, Rb, NULL, kernel, &rev), GRUINFER_OK);
        gruinfer_step one = gruinfer_step_gru(0, bidi);
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, kernel, &q, NULL), GRUINFER_E_PLAN);
        gruinfer_plan_free(q), q = NULL;
        one.gru = rev;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, kernel, &q, NULL), GRUINFER_E_PLAN);
        gruinfer_plan_free(q), q = NULL;
        one.gru = m;
        CHECK_STATUS(gruinfer_plan_create(I + 1, &one, 1, kernel, &q, &bad), GRUINFER_E_SIZE);
        CHECK(bad == 0 && q == NULL, "a GRU of the wrong input size: blames step %d", (int)bad);
        gruinfer_plan_free(q), q = NULL;
        one.input = 1;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, kernel, &q, NULL), GRUINFER_E_PLAN);
        gruinfer_plan_free(q), q = NULL;
        one.input = 0;
        one.gru = NULL;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, kernel, &q, NULL), GRUINFER_E_NULL);
        gruinfer_plan_free(q), q = NULL;
        one.gru = m;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, "nope", &q, &bad), GRUINFER_E_KERNEL);
        CHECK(bad == -1, "an unknown kernel blames step %d", (int)bad);
        gruinfer_plan_free(q), q = NULL;
        bad = 99;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 1, kernel, NULL, &bad), GRUINFER_E_NULL);
        CHECK(bad == -1, "a NULL out blames step %d", (int)bad);
        CHECK_STATUS(gruinfer_plan_create(I, NULL, 1, kernel, &q, NULL), GRUINFER_E_NULL);
        gruinfer_plan_free(q), q = NULL;
        CHECK_STATUS(gruinfer_plan_create(I, &one, 0, kernel, &q, NULL), GRUINFER_E_SIZE);
        gruinfer_plan_free(q), q = NULL;
        CHECK_STATUS(gruinfer_plan_create(0, &one, 1, kernel, &q, &bad), GRUINFER_E_SIZE);
        CHECK(bad == -1, "input width 0 blames step %d", (int)bad);
        gruinfer_plan_free(q), q = NULL;
        gruinfer_step dstep = gruinfer_step_dense(0, H, 0, DW, NULL);
        CHECK_STATUS(gruinfer_plan_create(H, &dstep, 1, kernel, &q, NULL), GRUINFER_E_SIZE);
        gruinfer_plan_free(q), q = NULL;
        dstep = gruinfer_step_dense(0, H, O, NULL, NULL);
        CHECK_STATUS(gruinfer_plan_create(H, &dstep, 1, kernel, &q, NULL), GRUINFER_E_NULL);
        gruinfer_plan_free(q), q = NULL;
        DW[O * H - 1] = NAN;
        dstep = gruinfer_step_dense(0, H, O, DW, NULL);
        CHECK_STATUS(gruinfer_plan_create(H, &dstep, 1, kernel, &q, NULL), GRUINFER_E_NONFINITE);
        gruinfer_plan_free(q), q = NULL;
        DW[O * H - 1] = 0.5f;
        /* Table lengths checked against what the kind needs; tables where none is read. */
        dstep = gruinfer_step_dense(0, H, O, DW, Db);
        CHECK_STATUS(try_plan(H, &dstep, 1, kernel, NULL), GRUINFER_OK);
        dstep.table_len[0] = O * H - 1;
        CHECK_STATUS(try_plan(H, &dstep, 1, kernel, NULL), GRUINFER_E_SIZE);
        dstep = gruinfer_step_dense(0, H, O, DW, Db);
        dstep.table_len[1] = O + 1;
        CHECK_STATUS(try_plan(H, &dstep, 1, kernel, NULL), GRUINFER_E_SIZE);
        dstep.tables[1] = NULL; /* a length but no table */
        CHECK_STATUS(try_plan(H, &dstep, 1, kernel, NULL), GRUINFER_E_NULL);
        CHECK_STATUS(try_plan(I, &dstep, 1, kernel, NULL), GRUINFER_E_SIZE); /* W is [O, H] */
        gruinfer_step a1 = gruinfer_step_act(0, act(GRUINFER_ACT_RELU, 0, 0));
        a1.tables[0] = DW, a1.table_len[0] = 1;
        CHECK_STATUS(try_plan(H, &a1, 1, kernel, NULL), GRUINFER_E_PLAN);
        a1 = gruinfer_step_act(0, act(GRUINFER_ACT_RELU, 0, 0));
        a1.ints[0] = (int64_t)1 << 32; /* not an activation, though its low 32 bits are RELU's */
        CHECK_STATUS(try_plan(H, &a1, 1, kernel, NULL), GRUINFER_E_ACTIVATION);
        /* The failing step is reported: the third of three, or one of a stacked plan. */
        gruinfer_step three[3] = {steps[0], steps[1], gruinfer_step_act(2, act(99, 0, 0))};
        CHECK_STATUS(try_plan(I, three, 3, kernel, &bad), GRUINFER_E_ACTIVATION);
        CHECK(bad == 2, "a bad activation in step 2 blames step %d", (int)bad);
        three[2] = gruinfer_step_gru(2, m2); /* reads step 1's output: width O, not H */
        CHECK_STATUS(try_plan(I, three, 3, kernel, &bad), GRUINFER_E_SIZE);
        CHECK(bad == 2, "a GRU on the wrong width in step 2 blames step %d", (int)bad);
        three[1].input = 3;
        CHECK_STATUS(try_plan(I, three, 3, kernel, &bad), GRUINFER_E_PLAN);
        CHECK(bad == 1, "a later input in step 1 blames step %d", (int)bad);
        a1 = gruinfer_step_act(0, act(99, 0, 0));
        CHECK_STATUS(gruinfer_plan_create(H, &a1, 1, kernel, &q, NULL), GRUINFER_E_ACTIVATION);
        gruinfer_plan_free(q), q = NULL;
        a1.kind = 17;
        CHECK_STATUS(gruinfer_plan_create(H, &a1, 1, kernel, &q, &bad), GRUINFER_E_PLAN);
        CHECK(bad == 0, "an unknown kind blames step %d", (int)bad);
        gruinfer_plan_free(q), q = NULL;

        CHECK_STATUS(gruinfer_stream_create(p, N, NULL), GRUINFER_E_NULL);
        CHECK_STATUS(gruinfer_stream_create(NULL, N, &t), GRUINFER_E_NULL);
        gruinfer_stream_free(t), t = NULL;
        CHECK_STATUS(gruinfer_stream_create(p, 0, &t), GRUINFER_E_SIZE);
        gruinfer_stream_free(t), t = NULL;
        CHECK_STATUS(gruinfer_stream_reset(NULL, NULL, 0), GRUINFER_E_NULL);
        free(Wb), free(Rb);
    }

done:
    gruinfer_stream_free(s);
    gruinfer_stream_free(s2);
    gruinfer_plan_free(p);
    gruinfer_gru_free(m);
    gruinfer_gru_free(m2);
    gruinfer_gru_free(bidi);
    gruinfer_gru_free(rev);
    free(W), free(R), free(B), free(W2), free(R2), free(B2), free(DW), free(Db);
}

/* ------------------------------------------------------------------ frame-wise steps */
/* embed -> softmax -> binary(softmax, embed) -> clip on 2 ids per frame, and the statuses the
 * newer steps give: a bad token id refused before anything runs, malformed steps at creation. */
static void test_frame_steps(const char *kernel)
{
    enum { V = 5, D = 3, WI = 2, WO = WI * D, N = 2, T = 2 };
    float tab[V * D];
    for (int i = 0; i < V * D; i++)
        tab[i] = urand(2.0f);
    gruinfer_step st[4] = {
        gruinfer_step_embed(V, D, tab),
        gruinfer_step_softmax(1),
        gruinfer_step_binary(2, GRUINFER_BINARY_SUB, 1),
        gruinfer_step_clip(3, -0.5f, INFINITY),
    };
    gruinfer_plan *p = NULL;
    gruinfer_stream *s = NULL;
    CHECK_STATUS(gruinfer_plan_create(WI, st, 4, kernel, &p, NULL), GRUINFER_OK);
    if (!p)
        return;
    CHECK(gruinfer_plan_width(p, 4) == WO, "clip width %lld", (long long)gruinfer_plan_width(p, 4));
    CHECK_STATUS(gruinfer_stream_create(p, N, &s), GRUINFER_OK);
    const float ids[T * N * WI] = {0, 4, -1, 2, 3, 3, 1, -5};
    float out[T * N * WO], want[T * N * WO];
    for (int r = 0; r < T * N; r++) {
        double e[WO], mx = -INFINITY, sum = 0;
        for (int j = 0; j < WO; j++) {
            const int id = (int)ids[r * WI + j / D];
            e[j] = tab[(id < 0 ? id + V : id) * D + j % D];
            mx = e[j] > mx ? e[j] : mx;
        }
        for (int j = 0; j < WO; j++)
            sum += exp(e[j] - mx);
        for (int j = 0; j < WO; j++) {
            const double v = exp(e[j] - mx) / sum - e[j];
            want[r * WO + j] = (float)(v < -0.5 ? -0.5 : v);
        }
    }
    float *outs[4] = {NULL, NULL, NULL, out};
    const int64_t o_st[4] = {0, 0, 0, N * WO}, o_sn[4] = {0, 0, 0, WO};
    CHECK_STATUS(gruinfer_stream_run(s, T, ids, N * WI, WI, 1, outs, o_st, o_sn), GRUINFER_OK);
    CHECK(max_diff_ff(out, want, T * N * WO) <= TOL, "embed/softmax/binary/clip differ by %g",
          max_diff_ff(out, want, T * N * WO));
    const float bad[3][WI] = {{0, 5}, {-6, 0}, {1.5f, 0}};
    for (int b = 0; b < 3; b++) {
        memset(out, 0, sizeof out);
        CHECK_STATUS(gruinfer_stream_run(s, 1, bad[b], 0, WI, 0, outs, o_st, o_sn), GRUINFER_E_INDEX);
        CHECK(out[0] == 0.0f, "a refused run wrote an output");
    }
    /* int64 ids through gruinfer_ids_to_float: one far out of range stays refused. */
    const int64_t far[WI] = {(int64_t)1 << 40, 0}, near[WI] = {-1, 4};
    float idf[WI];
    CHECK_STATUS(gruinfer_ids_to_float(far, 8, WI, idf), GRUINFER_OK);
    CHECK_STATUS(gruinfer_stream_run(s, 1, idf, 0, 0, 0, outs, o_st, o_sn), GRUINFER_E_INDEX);
    CHECK_STATUS(gruinfer_ids_to_float(near, 8, WI, idf), GRUINFER_OK);
    CHECK_STATUS(gruinfer_stream_run(s, 1, idf, 0, 0, 0, outs, o_st, o_sn), GRUINFER_OK);
    gruinfer_stream_free(s);
    gruinfer_plan_free(p);

    gruinfer_plan *q = NULL;
    st[0].input = 1; /* ids only from the plan input */
    CHECK_STATUS(gruinfer_plan_create(WI, st, 1, kernel, &q, NULL), GRUINFER_E_PLAN);
    gruinfer_plan_free(q), q = NULL;
    st[0].input = 0, st[0].ints[0] = GRUINFER_MAX_IDS + 1;
    CHECK_STATUS(gruinfer_plan_create(WI, st, 1, kernel, &q, NULL), GRUINFER_E_SIZE);
    gruinfer_plan_free(q), q = NULL;
    st[0].ints[0] = V;
    st[0].table_len[0] = V * D - 1;
    CHECK_STATUS(try_plan(WI, st, 1, kernel, NULL), GRUINFER_E_SIZE);
    st[0].table_len[0] = V * D;
    st[2].input2 = 0; /* the plan input: width WI, not WO */
    int32_t blamed = 99;
    CHECK_STATUS(gruinfer_plan_create(WI, st, 3, kernel, &q, &blamed), GRUINFER_E_SIZE);
    CHECK(blamed == 2, "a second buffer of another width blames step %d", (int)blamed);
    gruinfer_plan_free(q), q = NULL;
    st[2].input2 = 1, st[2].ints[0] = GRUINFER_BINARY_COUNT;
    CHECK_STATUS(gruinfer_plan_create(WI, st, 3, kernel, &q, NULL), GRUINFER_E_ATTR);
    gruinfer_plan_free(q), q = NULL;
    st[2].ints[0] = GRUINFER_BINARY_ADD;
    st[2].tables[0] = tab, st[2].table_len[0] = WO; /* a constant as well as a second buffer */
    CHECK_STATUS(try_plan(WI, st, 3, kernel, NULL), GRUINFER_E_PLAN);
    st[2] = gruinfer_step_binary_const(2, GRUINFER_BINARY_ADD, WO + 1, tab);
    CHECK_STATUS(try_plan(WI, st, 3, kernel, NULL), GRUINFER_E_SIZE);
    st[2] = gruinfer_step_binary_const(2, GRUINFER_BINARY_ADD, WO, tab);
    CHECK_STATUS(try_plan(WI, st, 3, kernel, NULL), GRUINFER_OK);
    st[2].tables[0] = NULL, st[2].table_len[0] = 0; /* a constant, but none given */
    CHECK_STATUS(gruinfer_plan_create(WI, st, 3, kernel, &q, NULL), GRUINFER_E_NULL);
    gruinfer_plan_free(q), q = NULL;
    st[3].floats[0] = NAN, st[3].input = 0;
    CHECK_STATUS(gruinfer_plan_create(WI, st + 3, 1, kernel, &q, NULL), GRUINFER_E_NONFINITE);
    gruinfer_plan_free(q), q = NULL;
    /* concat: rows side by side; its second buffer must be an earlier one, the sum in range */
    gruinfer_step cat[2] = {gruinfer_step_concat(0, 0), gruinfer_step_concat(1, 0)};
    CHECK_STATUS(gruinfer_plan_create(WI, cat, 2, kernel, &q, NULL), GRUINFER_OK);
    if (q) {
        CHECK(gruinfer_plan_width(q, 2) == 3 * WI, "concat width %lld",
              (long long)gruinfer_plan_width(q, 2));
        gruinfer_stream *cs = NULL;
        CHECK_STATUS(gruinfer_stream_create(q, 1, &cs), GRUINFER_OK);
        float xin[WI], got[3 * WI];
        for (int i = 0; i < WI; i++)
            xin[i] = (float)i + 0.5f;
        float *co[2] = {NULL, got};
        const int64_t c_st[2] = {0, 0}, c_sn[2] = {0, 0};
        CHECK_STATUS(gruinfer_stream_run(cs, 1, xin, WI, WI, 1, co, c_st, c_sn), GRUINFER_OK);
        for (int i = 0; i < 3 * WI; i++)
            CHECK(got[i] == xin[i % WI], "concat element %d is %g", i, (double)got[i]);
        gruinfer_stream_free(cs);
    }
    gruinfer_plan_free(q), q = NULL;
    cat[1].input2 = 2; /* a later buffer */
    CHECK_STATUS(try_plan(WI, cat, 2, kernel, NULL), GRUINFER_E_PLAN);
    cat[1].input2 = -1; /* none */
    CHECK_STATUS(try_plan(WI, cat, 2, kernel, NULL), GRUINFER_E_PLAN);
    CHECK_STATUS(try_plan(GRUINFER_MAX_DIM / 2 + 1, cat, 1, kernel, NULL), GRUINFER_E_SIZE);
    gruinfer_step sm = gruinfer_step_softmax(0);
    sm.tables[1] = tab, sm.table_len[1] = WI; /* a table where none is read */
    CHECK_STATUS(try_plan(WI, &sm, 1, kernel, NULL), GRUINFER_E_PLAN);
    gruinfer_step ln = gruinfer_step_layernorm(0, D, tab, NULL, 1e-5f); /* no bias */
    CHECK_STATUS(gruinfer_plan_create(D, &ln, 1, kernel, &q, NULL), GRUINFER_OK);
    CHECK_STATUS(gruinfer_stream_create(q, N, &s), GRUINFER_OK);
    if (s) {
        const float xs[N * D] = {1, 2, 4, -3, 0.5f, 0.25f};
        float ys[N * D];
        float *lo[1] = {ys};
        const int64_t l_st[1] = {N * D}, l_sn[1] = {D};
        CHECK_STATUS(gruinfer_stream_run(s, 1, xs, N * D, D, 1, lo, l_st, l_sn), GRUINFER_OK);
        for (int r = 0; r < N; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < D; j++)
                mean += xs[r * D + j] / (double)D;
            for (int j = 0; j < D; j++)
                var += (xs[r * D + j] - mean) * (xs[r * D + j] - mean) / D;
            for (int j = 0; j < D; j++)
                want[r * D + j] = (float)((xs[r * D + j] - mean) / sqrt(var + 1e-5) * tab[j]);
        }
        CHECK(max_diff_ff(ys, want, N * D) <= TOL, "layernorm differs by %g",
              max_diff_ff(ys, want, N * D));
    }
    gruinfer_stream_free(s), s = NULL;
    gruinfer_plan_free(q), q = NULL;
    ln.table_len[0] = D + 1;
    CHECK_STATUS(try_plan(D, &ln, 1, kernel, NULL), GRUINFER_E_SIZE);
    ln = gruinfer_step_layernorm(0, D, tab, tab, 1e-5f);
    ln.table_len[1] = D - 1;
    CHECK_STATUS(try_plan(D, &ln, 1, kernel, NULL), GRUINFER_E_SIZE);
    ln = gruinfer_step_layernorm(0, D, tab, NULL, -1.0f);
    CHECK_STATUS(gruinfer_plan_create(D, &ln, 1, kernel, &q, NULL), GRUINFER_E_ATTR);
    gruinfer_plan_free(q), q = NULL;
    ln = gruinfer_step_layernorm(0, D, NULL, NULL, 1e-5f);
    CHECK_STATUS(gruinfer_plan_create(D, &ln, 1, kernel, &q, NULL), GRUINFER_E_NULL);
    gruinfer_plan_free(q), q = NULL;
}

/* ------------------------------------------------------------------ token ids */
static void test_ids_to_float(void)
{
    ctx_kernel = "(ids)";
    const int64_t lim = (int64_t)1 << 25;
    const int32_t i32[6] = {0, -1, 7, INT32_MAX, INT32_MIN, (int32_t)-lim};
    const int64_t i64[6] = {3, -4, lim + 1, (int64_t)1 << 40, INT64_MIN, INT64_MAX};
    const float want32[6] = {0, -1, 7, (float)lim, (float)-lim, (float)-lim};
    const float want64[6] = {3, -4, (float)lim, (float)lim, (float)-lim, (float)lim};
    float out[6];
    CHECK_STATUS(gruinfer_ids_to_float(i32, 4, 6, out), GRUINFER_OK);
    CHECK(memcmp(out, want32, sizeof out) == 0, "int32 ids: %g %g %g %g %g %g", out[0], out[1],
          out[2], out[3], out[4], out[5]);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 8, 6, out), GRUINFER_OK);
    CHECK(memcmp(out, want64, sizeof out) == 0, "int64 ids: %g %g %g %g %g %g", out[0], out[1],
          out[2], out[3], out[4], out[5]);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 0, 6, out), GRUINFER_E_ATTR);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 2, 6, out), GRUINFER_E_ATTR);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 16, 6, out), GRUINFER_E_ATTR);
    CHECK_STATUS(gruinfer_ids_to_float(NULL, 8, 6, out), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 8, 6, NULL), GRUINFER_E_NULL);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 8, -1, out), GRUINFER_E_SIZE);
    CHECK_STATUS(gruinfer_ids_to_float(i64, 8, 0, out), GRUINFER_OK);
}

/* ------------------------------------------------------------------ kernels, env, status text */
static void test_step_kind_names(void)
{
    ctx_kernel = "(steps)";
    static const char *const want[] = {"gru",        "dense",     "act",    "softmax", "logsoftmax",
                                       "layernorm",  "binary",    "clip",   "embed",
                                       "concat"};
    const int n = (int)(sizeof want / sizeof want[0]);
    CHECK(n == GRUINFER_STEP_COUNT, "%d step kinds, %d names expected", GRUINFER_STEP_COUNT, n);
    for (int k = 0; k < n; k++) {
        const char *name = gruinfer_step_kind_name(k);
        CHECK(name && strcmp(name, want[k]) == 0, "step kind %d is named %s", k,
              name ? name : "NULL");
    }
    CHECK(gruinfer_step_kind_name(GRUINFER_STEP_COUNT) == NULL, "kind COUNT has a name");
    CHECK(gruinfer_step_kind_name(-1) == NULL, "kind -1 has a name");
}

static void test_kernel_choice(const char *const *names, int n_names)
{
    ctx_kernel = "(selection)";
    CHECK(n_names >= 1 && strcmp(names[0], "ref") == 0, "kernel names do not start with ref");
    CHECK(gruinfer_kernel_supported("ref") == 1, "ref is not supported");
    CHECK(gruinfer_kernel_supported("nope") == 0, "an unknown kernel is supported");
    CHECK(gruinfer_kernel_supported(NULL) == 0, "a NULL kernel name is supported");
    const char *best = "ref";
    for (int i = 0; i < n_names; i++)
        if (gruinfer_kernel_supported(names[i]))
            best = names[i];

    const char *saved = getenv("GRUINFER_KERNEL");
    char *saved_copy = saved ? strdup(saved) : NULL;
    gruinfer_gru_config c = make_cfg(2, 3, GRUINFER_FORWARD, 0);
    float *W = rand_array(3 * 3 * 2, 0.5f), *R = rand_array(3 * 3 * 3, 0.5f);
    gruinfer_gru *m = NULL;
    gruinfer_plan *p = NULL;
    const gruinfer_step step = gruinfer_step_act(0, act(GRUINFER_ACT_RELU, 0, 0));

    unsetenv("GRUINFER_KERNEL");
    const char *def = gruinfer_kernel_default();
    CHECK(def && strcmp(def, best) == 0, "default kernel is %s, expected the best supported, %s",
          def ? def : "NULL", best);
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, NULL, &m), GRUINFER_OK);
    CHECK(m && strcmp(gruinfer_gru_kernel(m), best) == 0, "kernel NULL did not choose %s", best);
    gruinfer_gru_free(m), m = NULL;

    setenv("GRUINFER_KERNEL", "bogus", 1);
    CHECK(gruinfer_kernel_default() == NULL, "GRUINFER_KERNEL=bogus: default is not NULL");
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, NULL, &m), GRUINFER_E_KERNEL);
    gruinfer_gru_free(m), m = NULL;
    CHECK_STATUS(gruinfer_plan_create(3, &step, 1, NULL, &p, NULL), GRUINFER_E_KERNEL);
    gruinfer_plan_free(p), p = NULL;
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, "ref", &m), GRUINFER_OK);
    gruinfer_gru_free(m), m = NULL;

    setenv("GRUINFER_KERNEL", "ref", 1);
    def = gruinfer_kernel_default();
    CHECK(def && strcmp(def, "ref") == 0, "GRUINFER_KERNEL=ref: default is %s", def ? def : "NULL");
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, NULL, &m), GRUINFER_OK);
    CHECK(m && strcmp(gruinfer_gru_kernel(m), "ref") == 0, "GRUINFER_KERNEL=ref not honoured");
    gruinfer_gru_free(m), m = NULL;
    /* An explicit name wins over the variable. */
    CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, best, &m), GRUINFER_OK);
    CHECK(m && strcmp(gruinfer_gru_kernel(m), best) == 0, "explicit kernel overridden by env");
    gruinfer_gru_free(m), m = NULL;

    /* Built-in kernels this CPU cannot run are refused by name. */
    for (int i = 0; i < n_names; i++)
        if (!gruinfer_kernel_supported(names[i])) {
            CHECK_STATUS(gruinfer_gru_create(&c, W, R, NULL, names[i], &m), GRUINFER_E_KERNEL);
            gruinfer_gru_free(m), m = NULL;
        }

    if (saved_copy)
        setenv("GRUINFER_KERNEL", saved_copy, 1);
    else
        unsetenv("GRUINFER_KERNEL");
    free(saved_copy), free(W), free(R);
}

static void test_status_text(void)
{
    ctx_kernel = "(status)";
    const char *unknown = gruinfer_status_text((gruinfer_status)99);
    CHECK(unknown != NULL, "status_text(99) is NULL");
    for (int s = GRUINFER_OK; s <= GRUINFER_E_INDEX; s++) {
        const char *t = gruinfer_status_text((gruinfer_status)s);
        CHECK(t && *t && (!unknown || strcmp(t, unknown) != 0), "status %d has no text", s);
        for (int u = GRUINFER_OK; u < s; u++)
            CHECK(t && strcmp(t, gruinfer_status_text((gruinfer_status)u)) != 0,
                  "statuses %d and %d share the text %s", u, s, t ? t : "NULL");
    }
}

int main(void)
{
    const char *const *names = gruinfer_kernel_names();
    int n_names = 0;
    while (names && names[n_names])
        n_names++;
    test_status_text();
    test_step_kind_names();
    test_ids_to_float();
    test_kernel_choice(names, n_names);
    int ran = 0;
    for (int i = 0; i < n_names; i++) {
        if (!gruinfer_kernel_supported(names[i])) {
            printf("kernel %s: not supported by this CPU, skipped\n", names[i]);
            continue;
        }
        ctx_kernel = names[i];
        const int before = n_fail;
        test_runs(names[i]);
        test_bad_configs(names[i]);
        test_streams(names[i]);
        test_frame_steps(names[i]);
        printf("kernel %s: %s\n", names[i], n_fail == before ? "ok" : "FAILED");
        ran++;
    }
    ctx_kernel = "-";
    CHECK(ran >= 1, "no kernel ran");
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
