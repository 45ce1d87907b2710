/* wire.h: the Jupyter messaging protocol (5.3) on the wire: the connection file, the five
 * ZeroMQ sockets, and signed multipart messages
 *
 *     [identities..., "<IDS|MSG>", hmac, header, parent_header, metadata, content, buffers...]
 *
 * JSON through jansson. A message whose signature is wrong or whose JSON is malformed is
 * dropped (logged on the kernel's stderr), never fatal. The iopub socket is shared by the
 * main thread and the output thread, so sends on it take a lock; every other socket belongs to
 * one thread.
 */
#ifndef FTK_WIRE_H
#define FTK_WIRE_H

#include <pthread.h>
#include <stddef.h>

#include <jansson.h>

#include "kernel/hmac.h"

typedef struct {
    void *ctx;
    void *shell, *control, *iopub, *stdin_sock, *hb;
    ftk_hmac mac;
    int has_key; /* an empty key means unsigned messages, as Jupyter allows */
    char session[40];
    unsigned long serial; /* makes message ids unique within the session */
    pthread_mutex_t lock; /* iopub, and serial */
} ftk_wire;

/* A received message. idents are the ZeroMQ routing frames, sent back with the reply. */
typedef struct {
    int n_ids;
    char **ids;
    size_t *id_lens;
    json_t *header, *parent, *metadata, *content;
    const char *type; /* header.msg_type, owned by header */
} ftk_msg;

/* Reads the connection file and binds the sockets. 0, or -1 with err set. */
int ftk_wire_open(ftk_wire *w, const char *conn_file, char *err, size_t errlen);
void ftk_wire_close(ftk_wire *w);

enum { FTK_RECV_OK = 0, FTK_RECV_DROPPED = -1, FTK_RECV_INTR = -2, FTK_RECV_CLOSED = -3 };
/* Receives one message from sock (blocking). FTK_RECV_DROPPED: a bad signature or malformed
 * message was read and discarded. FTK_RECV_INTR: a signal interrupted the wait. */
int ftk_recv(ftk_wire *w, void *sock, ftk_msg *m);
void ftk_msg_free(ftk_msg *m);

/* Sends msg_type with content (stolen; NULL for {}) on sock: to the parent's identities (a
 * reply), or on iopub with the parent as parent_header. parent may be NULL. 0 or -1. */
int ftk_send(ftk_wire *w, void *sock, const ftk_msg *parent, const char *msg_type, json_t *content);
/* Same, with the parent header given as JSON text (the output thread keeps it that way). */
int ftk_send_iopub(ftk_wire *w, const char *parent_header, const char *msg_type, json_t *content);

#endif
