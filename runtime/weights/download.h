/* download.h: find pretrained weights in PyTorch's cache, or fetch them with curl.
 * Plain C (POSIX): no Lua, no libtorch. Every function returns 0, or -1 with a one-line
 * message in err. See docs/weights.md for the rules. */
#ifndef FTLUA_DOWNLOAD_H
#define FTLUA_DOWNLOAD_H

#include <stddef.h>

/* torch.hub's checkpoint folder: $TORCH_HOME/hub/checkpoints, else
 * $XDG_CACHE_HOME/torch/hub/checkpoints, else $HOME/.cache/torch/hub/checkpoints. */
int weights_cache_dir(char *out, size_t outlen, char *err, size_t errlen);

/* mkdir -p dir (mode 0755, less the umask). */
int weights_mkdirs(const char *dir, char *err, size_t errlen);

/* The hash prefix torch.hub reads from a file name: the hex digits of the first "-<hex>."
 * (the regex -([a-f0-9]*)\.). Copies it to out (at most 64 digits) and returns 1, or returns 0
 * when the name has none. */
int weights_name_hash(const char *file, char out[65]);

/* The last path component of an http(s) URL, without query or fragment ("" when none). */
int weights_url_file(const char *url, char *out, size_t outlen, char *err, size_t errlen);

/* Download url into dir/file atomically: curl writes a temporary file in dir, its sha256 must
 * start with sha_prefix (lowercase hex; NULL or "" skips the check), then it is fsync'd and
 * renamed into place. On any failure the temporary file is removed. progress != 0 shows curl's
 * progress bar on stderr. */
int weights_download(const char *url, const char *dir, const char *file, const char *sha_prefix,
                     int progress, char *err, size_t errlen);

/* "~" and "~/x" expanded with $HOME (else the passwd entry). Returns 0, or -1 when too long. */
int weights_expand_home(const char *in, char *out, size_t outlen);

/* Download url to path, resumably: curl writes path.part, which is kept when the transfer is
 * cut (the next call goes on from there with a Range request, curl's --continue-at -). A server
 * that cannot resume, or a part that does not fit, makes it start again from nothing. The part
 * is retried while it grows; when complete it is fsync'd and renamed to path. No checksum.
 * progress != 0 shows curl's progress bar on stderr. The message in err starts "cannot download
 * <url> (<curl's reason>)". */
int weights_download_resume(const char *url, const char *path, int progress, char *err,
                            size_t errlen);

#endif
