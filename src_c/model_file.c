/* model_file.c: the .gruinfer reader: every byte of a compiled model file checked as hostile input, then GRU layers packed and the plan built (src_c/MODEL_FORMAT.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gru.h"

#define HEADER_BYTES 64
#define SECTION_BYTES 32
#define MAX_SECTIONS 16
#define GRU_RECORD 160
#define STEP_RECORD 144
#define REF_BYTES 24
#define MAX_LAYERS 4096
#define MAX_NAME 4096
#define MAX_WRITER 64
#define MAX_FILE ((int64_t)1 << 36)

enum { SEC_INFO, SEC_GRUS, SEC_PLAN, SEC_NAME, SEC_ARRS, SEC_META, SEC_DATA, SEC_COUNT };
static const char sec_tags[SEC_COUNT][5] = {"INFO", "GRUS", "PLAN", "NAME", "ARRS", "META", "DATA"};

typedef struct {
    char *text;
    int32_t buffer;
} model_name;

struct gruinfer_model {
    gruinfer_gru **grus;
    int32_t n_grus;
    gruinfer_plan *plan;
    model_name *names[GRUINFER_NAME_ROLES];
    int32_t n_names[GRUINFER_NAME_ROLES];
    float **arrays;
    int64_t *array_len;
    int32_t n_arrays;
    char *meta;
    int64_t meta_len;
    char writer[MAX_WRITER + 1];
    uint8_t source_hash[32];
};

/* A bounded view of the file: every read goes through it and fails past its end. */
typedef struct {
    const uint8_t *p;
    int64_t len;
} span;

static int rd_u32(span s, int64_t at, uint32_t *v)
{
    if (at < 0 || at > s.len - 4)
        return 0;
    const uint8_t *b = s.p + at;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

static int rd_u64(span s, int64_t at, uint64_t *v)
{
    uint32_t lo, hi;
    if (!rd_u32(s, at, &lo) || !rd_u32(s, at + 4, &hi))
        return 0;
    *v = (uint64_t)hi << 32 | lo;
    return 1;
}

static int rd_i32(span s, int64_t at, int32_t *v)
{
    uint32_t u;
    if (!rd_u32(s, at, &u))
        return 0;
    memcpy(v, &u, 4);
    return 1;
}

static int rd_i64(span s, int64_t at, int64_t *v)
{
    uint64_t u;
    if (!rd_u64(s, at, &u))
        return 0;
    memcpy(v, &u, 8);
    return 1;
}

static int rd_f32(span s, int64_t at, float *v)
{
    uint32_t u;
    if (!rd_u32(s, at, &u))
        return 0;
    memcpy(v, &u, 4);
    return 1;
}

#define FNV_BASIS 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

uint64_t gruinfer_model_checksum(const void *buf, int64_t n)
{
    const uint8_t *p = buf;
    uint64_t lane[4] = {FNV_BASIS, FNV_BASIS, FNV_BASIS, FNV_BASIS}, w;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            memcpy(&w, p + i + 8 * k, 8);  /* little-endian hosts only (rd_header) */
            lane[k] = (lane[k] ^ w) * FNV_PRIME;
        }
    for (; i < n; i++)
        lane[0] = (lane[0] ^ p[i]) * FNV_PRIME;
    uint64_t h = FNV_BASIS;
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 8; b++)
            h = (h ^ (uint8_t)(lane[k] >> (8 * b))) * FNV_PRIME;
    return h;
}

/* A table reference (offset into DATA, count of values, precision): its floats, or NULL with
 * *n = 0 for an absent table.  Precisions other than fp32 (0) are reserved (issue 13). */
