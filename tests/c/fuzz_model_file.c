/* fuzz_model_file.c: a seeded mutation harness for gruinfer_model_open_memory: mutated copies of a valid .gruinfer file (bit flips, byte stores, hostile counts, truncation; most with the checksum and size fixed so they reach the section parsers) must give a status, never a crash, and an opened one must stream. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gru.h"

static uint64_t rng_state;

static uint64_t next(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static uint64_t below(uint64_t n) { return n ? next() % n : 0; }

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Where to mutate: half the time in the first 4 KiB (header, table, records), else anywhere. */
static int64_t where(int64_t len) { return (int64_t)below(next() & 1 && len > 4096 ? 4096 : len); }

static int64_t mutate(uint8_t *b, int64_t len)
{
    static const uint32_t hostile[] = {0, 1, 2, 3, 63, 64, 65, 4095, 4096, 4097, 0x7fffffff,
                                       0x80000000u, 0xffffffffu, 0xfffffffeu, 1u << 20, 1u << 24};
    const int n = 1 + (int)below(4);
    for (int k = 0; k < n; k++) {
        switch (below(5)) {
        case 0: {
            const int64_t at = where(len);
            b[at] ^= (uint8_t)(1u << below(8));
            break;
        }
        case 1:
            b[where(len)] = (uint8_t)next();
            break;
        case 2: {
            const int64_t at = where(len) & ~(int64_t)3;
            if (at + 4 <= len) {
                const uint32_t v = hostile[below(sizeof hostile / sizeof *hostile)];
                memcpy(b + at, &v, 4);
            }
            break;
        }
        case 3: {
            const int64_t at = where(len) & ~(int64_t)7;
            if (at + 8 <= len)
                put_u64(b + at, below(2) ? ~(uint64_t)0 - below(256) : (uint64_t)1 << below(64));
            break;
        }
        default:
            len = (int64_t)below((uint64_t)len + 1);
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s FILE COUNT SEED\n", argv[0]);
        return 2;
    }
    FILE *fp = fopen(argv[1], "rb");
    if (!fp)
        return 2;
    fseek(fp, 0, SEEK_END);
    const long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *seed = malloc((size_t)size), *buf = malloc((size_t)size + 64);
    if (!seed || !buf || fread(seed, 1, (size_t)size, fp) != (size_t)size)
        return 2;
    fclose(fp);
    const long count = strtol(argv[2], NULL, 10);
    rng_state = strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ull | 1;
    gruinfer_model *m = NULL;
    if (gruinfer_model_open_memory(seed, size, NULL, &m) != GRUINFER_OK) {
        printf("FAIL: the unmutated file does not open\n");
        return 1;
    }
    gruinfer_model_free(m);
    if (gruinfer_model_open_file(argv[1], NULL, &m) != GRUINFER_OK ||
        gruinfer_model_count(m, GRUINFER_NAME_INPUT) != 1 ||
        gruinfer_model_buffer(m, GRUINFER_NAME_INPUT, 0) != 0) {
        printf("FAIL: gruinfer_model_open_file does not open the file or its input\n");
        return 1;
    }
    gruinfer_model_free(m);
    if (gruinfer_model_open_file("/nonexistent/m.gruinfer", NULL, &m) != GRUINFER_E_IO || m) {
        printf("FAIL: gruinfer_model_open_file of a missing file\n");
        return 1;
    }
    long by_status[32] = {0}, streamed = 0;
    float x[1 << 12] = {0};
    for (long i = 0; i < count; i++) {
        memcpy(buf, seed, (size_t)size);
        const int64_t len = mutate(buf, size);
        if (len >= 64 && below(4)) { /* most: size and checksum made right again */
            put_u64(buf + 16, (uint64_t)len);
            put_u64(buf + 24, gruinfer_model_checksum(buf + 64, len - 64));
        }
        const gruinfer_status s = gruinfer_model_open_memory(buf, len, NULL, &m);
        by_status[s < 32 ? s : 31]++;
        if (s == GRUINFER_OK) {
            const gruinfer_plan *p = gruinfer_model_plan(m);
            gruinfer_stream *st = NULL;
            if (gruinfer_plan_width(p, 0) <= (int64_t)(sizeof x / sizeof *x) &&
                gruinfer_stream_create(p, 1, &st) == GRUINFER_OK) {
                gruinfer_stream_run(st, 1, x, 0, 0, 1, NULL, NULL, NULL);
                streamed++;
            }
            gruinfer_stream_free(st);
            for (int r = 0; r < GRUINFER_NAME_ROLES; r++)
                for (int32_t k = 0; k < gruinfer_model_count(m, r); k++)
                    if (!gruinfer_model_name(m, r, k))
                        return 1;
            gruinfer_model_free(m);
        } else if (m) {
            printf("FAIL: a refused open left a model\n");
            return 1;
        }
    }
    printf("inputs %ld opened %ld streamed %ld\n", count, by_status[0], streamed);
    for (int s = 1; s < 32; s++)
        if (by_status[s])
            printf("status %d (%s): %ld\n", s, gruinfer_status_text((gruinfer_status)s), by_status[s]);
    free(seed);
    free(buf);
    return 0;
}
