/* test_optimizer.c: fastai's Adam (runtime/learner/optimizer.c) against tests/py/learner_ref.py,
 * and fastai's SGD against its formula (test_sgd).
 *
 * Five float32 params in two groups (weights with weight decay, a bias and a BatchNorm-like
 * param without, and one that never gets a grad) take six steps with seeded grads, per-group
 * lrs that change every step and a beta1 that changes every step (as one-cycle does). The
 * reference is a hand-written Python Adam following the spec's order of ops: the params and
 * the state must be bit-identical. A second run with decay on every param is compared with
 * torch.optim.AdamW(betas=(mom, 0.99), eps=1e-5, weight_decay=wd), which rounds differently
 * (sqrt(v)/sqrt(bc2) against sqrt(v/bc2)): float tolerance. Without Python, the checks that
 * need no reference still run: a param without grad is untouched and keeps no state,
 * clear_state keeps the flags, zero_grad, freeze_to, and snapshot/restore bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "learner/optimizer.h"

/* ---------------------------------------------------------------- the Python reference */

#include "learner_ref.h"

/* ---------------------------------------------------------------- the setup */

static uint64_t rng = 42;
static double normal(void) { /* splitmix64 + Box-Muller, rounded to float32 */
    double u[2];
    for (int k = 0; k < 2; k++) {
        uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        u[k] = (((z ^ (z >> 31)) >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]));
}

#define NP     5
#define NSTEPS 6
static const int64_t SHAPES[NP][2] = {{4, 3}, {3, 1}, {5, 1}, {2, 2}, {3, 1}};
static const int NDIM[NP] = {2, 1, 1, 2, 1};
static const int GROUP[NP] = {0, 0, 1, 1, 1};
static const int DO_WD[NP] = {1, 0, 1, 0, 1};
static int numel(int i) { return (int)(SHAPES[i][0] * (NDIM[i] == 2 ? SHAPES[i][1] : 1)); }

static double init[NP][12], grads[NSTEPS][NP][12];
static int has_grad[NSTEPS][NP];
static double hyp[NSTEPS][2][5]; /* lr mom sqr_mom eps wd per group */

static void make_data(int vary) {
    for (int i = 0; i < NP; i++)
        for (int k = 0; k < numel(i); k++) init[i][k] = normal();
    for (int s = 0; s < NSTEPS; s++) {
        for (int i = 0; i < NP; i++) {
            has_grad[s][i] = i != 4 && !(vary && i == 2 && s == 3); /* p5 never, p3 skips step 4 */
            for (int k = 0; k < numel(i); k++) grads[s][i][k] = normal() * (k % 3 == 0 ? 1e-3 : 1);
        }
        double mom = vary ? 0.95 - 0.02 * s : 0.9;
        for (int g = 0; g < 2; g++) {
            double h[5] = {(g ? 3e-3 : 1e-3) * (vary ? 1 + s : 1), mom, 0.99, 1e-5,
                           g && vary ? 0.1 : 0.01};
            memcpy(hyp[s][g], h, sizeof h);
        }
    }
}

static ft_tensor *from_doubles(const double *v, int i) {
    float f[12];
    for (int k = 0; k < numel(i); k++) f[k] = (float)v[k];
    ft_tensor *t = NULL;
    if (ft_from_data(f, FT_FLOAT32, SHAPES[i], NDIM[i], &t) != FT_OK) return NULL;
    return t;
}

static void to_doubles(const ft_tensor *t, double *out) { ft_copy_to_doubles(t, out, ft_numel(t)); }

/* Runs the steps in C with optimizer o (new_ftl_adam or new_ftl_sgd); params[] get the leaf
 * tensors (requires_grad). */