static gruinfer_status rd_table(span s, int64_t at, span data, const float **t, int64_t *n)
{
    uint64_t off, count;
    uint32_t prec, zero;
    if (!rd_u64(s, at, &off) || !rd_u64(s, at + 8, &count) || !rd_u32(s, at + 16, &prec) ||
        !rd_u32(s, at + 20, &zero) || zero != 0)
        return GRUINFER_E_FORMAT;
    if (prec == 1 || prec == 2)
        return GRUINFER_E_VERSION;
    if (prec != 0 || count > (uint64_t)GRUINFER_MAX_WEIGHTS)
        return GRUINFER_E_FORMAT;
    *t = NULL, *n = 0;
    if (count == 0)
        return off == 0 ? GRUINFER_OK : GRUINFER_E_FORMAT;
    if (off % GRUINFER_MODEL_ALIGN || off > (uint64_t)data.len || count * 4 > (uint64_t)data.len - off)
        return GRUINFER_E_FORMAT;
    *t = (const float *)(const void *)(data.p + off);
    *n = (int64_t)count;
    return GRUINFER_OK;
}

/* The section table: each of the SEC_COUNT sections present once, 64-byte aligned, inside the file. */
static gruinfer_status rd_sections(span f, span *sec)
{
    uint32_t n, zero;
    if (!rd_u32(f, 32, &n) || n < SEC_COUNT || n > MAX_SECTIONS)
        return GRUINFER_E_FORMAT;
    for (int64_t at = 36; at < HEADER_BYTES; at += 4)
        if (!rd_u32(f, at, &zero) || zero != 0)
            return GRUINFER_E_FORMAT;
    const int64_t table_end = HEADER_BYTES + (int64_t)n * SECTION_BYTES;
    int seen[SEC_COUNT] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const int64_t at = HEADER_BYTES + (int64_t)i * SECTION_BYTES;
        uint64_t off, size, z2;
        if (at + SECTION_BYTES > f.len || !rd_u32(f, at + 4, &zero) || !rd_u64(f, at + 8, &off) ||
            !rd_u64(f, at + 16, &size) || !rd_u64(f, at + 24, &z2) || zero != 0 || z2 != 0)
            return GRUINFER_E_FORMAT;
        int k = -1;
        for (int j = 0; j < SEC_COUNT; j++)
            if (memcmp(f.p + at, sec_tags[j], 4) == 0)
                k = j;
        if (k < 0 || seen[k] || off % GRUINFER_MODEL_ALIGN || off < (uint64_t)table_end ||
            off > (uint64_t)f.len || size > (uint64_t)f.len - off)
            return GRUINFER_E_FORMAT;
        seen[k] = 1;
        sec[k].p = f.p + off, sec[k].len = (int64_t)size;
    }
    return GRUINFER_OK;
}

static gruinfer_status rd_activation(span s, int64_t at, gruinfer_activation *a)
{
    return rd_i32(s, at, &a->kind) && rd_f32(s, at + 4, &a->alpha) && rd_f32(s, at + 8, &a->beta)
               ? GRUINFER_OK : GRUINFER_E_FORMAT;
}

/* One GRU record: its config and weights, checked to agree before the layer is packed. */
static gruinfer_status rd_gru(span s, int64_t at, span data, const char *kernel,
                              gruinfer_gru **out)
{
    gruinfer_gru_config c;
    memset(&c, 0, sizeof c);
    c.threads = 1;
    if (!rd_i64(s, at, &c.input_size) || !rd_i64(s, at + 8, &c.hidden_size) ||
        !rd_i32(s, at + 16, &c.direction) || !rd_i32(s, at + 20, &c.linear_before_reset) ||
        !rd_i32(s, at + 24, &c.has_clip) || !rd_f32(s, at + 28, &c.clip))
        return GRUINFER_E_FORMAT;
    for (int d = 0; d < 2; d++)
        if (rd_activation(s, at + 32 + 12 * d, &c.f[d]) || rd_activation(s, at + 56 + 12 * d, &c.g[d]))
            return GRUINFER_E_FORMAT;
    if (c.input_size < 1 || c.hidden_size < 1 || c.input_size > GRUINFER_MAX_DIM ||
        c.hidden_size > GRUINFER_MAX_DIM)
        return GRUINFER_E_SIZE;
    if (c.direction < 0 || c.direction > GRUINFER_BIDIRECTIONAL)
        return GRUINFER_E_ATTR;
    const int64_t D = c.direction == GRUINFER_BIDIRECTIONAL ? 2 : 1, H = c.hidden_size;
    const float *w[3];
    int64_t n[3];
    for (int t = 0; t < 3; t++) {
        gruinfer_status st = rd_table(s, at + 80 + REF_BYTES * t, data, &w[t], &n[t]);
        if (st)
            return st;
    }
    if (n[0] != D * 3 * H * c.input_size || n[1] != D * 3 * H * H || (n[2] && n[2] != D * 6 * H))
        return GRUINFER_E_SIZE;
    return gruinfer_gru_create(&c, w[0], w[1], w[2], kernel, out);
}

