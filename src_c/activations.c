/* activations.c: the ONNX RNN activation functions over arrays (sigmoid and tanh from the kernel in use). */
#include <math.h>

#include "gru_internal.h"

gruinfer_status gruinfer_act_check(const gruinfer_activation *a)
{
    if (a->kind < 0 || a->kind >= GRUINFER_ACT_COUNT)
        return GRUINFER_E_ACTIVATION;
    if (!isfinite(a->alpha) || !isfinite(a->beta))
        return GRUINFER_E_NONFINITE;
    return GRUINFER_OK;
}

void gruinfer_act_apply(const gruinfer_kernels *k, const gruinfer_activation *a, float *x,
                        int64_t n)
{
    const float al = a->alpha, be = a->beta;
    switch (a->kind) {
    case GRUINFER_ACT_SIGMOID: k->sigmoid(x, n); return;
    case GRUINFER_ACT_TANH: k->tanh(x, n); return;
    case GRUINFER_ACT_RELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    case GRUINFER_ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) x[i] = fmaxf(0.0f, fminf(1.0f, al * x[i] + be));
        return;
    case GRUINFER_ACT_LEAKYRELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : al * x[i];
        return;
    case GRUINFER_ACT_THRESHOLDEDRELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > al ? x[i] : 0.0f;
        return;
    case GRUINFER_ACT_SCALEDTANH:
        for (int64_t i = 0; i < n; i++) x[i] = be * x[i];
        k->tanh(x, n);
        for (int64_t i = 0; i < n; i++) x[i] = al * x[i];
        return;
    case GRUINFER_ACT_AFFINE:
        for (int64_t i = 0; i < n; i++) x[i] = al * x[i] + be;
        return;
    case GRUINFER_ACT_ELU:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] >= 0.0f ? x[i] : al * expm1f(x[i]);
        return;
    case GRUINFER_ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + fabsf(x[i]));
        return;
    case GRUINFER_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
        return;
    }
}
