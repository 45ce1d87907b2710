/* display.h: what the kernel shows on iopub besides replies.
 *
 *   - streams: fd 1 and fd 2 go into pipes that an output thread reads and publishes as
 *     `stream` messages while the cell runs, so what C code prints (the learner, libtorch)
 *     is caught as well as Lua's print;
 *   - figures: FTLUA_PLOT_DIR and the global REPORT_DIR name a temporary folder (the rule
 *     `ftlua --report` set up: figures with no output path land there, and ftl_report_publish
 *     copies the ones written elsewhere); each new .png/.svg is sent as display_data as soon
 *     as the library reports it complete, and at the latest when the cell ends;
 *   - the learner's progress: the epoch table as an HTML table that grows (update_display_data)
 *     and the batch bar updated in place, through progress.h's display hooks.
 */
#ifndef FTK_DISPLAY_H
#define FTK_DISPLAY_H

#include <jansson.h>

#include "kernel/wire.h"

/* Starts capturing fds 1 and 2 and the output thread; creates the figure folder. The kernel's
 * own log keeps the original stderr (log_fd). 0, or -1 with err. */
int ftk_display_start(ftk_wire *w, char *err, size_t errlen);
void ftk_display_stop(void);
int ftk_display_log_fd(void);

/* The request whose outputs these are (its header as JSON text, copied); NULL when idle. */
void ftk_display_set_parent(const ftk_msg *parent);
const char *ftk_display_parent(void);

/* Flushes stdio and waits until everything written to fds 1 and 2 so far is published. */
void ftk_display_flush(void);

/* Publishes display_data (or update_display_data) with data (stolen), after flushing streams
 * so outputs keep their order. display_id may be NULL. */
void ftk_display_data(json_t *data, const char *display_id, int update);

/* Sends every figure in the folder that is new or changed since the last call. */
void ftk_display_figures(void);

/* Base64 of n bytes as a jansson string (NULL when out of memory). */
json_t *ftk_base64(const unsigned char *p, size_t n);

/* A new progress table starts with each fit (the display ids must differ per fit). */
void ftk_display_cell_start(void);

#endif