static gruinfer_status rd_grus(gruinfer_model *m, span s, span data, const char *kernel)
{
    uint32_t n;
    if (!rd_u32(s, 0, &n) || n > MAX_LAYERS || 8 + (int64_t)n * GRU_RECORD > s.len)
        return GRUINFER_E_FORMAT;
    m->grus = calloc(n ? n : 1, sizeof *m->grus);
    if (!m->grus)
        return GRUINFER_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        gruinfer_status st = rd_gru(s, 8 + (int64_t)i * GRU_RECORD, data, kernel, &m->grus[i]);
        if (st)
            return st;
        m->n_grus = (int32_t)i + 1;
    }
    return GRUINFER_OK;
}

static gruinfer_status rd_plan(gruinfer_model *m, span s, span data, const char *kernel)
{
    int64_t width;
    uint32_t n, zero;
    if (!rd_i64(s, 0, &width) || !rd_u32(s, 8, &n) || !rd_u32(s, 12, &zero) || zero != 0 ||
        n < 1 || n > MAX_LAYERS || 16 + (int64_t)n * STEP_RECORD > s.len)
        return GRUINFER_E_FORMAT;
    gruinfer_step *steps = calloc(n, sizeof *steps);
    if (!steps)
        return GRUINFER_E_NOMEM;
    gruinfer_status st = GRUINFER_OK;
    for (uint32_t i = 0; i < n && !st; i++) {
        const int64_t at = 16 + (int64_t)i * STEP_RECORD;
        gruinfer_step *c = &steps[i];
        int32_t gru;
        if (!rd_i32(s, at, &c->kind) || !rd_i32(s, at + 4, &c->input) ||
            !rd_i32(s, at + 8, &c->input2) || !rd_i32(s, at + 12, &gru) ||
            gru < -1 || gru >= m->n_grus || (gru >= 0) != (c->kind == GRUINFER_STEP_GRU)) {
            st = GRUINFER_E_FORMAT;
            break;
        }
        c->gru = gru >= 0 ? m->grus[gru] : NULL;
        for (int j = 0; j < GRUINFER_STEP_INTS && !st; j++)
            st = rd_i64(s, at + 16 + 8 * j, &c->ints[j]) ? GRUINFER_OK : GRUINFER_E_FORMAT;
        for (int j = 0; j < GRUINFER_STEP_FLOATS && !st; j++)
            st = rd_f32(s, at + 80 + 4 * j, &c->floats[j]) ? GRUINFER_OK : GRUINFER_E_FORMAT;
        for (int j = 0; j < GRUINFER_STEP_TABLES && !st; j++)
            st = rd_table(s, at + 96 + REF_BYTES * j, data, &c->tables[j], &c->table_len[j]);
    }
    if (!st)
        st = gruinfer_plan_create(width, steps, (int32_t)n, kernel, &m->plan, NULL);
    free(steps);
    return st;
}

