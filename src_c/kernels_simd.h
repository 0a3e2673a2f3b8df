/* kernels_simd.h: the SIMD kernels written once with GCC/Clang vector types; each ISA file includes it with its own flags. */
/* The including file defines GRUINFER_VLEN (floats per vector) and
 * GRUINFER_SUFFIX (the ISA name), and is compiled with that ISA's flags. */
#if !defined(GRUINFER_VLEN) || !defined(GRUINFER_SUFFIX)
#error "include kernels_simd.h from a per-ISA file that defines GRUINFER_VLEN and GRUINFER_SUFFIX"
#endif

#include <string.h>

#include "gru_internal.h"

#define VLEN GRUINFER_VLEN
typedef float vf __attribute__((vector_size(VLEN * 4)));
typedef int32_t vi __attribute__((vector_size(VLEN * 4)));

#define GLUE_(a, b) a##_##b
#define GLUE(a, b) GLUE_(a, b)
#define NAME(f) GLUE(f, GRUINFER_SUFFIX)
#define STR_(a) #a
#define STR(a) STR_(a)

static inline vf vload(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
/* x - 0 is exact for every x (x + 0 is not, for -0), so this folds to one broadcast. */
static inline vf vsplat(float x) { return x - (vf){0}; }
static inline vf vselect(vi mask, vf a, vf b)
{
    return (vf)(((vi)a & mask) | ((vi)b & ~mask));
}
/* min(a, b) / max(a, b) that keep a NaN in a (the comparison is false). */
static inline vf vmin(vf a, vf b) { return vselect(a > b, b, a); }
static inline vf vmax(vf a, vf b) { return vselect(a < b, b, a); }

/* Panel width: four vectors.  Rows per block: four with 32 vector registers
 * (16 accumulators), two with 16 (8 accumulators).  KC: inputs per pass, so a
 * panel slice of KC rows (32 KiB) stays in L1 while every row block uses it. */
#define PANEL (4 * VLEN)
#define ROWS (VLEN >= 16 ? 4 : 2)
#define KC (8192 / PANEL)

/* Accumulators are named variables, not arrays: GCC keeps arrays of vectors
 * in memory when it does not unroll the loops over them. */
#define INIT(q) (acc ? vload(c + (q) * VLEN) : bias ? vload(bias + (q) * VLEN) : (vf){0})

/* C[r, 0:PANEL] = init + A[r, 0:k] . panel for ROWS rows; init is the bias
 * (zeros when NULL) or, with acc, C itself. */
static inline void NAME(block_full)(int64_t k, const float *A, int64_t lda, const float *b,
                                    const float *bias, int acc, float *C, int64_t ldc)
{
    const float *c = C;
    vf s00 = INIT(0), s01 = INIT(1), s02 = INIT(2), s03 = INIT(3);
    c = C + ldc;
    vf s10 = INIT(0), s11 = INIT(1), s12 = INIT(2), s13 = INIT(3);
#if ROWS == 4
    c = C + 2 * ldc;
    vf s20 = INIT(0), s21 = INIT(1), s22 = INIT(2), s23 = INIT(3);
    c = C + 3 * ldc;
    vf s30 = INIT(0), s31 = INIT(1), s32 = INIT(2), s33 = INIT(3);
#endif
    const float *a0 = A, *a1 = A + lda;
#if ROWS == 4
    const float *a2 = A + 2 * lda, *a3 = A + 3 * lda;
#endif
    for (int64_t p = 0; p < k; p++, b += PANEL) {
        const vf b0 = vload(b), b1 = vload(b + VLEN), b2 = vload(b + 2 * VLEN), b3 = vload(b + 3 * VLEN);
        vf x = vsplat(a0[p]);
        s00 += x * b0; s01 += x * b1; s02 += x * b2; s03 += x * b3;
        x = vsplat(a1[p]);
        s10 += x * b0; s11 += x * b1; s12 += x * b2; s13 += x * b3;
#if ROWS == 4
        x = vsplat(a2[p]);
        s20 += x * b0; s21 += x * b1; s22 += x * b2; s23 += x * b3;
        x = vsplat(a3[p]);
        s30 += x * b0; s31 += x * b1; s32 += x * b2; s33 += x * b3;
#endif
    }
    float *o = C;
    vstore(o, s00); vstore(o + VLEN, s01); vstore(o + 2 * VLEN, s02); vstore(o + 3 * VLEN, s03);
    o += ldc;
    vstore(o, s10); vstore(o + VLEN, s11); vstore(o + 2 * VLEN, s12); vstore(o + 3 * VLEN, s13);
#if ROWS == 4
    o += ldc;
    vstore(o, s20); vstore(o + VLEN, s21); vstore(o + 2 * VLEN, s22); vstore(o + 3 * VLEN, s23);
    o += ldc;
    vstore(o, s30); vstore(o + VLEN, s31); vstore(o + 2 * VLEN, s32); vstore(o + 3 * VLEN, s33);
#endif
}

/* One row against a full panel slice; even and odd inputs use separate
 * accumulators so eight FMAs are in flight. */
static inline void NAME(row_full)(int64_t k, const float *a, const float *b, const float *bias,
                                  int acc, float *c)
{
    vf s0 = INIT(0), s1 = INIT(1), s2 = INIT(2), s3 = INIT(3);
    vf t0 = {0}, t1 = {0}, t2 = {0}, t3 = {0};
    int64_t p = 0;
    for (; p + 2 <= k; p += 2, b += 2 * PANEL) {
        const vf x0 = vsplat(a[p]), x1 = vsplat(a[p + 1]);
        s0 += x0 * vload(b); s1 += x0 * vload(b + VLEN);
        s2 += x0 * vload(b + 2 * VLEN); s3 += x0 * vload(b + 3 * VLEN);
        t0 += x1 * vload(b + PANEL); t1 += x1 * vload(b + PANEL + VLEN);
        t2 += x1 * vload(b + PANEL + 2 * VLEN); t3 += x1 * vload(b + PANEL + 3 * VLEN);
    }
    if (p < k) {
        const vf x0 = vsplat(a[p]);
        s0 += x0 * vload(b); s1 += x0 * vload(b + VLEN);
        s2 += x0 * vload(b + 2 * VLEN); s3 += x0 * vload(b + 3 * VLEN);
    }
    vstore(c, s0 + t0); vstore(c + VLEN, s1 + t1);
    vstore(c + 2 * VLEN, s2 + t2); vstore(c + 3 * VLEN, s3 + t3);
}

/* One row against a narrower panel slice of nq vectors a row (nq < 4, w = nq
 * * VLEN floats): every vector at once, inputs split four ways (two for three
 * vectors) so that eight or more FMAs are in flight even for short k. */
static inline __attribute__((always_inline)) void NAME(row_nq)(int64_t k, const int nq,
                                                                const float *a, const float *b,
                                                                const float *bias, int acc,
                                                                float *c)
{
    const int64_t w = nq * VLEN;
    vf s0 = INIT(0), s1 = nq > 1 ? INIT(1) : (vf){0}, s2 = nq > 2 ? INIT(2) : (vf){0};
    vf t0 = {0}, t1 = {0}, t2 = {0}, u0 = {0}, u1 = {0}, v0 = {0}, v1 = {0};
    int64_t p = 0;
    if (nq < 3)
        for (; p + 4 <= k; p += 4, b += 4 * w) {
            const vf x0 = vsplat(a[p]), x1 = vsplat(a[p + 1]);
            const vf x2 = vsplat(a[p + 2]), x3 = vsplat(a[p + 3]);
            s0 += x0 * vload(b); t0 += x1 * vload(b + w);
            u0 += x2 * vload(b + 2 * w); v0 += x3 * vload(b + 3 * w);
            if (nq > 1) {
                s1 += x0 * vload(b + VLEN); t1 += x1 * vload(b + w + VLEN);
                u1 += x2 * vload(b + 2 * w + VLEN); v1 += x3 * vload(b + 3 * w + VLEN);
            }
        }
    for (; p + 2 <= k; p += 2, b += 2 * w) {
        const vf x0 = vsplat(a[p]), x1 = vsplat(a[p + 1]);
        s0 += x0 * vload(b); t0 += x1 * vload(b + w);
        if (nq > 1) { s1 += x0 * vload(b + VLEN); t1 += x1 * vload(b + w + VLEN); }
        if (nq > 2) { s2 += x0 * vload(b + 2 * VLEN); t2 += x1 * vload(b + w + 2 * VLEN); }
    }
    if (p < k) {
        const vf x0 = vsplat(a[p]);
        s0 += x0 * vload(b);
        if (nq > 1) s1 += x0 * vload(b + VLEN);
        if (nq > 2) s2 += x0 * vload(b + 2 * VLEN);
    }
    vstore(c, (s0 + t0) + (u0 + v0));
    if (nq > 1) vstore(c + VLEN, (s1 + t1) + (u1 + v1));
    if (nq > 2) vstore(c + 2 * VLEN, s2 + t2);
}

static inline void NAME(row_part)(int64_t k, int64_t w, const float *a, const float *b,
                                  const float *bias, int acc, float *c)
{
    switch (w / VLEN) {
    case 1: NAME(row_nq)(k, 1, a, b, bias, acc, c); break;
    case 2: NAME(row_nq)(k, 2, a, b, bias, acc, c); break;
    default: NAME(row_nq)(k, 3, a, b, bias, acc, c); break;
    }
}
#undef INIT

/* Rows [i0, i1) of C against one panel (columns j0 .. j0 + w). */
static void NAME(gemm_panel)(int64_t i0, int64_t i1, int64_t w, int64_t k, const float *A,
                             int64_t lda, const float *panel, const float *pb, float *C,
                             int64_t ldc)
{
    if (w % VLEN) {  /* a panel that is not whole vectors: plain loops */
        for (int64_t i = i0; i < i1; i++)
            for (int64_t j = 0; j < w; j++) {
                float acc = pb ? pb[j] : 0.0f;
                for (int64_t p = 0; p < k; p++)
                    acc += A[i * lda + p] * panel[p * w + j];
                C[i * ldc + j] = acc;
            }
        return;
    }
    /* One row streams the panel once and needs no blocking. */
    const int64_t kc = i1 - i0 == 1 ? k : KC;
    for (int64_t p0 = 0; p0 < k; p0 += kc) {
        const int64_t kk = k - p0 < kc ? k - p0 : kc;
        const int acc = p0 > 0;
        const float *slice = panel + p0 * w;
        int64_t i = i0;
        if (w == PANEL)
            for (; i + ROWS <= i1; i += ROWS)
                NAME(block_full)(kk, A + i * lda + p0, lda, slice, pb, acc, C + i * ldc, ldc);
        for (; i < i1; i++) {
            if (w == PANEL)
                NAME(row_full)(kk, A + i * lda + p0, slice, pb, acc, C + i * ldc);
            else
                NAME(row_part)(kk, w, A + i * lda + p0, slice, pb, acc, C + i * ldc);
        }
    }
}

/* Rows go in chunks of MC so their slice of A stays in cache while every
 * panel passes over it (a long X of a whole sequence is read once, not once
 * per panel). */
#define MC (16 * ROWS)

static void NAME(gemm)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                       const float *B, const float *bias, float *C, int64_t ldc)
{
    if (m == 1 && n % VLEN == 0) {  /* one row (a stream step): each panel streamed once */
        for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
            const float *pb = bias ? bias + j0 : NULL;
            if (n - j0 >= PANEL)
                NAME(row_full)(k, A, B + j0 * k, pb, 0, C + j0);
            else
                NAME(row_part)(k, n - j0, A, B + j0 * k, pb, 0, C + j0);
        }
        return;
    }
    for (int64_t i0 = 0; i0 < m; i0 += MC) {
        const int64_t i1 = m - i0 < MC ? m : i0 + MC;
        for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
            const int64_t w = n - j0 < PANEL ? n - j0 : PANEL;
            NAME(gemm_panel)(i0, i1, w, k, A, lda, B + j0 * k, bias ? bias + j0 : NULL,
                             C + j0, ldc);
        }
    }
}