static ftf_adam *run_opt(ftf_adam *o, ft_tensor *params[NP], int all_wd, int nsteps) {
    for (int i = 0; i < NP; i++) {
        params[i] = from_doubles(init[i], i);
        ft_set_requires_grad(params[i], 1);
    }
    ftf_adam_hypers h = ftf_adam_defaults();
    ftf_adam_add_group(o, params, 2, &h);
    ftf_adam_add_group(o, params + 2, 3, &h);
    for (int i = 0; i < NP; i++) o->params[i].do_wd = all_wd || DO_WD[i];
    for (int s = 0; s < nsteps; s++) {
        for (int i = 0; i < NP; i++) {
            if (!has_grad[s][i]) continue;
            ft_tensor *g = from_doubles(grads[s][i], i);
            ft_set_grad(params[i], g);
            ft_free(g);
        }
        for (int k = 0; k < FTL_NHYPERS; k++) {
            double v[2] = {hyp[s][0][k], hyp[s][1][k]};
            ftf_adam_set_hyper(o, (ftf_hyper)k, v);
        }
        if (ftf_adam_step(o) != FT_OK) printf("# step: %s\n", ft_last_error());
        ftf_adam_zero_grad(o, 1);
    }
    return o;
}

static ftf_adam *run_c(ft_tensor *params[NP], int all_wd, int nsteps) {
    return run_opt(new_ftl_adam(), params, all_wd, nsteps);
}

static char *request(const char *impl, int all_wd) {
    char *req = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&req, &len);
    fprintf(m, "{\"impl\": \"%s\", \"params\": [", impl);
    for (int i = 0; i < NP; i++) {
        fprintf(m, "%s{\"shape\": [%lld", i ? ", " : "", (long long)SHAPES[i][0]);
        if (NDIM[i] == 2) fprintf(m, ", %lld", (long long)SHAPES[i][1]);
        fprintf(m, "], \"group\": %d, \"do_wd\": %s, \"data\": [", GROUP[i],
                all_wd || DO_WD[i] ? "true" : "false");
        for (int k = 0; k < numel(i); k++) fprintf(m, "%s%.17g", k ? ", " : "", init[i][k]);
        fputs("]}", m);
    }
    fputs("], \"grads\": [", m);
    for (int s = 0; s < NSTEPS; s++) {
        fputs(s ? ", [" : "[", m);
        for (int i = 0; i < NP; i++) {
            if (i) fputs(", ", m);
            if (!has_grad[s][i]) {
                fputs("null", m);
                continue;
            }
            fputc('[', m);
            for (int k = 0; k < numel(i); k++)
                fprintf(m, "%s%.17g", k ? ", " : "", (double)(float)grads[s][i][k]);
            fputc(']', m);
        }
        fputc(']', m);
    }
    fputs("], \"hypers\": [", m);
    for (int s = 0; s < NSTEPS; s++)
        fprintf(m, "%s[[%.17g, %.17g, %.17g, %.17g, %.17g], [%.17g, %.17g, %.17g, %.17g, %.17g]]",
                s ? ", " : "", hyp[s][0][0], hyp[s][0][1], hyp[s][0][2], hyp[s][0][3], hyp[s][0][4],
                hyp[s][1][0], hyp[s][1][1], hyp[s][1][2], hyp[s][1][3], hyp[s][1][4]);
    fputs("]}\n", m);
    fclose(m);
    return req;
}

/* Compares the C params and state with the reference's output. tol 0: bit for bit. */
static void compare(const char *name, ftf_adam *o, ft_tensor *params[NP], char *out, double tol) {
    char *s = out;
    double worst = 0;
    int mismatch = 0;
    double v[12];
    for (int i = 0; i < NP; i++) {
        to_doubles(params[i], v);
        for (int k = 0; k < numel(i); k++) {
            double want = next_num(&s), d = fabs(v[k] - want);
            if (d > worst) worst = d;
            mismatch += d > tol * fabs(want) + (tol ? 1e-8 : 0);
        }
    }
    int state_ok = 1;
    for (int i = 0; i < NP; i++) {
        ftf_adam_param *q = &o->params[i];
        s = strstr(s, "state");
        if (!s) {
            state_ok = 0;
            break;
        }
        s += 5;
        int64_t step = (int64_t)next_num(&s);
        if (step != q->step) state_ok = 0;
        if (!step) {
            state_ok &= q->grad_avg == NULL;
            continue;
        }
        for (int pass = 0; pass < 2; pass++) {
            to_doubles(pass ? q->sqr_avg : q->grad_avg, v);
            for (int k = 0; k < numel(i); k++) {
                double want = next_num(&s);
                if (fabs(v[k] - want) > tol * fabs(want) + (tol ? 1e-10 : 0)) state_ok = 0;
            }
        }
    }
    printf("# %s: %d param values off, worst abs diff %.3g\n", name, mismatch, worst);
    char nm[128];
    snprintf(nm, sizeof nm, "%s_params", name);
    CHECK(nm, mismatch == 0);
    snprintf(nm, sizeof nm, "%s_state", name);
    CHECK(nm, state_ok);
}

