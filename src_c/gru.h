/* gru.h: the one public C API of gruinfer: GRU layers, frame-wise plans and streams.
 *
 * Usable from C without Python.  Every function returns a gruinfer_status;
 * none aborts, prints or exits.
 *
 * Lifetimes
 *   gruinfer_gru     immutable once created: weights packed for the kernel.
 *                    Any number of threads may run it at once.
 *   gruinfer_plan    immutable: an ordered list of frame-wise steps (GRU
 *                    layers, dense layers, activations).  It borrows the
 *                    gruinfer_gru layers given to it: they must outlive it.
 *                    Shareable by threads like a gruinfer_gru.
 *   gruinfer_stream  the mutable state of N independent streams (slots) of
 *                    one plan: recurrent states and scratch, all allocated at
 *                    creation.  One thread at a time per stream.  The plan
 *                    must outlive the stream.
 *
 * Array conventions: float32, C-contiguous, sizes in elements.
 */
#ifndef GRUINFER_GRU_H
#define GRUINFER_GRU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GRUINFER_OK = 0,
    GRUINFER_E_NULL = 1,        /* a required pointer is NULL */
    GRUINFER_E_SIZE = 2,        /* a size is < 1, too large, or does not match */
    GRUINFER_E_ATTR = 3,        /* direction, linear_before_reset, layout or clip invalid */
    GRUINFER_E_ACTIVATION = 4,  /* unknown activation kind */
    GRUINFER_E_NOMEM = 5,       /* an allocation failed */
    GRUINFER_E_SEQLEN = 6,      /* a sequence_lens value outside [0, seq_length] */
    GRUINFER_E_NONFINITE = 7,   /* a weight or an input holds NaN or Inf */
    GRUINFER_E_KERNEL = 8,      /* unknown kernel name, or not supported by this CPU */
    GRUINFER_E_PLAN = 9,        /* a plan step is malformed or cannot stream */
    GRUINFER_E_SLOT = 10        /* a slot index outside [0, batch_size) */
} gruinfer_status;

/* Short English text for a status (static storage). */
const char *gruinfer_status_text(gruinfer_status s);

/* ---- activations (ONNX RNN activation functions) ---------------------- */
typedef enum {
    GRUINFER_ACT_SIGMOID = 0,
    GRUINFER_ACT_TANH = 1,
    GRUINFER_ACT_RELU = 2,
    GRUINFER_ACT_HARDSIGMOID = 3,     /* max(0, min(1, alpha*x + beta)) */
    GRUINFER_ACT_LEAKYRELU = 4,       /* x >= 0 ? x : alpha*x */
    GRUINFER_ACT_THRESHOLDEDRELU = 5, /* x > alpha ? x : 0 (as onnxruntime) */
    GRUINFER_ACT_SCALEDTANH = 6,      /* alpha * tanh(beta * x) */
    GRUINFER_ACT_AFFINE = 7,          /* alpha * x + beta */
    GRUINFER_ACT_ELU = 8,             /* x >= 0 ? x : alpha*(exp(x)-1) */
    GRUINFER_ACT_SOFTSIGN = 9,        /* x / (1 + |x|) */
    GRUINFER_ACT_SOFTPLUS = 10,       /* log(1 + exp(x)) */
    GRUINFER_ACT_COUNT = 11
} gruinfer_act_kind;

typedef struct {
    int32_t kind;   /* gruinfer_act_kind */
    float alpha;
    float beta;
} gruinfer_activation;

/* ---- GRU layer: the ONNX GRU operator ---------------------------------- */
typedef enum {
    GRUINFER_FORWARD = 0,
    GRUINFER_REVERSE = 1,
    GRUINFER_BIDIRECTIONAL = 2
} gruinfer_direction;

typedef struct {
    int64_t input_size;           /* I */
    int64_t hidden_size;          /* H */
    int32_t direction;            /* gruinfer_direction; D = 2 if bidirectional else 1 */
    int32_t linear_before_reset;  /* 0 or 1 */
    int32_t has_clip;             /* 0: no clip; 1: clip pre-activations to [-clip, clip] */
    float clip;                   /* > 0 when has_clip */
    gruinfer_activation f[2];     /* gate activation per direction (ONNX default Sigmoid) */
    gruinfer_activation g[2];     /* candidate activation per direction (ONNX default Tanh) */
} gruinfer_gru_config;

/* Limits checked at creation: I, H <= GRUINFER_MAX_DIM and the weights of one
 * layer fit in GRUINFER_MAX_WEIGHTS floats. */
#define GRUINFER_MAX_DIM ((int64_t)1 << 20)
#define GRUINFER_MAX_WEIGHTS ((int64_t)1 << 31)

typedef struct gruinfer_gru gruinfer_gru;

/* Create a GRU layer from ONNX-layout weights, copied and packed:
 *   W [D, 3H, I], R [D, 3H, H] (gate order z, r, h), B [D, 6H] or NULL (zeros).
 * kernel: NULL chooses by the GRUINFER_KERNEL environment variable, else the
 * best kernel this CPU supports; otherwise a name from gruinfer_kernel_names.
 * Weights holding NaN or Inf are refused (GRUINFER_E_NONFINITE). */
gruinfer_status gruinfer_gru_create(const gruinfer_gru_config *cfg, const float *W,
                                    const float *R, const float *B, const char *kernel,
                                    gruinfer_gru **out);
