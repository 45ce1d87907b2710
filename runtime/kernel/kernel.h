/* kernel.h: ftlua as a Jupyter kernel (docs/jupyter.md).
 *
 *   ftlua --kernel CONNECTION_FILE          serve the Jupyter protocol 5.3 until shutdown
 *   ftlua --install-kernel [--user | --prefix DIR]   write the kernelspec (kernel.json, logos)
 *
 * Host code, like repl.c: linked into ./ftlua only (it needs libzmq and jansson).
 * kernel.c: the loop and the shell/control handlers; wire.c: sockets and signed messages;
 * hmac.c: HMAC-SHA256; display.c: streams, figures, progress; session.c: state between cells;
 * install.c: the kernelspec.
 */
#ifndef FTK_KERNEL_H
#define FTK_KERNEL_H

#include <lua.h>

/* Serves the connection file's ports with this state (ft loaded) until a shutdown request.
 * Returns 0, or 1 after printing why it could not start. */
int ftl_kernel_run(lua_State *L, const char *connection_file);

/* Writes the kernelspec for the ftlua at exe_path: user != 0: the user's Jupyter data folder;
 * prefix: PREFIX/share/jupyter/kernels; else /usr/local/share/jupyter/kernels. 0 or 1. */
int ftk_install(const char *exe_path, int user, const char *prefix);

#endif
