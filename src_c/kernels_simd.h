/* kernels_simd.h: the SIMD kernels written once with GCC/Clang vector types; each ISA file includes it with its own flags. */
/* The including file defines GRUINFER_VLEN (floats per vector) and
 * GRUINFER_SUFFIX (the ISA name), and is compiled with that ISA's flags. */
#if !defined(GRUINFER_VLEN) || !defined(GRUINFER_SUFFIX)
#error "include kernels_simd.h from a per-ISA file that defines GRUINFER_VLEN and GRUINFER_SUFFIX"
#endif

#include <string.h>

#include "kernels.h"

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
static inline vf vsplat(float x) { return (vf){0} + x; }
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

/* C[r, 0:PANEL] = init + A[r, 0:k] . panel for ROWS rows; init is the bias
 * (zeros when NULL) or, with acc, C itself. */
static inline void NAME(block_full)(int64_t k, const float *A, int64_t lda, const float *b,
                                    const float *bias, int acc, float *C, int64_t ldc)
{
    vf s[ROWS][4];
    for (int r = 0; r < ROWS; r++)
        for (int q = 0; q < 4; q++)
            s[r][q] = acc ? vload(C + r * ldc + q * VLEN) : bias ? vload(bias + q * VLEN) : (vf){0};
    for (int64_t p = 0; p < k; p++, b += PANEL) {
        const vf b0 = vload(b), b1 = vload(b + VLEN), b2 = vload(b + 2 * VLEN), b3 = vload(b + 3 * VLEN);
        for (int r = 0; r < ROWS; r++) {
            const vf x = vsplat(A[r * lda + p]);
            s[r][0] += x * b0; s[r][1] += x * b1; s[r][2] += x * b2; s[r][3] += x * b3;
        }
    }
    for (int r = 0; r < ROWS; r++)
        for (int q = 0; q < 4; q++)
            vstore(C + r * ldc + q * VLEN, s[r][q]);
}

/* One row against a panel slice of w floats a row (w a multiple of VLEN, at
 * most PANEL); even and odd inputs use separate accumulators so eight FMAs
 * are in flight. */
static inline void NAME(block_row)(int64_t k, int64_t w, const float *a, const float *b,
                                   const float *bias, int acc, float *c)
{
    vf s[4] = {{0}}, t[4] = {{0}};
    const int nv = (int)(w / VLEN);
    for (int q = 0; q < nv; q++)
        s[q] = acc ? vload(c + q * VLEN) : bias ? vload(bias + q * VLEN) : (vf){0};
    int64_t p = 0;
    if (nv == 4) {
        for (; p + 2 <= k; p += 2, b += 2 * PANEL) {
            const vf x0 = vsplat(a[p]), x1 = vsplat(a[p + 1]);
            s[0] += x0 * vload(b); s[1] += x0 * vload(b + VLEN);
            s[2] += x0 * vload(b + 2 * VLEN); s[3] += x0 * vload(b + 3 * VLEN);
            t[0] += x1 * vload(b + PANEL); t[1] += x1 * vload(b + PANEL + VLEN);
            t[2] += x1 * vload(b + PANEL + 2 * VLEN); t[3] += x1 * vload(b + PANEL + 3 * VLEN);
        }
    }
    for (; p < k; p++, b += w) {
        const vf x = vsplat(a[p]);
        for (int q = 0; q < nv; q++)
            s[q] += x * vload(b + q * VLEN);
    }
    for (int q = 0; q < nv; q++)
        vstore(c + q * VLEN, s[q] + t[q]);
}

