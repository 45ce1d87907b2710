/* schedule.c: fastai's schedules (combine_scheds of cosines) and the per-group lr rule.
 * See schedule.h for why the phase arithmetic is float32. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learner/schedule.h"
#include "torch/ft_torch.h"

/* ---------------------------------------------------------------- schedules */

double ftf_sched_cos(double start, double end, double pos) {
    return start + (1 + cos(M_PI * (1 - pos))) * (end - start) / 2;
}

double ftf_train_pos(int epoch, int iter, int n_iter, int n_epoch) {
    double pos = (double)epoch / n_epoch;
    double step = 1. / ((double)n_iter * n_epoch);
    for (int i = 0; i < iter; i++) pos += step;
    return pos;
}

ftf_sched *new_ftl_sched(int n_phases, const double *pcts, const double *start, const double *end,
                         int n_groups) {
    if (n_phases < 1 || n_phases > FTL_SCHED_MAX_PHASES) {
        ft_set_last_error("schedule: %d phases (1 to %d allowed)", n_phases, FTL_SCHED_MAX_PHASES);
        return NULL;
    }
    if (n_groups < 1) {
        ft_set_last_error("schedule: %d parameter groups", n_groups);
        return NULL;
    }
    double sum = 0;
    for (int i = 0; i < n_phases; i++) {
        if (!(pcts[i] >= 0) || !isfinite(pcts[i])) {
            ft_set_last_error("schedule: phase %d covers %g of training (must be in [0, 1])", i + 1,
                              pcts[i]);
            return NULL;
        }
        sum += pcts[i];
    }
    if (fabs(sum - 1) > 1e-9) {
        ft_set_last_error("schedule: the phases cover %g of training (must add up to 1)", sum);
        return NULL;
    }
    ftf_sched *s = calloc(1, sizeof *s);
    size_t n = (size_t)n_phases * n_groups;
    if (s) s->start = malloc(2 * n * sizeof(double));
    if (!s || !s->start) {
        free(s);
        ft_set_last_error("schedule: out of memory");
        return NULL;
    }
    s->end = s->start + n;
    memcpy(s->start, start, n * sizeof(double));
    memcpy(s->end, end, n * sizeof(double));
    s->n_phases = n_phases;
    s->n_groups = n_groups;
    /* fastai: tensor([0] + pcts) is float32; torch's CPU cumsum adds in double and rounds each
     * running sum to float. */
    double acc = 0;
    s->cum[0] = 0;
    for (int i = 0; i < n_phases; i++) {
        acc += (double)(float)pcts[i];
        s->cum[i + 1] = (float)acc;
    }
    return s;
}

void free_ftl_sched(ftf_sched *s) {
    if (!s) return;
    free(s->start);
    free(s);
}

void ftf_sched_at(const ftf_sched *s, double pos, double *out) {
    /* idx = min(max{i: pos >= cum[i]}, n_phases - 1), compared in float32 as torch does for
     * a Python float against a float32 tensor. */
    float p = (float)pos;
    int idx = 0;
    for (int i = 0; i <= s->n_phases; i++)
        if (p >= s->cum[i]) idx = i;
    if (idx > s->n_phases - 1) idx = s->n_phases - 1;
    float actual = (p - s->cum[idx]) / (s->cum[idx + 1] - s->cum[idx]);
    const double *st = s->start + (size_t)idx * s->n_groups,
                 *en = s->end + (size_t)idx * s->n_groups;
    for (int g = 0; g < s->n_groups; g++) out[g] = ftf_sched_cos(st[g], en[g], (double)actual);
}

ftf_sched *new_ftl_combined_cos(double pct, const double *start, const double *middle,
                                const double *end, int n_groups) {
    if (!(pct >= 0 && pct <= 1)) {
        ft_set_last_error("pct_start must be in [0, 1], got %g", pct);
        return NULL;
    }
    if (n_groups < 1) {
        ft_set_last_error("schedule: %d parameter groups", n_groups);
        return NULL;
    }
    double *v = malloc(4 * (size_t)n_groups * sizeof(double));
    if (!v) {
        ft_set_last_error("schedule: out of memory");
        return NULL;
    }
    double *st = v, *en = v + 2 * n_groups;
    for (int g = 0; g < n_groups; g++) {
        st[g] = start[g];
        en[g] = middle[g];
        st[n_groups + g] = middle[g];
        en[n_groups + g] = end[g];
    }
    double pcts[2] = {pct, 1 - pct};
    ftf_sched *s = new_ftl_sched(2, pcts, st, en, n_groups);
    free(v);
    return s;
}

ftf_one_cycle_opts ftf_one_cycle_defaults(void) {
    ftf_one_cycle_opts o = {25., 1e5, 0.25, {0.95, 0.85, 0.95}};
    return o;
}

static int check_positive(const char *what, double v) {
    if (v > 0 && isfinite(v)) return 0;
    ft_set_last_error("%s must be a positive finite number, got %g", what, v);
    return -1;
}

ftf_sched *new_ftl_one_cycle_lr(const double *lr_max, int n_groups, const ftf_one_cycle_opts *o) {
    if (check_positive("div", o->div) || check_positive("div_final", o->div_final)) return NULL;
    if (n_groups < 1) {
        ft_set_last_error("schedule: %d parameter groups", n_groups);
        return NULL;
    }
    double *v = malloc(2 * (size_t)n_groups * sizeof(double));
    if (!v) {
        ft_set_last_error("schedule: out of memory");
        return NULL;
    }
    for (int g = 0; g < n_groups; g++) {
        v[g] = lr_max[g] / o->div;
        v[n_groups + g] = lr_max[g] / o->div_final;
    }
    ftf_sched *s = new_ftl_combined_cos(o->pct_start, v, lr_max, v + n_groups, n_groups);
    free(v);
    return s;
}

