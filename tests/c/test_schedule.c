/* test_schedule.c: fastai's schedules (runtime/learner/schedule.c) against tests/py/learner_ref.py.
 *
 * For several fits (n epochs x m batches, 1 or 3 groups, every kind of lr), the C code gives
 * the lr of each group and the mom at every batch. The reference computes the same from the
 * spec's formulas in Python, the way fastai does (float32 cumulative pcts, pct_train kept as a
 * running sum): they must agree to 1e-9 relative (in practice bit for bit). The comment lines
 * also show how far the same formulas in plain doubles are (about 1e-7 to 1e-5 relative, and a
 * whole batch at one of fit_sgdr's restarts: see docs/learner.md). Known values and the lr
 * errors run without Python. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "learner/schedule.h"
#include "torch/ft_torch.h"

/* ---------------------------------------------------------------- the Python reference */

#include "learner_ref.h"

static void json_num(FILE *m, double v) {
    if (isnan(v))
        fputs("NaN", m);
    else
        fprintf(m, "%.17g", v);
}

/* ---------------------------------------------------------------- the cases */

typedef struct {
    const char *name, *kind; /* one_cycle, flat_cos, sgdr */
    int n_epoch, n_iter, n_groups;
    ftf_lr_spec lr;
    double list[3];
    double div, div_final, pct_start, moms[3]; /* 0: the default */
    int n_cycles, cycle_len, cycle_mult;
} sched_case;

#define SLICE(a, b)                                                                                \
    { .kind = FTL_LR_SLICE, .has_lo = 1, .lo = a, .hi = b }
#define SLICE_HI(b)                                                                                \
    { .kind = FTL_LR_SLICE, .hi = b }
#define NUMBER(v)                                                                                  \
    { .kind = FTL_LR_NUMBER, .hi = v }
