/* display.c: streams, figures and the learner's progress on iopub. See display.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/display.h"
#include "learner/progress.h"
#include "report.h"

static ftk_wire *wire;
static int log_fd = 2;
static int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, wake_pipe[2] = {-1, -1};
static pthread_t out_thread;
static int thread_running;
static char figure_dir[256];

/* Shared with the output thread, under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t drained = PTHREAD_COND_INITIALIZER;
static char *parent_header; /* the current request's header, JSON */
static unsigned long flush_asked, flush_done;
static int stopping;
static int reading; /* the output thread holds bytes it has read but not yet published */

int ftk_display_log_fd(void) { return log_fd; }

void ftk_display_set_parent(const ftk_msg *parent) {
    char *s = parent && parent->header ? json_dumps(parent->header, JSON_COMPACT) : NULL;
    pthread_mutex_lock(&lock);
    free(parent_header);
    parent_header = s;
    pthread_mutex_unlock(&lock);
}

/* Only the main thread changes parent_header, so it may read it without the lock. */
const char *ftk_display_parent(void) { return parent_header; }

/* ---------------------------------------------------------------- streams */

/* Length of the longest prefix of p[0, n) that does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const unsigned char *p, size_t n) {
    size_t k = n;
    for (int back = 0; back < 4 && k > 0; back++) {
        unsigned char c = p[k - 1];
        if ((c & 0xC0) != 0x80) { /* a lead byte (or ASCII): is its sequence whole? */
            size_t need = c < 0x80             ? 1
                          : (c & 0xE0) == 0xC0 ? 2
                          : (c & 0xF0) == 0xE0 ? 3
                          : (c & 0xF8) == 0xF0 ? 4
                                               : 1;
            return (n - (k - 1) >= need) ? n : k - 1;
        }
        k--;
    }
    return n;
}

/* A JSON string from bytes that should be UTF-8; invalid bytes become U+FFFD. */
static json_t *text_json(const char *p, size_t n) {
    json_t *j = json_stringn(p, n);
    if (j) return j;
    char *q = malloc(n * 3 + 1);
    if (!q) return NULL;
    size_t m = 0;
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = (s[i + k] & 0xC0) == 0x80;
        if (ok && json_stringn((const char *)s + i, len) == NULL) ok = 0; /* overlong, surrogate */
        if (ok) {
            memcpy(q + m, s + i, len);
            m += len;
            i += len;
        } else {
            memcpy(q + m, "\xef\xbf\xbd", 3);
            m += 3;
            i++;
        }
    }
    j = json_stringn(q, m);
    free(q);
    return j;
}

typedef struct {
    int fd;
    const char *name;
    char held[4]; /* the start of a UTF-8 sequence that the next read completes */
    size_t n_held;
} stream;

static void publish_stream(stream *st, char *buf, size_t n) {
    if (n == 0) return;
    size_t whole = utf8_complete((unsigned char *)buf, n);
    json_t *text = text_json(buf, whole);
    st->n_held = n - whole;
    memcpy(st->held, buf + whole, st->n_held);
    if (!text || whole == 0) {
        json_decref(text);
        return;
    }
    pthread_mutex_lock(&lock);
    char *ph = parent_header ? strdup(parent_header) : NULL;
    pthread_mutex_unlock(&lock);
    ftk_send_iopub(wire, ph, "stream", json_pack("{s:s, s:o}", "name", st->name, "text", text));
    free(ph);
}

/* Reads what fd has now; 0 when nothing was there. */
static int read_stream(stream *st) {
    char buf[65536 + 4];
    memcpy(buf, st->held, st->n_held);
    ssize_t r = read(st->fd, buf + st->n_held, 65536);
    if (r <= 0) return 0;
    publish_stream(st, buf, st->n_held + (size_t)r);
    return 1;
}

