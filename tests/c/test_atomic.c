/* test_atomic.c: runtime/io/atomic.c. The path holds the old file or the new one, whole; a
 * failed write (a file-size limit standing in for a full disk: the real tmpfs case is in
 * tests/audit/crash_writes.sh) leaves the old file and no temp, with an error naming the path
 * and the cause; temps of dead processes are removed at the next write to the folder. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "io/atomic.h"

static char dir[256];

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    buf[*n] = 0;
    return buf;
}

static int is(const char *path, const char *want) {
    size_t n = 0;
    const char *got = slurp(path, &n);
    return got && n == strlen(want) && memcmp(got, want, n) == 0;
}

/* Files in dir whose name follows the temp pattern. */
static int count_temps(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += af_is_temp_name(e->d_name);
    if (d) closedir(d);
    return n;
}

static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void touch(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("orphan", f);
        fclose(f);
    }
}

static int exists(const char *name) {
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/test_atomic.XXXXXX");
    if (!mkdtemp(dir)) {
        printf("FAIL atomic setup: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/out.csv", dir);

    /* write, then replace */
    CHECK("atomic write new", af_write(path, "one\n", 4, err, sizeof err) == 0);
    CHECK("atomic write new content", is(path, "one\n"));
    af_file af;
    CHECK("atomic open", af_open(&af, path, err, sizeof err) == 0);
    CHECK("atomic temp is in the same folder", strncmp(af.tmp, dir, strlen(dir)) == 0);
    {
        const char *slash = strrchr(af.tmp, '/');
        CHECK("atomic temp follows the pattern", slash && af_is_temp_name(slash + 1));
    }
    fputs("two\n", af.f);
    CHECK("atomic old file intact before commit", is(path, "one\n"));
    CHECK("atomic commit", af_commit(&af, err, sizeof err) == 0);
    CHECK("atomic commit content", is(path, "two\n"));
    CHECK("atomic commit leaves no temp", count_temps() == 0);

    /* abort keeps the old file */
    CHECK("atomic open 2", af_open(&af, path, err, sizeof err) == 0);
    fputs("three\n", af.f);
    af_abort(&af);
    af_abort(&af); /* twice is fine */
    CHECK("atomic abort keeps the old file", is(path, "two\n"));
    CHECK("atomic abort leaves no temp", count_temps() == 0);

    /* permission bits of an existing file are kept */
    chmod(path, 0640);
    CHECK("atomic mode write", af_write(path, "four\n", 5, err, sizeof err) == 0);
    struct stat st;
    CHECK("atomic keeps the mode", stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);

    /* a failed write: a file-size limit makes write() fail with EFBIG, like ENOSPC would */
    {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit old, lim;
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 1000;
        setrlimit(RLIMIT_FSIZE, &lim);
        static char big[100000];
        memset(big, 'x', sizeof big);
        err[0] = 0;
        int rc = af_write(path, big, sizeof big, err, sizeof err);
        setrlimit(RLIMIT_FSIZE, &old);
        CHECK("atomic failed write returns -1", rc == -1);
        CHECK("atomic failed write names the file", strstr(err, path) != NULL);
        CHECK("atomic failed write says the cause", strstr(err, strerror(EFBIG)) != NULL);
        printf("# %s\n", err);
        CHECK("atomic failed write keeps the old file", is(path, "four\n"));
        CHECK("atomic failed write leaves no temp", count_temps() == 0);
    }

    /* a path that is a folder */
    {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/sub", dir);
        mkdir(sub, 0755);
        int rc = af_write(sub, "x", 1, err, sizeof err);
        CHECK("atomic refuses to replace a folder", rc == -1 && strstr(err, sub) != NULL);
        CHECK("atomic folder case leaves no temp", count_temps() == 0);
        rmdir(sub);
        rc = af_write("/nonexistent-ftlua-dir/x.csv", "x", 1, err, sizeof err);
        CHECK("atomic missing folder names the file",
              rc == -1 && strstr(err, "/nonexistent-ftlua-dir/x.csv") &&
                  strstr(err, strerror(ENOENT)));
    }

    /* stale temps: a dead pid's are removed at the next write, a live pid's and other hosts'
     * and other names stay */
    {
        char host[64] = "";
        {
            af_file t;
            af_open(&t, path, err, sizeof err);
            /* the host part is between ".ftlua-tmp." and ".<pid>." */
            const char *h = strstr(t.tmp, ".ftlua-tmp.") + strlen(".ftlua-tmp.");
            const char *e = strchr(h, '.');
            snprintf(host, sizeof host, "%.*s", (int)(e - h), h);
            af_abort(&t);
        }
        char dead[256], live[256], other[256], dead_dir[256];
        pid_t d = dead_pid();
        snprintf(dead, sizeof dead, ".model.pth.ftlua-tmp.%s.%ld.aB3xYz", host, (long)d);
        snprintf(live, sizeof live, ".model.pth.ftlua-tmp.%s.%ld.aB3xYz", host, (long)getppid());
        snprintf(other, sizeof other, ".model.pth.ftlua-tmp.otherhost.%ld.aB3xYz", (long)d);
        snprintf(dead_dir, sizeof dead_dir, ".pets.ftlua-tmp.%s.%ld.Qw12Er", host, (long)d);
        touch(dead);
        touch(live);
        touch(other);
        touch("model.pth.tmp.1"); /* not ours */
        char legacy_dead[128], legacy_live[128];
        snprintf(legacy_dead, sizeof legacy_dead, "model.safetensors.tmp.%ld", (long)d);
        snprintf(legacy_live, sizeof legacy_live, "model.safetensors.tmp.%ld", (long)getppid());
        touch(legacy_dead);
        touch(legacy_live);
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, dead_dir);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/%s/inner", dir, dead_dir);
        mkdir(p, 0755);
        snprintf(p, sizeof p, "%s/%s/inner/file", dir, dead_dir);
        FILE *f = fopen(p, "wb");
        if (f) fclose(f);
        CHECK("atomic pattern parses", af_is_temp_name(dead) && af_is_temp_name(other));
        CHECK("atomic pattern rejects others", !af_is_temp_name("model.pth.tmp.1") &&
                                                   !af_is_temp_name(".x.ftlua-tmp.h.12a.abcdef") &&
                                                   !af_is_temp_name(".x.ftlua-tmp..12.abcdef"));
        CHECK("atomic write with orphans", af_write(path, "five\n", 5, err, sizeof err) == 0);
        CHECK("atomic removes a dead pid's temp", !exists(dead));
        CHECK("atomic removes a dead pid's temp folder", !exists(dead_dir));
        CHECK("atomic keeps a live pid's temp", exists(live));
        CHECK("atomic keeps another host's temp", exists(other));
        CHECK("atomic keeps other files", exists("model.pth.tmp.1"));
        CHECK("atomic removes an older ftlua's temp of a dead pid", !exists(legacy_dead));
        CHECK("atomic keeps an older ftlua's temp of a live pid", exists(legacy_live));
        snprintf(p, sizeof p, "%s/%s", dir, legacy_live);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", dir, live);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s", dir, other);
        unlink(p);
        snprintf(p, sizeof p, "%s/model.pth.tmp.1", dir);
        unlink(p);
    }

    /* an external writer: reserve a temp name, write it, checked rename */
    {
        char tmp[FTL_ATOMIC_PATH_MAX + 128], png[512];
        snprintf(png, sizeof png, "%s/plot.png", dir);
        CHECK("atomic temp_name", af_temp_name(png, tmp, sizeof tmp, err, sizeof err) == 0);
        CHECK("atomic temp_name reserves the file", access(tmp, F_OK) == 0);
        CHECK("atomic rename refuses an empty file", af_rename(tmp, png, err, sizeof err) == -1 &&
                                                         strstr(err, "empty") && strstr(err, png));
        CHECK("atomic rename removed the empty temp",
              access(tmp, F_OK) != 0 && access(png, F_OK) != 0);
        af_temp_name(png, tmp, sizeof tmp, err, sizeof err);
        FILE *f = fopen(tmp, "wb");
        fputs("PNG", f);
        fclose(f);
        CHECK("atomic rename", af_rename(tmp, png, err, sizeof err) == 0 && is(png, "PNG"));
        CHECK("atomic rename of a missing temp fails",
              af_rename(tmp, png, err, sizeof err) == -1 && is(png, "PNG"));
        unlink(png);
        char tdir[FTL_ATOMIC_PATH_MAX + 128];
        CHECK("atomic temp_dir", af_temp_dir(png, tdir, sizeof tdir, err, sizeof err) == 0);
        CHECK("atomic temp_dir is a folder", stat(tdir, &st) == 0 && S_ISDIR(st.st_mode));
        rmdir(tdir);
    }
    CHECK("atomic nothing else left", count_temps() == 0);
    unlink(path);
    rmdir(dir);
    return check_exit();
}