static sched_case cases[] = {
    {"one_cycle_slice_3x7", "one_cycle", 3, 7, 3, SLICE(1e-6, 1e-4), {0}, .div = 0},
    {"fine_tune_frozen_1x100", "one_cycle", 1, 100, 3, SLICE_HI(2e-3), {0}, .pct_start = 0.99},
    {"fine_tune_unfrozen_2x13",
     "one_cycle",
     2,
     13,
     3,
     SLICE(1e-5, 1e-3),
     {0},
     .div = 5,
     .pct_start = 0.3},
    {"one_cycle_list_5x4",
     "one_cycle",
     5,
     4,
     3,
     {.kind = FTL_LR_LIST, .n = 3},
     {1e-3, 3e-3, 1e-2},
     .div_final = 1e4,
     .moms = {0.9, 0.8, 0.9}},
    {"one_cycle_pets_4x92", "one_cycle", 4, 92, 1, NUMBER(3e-3), {0}, .div = 0},
    {"one_cycle_pct0_2x5", "one_cycle", 2, 5, 3, NUMBER(1e-2), {0}, .pct_start = -1},
    {"one_cycle_pct1_2x5", "one_cycle", 2, 5, 3, NUMBER(1e-2), {0}, .pct_start = 1},
    {"one_cycle_3x10_pct03", "one_cycle", 3, 10, 3, SLICE(1e-4, 1e-2), {0}, .pct_start = 0.3},
    {"flat_cos_3x10", "flat_cos", 3, 10, 3, SLICE(1e-4, 1e-2), {0}, .div = 0},
    {"sgdr_3cycles_x6",
     "sgdr",
     0,
     6,
     3,
     SLICE_HI(1e-2),
     {0},
     .n_cycles = 3,
     .cycle_len = 1,
     .cycle_mult = 2},
    {"sgdr_2cycles_len2_mult3",
     "sgdr",
     0,
     5,
     1,
     NUMBER(1e-3),
     {0},
     .n_cycles = 2,
     .cycle_len = 2,
     .cycle_mult = 3},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

/* Fills lrs [batch][group] and moms [batch] (NaN when not scheduled); returns the batches. */
static int run_case(sched_case *c, double **lrs_out, double **moms_out) {
    if (c->lr.kind == FTL_LR_LIST) c->lr.list = c->list;
    double lr[3];
    if (ftf_lr_per_group(&c->lr, c->n_groups, lr)) {
        printf("# %s: %s\n", c->name, ft_last_error());
        return -1;
    }
    ftf_one_cycle_opts o = ftf_one_cycle_defaults();
    if (c->div) o.div = c->div;
    if (c->div_final) o.div_final = c->div_final;
    if (c->pct_start) o.pct_start = c->pct_start < 0 ? 0 : c->pct_start;
    if (c->moms[0]) memcpy(o.moms, c->moms, sizeof o.moms);
    ftf_sched *ls = NULL, *ms = NULL;
    int n_epoch = c->n_epoch;
    if (!strcmp(c->kind, "one_cycle")) {
        ls = new_ftl_one_cycle_lr(lr, c->n_groups, &o);
        ms = new_ftl_one_cycle_mom(&o);
    } else if (!strcmp(c->kind, "flat_cos")) {
        ls = new_ftl_flat_cos_lr(lr, c->n_groups, c->div_final ? c->div_final : 1e5,
                                 c->pct_start ? c->pct_start : 0.75);
    } else {
        ls = new_ftl_sgdr_lr(lr, c->n_groups, c->n_cycles, c->cycle_len, c->cycle_mult, &n_epoch);
        c->n_epoch = n_epoch;
    }
    if (!ls) {
        printf("# %s: %s\n", c->name, ft_last_error());
        return -1;
    }
    int nb = n_epoch * c->n_iter;
    double *lrs = malloc(sizeof(double) * nb * c->n_groups), *moms = malloc(sizeof(double) * nb);
    for (int e = 0, b = 0; e < n_epoch; e++)
        for (int it = 0; it < c->n_iter; it++, b++) {
            double pos = ftf_train_pos(e, it, c->n_iter, n_epoch);
            ftf_sched_at(ls, pos, lrs + (size_t)b * c->n_groups);
            moms[b] = NAN;
            if (ms) ftf_sched_at(ms, pos, &moms[b]);
        }
    free_ftl_sched(ls);
    free_ftl_sched(ms);
    *lrs_out = lrs;
    *moms_out = moms;
    return nb;
}

static void write_case_json(FILE *m, const sched_case *c) {
    fprintf(m, "{\"kind\": \"%s\", \"n_epoch\": %d, \"n_iter\": %d, \"n_groups\": %d, \"lr\": ",
            c->kind, c->n_epoch, c->n_iter, c->n_groups);
    if (c->lr.kind == FTL_LR_NUMBER)
        json_num(m, c->lr.hi);
    else if (c->lr.kind == FTL_LR_LIST)
        fprintf(m, "[%.17g, %.17g, %.17g]", c->list[0], c->list[1], c->list[2]);
    else if (c->lr.has_lo)
        fprintf(m, "{\"slice\": [%.17g, %.17g]}", c->lr.lo, c->lr.hi);
    else
        fprintf(m, "{\"slice\": [null, %.17g]}", c->lr.hi);
    if (c->div) fprintf(m, ", \"div\": %.17g", c->div);
    if (c->div_final) fprintf(m, ", \"div_final\": %.17g", c->div_final);
    if (c->pct_start) fprintf(m, ", \"pct_start\": %.17g", c->pct_start < 0 ? 0 : c->pct_start);
    if (c->moms[0])
        fprintf(m, ", \"moms\": [%.17g, %.17g, %.17g]", c->moms[0], c->moms[1], c->moms[2]);
    if (c->n_cycles)
        fprintf(m, ", \"n_cycles\": %d, \"cycle_len\": %d, \"cycle_mult\": %d", c->n_cycles,
                c->cycle_len, c->cycle_mult);
    fputs("}", m);
}

static double rel(double a, double b) {
    if (isnan(a) && isnan(b)) return 0;
    return fabs(a - b) / (fabs(b) > 0 ? fabs(b) : 1);
}

static void test_against_reference(void) {
    double *lrs[NCASES], *moms[NCASES];
    int nb[NCASES];
    for (int i = 0; i < NCASES; i++) nb[i] = run_case(&cases[i], &lrs[i], &moms[i]);
    char *req = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&req, &len);
    fputs("{\"cases\": [", m);
    for (int i = 0; i < NCASES; i++) {
        if (i) fputs(", ", m);
        write_case_json(m, &cases[i]);
    }
    fputs("]}\n", m);
    fclose(m);
    char *out = have_ref ? ref_run("sched", req) : NULL;
    free(req);
    char *s = out;
    for (int i = 0; i < NCASES; i++) {
        char name[128];
        snprintf(name, sizeof name, "sched_%s", cases[i].name);
        if (nb[i] < 0) {
            CHECK(name, 0);
            continue;
        }
        if (!out) {
            SKIP(name, "no /usr/bin/python3 with torch and numpy");
            free(lrs[i]);
            free(moms[i]);
            continue;
        }
        int g = cases[i].n_groups;
        double worst_f = 0, worst_d = 0;
        int exact = 0, total = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int b = 0; b < nb[i]; b++)
                for (int k = 0; k <= g; k++) {
                    double want = next_num(&s),
                           got = k < g ? lrs[i][(size_t)b * g + k] : moms[i][b];
                    double d = rel(got, want);
                    if (pass == 0) {
                        if (d > worst_f) worst_f = d;
                        exact += got == want || (isnan(got) && isnan(want));
                        total++;
                    } else if (d > worst_d) {
                        worst_d = d;
                    }
                }
        printf("# %s: %d batches x %d groups, %d/%d values bit-identical to the reference, "
               "worst rel %.3g (plain doubles: %.3g)\n",
               cases[i].name, nb[i], g, exact, total, worst_f, worst_d);
        CHECK(name, worst_f <= 1e-9);
        free(lrs[i]);
        free(moms[i]);
    }
    free(out);
}

