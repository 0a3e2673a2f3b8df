/* gru.h: the one public C API of gruinfer: GRU layers, frame-wise plans and streams.
 *
 * Usable from C without Python.  Every function returns a gruinfer_status;
 * none aborts, prints or exits.
 *
 * Lifetimes
 *   gruinfer_gru     immutable once created: weights packed for the kernel.
 *                    Any number of threads may run it at once.
 *   gruinfer_plan    immutable: an ordered list of frame-wise steps (GRU
 *                    layers, dense layers, activations, softmax, layer norm,
 *                    element-wise binary ops, clip, embedding lookup).  Every
 *                    table and constant is copied; it borrows only the
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
    GRUINFER_E_SLOT = 10,       /* a slot index outside [0, batch_size) */
    GRUINFER_E_INDEX = 11,      /* a token id that is not an integer row of the embedding table */
    GRUINFER_E_FORMAT = 12,     /* a model file is malformed: magic, sizes, offsets, counts, checksum */
    GRUINFER_E_VERSION = 13,    /* a model file's format version (or a table precision) is not supported */
    GRUINFER_E_IO = 14          /* a model file could not be opened or read */
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
    int32_t threads;              /* threads gruinfer_gru_run may use (0 or 1: the caller's
                                     only); used when hidden_size >= 512, where a step's
                                     GEMMs and gate math are split across them */
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
 * anything is written.  Allocates its scratch per call: input projections for a block of
 * at most 64 steps at a time, not for the whole sequence. */
gruinfer_status gruinfer_gru_run(const gruinfer_gru *m, int32_t layout, int64_t seq_length,
                                 int64_t batch_size, const float *X,
                                 const int32_t *sequence_lens, const float *initial_h,
                                 int32_t check_finite, float *Y, float *Y_h);

/* ---- plans: frame-wise steps that streams run --------------------------- */
/* Every step reads one frame row of `input` (width w = the width of that
 * buffer) and writes one row of its own output buffer.  Everything is checked
 * once by gruinfer_plan_create; running a step never allocates and never fails.
 *
 * A step is one generic struct (gruinfer_step below): a kind, its buffers and
 * the kind's integers, numbers and constant tables in fixed arrays, so a new
 * kind needs no new field.  What each kind reads (fields a kind does not read
 * are ignored):
 *   GRU         gru: a forward layer (D = 1) whose input size I is w.  Out [H].
 *   DENSE       ints[0] = O, the out width; tables[0] = W [O, w] row-major
 *               (len O*w); tables[1] = bias [O] or NULL.  out = in . W^T + b.
 *   ACT         ints[0] = gruinfer_act_kind; floats[0] = alpha, floats[1] = beta.
 *               out = act(in), element-wise.
 *   SOFTMAX     nothing.  out = exp(in - max) / sum(exp(in - max)) over the row.
 *   LOGSOFTMAX  nothing.  out = in - max - log(sum(exp(in - max))) over the row.
 *   LAYERNORM   floats[0] = eps (finite, >= 0); tables[0] = scale [w];
 *               tables[1] = bias [w] or NULL.
 *               out = (in - mean) / sqrt(var + eps) * scale + bias over the row.
 *   BINARY      ints[0] = gruinfer_binary_op.  input2 >= 0: b is that buffer (of
 *               width w, as `input`: an earlier one); input2 < 0: b is the
 *               constant tables[0] [w].  out = a op b element-wise, a = `input`.
 *   CLIP        floats[0] = lo, floats[1] = hi (-/+Inf allowed, never NaN).
 *               out = min(max(in, lo), hi); NaN kept; lo > hi gives hi (as
 *               ONNX Clip and numpy.clip).
 *   EMBED       ints[0] = V, the table's rows (<= GRUINFER_MAX_IDS); ints[1] = D,
 *               its row width; tables[0] = the table [V, D] (len V*D).  `input`
 *               must be 0 (the plan input), whose w values are token ids stored
 *               as float32 integers (see gruinfer_ids_to_float).  out [w * D]:
 *               the rows id of the table.  Ids may be negative as in ONNX Gather:
 *               id in [-V, V), -1 the last row.  gruinfer_stream_run refuses any
 *               other value (non-integer, NaN, out of range) with GRUINFER_E_INDEX
 *               before any state changes.
 *   CONCAT      input2 >= 0: b, an earlier buffer of any width w2.  out [w + w2]:
 *               the row of `input` then the row of b (a Concat over features).
 * Tables are checked against what the kind needs, from the widths the plan
 * computes: a table_len that differs is GRUINFER_E_SIZE; a required table
 * missing, or a non-zero table_len with a NULL table, is GRUINFER_E_NULL; a
 * table given to a kind (or a slot) that reads none is GRUINFER_E_PLAN; a table
 * holding NaN or Inf is GRUINFER_E_NONFINITE.  Every table is copied. */
