/* gru_model.c: GRU layer creation: validate the config and weights once, pack them into the kernel layout. */
#include <stdlib.h>
#include <string.h>

#include "gru_internal.h"

static gruinfer_status check_config(const gruinfer_gru_config *c)
{
    if (c->input_size < 1 || c->hidden_size < 1 || c->input_size > GRUINFER_MAX_DIM ||
        c->hidden_size > GRUINFER_MAX_DIM)
        return GRUINFER_E_SIZE;
    if (c->direction < GRUINFER_FORWARD || c->direction > GRUINFER_BIDIRECTIONAL)
        return GRUINFER_E_ATTR;
    if (c->linear_before_reset != 0 && c->linear_before_reset != 1)
        return GRUINFER_E_ATTR;
    if (c->has_clip && !(c->clip > 0.0f))
        return GRUINFER_E_ATTR;
    if (c->threads < 0 || c->threads > 256)
        return GRUINFER_E_ATTR;
    const int D = c->direction == GRUINFER_BIDIRECTIONAL ? 2 : 1;
    const int64_t H = c->hidden_size, I = c->input_size;
    const int64_t Hp = gruinfer_round_up(H, GRUINFER_PAD);
    if ((int64_t)D * 3 * Hp * (I + H + 2) > GRUINFER_MAX_WEIGHTS)
        return GRUINFER_E_SIZE;
    for (int d = 0; d < D; d++) {
        gruinfer_status s = gruinfer_act_check(&c->f[d]);
        if (s == GRUINFER_OK)
            s = gruinfer_act_check(&c->g[d]);
        if (s != GRUINFER_OK)
            return s;
    }
    return GRUINFER_OK;
}

/* Pack gates g0 <= g < g1 of an ONNX [3H, K] matrix: column (g - g0)*Hp + j of
 * the packed [K][(g1 - g0)*Hp] matrix is row g*H + j of src (pads stay zero). */
static void pack_gates(float *dst, float *tmp, const float *src, int64_t H, int64_t Hp,
                       int64_t K, int g0, int g1, int64_t panel)
{
    const int64_t n = (g1 - g0) * Hp;
    memset(tmp, 0, (size_t)(K * n) * sizeof(float));
    for (int g = g0; g < g1; g++)
        for (int64_t j = 0; j < H; j++)
            for (int64_t k = 0; k < K; k++)
                tmp[k * n + (g - g0) * Hp + j] = src[(g * H + j) * K + k];
    gruinfer_pack(dst, tmp, n, K, n, panel);
}

gruinfer_status gruinfer_gru_create(const gruinfer_gru_config *cfg, const float *W,
                                    const float *R, const float *B, const char *kernel,
                                    gruinfer_gru **out)
{
    if (!out)
        return GRUINFER_E_NULL;
    *out = NULL;
    if (!cfg || !W || !R)
        return GRUINFER_E_NULL;
    gruinfer_status s = check_config(cfg);
    if (s != GRUINFER_OK)
        return s;
    const gruinfer_kernels *k = gruinfer_kernels_find(kernel);
    if (!k)
        return GRUINFER_E_KERNEL;
    const int64_t D = cfg->direction == GRUINFER_BIDIRECTIONAL ? 2 : 1;
    const int64_t I = cfg->input_size, H = cfg->hidden_size;
    const int64_t Hp = gruinfer_round_up(H, GRUINFER_PAD);
    if (!gruinfer_all_finite(W, D * 3 * H * I) || !gruinfer_all_finite(R, D * 3 * H * H) ||
        (B && !gruinfer_all_finite(B, D * 6 * H)))
        return GRUINFER_E_NONFINITE;

    gruinfer_gru *m = calloc(1, sizeof *m);
    const int64_t per_dir = 3 * Hp * (I + H + 1) + Hp;
    float *mem = gruinfer_alloc_floats(D * per_dir);
    float *tmp = gruinfer_alloc_floats(3 * Hp * (I > H ? I : H));
    if (!m || !mem || !tmp) {
        free(m);
        gruinfer_free_aligned(mem);
        gruinfer_free_aligned(tmp);
        return GRUINFER_E_NOMEM;
    }
    m->cfg = *cfg;
    m->D = D, m->I = I, m->H = H, m->Hp = Hp, m->k = k, m->mem = mem;
    for (int64_t d = 0; d < D; d++) {
        float *p = mem + d * per_dir;
        m->Wp[d] = p;
        m->Rzr[d] = p + 3 * Hp * I;
        m->Rh[d] = m->Rzr[d] + 2 * Hp * H;
        m->bx[d] = m->Rh[d] + Hp * H;
        m->rbh[d] = m->bx[d] + 3 * Hp;
        pack_gates(m->Wp[d], tmp, W + d * 3 * H * I, H, Hp, I, 0, 3, k->panel);
        pack_gates(m->Rzr[d], tmp, R + d * 3 * H * H, H, Hp, H, 0, 2, k->panel);
        pack_gates(m->Rh[d], tmp, R + d * 3 * H * H, H, Hp, H, 2, 3, k->panel);
        if (!B)
            continue;
        const float *wb = B + d * 6 * H, *rb = wb + 3 * H;
        for (int g = 0; g < 3; g++)
            for (int64_t j = 0; j < H; j++) {
                const int fold = g < 2 || !cfg->linear_before_reset;
                m->bx[d][g * Hp + j] = wb[g * H + j] + (fold ? rb[g * H + j] : 0.0f);
            }
        if (cfg->linear_before_reset)
            for (int64_t j = 0; j < H; j++)
                m->rbh[d][j] = rb[2 * H + j];
    }
    gruinfer_free_aligned(tmp);
    *out = m;
    return GRUINFER_OK;
}

void gruinfer_gru_free(gruinfer_gru *m)
{
    if (!m)
        return;
    gruinfer_free_aligned(m->mem);
    free(m);
}

const gruinfer_gru_config *gruinfer_gru_get_config(const gruinfer_gru *m)
{
    return m ? &m->cfg : NULL;
}

const char *gruinfer_gru_kernel(const gruinfer_gru *m) { return m ? m->k->name : NULL; }
