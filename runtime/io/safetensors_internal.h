/* safetensors_internal.h: what the safetensors files share (safetensors.c reads,
 * safetensors_json.c parses the header, safetensors_write.c writes). Not a public header. */
#ifndef FT_SAFETENSORS_INTERNAL_H
#define FT_SAFETENSORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "io/safetensors.h"

/* Names in messages are cut short so a hostile 1 MB name cannot flood a log line. */
#define NAME_FMT    "'%.80s%s'"
#define NAME_ARG(s) (s), (strlen(s) > 80 ? "..." : "")

/* Write "safetensors: " and the formatted message into err (if err and errlen). */
__attribute__((format(printf, 3, 4))) void st_set_err(char *err, size_t errlen, const char *fmt,
                                                      ...);

/* A tensor entry as parsed, before validation against the buffer. */
typedef struct {
    const char *name;
    const char *dtype;
    int ndim;
    uint64_t shape[FT_MAX_DIMS];
    uint64_t begin, end;
    size_t at; /* header byte where the entry starts, for messages */
} st_raw_entry;

/* Parse the header JSON hdr[0..len) (hdr[0] is the '{' already checked). Decoded strings go
 * into arena (at least len + 1 bytes), the metadata pairs into *meta (*nmeta of them), the
 * tensor entries into *raw (*nraw of them, in header order). On failure returns -1 with a
 * message in err; *meta and *raw may hold arrays that the caller frees either way. */
int st_parse_header(const uint8_t *hdr, size_t len, char *arena, size_t arena_cap, st_kv **meta,
                    int *nmeta, st_raw_entry **raw, int *nraw, char *err, size_t errlen);

/* Length of the valid UTF-8 sequence at s[0..n), or 0 (strict: no overlongs, surrogates,
 * or code points past U+10FFFF). */
size_t st_utf8_len(const uint8_t *s, size_t n);

/* The first name that occurs twice, or NULL. names is sorted in place. */
const char *st_find_duplicate(const char **names, int n);

#endif /* FT_SAFETENSORS_INTERNAL_H */