typedef enum {
    GRUINFER_STEP_GRU = 0,        /* a forward GRU layer: stateful */
    GRUINFER_STEP_DENSE = 1,      /* out = in . W^T + b */
    GRUINFER_STEP_ACT = 2,        /* out = act(in) */
    GRUINFER_STEP_SOFTMAX = 3,
    GRUINFER_STEP_LOGSOFTMAX = 4,
    GRUINFER_STEP_LAYERNORM = 5,
    GRUINFER_STEP_BINARY = 6,     /* out = a op b */
    GRUINFER_STEP_CLIP = 7,
    GRUINFER_STEP_EMBED = 8,      /* embedding lookup of token ids */
    GRUINFER_STEP_CONCAT = 9,     /* out = [a | b] along the row */
    GRUINFER_STEP_COUNT = 10
} gruinfer_step_kind;

/* The kind's name ("gru", "dense", "act", "softmax", "logsoftmax", "layernorm",
 * "binary", "clip", "embed", "concat"; static storage), NULL for an unknown kind. */
const char *gruinfer_step_kind_name(int32_t kind);

typedef enum {
    GRUINFER_BINARY_ADD = 0,  /* a + b */
    GRUINFER_BINARY_SUB = 1,  /* a - b */
    GRUINFER_BINARY_MUL = 2,  /* a * b */
    GRUINFER_BINARY_DIV = 3,  /* a / b */
    GRUINFER_BINARY_RSUB = 4, /* b - a (e.g. constant - x) */
    GRUINFER_BINARY_RDIV = 5, /* b / a (e.g. constant / x) */
    GRUINFER_BINARY_COUNT = 6
} gruinfer_binary_op;

/* Token ids travel as float32: every integer up to 2^24 is exact. */
#define GRUINFER_MAX_IDS ((int64_t)1 << 24)

/* out[i] = ids[i] as float32 for n ids of elem_bytes bytes each (4: int32,
 * 8: int64; else GRUINFER_E_ATTR), clamped to [-2^25, 2^25]: an id out of
 * range stays out of every table's range.  NULL ids or out: GRUINFER_E_NULL;
 * n < 0: GRUINFER_E_SIZE. */
gruinfer_status gruinfer_ids_to_float(const void *ids, int32_t elem_bytes, int64_t n,
                                      float *out);

#define GRUINFER_STEP_INTS 8
#define GRUINFER_STEP_FLOATS 4
#define GRUINFER_STEP_TABLES 2

typedef struct {
    int32_t kind;                               /* gruinfer_step_kind */
    int32_t input;                              /* 0: the plan input; k >= 1: the output of step k-1 */
    int32_t input2;                             /* a second operand buffer (as input), or -1: none */
    const gruinfer_gru *gru;                    /* STEP_GRU: the layer (borrowed) */
    int64_t ints[GRUINFER_STEP_INTS];           /* the kind's integers (table above) */
    float floats[GRUINFER_STEP_FLOATS];         /* the kind's numbers */
    const float *tables[GRUINFER_STEP_TABLES];  /* the kind's constant arrays: copied at creation */
    int64_t table_len[GRUINFER_STEP_TABLES];    /* floats in tables[i]; 0 when tables[i] is NULL */
} gruinfer_step;

