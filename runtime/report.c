/* report.c: `ftlua --report out.html script.lua`, a notebook-style HTML page of a script's run.
 * See report.h for the design (one chunk, cells found by the parser, a line hook to follow them,
 * fd-level capture, images from FTLUA_PLOT_DIR). */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/clock.h"
#include "io/atomic.h"
#include "io/strbuf.h"
#include "report.h"

/* ---------------------------------------------------------------- figures written elsewhere */

void (*ftl_report_on_figure)(const char *path);

void ftl_report_publish(lua_State *L, const char *path) {
    if (lua_getglobal(L, "REPORT_DIR") != LUA_TSTRING) {
        lua_pop(L, 1);
        return;
    }
    char dest[1024];
    const char *dir = lua_tostring(L, -1);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t dlen = strlen(dir);
    int inside =
        strncmp(path, dir, dlen) == 0 && path[dlen] == '/' && strchr(path + dlen + 1, '/') == NULL;
    int fits = snprintf(dest, sizeof dest, "%s/%s", dir, base) < (int)sizeof dest;
    lua_pop(L, 1);
    if (inside && ftl_report_on_figure) ftl_report_on_figure(path);
    if (inside || !fits || !*base) return;
    FILE *in = fopen(path, "rb");
    if (!in) return;
    /* whole or not at all: the cell's scan never sees half a PNG */
    af_file af;
    char err[1200];
    int ok = af_open(&af, dest, err, sizeof err) == 0;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, af.f) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (!ok)
        af_abort(&af);
    else if (af_commit(&af, err, sizeof err) == 0 && ftl_report_on_figure)
        ftl_report_on_figure(dest); /* a failed copy leaves the page without it */
}

/* ---------------------------------------------------------------- state (one report at a time) */

typedef struct {
    size_t off, len; /* the cell's code in the script text */
    int line;        /* its first line (1-based) */
    int ran, failed;
    strbuf out, err, imgs; /* captured stdout, stderr; <img> tags */
} cell;

typedef struct {
    char name[256];
    long long mtime_ns;
    long long size;
} seen_file;

static struct {
    cell *cells;
    int ncells, cur;
    const char *chunkname;
    char dir[512];
    int cap_out, cap_err; /* the temp files fd 1 and 2 point to while the script runs */
    int saved_out, saved_err;
    seen_file *seen;
    int nseen;
} R;

/* ---------------------------------------------------------------- splitting into cells */

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

static void add_cell(const char *text, size_t off, size_t end, int line) {
    while (end > off && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' ' ||
                         text[end - 1] == '\t'))
        end--; /* trailing blank lines are not part of the cell's code */
    cell *c = realloc(R.cells, (size_t)(R.ncells + 1) * sizeof *c);
    if (c == NULL) return;
    R.cells = c;
    memset(&c[R.ncells], 0, sizeof c[0]);
    c[R.ncells].off = off;
    c[R.ncells].len = end - off;
    c[R.ncells].line = line;
    R.ncells++;
}

/* Cut at a blank line when the text of the cell so far compiles (src has the shebang blanked). */
static void split_cells(lua_State *L, const char *src, size_t n) {
    size_t start = 0, pos = 0;
    int line = 1, start_line = 1, content = 0;
    while (pos < n) {
        const char *nl = memchr(src + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - src) : n, next = nl ? end + 1 : n;
        if (is_blank(src + pos, end - pos)) {
            if (!content) {
                start = next;
                start_line = line + 1;
            } else {
                int ok = luaL_loadbuffer(L, src + start, pos - start, "=cell") == LUA_OK;
                lua_pop(L, 1);
                if (ok) {
                    add_cell(src, start, pos, start_line);
                    start = next;
                    start_line = line + 1;
                    content = 0;
                }
            }
        } else
            content = 1;
        pos = next;
        line++;
    }
    if (content) add_cell(src, start, n, start_line);
}

static int cell_of_line(int line) {
    int k = 0;
    while (k + 1 < R.ncells && R.cells[k + 1].line <= line) k++;
    return k;
}

/* ---------------------------------------------------------------- capture */

static void drain(int fd, int echo_fd, strbuf *into) {
    char buf[8192];
    if (lseek(fd, 0, SEEK_SET) < 0) return;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        sb_put(into, buf, (size_t)r);
        for (ssize_t w = 0; w < r;) { /* echo: the user still sees the run, cell by cell */
            ssize_t k = write(echo_fd, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            w += k;
        }
    }
    if (ftruncate(fd, 0) != 0) {
        /* keep going: the next cell would repeat this text */
    }
    lseek(fd, 0, SEEK_SET); /* shared with fd 1/2 (same open file description) */
}