static void *output_main(void *arg) {
    (void)arg;
    stream streams[2] = {{out_pipe[0], "stdout", {0}, 0}, {err_pipe[0], "stderr", {0}, 0}};
    for (;;) {
        struct pollfd p[3] = {
            {streams[0].fd, POLLIN, 0}, {streams[1].fd, POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        pthread_mutex_lock(&lock);
        reading = 1;
        pthread_mutex_unlock(&lock);
        for (int i = 0; i < 2; i++)
            if (p[i].revents & (POLLIN | POLLHUP)) read_stream(&streams[i]);
        pthread_mutex_lock(&lock);
        reading = 0;
        pthread_mutex_unlock(&lock);
        if (p[2].revents & POLLIN) {
            char c[64];
            if (read(wake_pipe[0], c, sizeof c) < 0) {}
            pthread_mutex_lock(&lock);
            unsigned long asked = flush_asked;
            int stop = stopping;
            pthread_mutex_unlock(&lock);
            /* everything written before the request is in the pipes: read until empty */
            for (int more = 1; more;) {
                struct pollfd q[2] = {{streams[0].fd, POLLIN, 0}, {streams[1].fd, POLLIN, 0}};
                more = 0;
                if (poll(q, 2, 0) > 0)
                    for (int i = 0; i < 2; i++)
                        if (q[i].revents & POLLIN) more |= read_stream(&streams[i]);
            }
            pthread_mutex_lock(&lock);
            flush_done = asked;
            pthread_cond_broadcast(&drained);
            pthread_mutex_unlock(&lock);
            if (stop) break;
        }
    }
    return NULL;
}

void ftk_display_flush(void) {
    fflush(stdout);
    fflush(stderr);
    if (!thread_running) return;
    pthread_mutex_lock(&lock);
    /* the common case, a cell that printed nothing: the pipes are empty and the thread holds
     * nothing (it marks itself reading before it reads), so there is nothing to wait for */
    int pending_out = 0, pending_err = 0;
    ioctl(out_pipe[0], FIONREAD, &pending_out);
    ioctl(err_pipe[0], FIONREAD, &pending_err);
    if (!reading && !stopping && pending_out == 0 && pending_err == 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    unsigned long want = ++flush_asked;
    pthread_mutex_unlock(&lock);
    if (write(wake_pipe[1], "f", 1) < 0) return;
    pthread_mutex_lock(&lock);
    while (flush_done < want) pthread_cond_wait(&drained, &lock);
    pthread_mutex_unlock(&lock);
}

/* ---------------------------------------------------------------- display_data */

void ftk_display_data(json_t *data, const char *display_id, int update) {
    ftk_display_flush();
    json_t *content = json_pack("{s:o, s:{}}", "data", data, "metadata");
    if (content && display_id)
        json_object_set_new(content, "transient", json_pack("{s:s}", "display_id", display_id));
    ftk_send_iopub(wire, parent_header, update ? "update_display_data" : "display_data", content);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json_t *ftk_base64(const unsigned char *p, size_t n) {
    size_t m = 4 * ((n + 2) / 3);
    char *s = malloc(m + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        s[o++] = b64[v >> 18 & 63];
        s[o++] = b64[v >> 12 & 63];
        s[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        s[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    json_t *j = json_stringn(s, o);
    free(s);
    return j;
}

/* ---------------------------------------------------------------- figures */

typedef struct {
    char name[256];
    long long mtime_ns, size;
} seen_file;

static seen_file *seen;
static size_t n_seen, cap_seen;

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, r;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        r = fread(buf + len, 1, cap - len, f);
        len += r;
    } while (r > 0);
    fclose(f);
    *n = len;
    return buf;
}

static void send_figure(const char *path, int svg) {
    size_t n;
    char *bytes = read_file(path, &n);
    if (!bytes) return;
    json_t *data = json_object();
    if (svg)
        json_object_set_new(data, "image/svg+xml", text_json(bytes, n));
    else
        json_object_set_new(data, "image/png", ftk_base64((unsigned char *)bytes, n));
    const char *base = strrchr(path, '/');
    json_object_set_new(data, "text/plain", json_sprintf("<figure %s>", base ? base + 1 : path));
    free(bytes);
    ftk_display_data(data, NULL, 0);
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const seen_file *)a)->name, ((const seen_file *)b)->name);
}

void ftk_display_figures(void) {
    if (!figure_dir[0]) return;
    DIR *d = opendir(figure_dir);
    if (!d) return;
    seen_file fresh[64];
    size_t n_fresh = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n_fresh < 64) {
        size_t len = strlen(e->d_name);
        int png = len > 4 && strcmp(e->d_name + len - 4, ".png") == 0;
        int svg = len > 4 && strcmp(e->d_name + len - 4, ".svg") == 0;
        if ((!png && !svg) || len >= sizeof fresh[0].name) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", figure_dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
        long long mt = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        size_t k = 0;
        while (k < n_seen && strcmp(seen[k].name, e->d_name) != 0) k++;
        if (k < n_seen && seen[k].mtime_ns == mt && seen[k].size == (long long)st.st_size) continue;
        if (k == n_seen) {
            if (n_seen == cap_seen) {
                size_t cap = cap_seen ? 2 * cap_seen : 32;
                seen_file *ns = realloc(seen, cap * sizeof *ns);
                if (!ns) break;
                seen = ns;
                cap_seen = cap;
            }
            n_seen++;
            snprintf(seen[k].name, sizeof seen[k].name, "%s", e->d_name);
        }
        seen[k].mtime_ns = mt;
        seen[k].size = (long long)st.st_size;
        fresh[n_fresh++] = seen[k];
    }
    closedir(d);
    qsort(fresh, n_fresh, sizeof fresh[0], cmp_name); /* plot-1, plot-2, ... in order */
    for (size_t i = 0; i < n_fresh; i++) {
        char path[600];
        snprintf(path, sizeof path, "%.300s/%.280s", figure_dir, fresh[i].name);
        size_t len = strlen(fresh[i].name);
        send_figure(path, strcmp(fresh[i].name + len - 4, ".svg") == 0);
    }
}

static void on_figure(const char *path) {
    (void)path;
    ftk_display_figures();
}

/* ---------------------------------------------------------------- the learner's progress */

static unsigned long fit_serial;
static char table_id[64], bar_id[64];
static char *table_html, *table_text; /* the rows so far */
static int bar_shown;

static void append(char **s, const char *t) {
    size_t a = *s ? strlen(*s) : 0, b = strlen(t);
    char *n = realloc(*s, a + b + 1);
    if (!n) return;
    memcpy(n + a, t, b + 1);
    *s = n;
}

static void append_escaped(char **s, const char *t) {
    char one[2] = {0, 0};
    for (; *t; t++) {
        if (*t == '<')
            append(s, "&lt;");
        else if (*t == '>')
            append(s, "&gt;");
        else if (*t == '&')
            append(s, "&amp;");
        else {
            one[0] = *t;
            append(s, one);
        }
    }
}

static void send_table(int update) {
    char *html = NULL;
    append(&html, "<table border=\"1\" class=\"dataframe\">\n");
    append(&html, table_html ? table_html : "");
    append(&html, "  </tbody>\n</table>");
    json_t *data = json_pack("{s:s, s:s}", "text/html", html ? html : "", "text/plain",
                             table_text ? table_text : "");
    free(html);
    ftk_display_data(data, table_id, update);
}

static void on_table(const char *line, const char *const *names, const ftf_cell *cells, int k) {
    if (!cells) { /* a new fit: a new table, and its own bar below it */
        fit_serial++;
        snprintf(table_id, sizeof table_id, "ftlua-table-%lu-%lu", (unsigned long)getpid(),
                 fit_serial);
        bar_shown = 0;
        free(table_html);
        free(table_text);
        table_html = table_text = NULL;
        append(&table_html, "  <thead>\n    <tr style=\"text-align: left;\">\n");
        for (int i = 0; i < k; i++) {
            append(&table_html, "      <th>");
            append_escaped(&table_html, names[i]);
            append(&table_html, "</th>\n");
        }
        append(&table_html, "    </tr>\n  </thead>\n  <tbody>\n");
        append(&table_text, line);
        send_table(0);
        return;
    }
    append(&table_html, "    <tr>\n");
    for (int i = 0; i < k; i++) {
        char v[512];
        ftf_cell_text(&cells[i], v, sizeof v);
        append(&table_html, "      <td>");
        append_escaped(&table_html, v);
        append(&table_html, "</td>\n");
    }
    append(&table_html, "    </tr>\n");
    append(&table_text, "\n");
    append(&table_text, line);
    if (table_id[0]) send_table(1);
}

static void on_bar(const ftf_pbar *b, int val, const char *text) {
    if (!bar_shown) {
        snprintf(bar_id, sizeof bar_id, "ftlua-bar-%lu-%lu", (unsigned long)getpid(), ++fit_serial);
    }
    static char last[1024];
    if (text) snprintf(last, sizeof last, "%s", text);
    /* fastprogress's look: a <progress> element, then the numbers after the bar */
    const char *after = strstr(last, "| ");
    const char *bar_end = after ? strstr(after + 2, "| ") : NULL;
    const char *numbers = bar_end ? bar_end + 2 : after ? after + 2 : last;
    char *html = NULL;
    char head[256];
    snprintf(head, sizeof head,
             "<div>%s <progress value=\"%d\" max=\"%d\" style=\"width:300px; "
             "height:20px; vertical-align: middle;\"></progress> ",
             b->prefix, val, b->total > 0 ? b->total : 1);
    append(&html, head);
    append_escaped(&html, numbers);
    append(&html, text ? "</div>" : " (done)</div>");
    json_t *data = json_pack("{s:s, s:s}", "text/html", html ? html : "", "text/plain", last);
    free(html);
    ftk_display_data(data, bar_id, bar_shown);
    bar_shown = 1;
}

static const ftf_progress_hooks hooks = {on_bar, on_table};

void ftk_display_cell_start(void) {
    bar_shown = 0;
    table_id[0] = '\0';
}

/* ---------------------------------------------------------------- start and stop */

static int make_pipe(int p[2]) {
    if (pipe(p) != 0) return -1;
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    return 0;
}

int ftk_display_start(ftk_wire *w, char *err, size_t errlen) {
    wire = w;
    /* figures: the same rule as --report */
    const char *tmp = getenv("TMPDIR");
    snprintf(figure_dir, sizeof figure_dir, "%s/ftlua-kernel-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(figure_dir)) {
        snprintf(err, errlen, "cannot create a folder for figures: %s", strerror(errno));
        figure_dir[0] = '\0';
        return -1;
    }
    setenv("FTLUA_PLOT_DIR", figure_dir, 1);
    ftl_report_on_figure = on_figure;
    ftl_progress_display = &hooks;

    if (make_pipe(out_pipe) || make_pipe(err_pipe) || make_pipe(wake_pipe)) {
        snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
        return -1;
    }
    log_fd = dup(2);
    if (log_fd >= 0) fcntl(log_fd, F_SETFD, FD_CLOEXEC);
    fflush(stdout);
    fflush(stderr);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[1]);
    close(err_pipe[1]);
    setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe would buffer fully: print shows line by line */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) { /* C code that reads stdin gets EOF; io.read asks the front end */
        dup2(devnull, 0);
        close(devnull);
    }
    if (pthread_create(&out_thread, NULL, output_main, NULL) != 0) {
        snprintf(err, errlen, "cannot start the output thread");
        return -1;
    }
    thread_running = 1;
    return 0;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

void ftk_display_stop(void) {
    ftl_progress_display = NULL;
    ftl_report_on_figure = NULL;
    if (thread_running) {
        pthread_mutex_lock(&lock);
        stopping = 1;
        pthread_mutex_unlock(&lock);
        ftk_display_flush();
        pthread_join(out_thread, NULL);
        thread_running = 0;
    }
    if (figure_dir[0]) remove_dir(figure_dir);
    figure_dir[0] = '\0';
}