static void free_params(ft_tensor *params[NP]) {
    for (int i = 0; i < NP; i++) ft_free(params[i]);
}

static void test_against_reference(void) {
    if (!have_ref) {
        SKIP("adam_vs_fastai_reference", "no /usr/bin/python3 with torch and numpy");
        SKIP("adam_vs_torch_adamw", "no /usr/bin/python3 with torch and numpy");
        return;
    }
    ft_tensor *params[NP];
    make_data(1);
    ftf_adam *o = run_c(params, 0, NSTEPS);
    char *req = request("fastai", 0), *out = ref_run("adam", req);
    if (out)
        compare("adam_vs_fastai_reference", o, params, out, 0);
    else
        CHECK("adam_vs_fastai_reference", 0);
    free(req);
    free(out);
    free_ftl_adam(o);
    free_params(params);

    make_data(0); /* constant betas, decay on every param: what AdamW does */
    o = run_c(params, 1, NSTEPS);
    req = request("adamw", 1);
    out = ref_run("adam", req);
    if (out)
        compare("adam_vs_torch_adamw", o, params, out, 2e-6);
    else
        CHECK("adam_vs_torch_adamw", 0);
    free(req);
    free(out);
    free_ftl_adam(o);
    free_params(params);
}

/* ---------------------------------------------------------------- behaviour */

static int same_bits(const ft_tensor *a, const ft_tensor *b) {
    int64_t n = ft_numel(a);
    if (n != ft_numel(b)) return 0;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    ft_copy_to_buffer(a, x, sizeof(float) * n);
    ft_copy_to_buffer(b, y, sizeof(float) * n);
    int same = memcmp(x, y, sizeof(float) * n) == 0;
    free(x);
    free(y);
    return same;
}

/* Snapshot after 6 steps, 3 more steps, restore: params and state as at the snapshot. */
static void check_snapshots(ftf_adam *o, ft_tensor **params) {
    ftf_adam_snapshot *snap = NULL;
    ftf_tensor_snapshot *ts = NULL;
    CHECK("adam_snapshot", new_ftl_adam_snapshot(o, &snap) == FT_OK);
    CHECK("tensor_snapshot", new_ftl_tensor_snapshot(params, NP, &ts) == FT_OK);
    ft_tensor *before[NP], *avg_before[NP];
    for (int i = 0; i < NP; i++) {
        ft_clone(params[i], &before[i]);
        avg_before[i] = NULL;
        if (o->params[i].sqr_avg) ft_clone(o->params[i].sqr_avg, &avg_before[i]);
    }
    double lr0 = o->hypers[0].lr;
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 4; i++) {
            ft_tensor *g = from_doubles(grads[s][i], i);
            ft_set_grad(params[i], g);
            ft_free(g);
        }
        double lr[2] = {0.5, 0.5};
        ftf_adam_set_hyper(o, FTL_LR, lr);
        ftf_adam_step(o);
        ftf_adam_zero_grad(o, 1);
    }
    CHECK("steps_changed_params", !same_bits(params[0], before[0]));
    CHECK("tensor_restore", ftf_tensor_snapshot_restore(ts, params, NP) == FT_OK);
    CHECK("adam_restore", ftf_adam_restore(o, snap) == FT_OK);
    int params_same = 1, state_same = 1;
    for (int i = 0; i < NP; i++) {
        params_same &= same_bits(params[i], before[i]);
        if (avg_before[i])
            state_same &= same_bits(o->params[i].sqr_avg, avg_before[i]);
        else
            state_same &= !o->params[i].sqr_avg;
        ft_free(before[i]);
        ft_free(avg_before[i]);
    }
    CHECK("restore_params_bit_identical", params_same);
    CHECK("restore_state_bit_identical",
          state_same && o->params[0].step == NSTEPS && o->params[2].step == NSTEPS - 1);
    CHECK("restore_hypers", o->hypers[0].lr == lr0);
    CHECK("restore_keeps_requires_grad", ft_requires_grad(params[0]));
    free_ftl_tensor_snapshot(ts);
    free_ftl_adam_snapshot(snap);
}