static int cmp_seen(const void *a, const void *b) {
    const seen_file *x = a, *y = b;
    if (x->mtime_ns != y->mtime_ns) return x->mtime_ns < y->mtime_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void add_image(strbuf *html, const char *path, const char *mime) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    sb_puts(html, "<img alt=\"plot\" src=\"data:");
    sb_puts(html, mime);
    sb_puts(html, ";base64,");
    unsigned char in[3 * 1024];
    char out[4 * 1024];
    size_t r;
    while ((r = fread(in, 1, sizeof in, f)) > 0) {
        size_t o = 0;
        for (size_t i = 0; i < r; i += 3) {
            unsigned v = (unsigned)in[i] << 16;
            if (i + 1 < r) v |= (unsigned)in[i + 1] << 8;
            if (i + 2 < r) v |= in[i + 2];
            out[o++] = b64[(v >> 18) & 63];
            out[o++] = b64[(v >> 12) & 63];
            out[o++] = i + 1 < r ? b64[(v >> 6) & 63] : '=';
            out[o++] = i + 2 < r ? b64[v & 63] : '=';
        }
        sb_put(html, out, o); /* r is a multiple of 3 except at the end of the file */
        if (r < sizeof in) break;
    }
    fclose(f);
    sb_puts(html, "\">\n");
}

/* Every .png/.svg in the folder that is new or changed since the last scan, oldest first. */
static void scan_images(strbuf *html) {
    DIR *d = opendir(R.dir);
    if (d == NULL) return;
    seen_file *fresh = NULL;
    int nfresh = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || (strcmp(dot, ".png") != 0 && strcmp(dot, ".svg") != 0)) continue;
        if (strlen(e->d_name) >= sizeof fresh->name) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", R.dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
        seen_file s;
        snprintf(s.name, sizeof s.name, "%s", e->d_name);
        s.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        s.size = (long long)st.st_size;
        int k = 0;
        while (k < R.nseen && strcmp(R.seen[k].name, s.name) != 0) k++;
        if (k < R.nseen && R.seen[k].mtime_ns == s.mtime_ns && R.seen[k].size == s.size) continue;
        if (k == R.nseen) {
            seen_file *q = realloc(R.seen, (size_t)(R.nseen + 1) * sizeof *q);
            if (q == NULL) continue;
            R.seen = q;
            R.nseen++;
        }
        R.seen[k] = s;
        seen_file *q = realloc(fresh, (size_t)(nfresh + 1) * sizeof *q);
        if (q == NULL) continue;
        fresh = q;
        fresh[nfresh++] = s;
    }
    closedir(d);
    if (nfresh > 1) qsort(fresh, (size_t)nfresh, sizeof *fresh, cmp_seen);
    for (int i = 0; i < nfresh; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", R.dir, fresh[i].name);
        const char *dot = strrchr(fresh[i].name, '.');
        add_image(html, path, strcmp(dot, ".svg") == 0 ? "image/svg+xml" : "image/png");
    }
    free(fresh);
}

/* The current cell is over: collect its output and images. */
static void end_cell(void) {
    if (R.cur < 0 || R.cur >= R.ncells) return;
    cell *c = &R.cells[R.cur];
    fflush(NULL);
    drain(R.cap_out, R.saved_out, &c->out);
    drain(R.cap_err, R.saved_err, &c->err);
    scan_images(&c->imgs);
}

static void hook(lua_State *L, lua_Debug *ar) {
    if (R.ncells == 0 || !lua_getinfo(L, "Sl", ar)) return;
    if (strcmp(ar->what, "main") != 0 || strcmp(ar->source, R.chunkname) != 0) return;
    int k = cell_of_line(ar->currentline);
    if (k == R.cur) return;
    end_cell();
    for (int i = R.cur + 1; i < k; i++) R.cells[i].ran = 1; /* comments only: nothing to run */
    R.cur = k;
    R.cells[k].ran = 1;
}

/* ---------------------------------------------------------------- HTML */

