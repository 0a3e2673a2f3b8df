# _core.pxd: the C contract of src_c/gru.h, declared once for Cython (nogil, status codes, no exceptions).
from libc.stdint cimport int32_t, int64_t

cdef extern from "gru.h" nogil:
    ctypedef enum gruinfer_status:
        GRUINFER_OK
        GRUINFER_E_NULL
        GRUINFER_E_SIZE
        GRUINFER_E_ATTR
        GRUINFER_E_ACTIVATION
        GRUINFER_E_NOMEM
        GRUINFER_E_SEQLEN
        GRUINFER_E_NONFINITE
        GRUINFER_E_KERNEL
        GRUINFER_E_PLAN
        GRUINFER_E_SLOT
        GRUINFER_E_INDEX
        GRUINFER_E_FORMAT
        GRUINFER_E_VERSION
        GRUINFER_E_IO

    const char *gruinfer_status_text(gruinfer_status s)

    ctypedef struct gruinfer_activation:
        int32_t kind
        float alpha
        float beta

    ctypedef struct gruinfer_gru_config:
        int64_t input_size
        int64_t hidden_size
        int32_t direction
        int32_t linear_before_reset
        int32_t has_clip
        float clip
        gruinfer_activation f[2]
        gruinfer_activation g[2]
        int32_t threads

    ctypedef struct gruinfer_gru:
        pass

    gruinfer_status gruinfer_gru_create(const gruinfer_gru_config *cfg, const float *W,
                                        const float *R, const float *B, const char *kernel,
                                        gruinfer_gru **out)
    void gruinfer_gru_free(gruinfer_gru *m)
    const char *gruinfer_gru_kernel(const gruinfer_gru *m)
    gruinfer_status gruinfer_gru_run(const gruinfer_gru *m, int32_t layout, int64_t seq_length,
                                     int64_t batch_size, const float *X,
                                     const int32_t *sequence_lens, const float *initial_h,
                                     int32_t check_finite, float *Y, float *Y_h)

    # Step kinds are not listed here: _core reads their names from gruinfer_step_kind_name.
    const char *gruinfer_step_kind_name(int32_t kind)
    gruinfer_status gruinfer_ids_to_float(const void *ids, int32_t elem_bytes, int64_t n,
                                          float *out)

    ctypedef enum gruinfer_binary_op:
        GRUINFER_BINARY_ADD
        GRUINFER_BINARY_SUB
        GRUINFER_BINARY_MUL
        GRUINFER_BINARY_DIV
        GRUINFER_BINARY_RSUB
        GRUINFER_BINARY_RDIV

    enum:
        GRUINFER_STEP_INTS
        GRUINFER_STEP_FLOATS
        GRUINFER_STEP_TABLES

    # (the array sizes are gru.h's GRUINFER_STEP_*; C compiles the real struct)
    ctypedef struct gruinfer_step:
        int32_t kind
        int32_t input
        int32_t input2
        const gruinfer_gru *gru
        int64_t ints[8]
        float floats[4]
        const float *tables[2]
        int64_t table_len[2]

    ctypedef struct gruinfer_plan:
        pass

    gruinfer_status gruinfer_plan_create(int64_t input_width, const gruinfer_step *steps,
                                         int32_t n_steps, const char *kernel,
                                         gruinfer_plan **out, int32_t *bad_step)
    void gruinfer_plan_free(gruinfer_plan *p)
    int32_t gruinfer_plan_steps(const gruinfer_plan *p)
    int64_t gruinfer_plan_width(const gruinfer_plan *p, int32_t k)

    ctypedef struct gruinfer_stream:
        pass

    gruinfer_status gruinfer_stream_create(const gruinfer_plan *p, int64_t batch_size,
                                           gruinfer_stream **out)
    void gruinfer_stream_free(gruinfer_stream *s)
    gruinfer_status gruinfer_stream_run(gruinfer_stream *s, int64_t T, const float *x,
                                        int64_t x_st, int64_t x_sn, int32_t check_finite,
                                        float *const *outs, const int64_t *o_st,
                                        const int64_t *o_sn)
    gruinfer_status gruinfer_stream_get_state(const gruinfer_stream *s, int32_t k, float *h)
    gruinfer_status gruinfer_stream_set_state(gruinfer_stream *s, int32_t k, const float *h)
    gruinfer_status gruinfer_stream_set_slot_state(gruinfer_stream *s, int32_t k, int64_t slot,
                                                   const float *h)
    gruinfer_status gruinfer_stream_reset(gruinfer_stream *s, const int64_t *slots, int64_t n)

    ctypedef struct gruinfer_model:
        pass

    gruinfer_status gruinfer_model_open_memory(const void *buf, int64_t len, const char *kernel,
                                               gruinfer_model **out)
    void gruinfer_model_free(gruinfer_model *m)
    const gruinfer_plan *gruinfer_model_plan(const gruinfer_model *m)
    int32_t gruinfer_model_count(const gruinfer_model *m, int32_t role)
    const char *gruinfer_model_name(const gruinfer_model *m, int32_t role, int32_t i)
    int32_t gruinfer_model_buffer(const gruinfer_model *m, int32_t role, int32_t i)
    const char *gruinfer_model_writer(const gruinfer_model *m)
    const unsigned char *gruinfer_model_source_hash(const gruinfer_model *m)
    const char *gruinfer_model_meta(const gruinfer_model *m, int64_t *len)
    int32_t gruinfer_model_arrays(const gruinfer_model *m)
    const float *gruinfer_model_array(const gruinfer_model *m, int32_t i, int64_t *len)
    unsigned long long gruinfer_model_checksum(const void *buf, int64_t n)

    const char *const *gruinfer_kernel_names()
    int gruinfer_kernel_supported(const char *name)
    const char *gruinfer_kernel_default()