/* ---------------------------------------------------------------- known values, errors */

static void test_known_values(void) {
    double out[3];
    ftf_lr_spec sl = {FTL_LR_SLICE, 1, 1e-6, 1e-4, NULL, 0};
    CHECK("lr_slice_lo_hi", ftf_lr_per_group(&sl, 3, out) == 0 && fabs(out[0] - 1e-6) < 1e-18 &&
                                fabs(out[1] - 1e-5) < 1e-17 && fabs(out[2] - 1e-4) < 1e-16);
    ftf_lr_spec sh = {FTL_LR_SLICE, 0, 0, 2e-3, NULL, 0};
    CHECK("lr_slice_hi", ftf_lr_per_group(&sh, 3, out) == 0 && out[0] == 2e-3 / 10 &&
                             out[1] == 2e-3 / 10 && out[2] == 2e-3);
    ftf_lr_spec num = {FTL_LR_NUMBER, 0, 0, 3e-3, NULL, 0};
    CHECK("lr_number", ftf_lr_per_group(&num, 3, out) == 0 && out[0] == 3e-3 && out[1] == 3e-3 &&
                           out[2] == 3e-3);
    CHECK("lr_slice_one_group", ftf_lr_per_group(&sl, 1, out) == 0 && out[0] == 1e-4);

    /* one cycle over 4 x 7 batches: batch 0 is lr_max/div and mom 0.95; batch 7 (pos 0.25)
     * is the peak lr_max and the low mom 0.85, exactly; the last batch is at pos 27/28. */
    double lr_max = 1e-2, v, mom;
    ftf_one_cycle_opts o = ftf_one_cycle_defaults();
    ftf_sched *ls = new_ftl_one_cycle_lr(&lr_max, 1, &o), *ms = new_ftl_one_cycle_mom(&o);
    ftf_sched_at(ls, ftf_train_pos(0, 0, 7, 4), &v);
    ftf_sched_at(ms, ftf_train_pos(0, 0, 7, 4), &mom);
    CHECK("one_cycle_first_batch", v == lr_max / 25 && mom == 0.95);
    ftf_sched_at(ls, ftf_train_pos(1, 0, 7, 4), &v);
    ftf_sched_at(ms, ftf_train_pos(1, 0, 7, 4), &mom);
    CHECK("one_cycle_peak_at_pct_start", v == lr_max && mom == 0.85);
    ftf_sched_at(ls, ftf_train_pos(3, 6, 7, 4), &v);
    CHECK_CLOSE("one_cycle_last_batch", v,
                ftf_sched_cos(lr_max, lr_max / 1e5, (27. / 28 - 0.25) / 0.75), 1e-6);
    CHECK("train_pos_last", fabs(ftf_train_pos(3, 6, 7, 4) - 27. / 28) < 1e-15);
    free_ftl_sched(ls);
    free_ftl_sched(ms);
    CHECK("sched_cos_ends", ftf_sched_cos(1, 3, 0) == 1 && ftf_sched_cos(1, 3, 1) == 3 &&
                                ftf_sched_cos(1, 3, 0.5) == 2);

    int n_epoch = 0;
    ls = new_ftl_sgdr_lr(&lr_max, 1, 3, 1, 2, &n_epoch);
    CHECK("sgdr_n_epoch", ls && n_epoch == 7);
    free_ftl_sched(ls);
    ls = new_ftl_sgdr_lr(&lr_max, 1, 3, 2, 1, &n_epoch);
    CHECK("sgdr_cycle_mult_1", ls && n_epoch == 6);
    free_ftl_sched(ls);
}

