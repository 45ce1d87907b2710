/* test_pth.c: runtime/io/pth.c against checkpoints written by PyTorch itself.
 *
 * tests/py/make_pth_fixtures.py (run with /usr/bin/python3 and torch) writes checkpoints and a
 * manifest of what torch says is in them: names in order, dtypes, shapes, strides, storage
 * offsets, which tensors share a storage, float64 sums and sampled elements. Every file is
 * parsed here and compared with that; refused files must fail with the expected message.
 * Then truncated and byte-flipped copies of valid files must give errors, never crashes (run
 * this under ASan to make "never crashes" strict; tests/fuzz/fuzz_pth.c goes further). */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/pth.h"

static void failf(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    check_failures++;
}

/* ---------------------------------------------------------------- reading elements */

static double half_to_double(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h >> 15) ? -v : v;
}

static double element(const uint8_t *p, ft_dtype d) {
    switch (d) {
    case FT_FLOAT32: {
        float x;
        memcpy(&x, p, 4);
        return x;
    }
    case FT_FLOAT64: {
        double x;
        memcpy(&x, p, 8);
        return x;
    }
    case FT_FLOAT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        return half_to_double(x);
    }
    case FT_BFLOAT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        uint32_t u = (uint32_t)x << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case FT_INT64: {
        int64_t x;
        memcpy(&x, p, 8);
        return (double)x;
    }
    case FT_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        return x;
    }
    case FT_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        return x;
    }
    case FT_INT8: return (int8_t)p[0];
    case FT_UINT8:
    case FT_BOOL: return p[0];
    default: return NAN;
    }
}

/* The element at row-major flat index i of the strided view. */
static double element_at(const pth_entry *e, int64_t i) {
    int64_t off = 0;
    for (int d = e->ndim - 1; d >= 0; d--) {
        off += (i % e->shape[d]) * e->stride[d];
        i /= e->shape[d];
    }
    return element(e->data + off * (int64_t)ft_dtype_size(e->dtype), e->dtype);
}

static double view_sum(const pth_entry *e) {
    double s = 0;
    for (int64_t i = 0; i < e->numel; i++) s += element_at(e, i);
    return s;
}

/* ------------------------------------------------------- invariants any result must hold */

/* Returns NULL when f is self-consistent, else what is wrong. buf/len: where storages must
 * point (NULL to skip, e.g. for byte-swapped files). */
static const char *invariants(const pth_file *f, const uint8_t *buf, size_t len) {
    for (int k = 0; k < f->n_storages; k++) {
        const pth_storage *s = &f->storages[k];
        if (!s->key || ft_dtype_size(s->dtype) == 0) return "storage key or dtype";
        if (s->nbytes != (size_t)s->numel * ft_dtype_size(s->dtype)) return "storage nbytes";
        if (s->nbytes && !s->data) return "storage without data";
        if (buf && s->nbytes && (s->data < buf || s->data + s->nbytes > buf + len))
            return "storage outside the file";
    }
    for (int k = 0; k < f->n_entries; k++) {
        const pth_entry *e = &f->entries[k];
        if (!e->name || e->ndim < 0 || e->ndim > FT_MAX_DIMS) return "entry name or ndim";
        if (e->storage < 0 || e->storage >= f->n_storages) return "entry storage index";
        const pth_storage *s = &f->storages[e->storage];
        if (e->dtype != s->dtype) return "entry dtype differs from its storage";
        int64_t numel = 1, last = 0;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || e->stride[d] < 0) return "negative size or stride";
            numel *= e->shape[d];
        }
        if (numel != e->numel) return "numel";
        if (!numel) continue;
        for (int d = 0; d < e->ndim; d++) last += (e->shape[d] - 1) * e->stride[d];
        size_t es = ft_dtype_size(e->dtype);
        if (e->data != s->data + (size_t)e->storage_offset * es) return "data pointer";
        if ((size_t)(e->storage_offset + last + 1) * es > s->nbytes)
            return "view outside its storage";
    }
    return NULL;
}

/* ---------------------------------------------------------------- the manifest */

typedef struct {
    char name[512], dtype[16];
    int ndim, rg, tag, nsamples;
    int64_t shape[FT_MAX_DIMS], stride[FT_MAX_DIMS], offset, sidx[16];
    double sum, sval[16];
} expected;