/* tanh(x): the 13/6-degree rational of Eigen and onnxruntime's MLAS (a couple of
 * ulp in [-9, 9], +-1 outside); one division and no exp, so a short dependency
 * chain: a step of a small layer is bound by this latency, not by throughput. */
static inline vf vtanh(vf x)
{
    x = vmax(vmin(x, vsplat(9.0f)), vsplat(-9.0f));  /* a NaN stays NaN */
    const vf x2 = x * x;
    vf p = x2 * vsplat(-2.76076847742355e-16f) + vsplat(2.00018790482477e-13f);
    p = p * x2 + vsplat(-8.60467152213735e-11f);
    p = p * x2 + vsplat(5.12229709037114e-08f);
    p = p * x2 + vsplat(1.48572235717979e-05f);
    p = p * x2 + vsplat(6.37261928875436e-04f);
    p = p * x2 + vsplat(4.89352455891786e-03f);
    vf q = x2 * vsplat(1.19825839466702e-06f) + vsplat(1.18534705686654e-04f);
    q = q * x2 + vsplat(2.26843463243900e-03f);
    q = q * x2 + vsplat(4.89352518554385e-03f);
    return (x * p) / q;
}

/* sigmoid(x) = (1 + tanh(x / 2)) / 2: the same short chain, error half of tanh's. */
static inline vf vsigmoid(vf x) { return vsplat(0.5f) * vtanh(vsplat(0.5f) * x) + vsplat(0.5f); }