static void NAME(gemm)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                       const float *B, const float *bias, float *C, int64_t ldc)
{
    for (int64_t j0 = 0; j0 < n; j0 += PANEL) {
        const int64_t w = n - j0 < PANEL ? n - j0 : PANEL;
        const float *panel = B + j0 * k, *pb = bias ? bias + j0 : NULL;
        if (w % VLEN) {  /* a panel that is not whole vectors: plain loops */
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < w; j++) {
                    float acc = pb ? pb[j] : 0.0f;
                    for (int64_t p = 0; p < k; p++)
                        acc += A[i * lda + p] * panel[p * w + j];
                    C[i * ldc + j0 + j] = acc;
                }
            continue;
        }
        /* One row: stream the panel once, no blocking needed. */
        const int64_t kc = m == 1 ? k : KC;
        for (int64_t p0 = 0; p0 < k; p0 += kc) {
            const int64_t kk = k - p0 < kc ? k - p0 : kc;
            const int acc = p0 > 0;
            const float *slice = panel + p0 * w;
            int64_t i = 0;
            if (w == PANEL)
                for (; i + ROWS <= m; i += ROWS)
                    NAME(block_full)(kk, A + i * lda + p0, lda, slice, pb, acc,
                                     C + i * ldc + j0, ldc);
            for (; i < m; i++)
                NAME(block_row)(kk, w, A + i * lda + p0, slice, pb, acc, C + i * ldc + j0);
        }
    }
}

/* exp(x) for x in [-88, 88] (Cephes expf: range reduction by ln 2, degree-6 polynomial). */
static inline vf vexp(vf x)
{
    x = vmin(vmax(x, vsplat(-87.3f)), vsplat(88.3f));
    const vf magic = vsplat(12582912.0f); /* 1.5 * 2^23: rounds to nearest integer */
    vf n = (x * vsplat(1.44269504088896341f) + magic) - magic;
    vf r = x - n * vsplat(0.693359375f);
    r = r - n * vsplat(-2.12194440e-4f);
    vf p = vsplat(1.9875691500e-4f);
    p = p * r + vsplat(1.3981999507e-3f);
    p = p * r + vsplat(8.3334519073e-3f);
    p = p * r + vsplat(4.1665795894e-2f);
    p = p * r + vsplat(1.6666665459e-1f);
    p = p * r + vsplat(5.0000001201e-1f);
    p = p * r * r + r + vsplat(1.0f);
    /* n in [-126, 127] after the clamp: 2^n is a normal float. */
    const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

static inline vf vsigmoid(vf x) { return vsplat(1.0f) / (vsplat(1.0f) + vexp(-x)); }

static inline vf vtanh(vf x)
{
    const vi neg = x < vsplat(0.0f);
    const vf a = vmin(vselect(neg, -x, x), vsplat(9.0f));
    /* |x| < 0.625: Cephes tanhf odd polynomial; otherwise 1 - 2 / (exp(2|x|) + 1). */
    const vf z = a * a;
    vf p = vsplat(-5.70498872745e-3f);
    p = p * z + vsplat(2.06390887954e-2f);
    p = p * z + vsplat(-5.37397155531e-2f);
    p = p * z + vsplat(1.33314422036e-1f);
    p = p * z + vsplat(-3.33332819422e-1f);
    const vf small = p * z * a + a;
    const vf large = vsplat(1.0f) - vsplat(2.0f) / (vexp(a + a) + vsplat(1.0f));
    const vf t = vselect(a < vsplat(0.625f), small, large);
    return vselect(neg, -t, t);
}

static void NAME(sigmoid)(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN)
        vstore(x + i, vsigmoid(vload(x + i)));
    if (i < n) {
        float tmp[VLEN] = {0};
        memcpy(tmp, x + i, (size_t)(n - i) * sizeof(float));
        vstore(tmp, vsigmoid(vload(tmp)));
        memcpy(x + i, tmp, (size_t)(n - i) * sizeof(float));
    }
}

static void NAME(tanh)(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + VLEN <= n; i += VLEN)
        vstore(x + i, vtanh(vload(x + i)));
    if (i < n) {
        float tmp[VLEN] = {0};
        memcpy(tmp, x + i, (size_t)(n - i) * sizeof(float));
        vstore(tmp, vtanh(vload(tmp)));
        memcpy(x + i, tmp, (size_t)(n - i) * sizeof(float));
    }
}

#include "gru_cell_arch.h"

const gruinfer_kernels GLUE(gruinfer_kernels, GRUINFER_SUFFIX) = {
    STR(GRUINFER_SUFFIX), PANEL, NAME(gemm), NAME(sigmoid), NAME(tanh), NAME(project),
    NAME(cell)};