/* NAME: (role, buffer, length, bytes padded to 4) records; buffers checked against the plan. */
static gruinfer_status rd_names(gruinfer_model *m, span s)
{
    uint32_t n;
    if (!rd_u32(s, 0, &n) || n > 3 * MAX_LAYERS)
        return GRUINFER_E_FORMAT;
    for (int r = 0; r < GRUINFER_NAME_ROLES; r++)
        if (!(m->names[r] = calloc(n ? n : 1, sizeof(model_name))))
            return GRUINFER_E_NOMEM;
    const int32_t steps = gruinfer_plan_steps(m->plan);
    int64_t at = 8;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t role, len;
        int32_t buffer;
        if (!rd_u32(s, at, &role) || !rd_i32(s, at + 4, &buffer) || !rd_u32(s, at + 8, &len) ||
            role >= GRUINFER_NAME_ROLES || len < 1 || len > MAX_NAME || at + 12 + len > s.len ||
            memchr(s.p + at + 12, 0, len))
            return GRUINFER_E_FORMAT;
        if (role == GRUINFER_NAME_INPUT ? buffer != 0
            : role == GRUINFER_NAME_OUTPUT ? buffer < 0 || buffer > steps
            : buffer < 0 || buffer >= steps)
            return GRUINFER_E_FORMAT;
        model_name *e = &m->names[role][m->n_names[role]];
        if (!(e->text = malloc(len + 1)))
            return GRUINFER_E_NOMEM;
        memcpy(e->text, s.p + at + 12, len);
        e->text[len] = 0;
        e->buffer = buffer;
        m->n_names[role]++;
        at += 12 + ((len + 3) & ~(uint32_t)3);
    }
    return m->n_names[GRUINFER_NAME_INPUT] == 1 ? GRUINFER_OK : GRUINFER_E_FORMAT;
}

static gruinfer_status rd_arrays(gruinfer_model *m, span s, span data)
{
    uint32_t n;
    if (!rd_u32(s, 0, &n) || n > 3 * MAX_LAYERS || 8 + (int64_t)n * REF_BYTES > s.len)
        return GRUINFER_E_FORMAT;
    m->arrays = calloc(n ? n : 1, sizeof *m->arrays);
    m->array_len = calloc(n ? n : 1, sizeof *m->array_len);
    if (!m->arrays || !m->array_len)
        return GRUINFER_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const float *t;
        int64_t len;
        gruinfer_status st = rd_table(s, 8 + (int64_t)i * REF_BYTES, data, &t, &len);
        if (st)
            return st;
        if (!(m->arrays[i] = malloc(len ? len * sizeof(float) : 1)))
            return GRUINFER_E_NOMEM;
        if (len)
            memcpy(m->arrays[i], t, len * sizeof(float));
        m->array_len[i] = len;
        m->n_arrays = (int32_t)i + 1;
    }
    return GRUINFER_OK;
}

static gruinfer_status rd_info(gruinfer_model *m, span info, span meta)
{
    uint32_t len;
    if (info.len < 36 || !rd_u32(info, 32, &len) || len > MAX_WRITER || 36 + (int64_t)len > info.len)
        return GRUINFER_E_FORMAT;
    memcpy(m->source_hash, info.p, 32);
    memcpy(m->writer, info.p + 36, len);
    m->writer[len] = 0;
    if (!(m->meta = malloc(meta.len ? meta.len : 1)))
        return GRUINFER_E_NOMEM;
    memcpy(m->meta, meta.p, meta.len);
    m->meta_len = meta.len;
    return GRUINFER_OK;
}

/* The header: magic, version (checked before anything else is trusted), sizes, checksum. */
static gruinfer_status rd_header(span f)
{
    const uint32_t one = 1;
    if (f.len < HEADER_BYTES || memcmp(f.p, GRUINFER_MODEL_MAGIC, 8) != 0)
        return GRUINFER_E_FORMAT;
    uint32_t version, header;
    uint64_t size, sum;
    rd_u32(f, 8, &version), rd_u32(f, 12, &header), rd_u64(f, 16, &size), rd_u64(f, 24, &sum);
    if (version != GRUINFER_MODEL_VERSION || *(const uint8_t *)&one != 1)
        return GRUINFER_E_VERSION;  /* another format, or a big-endian host */
    if (header != HEADER_BYTES || size != (uint64_t)f.len)
        return GRUINFER_E_FORMAT;
    return gruinfer_model_checksum(f.p + HEADER_BYTES, f.len - HEADER_BYTES) == sum ? GRUINFER_OK
                                                                           : GRUINFER_E_FORMAT;
}