void gruinfer_gru_free(gruinfer_gru *m);
const gruinfer_gru_config *gruinfer_gru_get_config(const gruinfer_gru *m);
const char *gruinfer_gru_kernel(const gruinfer_gru *m);

/* Run the operator over a whole batch of sequences.
 *   layout 0: X [T, N, I], initial_h and Y_h [D, N, H], Y [T, D, N, H]
 *   layout 1: X [N, T, I], initial_h and Y_h [N, D, H], Y [N, T, D, H]
 *   sequence_lens [N] (NULL: all T); values in [0, T].  Steps past a row's
 *   length give zeros in Y; Y_h holds the state after the row's last valid
 *   step (zeros for a zero-length row), as onnxruntime does.
 *   initial_h, Y, Y_h may be NULL.
 * With check_finite, an X or initial_h holding NaN or Inf is refused before
 * anything is written.  Allocates its scratch per call. */
gruinfer_status gruinfer_gru_run(const gruinfer_gru *m, int32_t layout, int64_t seq_length,
                                 int64_t batch_size, const float *X,
                                 const int32_t *sequence_lens, const float *initial_h,
                                 int32_t check_finite, float *Y, float *Y_h);

/* ---- plans: frame-wise steps that streams run --------------------------- */
typedef enum {
    GRUINFER_STEP_GRU = 0,    /* forward GRU layer (D = 1): in [I] -> out [H], stateful */
    GRUINFER_STEP_DENSE = 1,  /* out = in . W^T + b: W [out_width, in_width], b [out_width] or NULL */
    GRUINFER_STEP_ACT = 2     /* out = act(in), element-wise */
} gruinfer_step_kind;

typedef struct {
    int32_t kind;              /* gruinfer_step_kind */
    int32_t input;             /* 0: the plan input; k >= 1: the output of step k-1 */
    const gruinfer_gru *gru;   /* STEP_GRU (borrowed) */
    int64_t out_width;         /* STEP_DENSE */
    const float *weight;       /* STEP_DENSE (copied) */
    const float *bias;         /* STEP_DENSE (copied), may be NULL */
    gruinfer_activation act;   /* STEP_ACT */
} gruinfer_step;

typedef struct gruinfer_plan gruinfer_plan;

gruinfer_status gruinfer_plan_create(int64_t input_width, const gruinfer_step *steps,
                                     int32_t n_steps, const char *kernel,
                                     gruinfer_plan **out);
void gruinfer_plan_free(gruinfer_plan *p);
int32_t gruinfer_plan_steps(const gruinfer_plan *p);
int64_t gruinfer_plan_width(const gruinfer_plan *p, int32_t k); /* k = 0: input; k >= 1: step k-1 output */

/* ---- streams: N slots advanced together ----------------------------------- */
typedef struct gruinfer_stream gruinfer_stream;

/* Every recurrent state starts at zero. */
gruinfer_status gruinfer_stream_create(const gruinfer_plan *p, int64_t batch_size,
                                       gruinfer_stream **out);
void gruinfer_stream_free(gruinfer_stream *s);

/* Advance every slot by T frames.
 *   x[t, n, :] is at x + t*x_st + n*x_sn (strides in floats).
 *   outs[k] (k in [0, n_steps)) receives step k's output for every frame at
 *   outs[k] + t*o_st[k] + n*o_sn[k], or is skipped when outs is NULL or
 *   outs[k] is NULL.
 * Before any state changes, x is checked for NaN/Inf when check_finite is
 * set: a refused call leaves every slot as it was.  No allocation. */
gruinfer_status gruinfer_stream_run(gruinfer_stream *s, int64_t T, const float *x,
                                    int64_t x_st, int64_t x_sn, int32_t check_finite,
                                    float *const *outs, const int64_t *o_st,
                                    const int64_t *o_sn);

/* Recurrent state of GRU step k as [batch_size, H]: read or written whole.
 * Writing refuses NaN/Inf (GRUINFER_E_NONFINITE) before changing anything. */
gruinfer_status gruinfer_stream_get_state(const gruinfer_stream *s, int32_t k, float *h);
gruinfer_status gruinfer_stream_set_state(gruinfer_stream *s, int32_t k, const float *h);
/* Set the state of GRU step k for one slot (h: [H]). */
gruinfer_status gruinfer_stream_set_slot_state(gruinfer_stream *s, int32_t k, int64_t slot,
                                               const float *h);

/* Zero every GRU state of the given slots (all slots when slots is NULL).
 * Every index is checked before any slot is reset. */
gruinfer_status gruinfer_stream_reset(gruinfer_stream *s, const int64_t *slots, int64_t n);

/* ---- kernels -------------------------------------------------------------- */
/* Names of the kernels built in, best last, NULL-terminated ("ref" always first). */
const char *const *gruinfer_kernel_names(void);
/* 1 if the named kernel is built in and this CPU (and OS) can run it. */
int gruinfer_kernel_supported(const char *name);
/* The kernel gruinfer_gru_create would choose for kernel == NULL, or NULL
 * when GRUINFER_KERNEL names an unknown or unsupported kernel. */
const char *gruinfer_kernel_default(void);

#ifdef __cplusplus
}
#endif
#endif
