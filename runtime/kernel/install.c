/* install.c: `ftlua --install-kernel [--user | --prefix DIR]`: the kernelspec folder ftlua/
 * with kernel.json (this ftlua's absolute path, `--kernel {connection_file}`) and two logos
 * drawn here (a moon beside a planet, as in Lua's logo, over the torch orange). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/stb_begin.h"
#include <jansson.h>
#define STB_IMAGE_WRITE_STATIC /* a private copy, as data/grid.c has its own */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "base/stb_end.h"
#include <stb/stb_image_write.h>

#include "kernel/kernel.h"
#include "main.h"

static int mkdirs(const char *path) {
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* An antialiased disc's coverage of pixel (x, y). */
static float disc(float x, float y, float cx, float cy, float r) {
    float d = sqrtf((x - cx) * (x - cx) + (y - cy) * (y - cy));
    float a = r - d + 0.5f;
    return a < 0 ? 0 : a > 1 ? 1 : a;
}

static int write_logo(const char *path, int size) {
    uint8_t *px = calloc((size_t)size * size, 4);
    if (!px) return -1;
    float s = (float)size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float fx = x + 0.5f, fy = y + 0.5f;
            float planet = disc(fx, fy, 0.44f * s, 0.56f * s, 0.40f * s);
            float hole = disc(fx, fy, 0.58f * s, 0.42f * s, 0.11f * s); /* the planet's crater */
            float moon = disc(fx, fy, 0.84f * s, 0.16f * s, 0.12f * s);
            float body = planet * (1 - hole);
            uint8_t *p = px + 4 * ((size_t)y * size + x);
            /* navy planet, torch-orange moon */
            float a = body + moon * (1 - body);
            if (a <= 0) continue;
            p[0] = (uint8_t)((0 * body + 238 * moon * (1 - body)) / a);
            p[1] = (uint8_t)((0 * body + 76 * moon * (1 - body)) / a);
            p[2] = (uint8_t)((128 * body + 44 * moon * (1 - body)) / a);
            p[3] = (uint8_t)(255 * a);
        }
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.part", path);
    int ok = stbi_write_png(tmp, size, size, 4, px, size * 4) && rename(tmp, path) == 0;
    if (!ok) remove(tmp);
    free(px);
    return ok ? 0 : -1;
}

static int write_json(const char *path, json_t *j) {
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.part", path);
    int ok = json_dump_file(j, tmp, JSON_INDENT(1)) == 0 && rename(tmp, path) == 0;
    if (!ok) remove(tmp);
    return ok ? 0 : -1;
}

int ftk_install(const char *exe_path, int user, const char *prefix) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0)
        exe[n] = '\0';
    else if (!realpath(exe_path, exe)) {
        fprintf(stderr, "%s: --install-kernel: cannot find this program's path: %s\n", ftl_progname,
                strerror(errno));
        return 1;
    }
    char dir[1024];
    if (prefix)
        snprintf(dir, sizeof dir, "%s/share/jupyter/kernels/ftlua", prefix);
    else if (user) {
        const char *data = getenv("JUPYTER_DATA_DIR"), *home = getenv("HOME");
        if (data && *data)
            snprintf(dir, sizeof dir, "%s/kernels/ftlua", data);
        else if (home && *home)
            snprintf(dir, sizeof dir, "%s/.local/share/jupyter/kernels/ftlua", home);
        else {
            fprintf(stderr, "%s: --install-kernel --user: HOME is not set\n", ftl_progname);
            return 1;
        }
    } else
        snprintf(dir, sizeof dir, "/usr/local/share/jupyter/kernels/ftlua");
    if (mkdirs(dir) != 0) {
        fprintf(stderr, "%s: --install-kernel: cannot create %s: %s%s\n", ftl_progname, dir,
                strerror(errno), errno == EACCES ? " (try --user, or --prefix DIR)" : "");
        return 1;
    }
    json_t *spec = json_pack("{s:[s, s, s], s:s, s:s, s:s, s:{}}", "argv", exe, "--kernel",
                             "{connection_file}", "display_name", "ftlua", "language", "lua",
                             "interrupt_mode", "message", "env");
    char path[1100];
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    int rc = spec ? write_json(path, spec) : -1;
    json_decref(spec);
    const int sizes[2] = {32, 64};
    for (int i = 0; i < 2 && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/logo-%dx%d.png", dir, sizes[i], sizes[i]);
        rc = write_logo(path, sizes[i]);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: --install-kernel: cannot write %s: %s\n", ftl_progname, path,
                strerror(errno));
        return 1;
    }
    printf("installed the ftlua kernel in %s\n", dir);
    return 0;
}