/* x[i] = f(x[i]) over n floats, the tail through a zero-padded vector; inlined
 * with f known, so no call per vector. */
static inline __attribute__((always_inline)) void NAME(map)(float *x, int64_t n, vf (*f)(vf))
{
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN)
        vstore(x + i, f(vload(x + i)));
    if (i < n) {
        float tmp[VLEN] = {0};
        memcpy(tmp, x + i, (size_t)(n - i) * sizeof(float));
        vstore(tmp, f(vload(tmp)));
        memcpy(x + i, tmp, (size_t)(n - i) * sizeof(float));
    }
}

/* x * 0 is NaN exactly when x is NaN or Inf. */
static int NAME(all_finite)(const float *x, int64_t n)
{
    vi bad = {0};
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        const vf z = vload(x + i) * 0.0f;
        bad |= z != z;
    }
    for (int v = 0; v < VLEN; v++)
        if (bad[v])
            return 0;
    return gruinfer_all_finite(x + i, n - i);
}

static void NAME(sigmoid)(float *x, int64_t n) { NAME(map)(x, n, vsigmoid); }
static void NAME(tanh)(float *x, int64_t n) { NAME(map)(x, n, vtanh); }

/* One row of the gate math with f = sigmoid, g = tanh and linear_before_reset,
 * units [0, nj) of a row (nj whole vectors): g3 holds the recurrent z, r and h
 * projections Hp apart (Rbh inside h), x the input ones (biases inside), h the
 * state, updated.  Padded units stay 0: their weights and biases are 0, so
 * h~ = 0 there and h = z * 0. */
static inline void NAME(gates_lbr)(const float *g3, const float *x, float *h, int64_t Hp,
                                   int64_t nj, int has_clip, float clip)
{
    const vf hi = vsplat(clip), lo = vsplat(-clip);
    for (int64_t j = 0; j < nj; j += VLEN) {
        vf z = vload(g3 + j) + vload(x + j);
        vf r = vload(g3 + Hp + j) + vload(x + Hp + j);
        if (has_clip)
            z = vmax(vmin(z, hi), lo), r = vmax(vmin(r, hi), lo);
        z = vsigmoid(z);
        r = vsigmoid(r);
        vf c = vload(x + 2 * Hp + j) + r * vload(g3 + 2 * Hp + j);
        if (has_clip)
            c = vmax(vmin(c, hi), lo);
        c = vtanh(c);
        vstore(h + j, c + z * (vload(h + j) - c));
    }
}

#include "gru_cell_arch.h"

const gruinfer_kernels GLUE(gruinfer_kernels, GRUINFER_SUFFIX) = {
    STR(GRUINFER_SUFFIX), PANEL, NAME(gemm), NAME(sigmoid), NAME(tanh), NAME(all_finite),
    NAME(project), NAME(cell)};