static int parse_t_line(char *line, expected *x) {
    char *save = NULL, *tok[200];
    int n = 0;
    for (char *t = strtok_r(line, " \n", &save); t && n < 200; t = strtok_r(NULL, " \n", &save))
        tok[n++] = t;
    if (n < 4 || strcmp(tok[0], "t")) return -1;
    snprintf(x->name, sizeof(x->name), "%s", strcmp(tok[1], "\"\"") ? tok[1] : "");
    snprintf(x->dtype, sizeof(x->dtype), "%s", tok[2]);
    x->ndim = atoi(tok[3]);
    int at = 4;
    if (x->ndim < 0 || x->ndim > FT_MAX_DIMS || n < at + 2 * x->ndim + 5) return -1;
    for (int d = 0; d < x->ndim; d++) x->shape[d] = strtoll(tok[at + d], NULL, 10);
    for (int d = 0; d < x->ndim; d++) x->stride[d] = strtoll(tok[at + x->ndim + d], NULL, 10);
    at += 2 * x->ndim;
    x->offset = strtoll(tok[at++], NULL, 10);
    x->rg = atoi(tok[at++]);
    x->tag = atoi(tok[at++]);
    x->sum = strtod(tok[at++], NULL);
    x->nsamples = atoi(tok[at++]);
    if (x->nsamples < 0 || x->nsamples > 16 || n < at + 2 * x->nsamples) return -1;
    for (int k = 0; k < x->nsamples; k++) {
        x->sidx[k] = strtoll(tok[at + 2 * k], NULL, 10);
        x->sval[k] = strtod(tok[at + 2 * k + 1], NULL);
    }
    return 0;
}

/* Compares a loaded file with its n expected tensors; one check line per aspect. */
static void compare(const char *label, const pth_file *f, const expected *x, int n) {
    char name[700];
    snprintf(name, sizeof(name), "%s: entry count", label);
    if (f->n_entries != n) {
        failf(name, "%d entries, manifest has %d", f->n_entries, n);
        return;
    }
    printf("ok %s\n", name);

    int bad = 0;
    for (int i = 0; i < n && !bad; i++) {
        const pth_entry *e = &f->entries[i];
        if (strcmp(e->name, x[i].name)) {
            failf((snprintf(name, sizeof(name), "%s: names in order", label), name),
                  "entry %d is '%s', expected '%s'", i, e->name, x[i].name);
            bad = 1;
        }
    }
    if (!bad) printf("ok %s: names in order\n", label);

    bad = 0;
    snprintf(name, sizeof(name), "%s: dtypes, shapes, strides, offsets", label);
    for (int i = 0; i < n && !bad; i++) {
        const pth_entry *e = &f->entries[i];
        int ok = !strcmp(ft_dtype_name(e->dtype), x[i].dtype) && e->ndim == x[i].ndim &&
                 e->storage_offset == x[i].offset && e->requires_grad == x[i].rg;
        for (int d = 0; ok && d < e->ndim; d++)
            ok = e->shape[d] == x[i].shape[d] && e->stride[d] == x[i].stride[d];
        if (!ok) {
            failf(name, "'%s': %s ndim %d offset %lld rg %d vs %s ndim %d offset %lld rg %d",
                  e->name, ft_dtype_name(e->dtype), e->ndim, (long long)e->storage_offset,
                  e->requires_grad, x[i].dtype, x[i].ndim, (long long)x[i].offset, x[i].rg);
            bad = 1;
        }
    }
    if (!bad) printf("ok %s\n", name);

    bad = 0;
    snprintf(name, sizeof(name), "%s: values (sums and samples)", label);
    for (int i = 0; i < n && !bad; i++) {
        const pth_entry *e = &f->entries[i];
        double s = view_sum(e);
        if (!(fabs(s - x[i].sum) <= 1e-6 * fmax(1, fabs(x[i].sum)))) {
            failf(name, "'%s': sum %.17g, torch says %.17g", e->name, s, x[i].sum);
            bad = 1;
        }
        for (int k = 0; k < x[i].nsamples && !bad; k++) {
            double v = x[i].sidx[k] < e->numel ? element_at(e, x[i].sidx[k]) : NAN;
            if (v != x[i].sval[k]) {
                failf(name, "'%s'[%lld] = %.17g, torch says %.17g", e->name,
                      (long long)x[i].sidx[k], v, x[i].sval[k]);
                bad = 1;
            }
        }
    }
    if (!bad) printf("ok %s\n", name);

    bad = 0;
    snprintf(name, sizeof(name), "%s: storage sharing", label);
    for (int i = 0; i < n && !bad; i++)
        for (int j = i + 1; j < n && !bad; j++) {
            /* Empty tensors' storages carry no data; torch gives them no identity to compare. */
            if (!f->entries[i].numel || !f->entries[j].numel) continue;
            int same = f->entries[i].storage == f->entries[j].storage;
            if (same != (x[i].tag == x[j].tag)) {
                failf(name, "'%s' and '%s' %s a storage", f->entries[i].name, f->entries[j].name,
                      same ? "share" : "do not share");
                bad = 1;
            }
        }
    if (!bad) printf("ok %s\n", name);

    const char *why = invariants(f, NULL, 0);
    snprintf(name, sizeof(name), "%s: invariants", label);
    if (why)
        failf(name, "%s", why);
    else
        printf("ok %s\n", name);
}

