/* learner_ref.h: run tests/py/learner_ref.py (the independent Python reference for the
 * learner core) from a C test. Header-only, for the tests/c/test_*.c that need it. */
#ifndef LEARNER_REF_H
#define LEARNER_REF_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char py[512], script[1024];
static int have_ref;

static void ref_init(void) {
    const char *root = getenv("FTLUA_ROOT") ? getenv("FTLUA_ROOT") : ".";
    snprintf(script, sizeof script, "%s/tests/py/learner_ref.py", root);
    snprintf(py, sizeof py, "%s",
             getenv("FTLUA_PYTHON") ? getenv("FTLUA_PYTHON") : "/usr/bin/python3");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch, numpy' >/dev/null 2>&1", py);
    have_ref = access(script, R_OK) == 0 && system(cmd) == 0;
}

/* Runs learner_ref.py MODE on the request text; returns its stdout (malloc'd) or NULL. */
static char *ref_run(const char *mode, const char *req) {
    char in[] = "/tmp/ftl_ref_XXXXXX", out[] = "/tmp/ftl_out_XXXXXX";
    int fi = mkstemp(in), fo = mkstemp(out);
    if (fi < 0 || fo < 0) return NULL;
    FILE *f = fdopen(fi, "w");
    fputs(req, f);
    fclose(f);
    close(fo);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s '%s' >'%s' 2>&1", py, script, mode, in, out);
    int rc = system(cmd);
    f = fopen(out, "r");
    char *text = NULL;
    size_t cap = 0;
    if (f) {
        ssize_t n = getdelim(&text, &cap, '\0', f);
        if (n < 0) {
            free(text);
            text = NULL;
        }
        fclose(f);
    }
    unlink(in);
    unlink(out);
    if (rc != 0) {
        printf("# learner_ref.py %s failed:\n%s\n", mode, text ? text : "");
        free(text);
        return NULL;
    }
    return text;
}

/* The next number in *s ("nan" included), skipping tags and spaces. */
__attribute__((unused)) static double next_num(char **s) {
    while (**s && !(**s == '-' || **s == '.' || (**s >= '0' && **s <= '9') || **s == 'n')) (*s)++;
    char *end;
    double v = strtod(*s, &end);
    if (end == *s) {
        (*s)++;
        return NAN;
    }
    *s = end;
    return v;
}

#endif