/* Constructors: a step of each kind with every other field zero (input2 -1).
 * Table lengths come from the sizes the caller states (0 for a NULL table). */
static inline gruinfer_step gruinfer_step_of(int32_t kind, int32_t input)
{
    const gruinfer_step s = {kind, input, -1, 0, {0}, {0}, {0}, {0}};
    return s;
}
static inline gruinfer_step gruinfer_step_gru(int32_t input, const gruinfer_gru *m)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_GRU, input);
    s.gru = m;
    return s;
}
static inline gruinfer_step gruinfer_step_dense(int32_t input, int64_t in_width, int64_t out_width,
                                                const float *W, const float *b)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_DENSE, input);
    s.ints[0] = out_width;
    s.tables[0] = W, s.table_len[0] = W ? out_width * in_width : 0;
    s.tables[1] = b, s.table_len[1] = b ? out_width : 0;
    return s;
}
static inline gruinfer_step gruinfer_step_act(int32_t input, gruinfer_activation a)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_ACT, input);
    s.ints[0] = a.kind, s.floats[0] = a.alpha, s.floats[1] = a.beta;
    return s;
}
static inline gruinfer_step gruinfer_step_softmax(int32_t input)
{
    return gruinfer_step_of(GRUINFER_STEP_SOFTMAX, input);
}
static inline gruinfer_step gruinfer_step_logsoftmax(int32_t input)
{
    return gruinfer_step_of(GRUINFER_STEP_LOGSOFTMAX, input);
}
static inline gruinfer_step gruinfer_step_layernorm(int32_t input, int64_t width,
                                                    const float *scale, const float *bias,
                                                    float eps)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_LAYERNORM, input);
    s.floats[0] = eps;
    s.tables[0] = scale, s.table_len[0] = scale ? width : 0;
    s.tables[1] = bias, s.table_len[1] = bias ? width : 0;
    return s;
}
static inline gruinfer_step gruinfer_step_binary(int32_t input, int32_t op, int32_t input2)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_BINARY, input);
    s.ints[0] = op, s.input2 = input2;
    return s;
}
static inline gruinfer_step gruinfer_step_binary_const(int32_t input, int32_t op, int64_t width,
                                                       const float *c)
{
    gruinfer_step s = gruinfer_step_binary(input, op, -1);
    s.tables[0] = c, s.table_len[0] = c ? width : 0;
    return s;
}
static inline gruinfer_step gruinfer_step_clip(int32_t input, float lo, float hi)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_CLIP, input);
    s.floats[0] = lo, s.floats[1] = hi;
    return s;
}
static inline gruinfer_step gruinfer_step_embed(int64_t rows, int64_t d, const float *table)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_EMBED, 0);
    s.ints[0] = rows, s.ints[1] = d;
    s.tables[0] = table, s.table_len[0] = table ? rows * d : 0;
    return s;
}

static inline gruinfer_step gruinfer_step_concat(int32_t input, int32_t input2)
{
    gruinfer_step s = gruinfer_step_of(GRUINFER_STEP_CONCAT, input);
    s.input2 = input2;
    return s;
}

typedef struct gruinfer_plan gruinfer_plan;

/* A plan of n_steps steps (1 to 4096) over input frames of input_width floats.
 * On failure *out is NULL and, when bad_step is not NULL, *bad_step is the index
 * of the step refused, or -1 when the failure is not one step's (input_width,
 * n_steps, kernel, a NULL steps or out, memory for the plan itself). */
gruinfer_status gruinfer_plan_create(int64_t input_width, const gruinfer_step *steps,
                                     int32_t n_steps, const char *kernel, gruinfer_plan **out,
                                     int32_t *bad_step);
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
 * set, and always, when the plan has an EMBED step, for ids that are not
 * integer rows of its table (GRUINFER_E_INDEX): a refused call leaves every
 * slot as it was.  No allocation. */
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