/* ---------------------------------------------------------------- damaged files */

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Every strict prefix must be refused with a message. Each copy gets an exact-size heap
 * buffer so that a sanitizer build catches any read past it. */
static void truncations(const char *label, const uint8_t *buf, size_t len) {
    size_t accepted = 0, silent = 0, step = len > 20000 ? len / 5000 : 1;
    for (size_t n = 0; n < len; n += step) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        char err[256] = "";
        pth_file *f = new_pth_file_from_buffer(copy, n, NULL, err, sizeof(err));
        if (f)
            accepted++;
        else if (!err[0])
            silent++;
        free_pth_file(f);
        free(copy);
    }
    char name[400];
    snprintf(name, sizeof(name), "%s: every truncation is refused with a message", label);
    if (accepted || silent)
        failf(name, "%zu prefixes accepted, %zu refused without a message", accepted, silent);
    else
        printf("ok %s\n", name);
}

/* Random byte changes: each copy loads or is refused; what loads must be self-consistent. */
static void flips(const char *label, const uint8_t *buf, size_t len, int tries, int want_refusals,
                  int swapped) {
    size_t refused = 0, broken = 0;
    const char *why = NULL;
    for (int t = 0; t < tries; t++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        int nflip = 1 + (int)(next_rand() % 3);
        for (int k = 0; k < nflip; k++) copy[next_rand() % len] ^= (uint8_t)(1 + next_rand() % 255);
        char err[256] = "";
        pth_file *f = new_pth_file_from_buffer(copy, len, NULL, err, sizeof(err));
        if (!f) {
            refused++;
            if (!err[0]) {
                broken++;
                why = "refused without a message";
            }
        } else {
            const char *w = invariants(f, swapped ? NULL : copy, len);
            if (w) {
                broken++;
                why = w;
            }
        }
        free_pth_file(f);
        free(copy);
    }
    char name[400];
    snprintf(name, sizeof(name), "%s: %d damaged copies are refused or load consistently", label,
             tries);
    if (broken)
        failf(name, "%zu broken results, e.g. %s", broken, why);
    else
        printf("ok %s\n", name);
    if (want_refusals) {
        /* The zip format carries CRCs, so nearly every change must be caught. */
        snprintf(name, sizeof(name), "%s: most damaged copies are refused", label);
        if (refused * 10 < (size_t)tries * 8)
            failf(name, "only %zu of %d refused", refused, tries);
        else
            printf("ok %s\n", name);
    }
}

/* ---------------------------------------------------------------- main */