static int lr_error(ftf_lr_spec spec, int n_groups, const char *want) {
    double out[8];
    if (ftf_lr_per_group(&spec, n_groups, out) == 0) return 0;
    if (!strstr(ft_last_error(), want)) {
        printf("# error '%s' does not mention '%s'\n", ft_last_error(), want);
        return 0;
    }
    return 1;
}

static void test_errors(void) {
    double two[2] = {1e-3, 1e-2}, bad[3] = {1e-3, -1, 1e-2};
    CHECK("lr_error_negative",
          lr_error((ftf_lr_spec){FTL_LR_NUMBER, 0, 0, -1e-3, NULL, 0}, 3, "positive"));
    CHECK("lr_error_zero", lr_error((ftf_lr_spec){FTL_LR_NUMBER, 0, 0, 0, NULL, 0}, 3, "positive"));
    CHECK("lr_error_nan", lr_error((ftf_lr_spec){FTL_LR_NUMBER, 0, 0, NAN, NULL, 0}, 3, "NaN"));
    CHECK("lr_error_inf",
          lr_error((ftf_lr_spec){FTL_LR_NUMBER, 0, 0, INFINITY, NULL, 0}, 3, "finite"));
    CHECK("lr_error_slice_lo_gt_hi",
          lr_error((ftf_lr_spec){FTL_LR_SLICE, 1, 1e-2, 1e-3, NULL, 0}, 3, "lo <= hi"));
    CHECK("lr_error_slice_lo_zero",
          lr_error((ftf_lr_spec){FTL_LR_SLICE, 1, 0, 1e-3, NULL, 0}, 3, "positive"));
    CHECK("lr_error_slice_nan",
          lr_error((ftf_lr_spec){FTL_LR_SLICE, 0, 0, NAN, NULL, 0}, 3, "NaN"));
    CHECK("lr_error_list_length", lr_error((ftf_lr_spec){FTL_LR_LIST, 0, 0, 0, two, 2}, 3,
                                           "2 learning rates for 3 parameter groups"));
    CHECK("lr_error_list_value",
          lr_error((ftf_lr_spec){FTL_LR_LIST, 0, 0, 0, bad, 3}, 3, "got -1"));
    double lr = 1e-3;
    ftf_one_cycle_opts o = ftf_one_cycle_defaults();
    o.pct_start = 1.5;
    ftf_sched *s = new_ftl_one_cycle_lr(&lr, 1, &o);
    CHECK("sched_error_pct_start", !s && strstr(ft_last_error(), "pct_start"));
    free_ftl_sched(s);
    double pcts[2] = {0.5, 0.6}, st[2] = {1, 2}, en[2] = {2, 3};
    s = new_ftl_sched(2, pcts, st, en, 1);
    CHECK("sched_error_pcts_sum", !s && strstr(ft_last_error(), "add up to 1"));
    free_ftl_sched(s);
}

int main(void) {
    ref_init();
    if (!have_ref) printf("# no reference: %s with torch and numpy, or %s, missing\n", py, script);
    test_known_values();
    test_errors();
    test_against_reference();
    return check_exit();
}