/* Escape text; for program output also drop ANSI escapes and what a '\r' overwrote. */
static void put_text(FILE *f, const char *s, size_t n, int output) {
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - s) : n;
        size_t from = i;
        if (output) {
            size_t e = end;
            while (e > i && s[e - 1] == '\r') e--;
            for (size_t k = i; k < e; k++)
                if (s[k] == '\r') from = k + 1;
            end = e;
        }
        for (size_t k = from; k < end; k++) {
            unsigned char ch = (unsigned char)s[k];
            if (output && ch == 0x1b && k + 1 < end && s[k + 1] == '[') { /* CSI ... final byte */
                k += 2;
                while (k < end && !((unsigned char)s[k] >= 0x40 && (unsigned char)s[k] <= 0x7e))
                    k++;
                continue;
            }
            switch (ch) {
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '&': fputs("&amp;", f); break;
            case '"': fputs("&quot;", f); break;
            default:
                if (ch < 0x20 && ch != '\t' && ch != '\r')
                    fprintf(f, "&#x%x;", 0x2400 + ch);
                else
                    fputc(ch, f);
            }
        }
        if (nl) fputc('\n', f);
        i = nl ? (size_t)(nl - s) + 1 : n;
    }
}

static void put_str(FILE *f, const char *s) { put_text(f, s, strlen(s), 0); }

static const char CSS[] =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;"
    "color:#222;background:#fff}\n"
    "h1{font-size:1.4em}.meta{color:#666;font-size:.9em}\n"
    ".cell{border:1px solid #ddd;border-radius:4px;margin:1em 0;overflow:hidden}\n"
    ".head{background:#f4f4f4;color:#666;font:12px monospace;padding:2px 8px}\n"
    "pre{margin:0;padding:8px;white-space:pre-wrap;word-break:break-word;"
    "font:13px/1.35 ui-monospace,monospace}\n"
    ".code{background:#f8f8fb;border-bottom:1px solid #eee}\n"
    ".stdout{background:#fff}.stderr{background:#fff8e6;color:#8a5a00}\n"
    ".error{background:#fdecec;color:#a00}\n"
    ".cell.failed{border-color:#d66}.cell.notrun{opacity:.55}\n"
    "img{display:block;max-width:100%;margin:8px}\n"
    ".status{padding:.5em 1em;border-radius:4px}.ok{background:#eaf7ea}.bad{background:#fdecec}\n";

static int write_html(FILE *f, const char *script, const char *text, int nargs, const char **args,
                      const char *load_error, const char *run_error, double seconds) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
    put_str(f, script);
    fputs("</title>\n<style>\n", f);
    fputs(CSS, f);
    fputs("</style>\n</head>\n<body>\n<h1>", f);
    put_str(f, script);
    fputs("</h1>\n<p class=\"meta\">ftlua --report, ", f);
    char when[64];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    fprintf(f, "%s, %.1f s", when, seconds);
    if (nargs > 0) {
        fputs(", arguments:", f);
        for (int i = 0; i < nargs; i++) {
            fputs(" <code>", f);
            put_str(f, args[i] ? args[i] : "");
            fputs("</code>", f);
        }
    }
    fputs("</p>\n", f);
    if (load_error) {
        fputs("<div class=\"status bad\" id=\"status\">the script does not compile</div>\n"
              "<pre class=\"error\">",
              f);
        put_str(f, load_error);
        fputs("</pre>\n", f);
    }
    for (int i = 0; i < R.ncells; i++) {
        cell *c = &R.cells[i];
        fprintf(f, "<div class=\"cell%s\" id=\"cell-%d\">\n",
                c->failed ? " failed"
                : c->ran  ? ""
                          : " notrun",
                i + 1);
        fprintf(f, "<div class=\"head\">[%d] line %d%s</div>\n", i + 1, c->line,
                c->failed ? " &mdash; error"
                : c->ran  ? ""
                          : " &mdash; not run");
        fputs("<pre class=\"code\">", f);
        put_text(f, text + c->off, c->len, 0);
        fputs("</pre>\n", f);
        if (c->out.len) {
            fputs("<pre class=\"stdout\">", f);
            put_text(f, c->out.p, c->out.len, 1);
            fputs("</pre>\n", f);
        }
        if (c->err.len) {
            fputs("<pre class=\"stderr\">", f);
            put_text(f, c->err.p, c->err.len, 1);
            fputs("</pre>\n", f);
        }
        if (c->imgs.len) fwrite(c->imgs.p, 1, c->imgs.len, f);
        if (c->failed && run_error) {
            fputs("<pre class=\"error\">", f);
            put_str(f, run_error);
            fputs("</pre>\n", f);
        }
        fputs("</div>\n", f);
    }
    if (run_error && (R.cur < 0 || R.cur >= R.ncells)) { /* failed before the first cell */
        fputs("<pre class=\"error\">", f);
        put_str(f, run_error);
        fputs("</pre>\n", f);
    }
    if (!load_error)
        fprintf(f, "<div class=\"status %s\" id=\"status\">%s</div>\n", run_error ? "bad" : "ok",
                run_error ? "stopped at an error" : "finished");
    fputs("</body>\n</html>\n", f);
    return ferror(f) ? -1 : 0;
}

