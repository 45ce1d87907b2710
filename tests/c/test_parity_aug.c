/* test_parity_aug.c: the fused augmentation (runtime/data/augment.c) against the real fastai
 * 2.7.12 (../shared/reference/fastai-py) on identical draws, through tests/py/fastai_ref.py
 * aug_item: fastai's own Flip, Warp, Rotate, Zoom (composed by setup_aug_tfms), the crop of
 * RandomResizedCropGPU, Brightness, Contrast and Normalize, on one pets-sample photo.
 *
 * - The coordinate map: for every case, where 25 output pixels sample the source, ftlua's one
 *   composed 3x3 map against fastai's affine matrix, warp and crop (float32 there): 1e-3 px.
 * - The lighting factors: with no affine and no resize, fastai samples at the pixel centres,
 *   so the output must match to float rounding (1e-4).
 * - The output of whole items: fastai resamples twice (the affine at full size, then the crop
 *   to S); ftlua once. The difference is measured and printed (mean and max, normalised units);
 *   the check only catches a wrong step (mean 0.15, as tests/c/test_image.c), and
 *   docs/learner.md records the numbers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/augment.h"
#include "data/image.h"

enum { N = 160, S = 64, NPTS = 25 };

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

typedef struct {
    const char *name;
    ftd_aug_params p;
    int out; /* output size: S, or N for the lighting case (no resize) */
} acase;

