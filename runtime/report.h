/* report.h: `ftlua --report out.html script.lua`: run a script and write a notebook-style page.
 *
 * The script is split into cells at blank lines between complete top-level statements (the text
 * so far compiles, as the REPL decides with its <eof> rule). It still runs as ONE chunk, exactly
 * as `ftlua script.lua` would run it (locals, `...`, upvalues all work); a line hook on the main
 * chunk notices when execution enters the next cell. Per cell, fd 1 and fd 2 are redirected to
 * temporary files (so output printed from C, e.g. the learner's epoch tables, is caught too) and
 * echoed to the real stdout/stderr when the cell ends. FTLUA_PLOT_DIR and the global REPORT_DIR
 * name a temporary folder: ft.plot figures with no term or output write PNGs there, and every
 * .png/.svg that appears (or changes) there during a cell is embedded in that cell as a data URI.
 * The first error stops the run (like a script); the page is still written, atomically.
 *
 * No symbols from main.c: the host passes its ftl_docall (traceback and Ctrl-C handling).
 */
#ifndef FTLUA_REPORT_H
#define FTLUA_REPORT_H

#include <lua.h>

#include "host.h" /* ftl_docall_fn */

/* Run the script (NULL or "-": stdin) with the nargs values on top of the stack as its `...`,
 * and write the page to html_path. Returns a Lua status: LUA_OK, or an error whose message
 * (the script's traceback, or why the page could not be written) is left on the stack. */
int ftl_report_run(lua_State *L, const char *html_path, const char *script, int nargs,
                   ftl_docall_fn docall);

/* A figure the script wrote to a file of its own (ft.plot's `output`, show_batch's `path`,
 * plot_top_losses) also belongs in the page: during a report run (the global REPORT_DIR is
 * set) this copies it there, where the cell picks it up. Outside a report, or for a file
 * already in REPORT_DIR, it does nothing; a copy that fails only leaves the figure out of the
 * page, it never fails the plot. */
void ftl_report_publish(lua_State *L, const char *path);

/* Called with each figure ftl_report_publish sees complete, by its path in REPORT_DIR: the
 * Jupyter kernel sets it to show the figure at once. NULL: nobody listens. */
extern void (*ftl_report_on_figure)(const char *path);

#endif /* FTLUA_REPORT_H */
