/* wire.c: see wire.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include <zmq.h>

#include "kernel/wire.h"

#define DELIM "<IDS|MSG>"

static void *bind_socket(ftk_wire *w, int type, json_t *conn, const char *port_key, char *err,
                         size_t errlen) {
    const char *transport = json_string_value(json_object_get(conn, "transport"));
    const char *ip = json_string_value(json_object_get(conn, "ip"));
    json_t *port = json_object_get(conn, port_key);
    if (!transport) transport = "tcp";
    if (!ip || !json_is_integer(port)) {
        snprintf(err, errlen, "the connection file has no \"ip\" or no integer \"%s\"", port_key);
        return NULL;
    }
    char addr[300];
    if (strcmp(transport, "ipc") == 0)
        snprintf(addr, sizeof addr, "ipc://%s-%lld", ip, (long long)json_integer_value(port));
    else
        snprintf(addr, sizeof addr, "%s://%s:%lld", transport, ip,
                 (long long)json_integer_value(port));
    void *s = zmq_socket(w->ctx, type);
    int linger = 1000;
    if (s) zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (!s || zmq_bind(s, addr) != 0) {
        snprintf(err, errlen, "cannot bind %s (%s): %s", port_key, addr, zmq_strerror(zmq_errno()));
        if (s) zmq_close(s);
        return NULL;
    }
    return s;
}

int ftk_wire_open(ftk_wire *w, const char *conn_file, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    json_error_t je;
    json_t *conn = json_load_file(conn_file, 0, &je);
    if (!conn || !json_is_object(conn)) {
        if (!conn && je.line > 0)
            snprintf(err, errlen, "cannot read the connection file %s: %s (line %d)", conn_file,
                     je.text, je.line);
        else
            snprintf(err, errlen, "cannot read the connection file %s: %s", conn_file,
                     conn ? "not a JSON object" : je.text);
        json_decref(conn);
        return -1;
    }
    const char *scheme = json_string_value(json_object_get(conn, "signature_scheme"));
    if (scheme && *scheme && strcmp(scheme, "hmac-sha256") != 0) {
        snprintf(err, errlen, "signature_scheme \"%s\" is not supported (only hmac-sha256)",
                 scheme);
        json_decref(conn);
        return -1;
    }
    const char *key = json_string_value(json_object_get(conn, "key"));
    w->has_key = key && *key;
    if (w->has_key) ftk_hmac_init(&w->mac, key, strlen(key));
    unsigned char r[8] = {0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        memcpy(r, &tv, sizeof r < sizeof tv ? sizeof r : sizeof tv);
    }
    snprintf(w->session, sizeof w->session, "%02x%02x%02x%02x-%02x%02x-%02x%02x", r[0], r[1], r[2],
             r[3], r[4], r[5], r[6], r[7]);
    w->ctx = zmq_ctx_new();
    int ok = w->ctx != NULL;
    ok = ok && (w->shell = bind_socket(w, ZMQ_ROUTER, conn, "shell_port", err, errlen));
    ok = ok && (w->control = bind_socket(w, ZMQ_ROUTER, conn, "control_port", err, errlen));
    ok = ok && (w->stdin_sock = bind_socket(w, ZMQ_ROUTER, conn, "stdin_port", err, errlen));
    ok = ok && (w->iopub = bind_socket(w, ZMQ_PUB, conn, "iopub_port", err, errlen));
    ok = ok && (w->hb = bind_socket(w, ZMQ_REP, conn, "hb_port", err, errlen));
    json_decref(conn);
    if (!ok) {
        if (!w->ctx) snprintf(err, errlen, "cannot create a ZeroMQ context");
        ftk_wire_close(w);
        return -1;
    }
    return 0;
}

void ftk_wire_close(ftk_wire *w) {
    void **socks[] = {&w->shell, &w->control, &w->stdin_sock, &w->iopub, &w->hb};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
    if (w->ctx) zmq_ctx_term(w->ctx);
    w->ctx = NULL;
}

/* ---------------------------------------------------------------- receiving */