/* ---- compiled model files (.gruinfer; src_c/MODEL_FORMAT.md) -------------
 * gruinfer_model  immutable once opened: the GRU layers (packed for the kernel
 *                 chosen at open), the plan over them, the names of the plan
 *                 input, outputs and GRU states, and an opaque metadata blob
 *                 (JSON the Python package reads).  Owns everything it points
 *                 to; the buffer it was opened from may be freed at once.
 *                 Streams are made from gruinfer_model_plan() and must not
 *                 outlive the model.
 * Every byte is validated as hostile input: a malformed file gives a status
 * (GRUINFER_E_FORMAT, GRUINFER_E_VERSION, or what the layer and plan checks
 * say), never a read outside [buf, buf + len). */
typedef struct gruinfer_model gruinfer_model;

#define GRUINFER_MODEL_MAGIC "GRUINFER"
#define GRUINFER_MODEL_VERSION 1
#define GRUINFER_MODEL_ALIGN 64

/* Roles of the names a model file holds. */
typedef enum {
    GRUINFER_NAME_INPUT = 0,   /* the plan input (buffer 0) */
    GRUINFER_NAME_OUTPUT = 1,  /* a graph output computed frame by frame: the buffer holding it */
    GRUINFER_NAME_STATE = 2,   /* a GRU node: the plan step holding its state */
    GRUINFER_NAME_ROLES = 3
} gruinfer_name_role;

/* Open a model from len bytes at buf (buf 4-byte aligned, else GRUINFER_E_FORMAT).
 * kernel as for gruinfer_gru_create.  On failure *out is NULL. */
gruinfer_status gruinfer_model_open_memory(const void *buf, int64_t len, const char *kernel,
                                           gruinfer_model **out);
/* Read a whole file (GRUINFER_E_IO when it cannot be read) and open it as above. */
gruinfer_status gruinfer_model_open_file(const char *path, const char *kernel,
                                         gruinfer_model **out);
void gruinfer_model_free(gruinfer_model *m);
const gruinfer_plan *gruinfer_model_plan(const gruinfer_model *m);
/* Names of a role: count, the i-th name (NUL-terminated, NULL out of range) and its buffer
 * (input: 0; output k: plan buffer k, width gruinfer_plan_width(plan, k); state: the GRU's
 * plan step, for gruinfer_stream_get_state).  -1 out of range. */
int32_t gruinfer_model_count(const gruinfer_model *m, int32_t role);
const char *gruinfer_model_name(const gruinfer_model *m, int32_t role, int32_t i);
int32_t gruinfer_model_buffer(const gruinfer_model *m, int32_t role, int32_t i);
/* The gruinfer version that wrote the file (NUL-terminated) and the sha256 of the source
 * model's bytes (32 bytes). */
const char *gruinfer_model_writer(const gruinfer_model *m);
const uint8_t *gruinfer_model_source_hash(const gruinfer_model *m);
/* The metadata blob (*len bytes, not NUL-terminated) and extra array i (constant outputs,
 * initial states: *len floats), NULL when i is out of range. */
const char *gruinfer_model_meta(const gruinfer_model *m, int64_t *len);
int32_t gruinfer_model_arrays(const gruinfer_model *m);
const float *gruinfer_model_array(const gruinfer_model *m, int32_t i, int64_t *len);
/* The checksum a model file holds over everything after its header (MODEL_FORMAT.md): FNV-1a
 * 64 steps over little-endian 64-bit words in 4 interleaved lanes, the tail bytes into lane 0,
 * the lanes then folded by byte-wise FNV-1a 64 (a multiply per word, not per byte: ~0.2 ms a
 * MiB instead of ~2). */
uint64_t gruinfer_model_checksum(const void *buf, int64_t n);

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