/* clear_state keeps the flags; zero_grad in place (fastai) or to undefined. */
static void check_clear_and_zero_grad(ftf_adam *o, ft_tensor **params) {
    /* clear_state keeps the flags */
    o->params[3].force_train = 1;
    ftf_adam_clear_state(o);
    int cleared = 1;
    for (int i = 0; i < NP; i++)
        cleared &= o->params[i].step == 0 && !o->params[i].grad_avg && !o->params[i].sqr_avg;
    CHECK("clear_state_drops_moments", cleared);
    CHECK("clear_state_keeps_flags",
          o->params[1].do_wd == 0 && o->params[0].do_wd == 1 && o->params[3].force_train == 1);

    /* zero_grad: in place (fastai) or to undefined */
    ft_tensor *g = from_doubles(grads[0][0], 0), *got = NULL;
    ft_set_grad(params[0], g);
    ft_free(g);
    ftf_adam_zero_grad(o, 0);
    ft_grad(params[0], &got);
    double sum = 1;
    if (got) {
        ft_tensor *s = NULL;
        ft_reduce_all(FT_SUM, got, &s);
        ft_item(s, &sum);
        ft_free(s);
    }
    CHECK("zero_grad_in_place", got && sum == 0);
    ft_free(got);
    ftf_adam_zero_grad(o, 1);
    got = NULL;
    ft_grad(params[0], &got);
    CHECK("zero_grad_set_to_none", got == NULL);
}

/* freeze_to, and restore refusing a snapshot of another optimizer. */
static void check_freeze_to(ftf_adam *o, ft_tensor **params) {
    /* freeze_to(-1): group 1 (the last) trains, group 0 is frozen except force_train params */
    o->params[1].force_train = 1;
    int idx = -9;
    ftf_adam_freeze_to(o, -1, &idx);
    CHECK("freeze_to_last", idx == 1 && !ft_requires_grad(params[0]) &&
                                ft_requires_grad(params[1]) && ft_requires_grad(params[2]) &&
                                ft_requires_grad(params[4]));
    ftf_adam_freeze_to(o, 0, &idx);
    CHECK("unfreeze", idx == 0 && ft_requires_grad(params[0]));
    ftf_adam_freeze_to(o, 5, &idx);
    CHECK("freeze_all", idx == 5 && !ft_requires_grad(params[4]) && ft_requires_grad(params[1]) &&
                            ft_requires_grad(params[3]) == o->params[3].force_train);
    ftf_adam_freeze_to(o, 0, NULL);

    ftf_adam_snapshot *bad = NULL;
    new_ftl_adam_snapshot(o, &bad);
    bad->n_params--;
    CHECK("restore_mismatch_error",
          ftf_adam_restore(o, bad) != FT_OK && strstr(ft_last_error(), "snapshot"));
    bad->n_params++;
    free_ftl_adam_snapshot(bad);
}