typedef struct {
    zmq_msg_t *v;
    int n, cap;
} frames;

static void frames_free(frames *f) {
    for (int i = 0; i < f->n; i++) zmq_msg_close(&f->v[i]);
    free(f->v);
}

/* All frames of one multipart message. */
static int recv_frames(void *sock, frames *f) {
    memset(f, 0, sizeof *f);
    int more = 1;
    while (more) {
        if (f->n == f->cap) {
            int cap = f->cap ? 2 * f->cap : 8;
            zmq_msg_t *v = realloc(f->v, sizeof *v * (size_t)cap);
            if (!v) {
                frames_free(f);
                return FTK_RECV_DROPPED;
            }
            f->v = v;
            f->cap = cap;
        }
        zmq_msg_init(&f->v[f->n]);
        if (zmq_msg_recv(&f->v[f->n], sock, 0) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&f->v[f->n]);
            if (f->n == 0) {
                frames_free(f);
                return e == EINTR || e == EAGAIN ? FTK_RECV_INTR : FTK_RECV_CLOSED;
            }
            continue; /* the rest of a multipart message arrives atomically; retry */
        }
        f->n++;
        more = zmq_msg_more(&f->v[f->n - 1]);
    }
    return FTK_RECV_OK;
}

static json_t *parse_frame(zmq_msg_t *m) {
    json_t *j = json_loadb(zmq_msg_data(m), zmq_msg_size(m), 0, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void dropped(const char *why) {
    fprintf(stderr, "ftlua kernel: dropped a message: %s\n", why);
    fflush(stderr);
}

int ftk_recv(ftk_wire *w, void *sock, ftk_msg *m) {
    memset(m, 0, sizeof *m);
    frames f;
    int r = recv_frames(sock, &f);
    if (r != FTK_RECV_OK) return r;
    int d = -1;
    for (int i = 0; i < f.n; i++)
        if (zmq_msg_size(&f.v[i]) == sizeof DELIM - 1 &&
            memcmp(zmq_msg_data(&f.v[i]), DELIM, sizeof DELIM - 1) == 0) {
            d = i;
            break;
        }
    if (d < 0 || f.n < d + 6) {
        dropped("not a Jupyter message (no delimiter or too few frames)");
        frames_free(&f);
        return FTK_RECV_DROPPED;
    }
    if (w->has_key) {
        const void *parts[4];
        size_t lens[4];
        for (int i = 0; i < 4; i++) {
            parts[i] = zmq_msg_data(&f.v[d + 2 + i]);
            lens[i] = zmq_msg_size(&f.v[d + 2 + i]);
        }
        char hex[65];
        ftk_hmac_hex(&w->mac, parts, lens, 4, hex);
        if (!ftk_equal_ct(zmq_msg_data(&f.v[d + 1]), zmq_msg_size(&f.v[d + 1]), hex, 64)) {
            dropped("bad signature");
            frames_free(&f);
            return FTK_RECV_DROPPED;
        }
    }
    m->header = parse_frame(&f.v[d + 2]);
    m->parent = parse_frame(&f.v[d + 3]);
    m->metadata = parse_frame(&f.v[d + 4]);
    m->content = parse_frame(&f.v[d + 5]);
    m->type = json_string_value(json_object_get(m->header, "msg_type"));
    if (!m->header || !m->parent || !m->metadata || !m->content || !m->type) {
        dropped("malformed JSON or no msg_type");
        frames_free(&f);
        ftk_msg_free(m);
        return FTK_RECV_DROPPED;
    }
    m->n_ids = d;
    m->ids = calloc((size_t)(d ? d : 1), sizeof *m->ids);
    m->id_lens = calloc((size_t)(d ? d : 1), sizeof *m->id_lens);
    for (int i = 0; m->ids && m->id_lens && i < d; i++) {
        m->id_lens[i] = zmq_msg_size(&f.v[i]);
        m->ids[i] = malloc(m->id_lens[i] + 1);
        if (m->ids[i])
            memcpy(m->ids[i], zmq_msg_data(&f.v[i]), m->id_lens[i]);
        else
            m->id_lens[i] = 0;
    }
    frames_free(&f);
    return FTK_RECV_OK;
}

void ftk_msg_free(ftk_msg *m) {
    for (int i = 0; m->ids && i < m->n_ids; i++) free(m->ids[i]);
    free(m->ids);
    free(m->id_lens);
    json_decref(m->header);
    json_decref(m->parent);
    json_decref(m->metadata);
    json_decref(m->content);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- sending */

static char *new_header(ftk_wire *w, const char *msg_type) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char date[64], stamp[32], id[80];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(date, sizeof date, "%s.%06ldZ", stamp, (long)tv.tv_usec);
    pthread_mutex_lock(&w->lock);
    unsigned long n = ++w->serial;
    pthread_mutex_unlock(&w->lock);
    snprintf(id, sizeof id, "%s_%lu", w->session, n);
    json_t *h =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", id, "session", w->session, "username",
                  "kernel", "date", date, "msg_type", msg_type, "version", "5.3");
    char *s = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    return s;
}

/* Sends [ids..., DELIM, sig, header, parent, metadata, content]. Takes the lock for iopub. */
static int send_parts(ftk_wire *w, void *sock, char **ids, size_t *id_lens, int n_ids,
                      const char *msg_type, const char *parent, json_t *content) {
    char *header = new_header(w, msg_type);
    json_t *c = content ? content : json_object();
    char *body = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    if (!header || !body) {
        free(header);
        free(body);
        return -1;
    }
    const char *meta = "{}";
    const void *parts[4] = {header, parent, meta, body};
    size_t lens[4] = {strlen(header), strlen(parent), strlen(meta), strlen(body)};
    char hex[65] = "";
    if (w->has_key) ftk_hmac_hex(&w->mac, parts, lens, 4, hex);
    int is_iopub = sock == w->iopub;
    if (is_iopub) pthread_mutex_lock(&w->lock);
    int rc = 0;
    for (int i = 0; i < n_ids && rc >= 0; i++) rc = zmq_send(sock, ids[i], id_lens[i], ZMQ_SNDMORE);
    if (rc >= 0) rc = zmq_send(sock, DELIM, sizeof DELIM - 1, ZMQ_SNDMORE);
    if (rc >= 0) rc = zmq_send(sock, hex, strlen(hex), ZMQ_SNDMORE);
    for (int i = 0; i < 4 && rc >= 0; i++)
        rc = zmq_send(sock, parts[i], lens[i], i < 3 ? ZMQ_SNDMORE : 0);
    if (is_iopub) pthread_mutex_unlock(&w->lock);
    free(header);
    free(body);
    return rc < 0 ? -1 : 0;
}

int ftk_send(ftk_wire *w, void *sock, const ftk_msg *parent, const char *msg_type,
             json_t *content) {
    char *ph = parent && parent->header ? json_dumps(parent->header, JSON_COMPACT) : NULL;
    int rc;
    if (sock == w->iopub) {
        char topic[128];
        snprintf(topic, sizeof topic, "kernel.%s.%s", w->session, msg_type);
        char *t = topic;
        size_t tl = strlen(topic);
        rc = send_parts(w, sock, &t, &tl, 1, msg_type, ph ? ph : "{}", content);
    } else {
        rc = send_parts(w, sock, parent ? parent->ids : NULL, parent ? parent->id_lens : NULL,
                        parent ? parent->n_ids : 0, msg_type, ph ? ph : "{}", content);
    }
    free(ph);
    return rc;
}

int ftk_send_iopub(ftk_wire *w, const char *parent_header, const char *msg_type, json_t *content) {
    char topic[128];
    snprintf(topic, sizeof topic, "kernel.%s.%s", w->session, msg_type);
    char *t = topic;
    size_t tl = strlen(topic);
    return send_parts(w, w->iopub, &t, &tl, 1, msg_type, parent_header ? parent_header : "{}",
                      content);
}
