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
static inline vf vmin(vf a, vf b) { return vselect(a < b, a, b); }
static inline vf vmax(vf a, vf b) { return vselect(a > b, a, b); }

/* C[i, :n] += A[i, :k] . B[:k, :n], four rows at a time sharing each load of B. */
static void NAME(gemm_acc)(int64_t m, int64_t n, int64_t k, const float *A, int64_t lda,
                           const float *B, int64_t ldb, float *C, int64_t ldc)
{
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *a0 = A + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        float *c0 = C + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int64_t j = 0;
        for (; j + 2 * VLEN <= n; j += 2 * VLEN) {
            vf s00 = {0}, s01 = {0}, s10 = {0}, s11 = {0};
            vf s20 = {0}, s21 = {0}, s30 = {0}, s31 = {0};
            for (int64_t p = 0; p < k; p++) {
                const vf b0 = vload(B + p * ldb + j), b1 = vload(B + p * ldb + j + VLEN);
                const vf x0 = vsplat(a0[p]), x1 = vsplat(a1[p]);
                const vf x2 = vsplat(a2[p]), x3 = vsplat(a3[p]);
                s00 += x0 * b0; s01 += x0 * b1; s10 += x1 * b0; s11 += x1 * b1;
                s20 += x2 * b0; s21 += x2 * b1; s30 += x3 * b0; s31 += x3 * b1;
            }
            vstore(c0 + j, vload(c0 + j) + s00); vstore(c0 + j + VLEN, vload(c0 + j + VLEN) + s01);
            vstore(c1 + j, vload(c1 + j) + s10); vstore(c1 + j + VLEN, vload(c1 + j + VLEN) + s11);
            vstore(c2 + j, vload(c2 + j) + s20); vstore(c2 + j + VLEN, vload(c2 + j + VLEN) + s21);
            vstore(c3 + j, vload(c3 + j) + s30); vstore(c3 + j + VLEN, vload(c3 + j + VLEN) + s31);
        }
        for (; j < n; j++) {
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int64_t p = 0; p < k; p++) {
                const float b = B[p * ldb + j];
                s0 += a0[p] * b; s1 += a1[p] * b; s2 += a2[p] * b; s3 += a3[p] * b;
            }
            c0[j] += s0; c1[j] += s1; c2[j] += s2; c3[j] += s3;
        }
    }
    for (; i < m; i++) {
        const float *a = A + i * lda;
        float *c = C + i * ldc;
        int64_t j = 0;
        for (; j + 8 * VLEN <= n; j += 8 * VLEN) {
            vf s[8] = {{0}};
            for (int64_t p = 0; p < k; p++) {
                const float *b = B + p * ldb + j;
                const vf x = vsplat(a[p]);
                for (int q = 0; q < 8; q++)
                    s[q] += x * vload(b + q * VLEN);
            }
            for (int q = 0; q < 8; q++)
                vstore(c + j + q * VLEN, vload(c + j + q * VLEN) + s[q]);
        }
        for (; j + VLEN <= n; j += VLEN) {
            vf s0 = {0}, s1 = {0};
            int64_t p = 0;
            for (; p + 2 <= k; p += 2) {
                s0 += vsplat(a[p]) * vload(B + p * ldb + j);
                s1 += vsplat(a[p + 1]) * vload(B + (p + 1) * ldb + j);
            }
            if (p < k)
                s0 += vsplat(a[p]) * vload(B + p * ldb + j);
            vstore(c + j, vload(c + j) + s0 + s1);
        }
        for (; j < n; j++) {
            float s = 0;
            for (int64_t p = 0; p < k; p++)
                s += a[p] * B[p * ldb + j];
            c[j] += s;
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

const gruinfer_kernels GLUE(gruinfer_kernels, GRUINFER_SUFFIX) = {
    STR(GRUINFER_SUFFIX), NAME(gemm_acc), NAME(sigmoid), NAME(tanh)};