static void test_behaviour(void) {
    ft_tensor *params[NP];
    make_data(1);
    ftf_adam *o = run_c(params, 0, NSTEPS);
    ft_tensor *p4 = from_doubles(init[4], 4);
    CHECK("no_grad_param_untouched", same_bits(params[4], p4));
    CHECK("no_grad_param_no_state",
          o->params[4].step == 0 && !o->params[4].grad_avg && !o->params[4].sqr_avg);
    CHECK("skipped_step_not_counted",
          o->params[2].step == NSTEPS - 1 && o->params[0].step == NSTEPS);
    ft_free(p4);

    check_snapshots(o, params);
    check_clear_and_zero_grad(o, params);
    check_freeze_to(o, params);
    free_ftl_adam(o);
    free_params(params);
    CHECK("hyper_names",
          ftf_hyper_from_name("sqr_mom") == FTL_SQR_MOM && ftf_hyper_from_name("x") == -1);
}

/* fastai's SGD against its formula in doubles (the Lua parity test checks it against fastai
 * itself): with and without momentum, decoupled or l2 decay, a param without grad. */
static void test_sgd(void) {
    for (int momentum = 0; momentum < 2; momentum++)
        for (int l2 = 0; l2 < 2; l2++) {
            ft_tensor *params[NP];
            make_data(1);
            ftf_adam *o = run_opt(new_ftl_sgd(momentum, l2), params, 0, NSTEPS);
            double p[NP][12], buf[NP][12] = {{0}}, got[12], worst = 0;
            memcpy(p, init, sizeof p);
            for (int s = 0; s < NSTEPS; s++)
                for (int i = 0; i < NP; i++) {
                    if (!has_grad[s][i]) continue;
                    const double *h = hyp[s][GROUP[i]]; /* lr mom sqr_mom eps wd */
                    for (int k = 0; k < numel(i); k++) {
                        double g = (float)grads[s][i][k];
                        if (DO_WD[i] && l2) g += h[4] * p[i][k];
                        if (DO_WD[i] && !l2) p[i][k] *= 1 - h[0] * h[4];
                        if (momentum) g = buf[i][k] = h[1] * buf[i][k] + g;
                        p[i][k] -= h[0] * g;
                    }
                }
            for (int i = 0; i < NP; i++) {
                to_doubles(params[i], got);
                for (int k = 0; k < numel(i); k++) worst = fmax(worst, fabs(got[k] - p[i][k]));
            }
            char nm[64];
            snprintf(nm, sizeof nm, "sgd_mom%d_%s_vs_formula", momentum, l2 ? "l2" : "decoupled");
            if (worst > 1e-5) printf("# %s: max |diff| %g\n", nm, worst);
            CHECK(nm, worst <= 1e-5);
            int state_ok = o->kind == FTL_OPT_SGD && o->params[4].grad_avg == NULL;
            for (int i = 0; i < NP; i++)
                state_ok &= o->params[i].step == 0 && !o->params[i].sqr_avg;
            state_ok &= momentum ? o->params[0].grad_avg != NULL : o->params[0].grad_avg == NULL;
            snprintf(nm, sizeof nm, "sgd_mom%d_%s_state", momentum, l2 ? "l2" : "decoupled");
            CHECK(nm, state_ok);
            if (momentum && !l2) { /* snapshot/restore keeps grad_avg bit for bit */
                ftf_adam_snapshot *snap = NULL;
                ft_tensor *avg = NULL;
                ft_clone(o->params[0].grad_avg, &avg);
                new_ftl_adam_snapshot(o, &snap);
                ftf_adam_clear_state(o);
                CHECK("sgd_restore", ftf_adam_restore(o, snap) == FT_OK && o->params[0].grad_avg &&
                                         same_bits(o->params[0].grad_avg, avg));
                ft_free(avg);
                free_ftl_adam_snapshot(snap);
            }
            free_ftl_adam(o);
            free_params(params);
        }
    ftf_adam_hypers d = ftf_sgd_defaults();
    CHECK("sgd_defaults", d.mom == 0 && d.wd == 0 && d.lr == 1e-3 &&
                              !strcmp(ftf_opt_kind_name(FTL_OPT_SGD), "SGD"));
}

int main(void) {
    ref_init();
    if (!have_ref) printf("# no reference: %s with torch and numpy, or %s, missing\n", py, script);
    test_behaviour();
    test_sgd();
    test_against_reference();
    return check_exit();
}
