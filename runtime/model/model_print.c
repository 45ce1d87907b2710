/* model_print.c: tostring(module) -- PyTorch's module printout, with parameter counts.
 *
 *   ResNet(  -- 11,689,512 params
 *     (conv1): Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)  --
 * 9,408 params (relu): ReLU(inplace=True)
 *     ...
 *   )
 *   11,689,512 params: 11,689,512 trainable, 0 frozen
 *
 * A module's count covers its whole tree; "N frozen" is added when some of it does not
 * require grad. Every index shown is the one a user types (docs/repl.md): the children of a
 * Sequential are [1], [2], ... as m[1] reaches them (their names, and so the state dict's keys,
 * stay torchvision's "0", "1", ...), and Flatten shows its 1-based dims the way
 * nn.Flatten(2, -1) takes them.
 */
#include <stdio.h>
#include <string.h>

#include "model/model.h"

static void count(ftm_module *m, int64_t *total, int64_t *trainable) {
    for (int i = 0; i < 2; i++) {
        ft_tensor *t = m->params[i].t;
        if (!t) continue;
        *total += ft_numel(t);
        if (ft_requires_grad(t)) *trainable += ft_numel(t);
    }
    for (int i = 0; i < m->nchildren; i++) count(m->children[i].m, total, trainable);
}

void ftm_count_params(ftm_module *m, int64_t *total, int64_t *trainable) {
    *total = *trainable = 0;
    count(m, total, trainable);
}

/* 11689512 -> "11,689,512" */
static void commas(char *out, size_t len, int64_t n) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)n);
    size_t nd = strlen(digits), o = 0;
    for (size_t i = 0; i < nd && o + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0) out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static void add_counts(luaL_Buffer *b, ftm_module *m) {
    int64_t total, trainable;
    ftm_count_params(m, &total, &trainable);
    if (total == 0) return;
    char n[40], f[40], line[128];
    commas(n, sizeof n, total);
    if (trainable == total) {
        snprintf(line, sizeof line, "  -- %s params", n);
    } else {
        commas(f, sizeof f, total - trainable);
        snprintf(line, sizeof line, "  -- %s params, %s frozen", n, f);
    }
    luaL_addstring(b, line);
}

/* "3" for a square pair, "(3, 5)" otherwise; always a tuple when tuple is set. */
static void pair(char *out, size_t len, const int64_t p[2], int tuple) {
    if (p[0] == p[1] && !tuple)
        snprintf(out, len, "%lld", (long long)p[0]);
    else
        snprintf(out, len, "(%lld, %lld)", (long long)p[0], (long long)p[1]);
}

/* torch's extra_repr of each layer kind. */
static void extra(char *s, size_t len, const ftm_module *m) {
    char a[48], b[48], c[48];
    s[0] = '\0';
    switch (m->kind) {
    case FTM_CONV2D: {
        pair(a, sizeof a, m->kernel, 1);
        pair(b, sizeof b, m->stride, 1);
        int n = snprintf(s, len, "%lld, %lld, kernel_size=%s, stride=%s", (long long)m->in,
                         (long long)m->out, a, b);
        if (m->padding[0] || m->padding[1]) {
            pair(c, sizeof c, m->padding, 1);
            n += snprintf(s + n, len - (size_t)n, ", padding=%s", c);
        }
        if (m->dilation[0] != 1 || m->dilation[1] != 1) {
            pair(c, sizeof c, m->dilation, 1);
            n += snprintf(s + n, len - (size_t)n, ", dilation=%s", c);
        }
        if (m->groups != 1)
            n += snprintf(s + n, len - (size_t)n, ", groups=%lld", (long long)m->groups);
        if (!m->params[1].t) snprintf(s + n, len - (size_t)n, ", bias=False");
        break;
    }
    case FTM_BATCHNORM:
        snprintf(s, len, "%lld, eps=%g, momentum=%g, affine=True, track_running_stats=True",
                 (long long)m->in, m->eps, m->momentum);
        break;
    case FTM_RELU:
        if (m->inplace) snprintf(s, len, "inplace=True");
        break;
    case FTM_MAXPOOL2D:
        pair(a, sizeof a, m->kernel, 0);
        pair(b, sizeof b, m->stride, 0);
        pair(c, sizeof c, m->padding, 0);
        snprintf(s, len, "kernel_size=%s, stride=%s, padding=%s, dilation=1, ceil_mode=%s", a, b, c,
                 m->ceil_mode ? "True" : "False");
        break;
    case FTM_ADAPTIVE_AVGPOOL2D:
    case FTM_ADAPTIVE_MAXPOOL2D:
        pair(a, sizeof a, m->size, m->size_is_pair);
        snprintf(s, len, "output_size=%s", a);
        break;
    case FTM_FLATTEN: /* not "start_dim=": that reads as PyTorch's 0-based dims */
        snprintf(s, len, "%d, %d", m->start_dim >= 0 ? m->start_dim + 1 : m->start_dim,
                 m->end_dim >= 0 ? m->end_dim + 1 : m->end_dim);
        break;
    case FTM_DROPOUT: snprintf(s, len, "p=%g, inplace=False", m->p); break;
    case FTM_LINEAR:
        snprintf(s, len, "in_features=%lld, out_features=%lld, bias=%s", (long long)m->in,
                 (long long)m->out, m->params[1].t ? "True" : "False");
        break;
    default: break;
    }
}

static void indent(luaL_Buffer *b, int depth) {
    for (int i = 0; i < depth; i++) luaL_addstring(b, "  ");
}

/* A child reached by its position: named by it, "0", "1", ... (0-based, as in torchvision). */
static int positional(const ftm_module *m, int i) {
    char want[16];
    snprintf(want, sizeof want, "%d", i);
    return strcmp(m->children[i].name, want) == 0;
}

static void repr(luaL_Buffer *b, ftm_module *m, int depth) {
    char ex[256];
    extra(ex, sizeof ex, m);
    luaL_addstring(b, m->type);
    luaL_addchar(b, '(');
    if (m->nchildren == 0) {
        luaL_addstring(b, ex);
        luaL_addchar(b, ')');
        add_counts(b, m);
        return;
    }
    add_counts(b, m);
    for (int i = 0; i < m->nchildren; i++) {
        luaL_addchar(b, '\n');
        indent(b, depth + 1);
        char label[32];
        if (positional(m, i)) {
            snprintf(label, sizeof label, "[%d]: ", i + 1);
            luaL_addstring(b, label);
        } else {
            luaL_addchar(b, '(');
            luaL_addstring(b, m->children[i].name);
            luaL_addstring(b, "): ");
        }
        repr(b, m->children[i].m, depth + 1);
    }
    luaL_addchar(b, '\n');
    indent(b, depth);
    luaL_addchar(b, ')');
}

int ftl_module_tostring(lua_State *L, ftm_module *m) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    repr(&b, m, 0);
    int64_t total, trainable;
    ftm_count_params(m, &total, &trainable);
    char t[40], tr[40], fr[40], line[160];
    commas(t, sizeof t, total);
    commas(tr, sizeof tr, trainable);
    commas(fr, sizeof fr, total - trainable);
    snprintf(line, sizeof line, "\n%s params: %s trainable, %s frozen", t, tr, fr);
    luaL_addstring(&b, line);
    luaL_pushresult(&b);
    return 1;
}