int main(void) {
    const char *shared = getenv("FTLUA_SHARED") ? getenv("FTLUA_SHARED") : "../shared";
    const char *root = getenv("FTLUA_ROOT") ? getenv("FTLUA_ROOT") : ".";
    const char *py = getenv("FTLUA_PYTHON") ? getenv("FTLUA_PYTHON") : "/usr/bin/python3";
    char fastai[1024], photo[1024], cmd[4096];
    snprintf(fastai, sizeof fastai, "%s/reference/fastai-py", shared);
    snprintf(photo, sizeof photo, "%s/data/pets-sample/images/Abyssinian_1.jpg", shared);
    snprintf(cmd, sizeof cmd, "PYTHONPATH='%s' '%s' -c 'import fastai.vision.all' >/dev/null 2>&1",
             fastai, py);
    if (access(photo, R_OK) != 0) {
        SKIP("parity_aug", "no ../shared/data/pets-sample (FTLUA_SHARED)");
        return 0;
    }
    if (system(cmd) != 0) {
        SKIP("parity_aug",
             "no python that imports the real fastai in ../shared/reference/fastai-py");
        return 0;
    }

    /* One photo, centre-cropped to N x N (ftlua's own decoder and resize). */
    ftd_image *im = ftd_image_new_from_file(photo, 0, NULL, 0);
    ftd_image *sq = im ? ftd_image_resize(im, N, N, FTL_RESIZE_CROP, 0.5, 0.5) : NULL;
    ftd_image_free(im);
    if (!sq) {
        CHECK("parity_aug_photo_loads", 0);
        return check_exit();
    }

    ftd_aug_params full = ftd_aug_valid_params(NULL, N, N), v;
    acase cases[8];
    int n = 0;
    v = full, v.lighting = 1, v.brightness = 0.583, v.contrast = 1.21;
    cases[n++] = (acase){"lighting_only", v, N};
    v = full, v.lighting = 1, v.brightness = 0.41, v.contrast = 0.83;
    cases[n++] = (acase){"lighting_dark", v, N};
    v = full, v.lighting = 1, v.brightness = 0.5, v.contrast = 1, v.flip = 1, v.rotate = 7.3;
    v.zoom = 1.083, v.zoom_col = 0.12, v.zoom_row = 0.93;
    cases[n++] = (acase){"flip_rotate_zoom", v, S};
    v = full, v.lighting = 1, v.brightness = 0.5, v.contrast = 1, v.warp_x = 0.17, v.warp_y = -0.11;
    cases[n++] = (acase){"warp", v, S};
    v = (ftd_aug_params){.flip = 1,
                         .rotate = -9.1,
                         .zoom = 1.06,
                         .zoom_col = 0.8,
                         .zoom_row = 0.25,
                         .warp_x = -0.19,
                         .warp_y = 0.07,
                         .lighting = 1,
                         .brightness = 0.45,
                         .contrast = 1.15,
                         .crop_x = 13,
                         .crop_y = 7,
                         .crop_w = 140,
                         .crop_h = 140};
    cases[n++] = (acase){"all_with_crop", v, S};
    /* Draws from our RNG with aug_transforms(size, min_scale = 0.75)'s ranges. */
    ftd_aug_rng rng;
    ftd_aug_rng_seed(&rng, 5, 0);
    ftd_aug_params drawn[3];
    ftd_aug_draw(&rng, NULL, 3, N, N, drawn);
    for (int i = 0; i < 3; i++) {
        static const char *names[3] = {"drawn_1", "drawn_2", "drawn_3"};
        cases[n++] = (acase){names[i], drawn[i], S};
    }

    /* Request: the photo, the cases (one output size per run of fastai_ref.py: two runs would
     * import fastai twice, so the lighting cases use the same S through their own request). */
    char src_path[] = "/tmp/ftl_parity_aug_XXXXXX";
    int fd = mkstemp(src_path);
    if (fd < 0 || write(fd, sq->rgb, (size_t)N * N * 3) != (ssize_t)N * N * 3) {
        CHECK("parity_aug_tmpfile", 0);
        return check_exit();
    }
    close(fd);
    int pts[NPTS][2];
    for (int k = 0; k < NPTS; k++)
        pts[k][0] = (k % 5) * (S - 1) / 4, pts[k][1] = (k / 5) * (S - 1) / 4;

    double worst_map = 0;
    for (int pass = 0; pass < 2; pass++) { /* 0: the output size N cases, 1: size S */
        int out = pass ? S : N, idx[8], m = 0;
        for (int i = 0; i < n; i++)
            if (cases[i].out == out) idx[m++] = i;
        char req[] = "/tmp/ftl_parity_req_XXXXXX", txt[] = "/tmp/ftl_parity_txt_XXXXXX",
             f32[] = "/tmp/ftl_parity_f32_XXXXXX";
        close(mkstemp(req)), close(mkstemp(txt)), close(mkstemp(f32));
        FILE *f = fopen(req, "w");
        fprintf(f, "%d %d\n%s\n%d\n", N, out, src_path, m);
        for (int j = 0; j < m; j++) {
            const ftd_aug_params *p = &cases[idx[j]].p;
            fprintf(f, "%d %.17g %.17g %.17g %.17g %.17g %.17g %d %.17g %.17g %d %d %d %d\n",
                    p->flip, p->rotate, p->zoom, p->zoom_col, p->zoom_row, p->warp_x, p->warp_y,
                    p->lighting, p->brightness, p->contrast, p->crop_x, p->crop_y, p->crop_w,
                    p->crop_h);
        }
        fprintf(f, "%d\n", NPTS);
        for (int k = 0; k < NPTS; k++)
            fprintf(f, "%d %d\n", pts[k][0] * (out - 1) / (S - 1), pts[k][1] * (out - 1) / (S - 1));
        fclose(f);
        snprintf(
            cmd, sizeof cmd,
            "PYTHONPATH='%s' '%s' -B -W ignore '%s/tests/py/fastai_ref.py' aug_item '%s' '%s' '%s' 2>&1",
            fastai, py, root, req, txt, f32);
        int rc = system(cmd);
        size_t tl = 0, fl = 0;
        char *t = read_all(txt, &tl), *fo = read_all(f32, &fl);
        unlink(req), unlink(txt), unlink(f32);
        if (rc != 0 || !t || fl != (size_t)m * 3 * out * out * sizeof(float)) {
            printf("# fastai_ref.py aug_item failed (rc %d)\n", rc);
            CHECK("parity_aug_reference_runs", 0);
            free(t), free(fo);
            continue;
        }
        char *s = t;
        float *mine = malloc(sizeof(float) * 3 * out * out);
        for (int j = 0; j < m; j++) {
            acase *c = &cases[idx[j]];
            ftd_aug_plan plan;
            ftd_aug_plan_make(&c->p, N, N, out, NULL, NULL, &plan);
            double map_err = 0;
            for (int k = 0; k < NPTS; k++) {
                double x = pts[k][0] * (out - 1) / (S - 1), y = pts[k][1] * (out - 1) / (S - 1);
                double X = plan.m[0] * x + plan.m[1] * y + plan.m[2],
                       Y = plan.m[3] * x + plan.m[4] * y + plan.m[5];
                double Z = plan.m[6] * x + plan.m[7] * y + plan.m[8];
                double fx = strtod(s, &s), fy = strtod(s, &s);
                double e = fmax(fabs(X / Z - fx), fabs(Y / Z - fy));
                if (e > map_err) map_err = e;
            }
            if (map_err > worst_map) worst_map = map_err;
            ftd_aug_batch(sq->rgb, 1, N, N, &c->p, out, NULL, NULL, mine, 1);
            const float *ref = (const float *)fo + (size_t)j * 3 * out * out;
            double sum = 0, mx = 0;
            for (int q = 0; q < 3 * out * out; q++) {
                double d = fabs((double)mine[q] - ref[q]);
                sum += d;
                if (d > mx) mx = d;
            }
            double mean = sum / (3.0 * out * out);
            printf(
                "# %-16s coordinate map vs fastai: max %.2e px | output vs fastai's two passes: mean %.4f max %.3f "
                "(normalised units)\n",
                c->name, map_err, mean, mx);
            char name[128];
            snprintf(name, sizeof name, "parity_aug_map_%s", c->name);
            CHECK(name, map_err <= 1e-3);
            snprintf(name, sizeof name, "parity_aug_output_%s", c->name);
            if (out == N)
                CHECK(name, mx <= 1e-4); /* no resampling: lighting alone, exact */
            else
                CHECK(name, mean <= 0.15);
        }
        free(mine), free(t), free(fo);
    }
    printf("# worst coordinate difference over every case: %.2e px\n", worst_map);
    unlink(src_path);
    ftd_image_free(sq);
    return check_exit();
}