int main(void) {
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
        SKIP("pth fixtures", "/usr/bin/python3 has no torch");
        return 0;
    }
    const char *root = getenv("FTLUA_ROOT") ? getenv("FTLUA_ROOT") : ".";
    char dir[] = "/tmp/ftlua_pth_XXXXXX";
    if (!mkdtemp(dir)) {
        failf("pth fixtures", "mkdtemp failed");
        return 1;
    }
    char cmd[1024], path[1200], line[8192];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 '%s/tests/py/make_pth_fixtures.py' '%s' >/dev/null", root, dir);
    int rc = system(cmd);
    CHECK("pth fixtures written by torch", rc == 0);
    snprintf(path, sizeof(path), "%s/manifest.txt", dir);
    FILE *m = rc == 0 ? fopen(path, "r") : NULL;
    int saw_resnet = 0;
    expected *xs = calloc(1024, sizeof(expected));
    while (m && fgets(line, sizeof(line), m)) {
        char file[240], key[240], status[16];
        int off = 0;
        if (sscanf(line, "file %239s %239s %15s %n", file, key, status, &off) != 3) continue;
        const char *key_path = strcmp(key, "-") ? key : NULL;
        char label[520];
        snprintf(label, sizeof(label), "pth %s%s%s", file, key_path ? " key " : "",
                 key_path ? key : "");
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        char err[512] = "";
        pth_file *f = new_pth_file(path, key_path, err, sizeof(err));
        if (!strcmp(status, "error")) {
            char *want = line + off;
            want[strcspn(want, "\n")] = 0;
            char name[700];
            snprintf(name, sizeof(name), "%s: refused with \"%s\"", label, want);
            if (f)
                failf(name, "it loaded");
            else if (!strstr(err, want))
                failf(name, "message was: %s", err);
            else
                printf("ok %s\n", name);
            free_pth_file(f);
            continue;
        }
        int n = atoi(line + off);
        int bad_lines = n < 0 || n > 1024;
        for (int i = 0; i < n && !bad_lines; i++)
            if (!fgets(line, sizeof(line), m) || parse_t_line(line, &xs[i]) < 0) bad_lines = 1;
        if (bad_lines) {
            failf(label, "bad manifest");
            free_pth_file(f);
            break;
        }
        char name[700];
        snprintf(name, sizeof(name), "%s: loads", label);
        if (!f) {
            failf(name, "%s", err);
            continue;
        }
        printf("ok %s\n", name);
        compare(label, f, xs, n);
        if (strstr(file, "resnet18")) {
            saw_resnet = 1;
            snprintf(name, sizeof(name), "%s: 122 keys from conv1.weight to fc.bias", label);
            CHECK(name, f->n_entries == 122 && !strcmp(f->entries[0].name, "conv1.weight") &&
                            !strcmp(f->entries[121].name, "fc.bias") &&
                            pth_find(f, "layer4.1.bn2.running_var"));
        }
        free_pth_file(f);
    }
    if (m) fclose(m);
    free(xs);
    if (!saw_resnet) SKIP("pth resnet18", "torchvision is not installed for /usr/bin/python3");

    /* Messages that name what is wrong. */
    char err[512];
    snprintf(path, sizeof(path), "%s/malicious.pth", dir);
    pth_file *f = new_pth_file(path, NULL, err, sizeof(err));
    CHECK("pth malicious: message says it is refused and names the file",
          !f && strstr(err, "which ftlua does not load (only state dicts are accepted)") &&
              strstr(err, path) == err);
    free_pth_file(f);
    f = new_pth_file("/nonexistent/x.pth", NULL, err, sizeof(err));
    CHECK("pth missing file: message names it", !f && strstr(err, "/nonexistent/x.pth"));
    free_pth_file(f);
    f = new_pth_file_from_buffer("", 0, NULL, NULL, 0); /* no error buffer is fine */
    CHECK("pth empty buffer is refused", !f);

    /* Damaged copies of valid files. */
    const char *damaged[] = {"small.pth",     "small_legacy.pth", "nested.pth",      "small_p4.pth",
                             "bigendian.pth", "zip64.pth",        "legacy_views.pth"};
    for (size_t k = 0; k < sizeof(damaged) / sizeof(damaged[0]); k++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", dir, damaged[k]);
        uint8_t *buf = read_file(path, &len);
        char label[300];
        snprintf(label, sizeof(label), "pth %s", damaged[k]);
        if (!buf) {
            failf(label, "cannot read %s", path);
            continue;
        }
        pth_file *ok = new_pth_file_from_buffer(buf, len, NULL, err, sizeof(err));
        snprintf(label, sizeof(label), "pth %s from a buffer: storages point into it", damaged[k]);
        int swapped = strstr(damaged[k], "bigendian") != NULL;
        CHECK(label, ok && !invariants(ok, swapped ? NULL : buf, len));
        free_pth_file(ok);
        snprintf(label, sizeof(label), "pth %s", damaged[k]);
        truncations(label, buf, len);
        flips(label, buf, len, 2000, strstr(damaged[k], "legacy") == NULL, swapped);
        free(buf);
    }

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("skip pth cleanup: could not remove %s\n", dir);
    return check_exit();
}