gruinfer_status gruinfer_model_open_memory(const void *buf, int64_t len, const char *kernel,
                                           gruinfer_model **out)
{
    if (!out)
        return GRUINFER_E_NULL;
    *out = NULL;
    if (!buf)
        return GRUINFER_E_NULL;
    if (len < 0 || len > MAX_FILE || (uintptr_t)buf % 4)
        return GRUINFER_E_FORMAT;
    const span f = {buf, len};
    span sec[SEC_COUNT];
    gruinfer_status st = rd_header(f);
    if (!st)
        st = rd_sections(f, sec);
    if (st)
        return st;
    gruinfer_model *m = calloc(1, sizeof *m);
    if (!m)
        return GRUINFER_E_NOMEM;
    st = rd_info(m, sec[SEC_INFO], sec[SEC_META]);
    if (!st)
        st = rd_grus(m, sec[SEC_GRUS], sec[SEC_DATA], kernel);
    if (!st)
        st = rd_plan(m, sec[SEC_PLAN], sec[SEC_DATA], kernel);
    if (!st)
        st = rd_names(m, sec[SEC_NAME]);
    if (!st)
        st = rd_arrays(m, sec[SEC_ARRS], sec[SEC_DATA]);
    if (st) {
        gruinfer_model_free(m);
        return st;
    }
    *out = m;
    return GRUINFER_OK;
}

gruinfer_status gruinfer_model_open_file(const char *path, const char *kernel,
                                         gruinfer_model **out)
{
    if (!out || !path)
        return GRUINFER_E_NULL;
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return GRUINFER_E_IO;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n < 0 || (int64_t)n > MAX_FILE || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return n > 0 ? GRUINFER_E_FORMAT : GRUINFER_E_IO;
    }
    void *buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        fclose(fp);
        return GRUINFER_E_NOMEM;
    }
    const size_t got = fread(buf, 1, (size_t)n, fp);
    fclose(fp);
    gruinfer_status st = got == (size_t)n ? gruinfer_model_open_memory(buf, n, kernel, out)
                                          : GRUINFER_E_IO;
    free(buf);
    return st;
}

void gruinfer_model_free(gruinfer_model *m)
{
    if (!m)
        return;
    gruinfer_plan_free(m->plan);
    for (int32_t i = 0; i < m->n_grus; i++)
        gruinfer_gru_free(m->grus[i]);
    free(m->grus);
    for (int r = 0; r < GRUINFER_NAME_ROLES; r++) {
        for (int32_t i = 0; i < m->n_names[r]; i++)
            free(m->names[r][i].text);
        free(m->names[r]);
    }
    for (int32_t i = 0; i < m->n_arrays; i++)
        free(m->arrays[i]);
    free(m->arrays);
    free(m->array_len);
    free(m->meta);
    free(m);
}

const gruinfer_plan *gruinfer_model_plan(const gruinfer_model *m) { return m->plan; }

int32_t gruinfer_model_count(const gruinfer_model *m, int32_t role)
{
    return role >= 0 && role < GRUINFER_NAME_ROLES ? m->n_names[role] : -1;
}

static const model_name *name_at(const gruinfer_model *m, int32_t role, int32_t i)
{
    return role >= 0 && role < GRUINFER_NAME_ROLES && i >= 0 && i < m->n_names[role]
               ? &m->names[role][i] : NULL;
}

const char *gruinfer_model_name(const gruinfer_model *m, int32_t role, int32_t i)
{
    const model_name *e = name_at(m, role, i);
    return e ? e->text : NULL;
}

int32_t gruinfer_model_buffer(const gruinfer_model *m, int32_t role, int32_t i)
{
    const model_name *e = name_at(m, role, i);
    return e ? e->buffer : -1;
}

const char *gruinfer_model_writer(const gruinfer_model *m) { return m->writer; }
const uint8_t *gruinfer_model_source_hash(const gruinfer_model *m) { return m->source_hash; }

const char *gruinfer_model_meta(const gruinfer_model *m, int64_t *len)
{
    *len = m->meta_len;
    return m->meta;
}

int32_t gruinfer_model_arrays(const gruinfer_model *m) { return m->n_arrays; }

const float *gruinfer_model_array(const gruinfer_model *m, int32_t i, int64_t *len)
{
    if (i < 0 || i >= m->n_arrays)
        return NULL;
    *len = m->array_len[i];
    return m->arrays[i];
}