/* temp file next to the target, then rename: the page is whole or absent */
static int save_html(lua_State *L, const char *path, const char *script, const char *text,
                     int nargs, const char **args, const char *load_error, const char *run_error,
                     double seconds) {
    af_file af;
    char err[1200];
    if (af_open(&af, path, err, sizeof err) != 0) {
        lua_pushfstring(L, "--report: %s", err);
        return -1;
    }
    /* a failed write is reported by commit, with its cause (ENOSPC) */
    (void)write_html(af.f, script, text, nargs, args, load_error, run_error, seconds);
    if (af_commit(&af, err, sizeof err) != 0) {
        lua_pushfstring(L, "--report: %s", err);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the run */

static char *read_all(const char *script, size_t *n) {
    FILE *f = script ? fopen(script, "rb") : stdin;
    if (f == NULL) return NULL;
    strbuf b = {0};
    char buf[8192];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) sb_put(&b, buf, r);
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        sb_free(&b);
        return NULL;
    }
    if (b.p == NULL) b.p = calloc(1, 1);
    *n = b.len;
    return b.p;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* strip the host's own C frames that end a traceback */
static const char *trim_trace(lua_State *L, const char *msg) {
    size_t len = strlen(msg);
    static const char host_frame[] = "\n\t[C]: in ?";
    const size_t hl = sizeof host_frame - 1;
    while (len >= hl && memcmp(msg + len - hl, host_frame, hl) == 0) len -= hl;
    return lua_pushlstring(L, msg, len);
}

static void free_args(const char **args, int n) {
    if (args == NULL) return;
    for (int i = 0; i < n; i++) free((void *)args[i]);
    free((void *)args);
}

/* Copies of the script's arguments (the call consumes the values), or NULL. */
static const char **copy_args(lua_State *L, int argbase, int nargs) {
    const char **args = calloc((size_t)nargs + 1, sizeof *args);
    for (int i = 0; args && i < nargs; i++) {
        const char *a = lua_tostring(L, argbase + i);
        args[i] = strdup(a ? a : "");
    }
    return args;
}

/* The source as luaL_loadfile sees it: a first line starting with '#' is blanked. */
static char *loadable_source(const char *text, size_t n) {
    char *src = malloc(n + 1);
    if (src == NULL) return NULL;
    memcpy(src, text, n + 1);
    if (n && src[0] == '#')
        for (size_t i = 0; i < n && src[i] != '\n'; i++) src[i] = ' ';
    return src;
}

/* The report's temporary folder (REPORT_DIR and FTLUA_PLOT_DIR: where plots go) and the files
 * fd 1 and 2 will point to. Returns 0, or -1 with a message pushed. *old_plot_dir: the
 * FTLUA_PLOT_DIR to restore (malloc'd, or NULL). */
static int open_capture(lua_State *L, char **old_plot_dir) {
    const char *tdir = getenv("TMPDIR");
    snprintf(R.dir, sizeof R.dir, "%s/ftlua-report-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (mkdtemp(R.dir) == NULL) {
        int e = errno;
        R.dir[0] = '\0';
        lua_pushfstring(L, "--report: cannot make a temporary folder: %s", strerror(e));
        return -1;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/.stdout", R.dir);
    R.cap_out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    snprintf(path, sizeof path, "%s/.stderr", R.dir);
    R.cap_err = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    *old_plot_dir = getenv("FTLUA_PLOT_DIR") ? strdup(getenv("FTLUA_PLOT_DIR")) : NULL;
    setenv("FTLUA_PLOT_DIR", R.dir, 1);
    lua_pushstring(L, R.dir);
    lua_setglobal(L, "REPORT_DIR");
    return 0;
}

static void close_capture(lua_State *L, char *old_plot_dir) {
    if (old_plot_dir)
        setenv("FTLUA_PLOT_DIR", old_plot_dir, 1);
    else
        unsetenv("FTLUA_PLOT_DIR");
    free(old_plot_dir);
    lua_pushnil(L);
    lua_setglobal(L, "REPORT_DIR");
}

/* Run the loaded chunk (below its nargs arguments) with fd 1 and 2 going to the capture files
 * and the line hook moving between cells. Returns the call's status; on an error the trimmed
 * message is on top. */
static int run_cells(lua_State *L, int nargs, ftl_docall_fn docall) {
    scan_images(&(strbuf){0}); /* nothing there yet; keeps the logic uniform */
    fflush(NULL);
    R.saved_out = dup(1);
    R.saved_err = dup(2);
    int capturing = R.cap_out >= 0 && R.cap_err >= 0 && R.saved_out >= 0 && R.saved_err >= 0 &&
                    dup2(R.cap_out, 1) >= 0 && dup2(R.cap_err, 2) >= 0;
    if (R.ncells > 0) {
        R.cur = 0;
        R.cells[0].ran = 1;
    }
    lua_sethook(L, hook, LUA_MASKLINE, 0);
    int status = docall(L, nargs, 0);
    lua_sethook(L, NULL, 0, 0);
    if (capturing) {
        end_cell();
        fflush(NULL);
    }
    if (R.saved_out >= 0) dup2(R.saved_out, 1);
    if (R.saved_err >= 0) dup2(R.saved_err, 2);
    if (!capturing && R.cur >= 0) scan_images(&R.cells[R.cur].imgs);
    if (status != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        trim_trace(L, m ? m : "(error object is not a string)");
        lua_replace(L, -2);
        if (R.cur >= 0 && R.cur < R.ncells) R.cells[R.cur].failed = 1;
    }
    return status;
}

/* Free the cells, close the capture files, remove the temporary folder: R back to zero. */
static void free_report_state(void) {
    for (int i = 0; i < R.ncells; i++) {
        sb_free(&R.cells[i].out);
        sb_free(&R.cells[i].err);
        sb_free(&R.cells[i].imgs);
    }
    free(R.cells);
    free(R.seen);
    if (R.cap_out >= 0) close(R.cap_out);
    if (R.cap_err >= 0) close(R.cap_err);
    if (R.saved_out >= 0) close(R.saved_out);
    if (R.saved_err >= 0) close(R.saved_err);
    if (R.dir[0]) remove_dir(R.dir);
    memset(&R, 0, sizeof R);
}

int ftl_report_run(lua_State *L, const char *html_path, const char *script, int nargs,
                   ftl_docall_fn docall) {
    const char *shown = script ? script : "stdin";
    int argbase = lua_gettop(L) - nargs + 1;
    const char **args = copy_args(L, argbase, nargs);
    size_t n = 0;
    char *text = read_all(script, &n);
    if (text == NULL || args == NULL) {
        free(text);
        free_args(args, nargs);
        lua_pop(L, nargs);
        lua_pushfstring(L, "cannot open %s", shown);
        return LUA_ERRFILE;
    }
    memset(&R, 0, sizeof R);
    R.cur = -1;
    R.cap_out = R.cap_err = R.saved_out = R.saved_err = -1;
    char *src = loadable_source(text, n);
    if (src == NULL) {
        free(text);
        free_args(args, nargs);
        return luaL_error(L, "not enough memory");
    }
    lua_pushfstring(L, "@%s", shown);
    lua_insert(L, argbase); /* below the arguments: [chunkname args...] */
    int chunk_idx = argbase++;
    R.chunkname = lua_tostring(L, -1);
    split_cells(L, src, n);

    double t0 = monotonic_seconds();
    const char *load_error = NULL, *run_error = NULL;
    int status = luaL_loadbuffer(L, src, n, R.chunkname);
    int err_idx = 0;
    if (status != LUA_OK) {
        load_error = lua_tostring(L, -1);
        err_idx = lua_gettop(L);
    } else {
        char *old_plot_dir = NULL;
        if (open_capture(L, &old_plot_dir) != 0) {
            lua_replace(L, chunk_idx); /* the message, alone above the caller's values */
            lua_settop(L, chunk_idx);
            free(text);
            free(src);
            free_args(args, nargs);
            free_report_state();
            return LUA_ERRFILE;
        }
        lua_insert(L, argbase); /* the chunk, then its arguments */
        status = run_cells(L, nargs, docall);
        if (status != LUA_OK) {
            run_error = lua_tostring(L, -1);
            err_idx = lua_gettop(L);
        }
        close_capture(L, old_plot_dir);
    }
    double secs = monotonic_seconds() - t0;
    int saved = save_html(L, html_path, shown, text, nargs, args, load_error, run_error, secs);
    free_report_state();
    free(text);
    free(src);
    free_args(args, nargs);

    if (saved != 0) { /* the write error is on top; keep it, drop the rest */
        lua_replace(L, chunk_idx);
        lua_settop(L, chunk_idx);
        return LUA_ERRFILE;
    }
    if (status != LUA_OK) { /* leave the script's error on top, as lua_pcall does */
        lua_pushvalue(L, err_idx);
        lua_replace(L, chunk_idx);
        lua_settop(L, chunk_idx);
        return status;
    }
    lua_settop(L, chunk_idx - 1);
    return LUA_OK;
}
