/* gru_run.c: the ONNX GRU operator over a whole batch of sequences (both layouts, every direction, sequence_lens). */
#include <string.h>

#include "gru_internal.h"

gruinfer_status gruinfer_gru_run(const gruinfer_gru *m, int32_t layout, int64_t T, int64_t N,
                                 const float *X, const int32_t *lens, const float *h0,
                                 int32_t check_finite, float *Y, float *Y_h)
{
    if (!m || !X)
        return GRUINFER_E_NULL;
    if (layout != 0 && layout != 1)
        return GRUINFER_E_ATTR;
    if (T < 1 || N < 1 || T > GRUINFER_MAX_DIM || N > GRUINFER_MAX_DIM)
        return GRUINFER_E_SIZE;
    const int64_t D = m->D, I = m->I, H = m->H, Hp = m->Hp, w = 3 * Hp;
    if (T * N > ((int64_t)1 << 40) / (w + I + 1))
        return GRUINFER_E_SIZE;
    int padded = 0;
    if (lens)
        for (int64_t n = 0; n < N; n++) {
            if (lens[n] < 0 || lens[n] > T)
                return GRUINFER_E_SEQLEN;
            padded |= lens[n] < T;
        }
    if (check_finite && (!m->k->all_finite(X, T * N * I) ||
                         (h0 && !m->k->all_finite(h0, D * N * H))))
        return GRUINFER_E_NONFINITE;

    float *xp = gruinfer_alloc_scratch(T * N * w);
    float *h = gruinfer_alloc_floats(N * Hp);
    float *scratch = gruinfer_alloc_scratch(gruinfer_cell_scratch(m, N) + N);
    const float **rows = (const float **)gruinfer_alloc_scratch(N * 2 + 2);
    if (!xp || !h || !scratch || !rows) {
        gruinfer_free_aligned(xp);
        gruinfer_free_aligned(h);
        gruinfer_free_aligned(scratch);
        gruinfer_free_aligned(rows);
        return GRUINFER_E_NOMEM;
    }
    unsigned char *active = (unsigned char *)(scratch + gruinfer_cell_scratch(m, N));

    /* Element offsets of (t, n) in X (rows of I), Y (rows of H) and of n in h0 / Y_h. */
    const int64_t xt = layout ? 1 : N, xn = layout ? T : 1;
    const int64_t yt = layout ? D * H : D * N * H, yn = layout ? T * D * H : H;
    const int64_t yd = layout ? H : N * H;
    const int64_t hn = layout ? D * H : H, hd = layout ? H : N * H;

    if (Y && padded)
        memset(Y, 0, (size_t)(T * D * N * H) * sizeof(float));
    for (int64_t d = 0; d < D; d++) {
        const int reverse = d == 1 || m->cfg.direction == GRUINFER_REVERSE;
        gruinfer_gru_project(m, (int)d, T * N, X, I, xp);
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < H; j++)
                h[n * Hp + j] = h0 ? h0[d * hd + n * hn + j] : 0.0f;
        for (int64_t s = 0; s < T; s++) {
            for (int64_t n = 0; n < N; n++) {
                const int64_t len = lens ? lens[n] : T;
                const int64_t t = s < len ? (reverse ? len - 1 - s : s) : 0;
                active[n] = s < len;
                rows[n] = xp + (t * xt + n * xn) * w;
            }
            gruinfer_gru_cell(m, (int)d, N, rows, h, padded ? active : NULL, scratch);
            if (!Y)
                continue;
            for (int64_t n = 0; n < N; n++) {
                if (!active[n])
                    continue;
                const int64_t len = lens ? lens[n] : T;
                const int64_t t = reverse ? len - 1 - s : s;
                memcpy(Y + t * yt + n * yn + d * yd, h + n * Hp, (size_t)H * sizeof(float));
            }
        }
        if (Y_h)
            for (int64_t n = 0; n < N; n++) {
                float *o = Y_h + d * hd + n * hn;
                if (lens && lens[n] == 0)
                    memset(o, 0, (size_t)H * sizeof(float));
                else
                    memcpy(o, h + n * Hp, (size_t)H * sizeof(float));
            }
    }
    gruinfer_free_aligned(xp);
    gruinfer_free_aligned(h);
    gruinfer_free_aligned(scratch);
    gruinfer_free_aligned(rows);
    return GRUINFER_OK;
}