ftf_sched *new_ftl_one_cycle_mom(const ftf_one_cycle_opts *o) {
    return new_ftl_combined_cos(o->pct_start, &o->moms[0], &o->moms[1], &o->moms[2], 1);
}

ftf_sched *new_ftl_flat_cos_lr(const double *lr, int n_groups, double div_final, double pct_start) {
    if (check_positive("div_final", div_final)) return NULL;
    if (n_groups < 1) {
        ft_set_last_error("schedule: %d parameter groups", n_groups);
        return NULL;
    }
    double *low = malloc((size_t)n_groups * sizeof(double));
    if (!low) {
        ft_set_last_error("schedule: out of memory");
        return NULL;
    }
    for (int g = 0; g < n_groups; g++) low[g] = lr[g] / div_final;
    ftf_sched *s = new_ftl_combined_cos(pct_start, lr, lr, low, n_groups);
    free(low);
    return s;
}

ftf_sched *new_ftl_sgdr_lr(const double *lr_max, int n_groups, int n_cycles, int cycle_len,
                           int cycle_mult, int *n_epoch) {
    if (n_cycles < 1 || n_cycles > FTL_SCHED_MAX_PHASES || cycle_len < 1 || cycle_mult < 1) {
        ft_set_last_error("fit_sgdr: needs 1 <= n_cycles <= %d, cycle_len >= 1 and cycle_mult >= 1 "
                          "(got %d, %d, %d)",
                          FTL_SCHED_MAX_PHASES, n_cycles, cycle_len, cycle_mult);
        return NULL;
    }
    if (n_groups < 1) {
        ft_set_last_error("schedule: %d parameter groups", n_groups);
        return NULL;
    }
    /* fastai: n_epoch = cycle_len * (cycle_mult**n_cycles - 1) // (cycle_mult - 1), exact ints */
    long long len[FTL_SCHED_MAX_PHASES], total = 0, m = 1;
    for (int i = 0; i < n_cycles; i++) {
        if (m > 1000000000LL / cycle_len) {
            ft_set_last_error("fit_sgdr: too many epochs (%d cycles of %d x %d^i)", n_cycles,
                              cycle_len, cycle_mult);
            return NULL;
        }
        len[i] = cycle_len * m;
        total += len[i];
        m *= cycle_mult;
    }
    if (total > 1000000000LL) {
        ft_set_last_error("fit_sgdr: too many epochs (%lld)", total);
        return NULL;
    }
    double pcts[FTL_SCHED_MAX_PHASES];
    for (int i = 0; i < n_cycles; i++) pcts[i] = (double)len[i] / (double)total;
    size_t n = (size_t)n_cycles * n_groups;
    double *v = calloc(2 * n, sizeof(double)); /* ends are 0 */
    if (!v) {
        ft_set_last_error("schedule: out of memory");
        return NULL;
    }
    for (int i = 0; i < n_cycles; i++)
        for (int g = 0; g < n_groups; g++) v[(size_t)i * n_groups + g] = lr_max[g];
    ftf_sched *s = new_ftl_sched(n_cycles, pcts, v, v + n, n_groups);
    free(v);
    if (s && n_epoch) *n_epoch = (int)total;
    return s;
}

/* ---------------------------------------------------------------- lr per parameter group */

void ftf_even_mults(double start, double stop, int n, double *out) {
    if (n == 1) {
        out[0] = stop;
        return;
    }
    double step = pow(stop / start, 1. / (n - 1));
    for (int i = 0; i < n; i++) out[i] = start * pow(step, (double)i);
}

static int check_lr(double v) {
    if (isnan(v)) {
        ft_set_last_error("lr is NaN");
        return -1;
    }
    if (!(v > 0) || !isfinite(v)) {
        ft_set_last_error("lr must be a positive finite number, got %g", v);
        return -1;
    }
    return 0;
}

int ftf_lr_per_group(const ftf_lr_spec *spec, int n_groups, double *out) {
    if (n_groups < 1) {
        ft_set_last_error("lr: %d parameter groups", n_groups);
        return -1;
    }
    switch (spec->kind) {
    case FTL_LR_NUMBER:
        if (check_lr(spec->hi)) return -1;
        for (int g = 0; g < n_groups; g++) out[g] = spec->hi;
        return 0;
    case FTL_LR_SLICE:
        if (check_lr(spec->hi) || (spec->has_lo && check_lr(spec->lo))) return -1;
        if (spec->has_lo && spec->lo > spec->hi) {
            ft_set_last_error("slice(lo, hi) needs lo <= hi, got slice(%g, %g)", spec->lo,
                              spec->hi);
            return -1;
        }
        if (spec->has_lo) {
            ftf_even_mults(spec->lo, spec->hi, n_groups, out);
        } else {
            for (int g = 0; g < n_groups - 1; g++) out[g] = spec->hi / 10;
            out[n_groups - 1] = spec->hi;
        }
        return 0;
    case FTL_LR_LIST:
        if (spec->n != n_groups) {
            ft_set_last_error("%d learning rates for %d parameter groups (give one per group, "
                              "a number or a slice)",
                              spec->n, n_groups);
            return -1;
        }
        for (int g = 0; g < n_groups; g++) {
            if (check_lr(spec->list[g])) return -1;
            out[g] = spec->list[g];
        }
        return 0;
    }
    ft_set_last_error("lr: unknown kind %d", (int)spec->kind);
    return -1;
}
