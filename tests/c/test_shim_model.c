/* test_shim_model.c: the shim calls added for runtime/model (ft_convert_, autocast), and the
 * model's C core (model/module.h) used from plain C, with no Lua state and no Lua header.
 *
 * References: known values and strides, and for autocast the definition of the cast policy
 * (a linear under bf16 autocast equals the linear of bf16-cast inputs, computed by hand); the
 * core's forward is compared with the same layers called through the shim directly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/module.h" /* C only: no lua.h comes with it */
#include "torch/ft_torch.h"

#define OK(call) must((call), #call, __LINE__)
static void must(ft_status s, const char *expr, int line) {
    if (s == FT_OK) return;
    printf("FAIL setup: line %d: %s: %s\n", line, expr, ft_last_error());
    exit(1);
}

static ft_tensor *ramp(const int64_t *shape, int nd, ft_dtype dtype) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    ft_tensor *a, *t;
    OK(ft_arange(0, (double)n, 1, FT_FLOAT32, FT_CPU, &a));
    OK(ft_binary_scalar(FT_MUL, a, 0.37, &t)); /* 0, .37, .74, ...: not integers */
    ft_free(a);
    OK(ft_reshape(t, shape, nd, &a));
    ft_free(t);
    OK(ft_to(a, dtype, FT_CPU, &t));
    ft_free(a);
    return t;
}

static int equal(const ft_tensor *a, const ft_tensor *b) {
    int r = 0;
    OK(ft_equal(a, b, &r));
    return r;
}

static void test_convert(void) {
    const int64_t s4[4] = {2, 3, 4, 5}, s2[2] = {3, 4};
    ft_tensor *w = ramp(s4, 4, FT_FLOAT32), *alias, *before;
    OK(ft_clone(w, &before));
    OK(ft_set_requires_grad(w, 1));
    OK(ft_shallow_copy(w, &alias)); /* a second handle on the same tensor, as Lua holds one */
    ft_tensor *g = ramp(s4, 4, FT_FLOAT32);
    OK(ft_set_grad(w, g));

    OK(ft_convert_(w, FT_BFLOAT16, FT_SAME_DEVICE, FT_KEEP_FORMAT));
    CHECK("convert dtype", ft_get_dtype(w) == FT_BFLOAT16);
    CHECK("convert keeps identity", ft_get_dtype(alias) == FT_BFLOAT16);
    CHECK("convert keeps requires_grad", ft_requires_grad(alias) && ft_is_leaf(alias));
    ft_tensor *wg = NULL, *b16 = NULL;
    OK(ft_grad(w, &wg));
    CHECK("convert converts grad", wg && ft_get_dtype(wg) == FT_BFLOAT16);
    OK(ft_to(before, FT_BFLOAT16, FT_CPU, &b16));
    CHECK("convert values", equal(alias, b16));
    ft_free(wg);
    ft_free(b16);

    OK(ft_convert_(w, FT_FLOAT32, FT_SAME_DEVICE, FT_CHANNELS_LAST));
    /* channels-last strides of [N,C,H,W] are {H*W*C, 1, W*C, C} */
    CHECK("channels_last strides", ft_stride(alias, 0) == 60 && ft_stride(alias, 1) == 1 &&
                                       ft_stride(alias, 2) == 15 && ft_stride(alias, 3) == 3);
    CHECK("channels_last float32", ft_get_dtype(alias) == FT_FLOAT32);
    OK(ft_grad(w, &wg));
    CHECK("channels_last grad too", wg && ft_stride(wg, 1) == 1);
    ft_free(wg);
    OK(ft_convert_(w, -1, FT_CPU, FT_CONTIGUOUS_FORMAT));
    CHECK("contiguous again", ft_is_contiguous(alias) && ft_stride(alias, 3) == 1);

    ft_tensor *i = ramp(s2, 2, FT_INT64), *m = ramp(s2, 2, FT_FLOAT32);
    OK(ft_convert_(i, FT_FLOAT64, FT_SAME_DEVICE, FT_CHANNELS_LAST));
    CHECK("integers keep their dtype", ft_get_dtype(i) == FT_INT64);
    OK(ft_convert_(m, -1, FT_SAME_DEVICE, FT_CHANNELS_LAST));
    CHECK("channels_last leaves 2-D alone", ft_is_contiguous(m) && ft_get_dtype(m) == FT_FLOAT32);

    CHECK("bad memory format", ft_convert_(m, -1, FT_SAME_DEVICE, 7) == FT_ERR &&
                                   strstr(ft_last_error(), "memory format"));
    if (ft_cuda_device_count() == 0) {
        ft_tensor *copy;
        OK(ft_clone(m, &copy));
        CHECK("missing device refused",
              ft_convert_(m, -1, 0, FT_KEEP_FORMAT) == FT_ERR && strstr(ft_last_error(), "cuda:0"));
        CHECK("failed convert leaves tensor", equal(m, copy) && ft_device(m) == FT_CPU);
        ft_free(copy);
    } else {
        SKIP("missing device refused", "CUDA is available");
    }
    ft_free(i);
    ft_free(m);
    ft_free(w);
    ft_free(alias);
    ft_free(before);
    ft_free(g);
}

static void test_autocast(void) {
    const int64_t sx[2] = {4, 6}, sw[2] = {3, 6}, sb[1] = {3};
    ft_tensor *x = ramp(sx, 2, FT_FLOAT32), *w = ramp(sw, 2, FT_FLOAT32),
              *b = ramp(sb, 1, FT_FLOAT32);
    CHECK("autocast off at start", !ft_autocast_enabled(0));

    ft_autocast_state outer, inner;
    OK(ft_autocast_enter(0, FT_BFLOAT16, &outer));
    CHECK("autocast on", ft_autocast_enabled(0));
    CHECK("autocast saved state", outer.enabled == 0 && outer.cuda == 0);
    ft_tensor *y = NULL;
    OK(ft_linear(x, w, b, &y));
    CHECK("autocast linear is bf16", ft_get_dtype(y) == FT_BFLOAT16);
    /* the reference: cast every input to bf16, then the plain linear */
    ft_tensor *x16, *w16, *b16, *want;
    OK(ft_to(x, FT_BFLOAT16, FT_CPU, &x16));
    OK(ft_to(w, FT_BFLOAT16, FT_CPU, &w16));
    OK(ft_to(b, FT_BFLOAT16, FT_CPU, &b16));

    OK(ft_autocast_enter(0, FT_BFLOAT16, &inner)); /* nested */
    OK(ft_autocast_exit(&inner));
    CHECK("nested exit keeps outer on", ft_autocast_enabled(0));
    OK(ft_autocast_exit(&outer));
    CHECK("autocast off after exit", !ft_autocast_enabled(0));

    OK(ft_linear(x16, w16, b16, &want));
    CHECK("autocast linear values", equal(y, want));
    ft_tensor *y32;
    OK(ft_linear(x, w, b, &y32));
    CHECK("float32 after exit", ft_get_dtype(y32) == FT_FLOAT32);

    ft_autocast_state s;
    CHECK("autocast refuses float32", ft_autocast_enter(0, FT_FLOAT32, &s) == FT_ERR &&
                                          strstr(ft_last_error(), "bfloat16 or float16"));
    CHECK("refused enter leaves it off", !ft_autocast_enabled(0));
    if (!ft_cuda_available())
        CHECK("cuda autocast without cuda", ft_autocast_enter(1, FT_FLOAT16, &s) == FT_ERR);
    else
        SKIP("cuda autocast without cuda", "CUDA is available");
    ft_free(x), ft_free(w), ft_free(b), ft_free(y), ft_free(x16), ft_free(w16), ft_free(b16);
    ft_free(want), ft_free(y32);
}

/* Sequential(Linear, ReLU) built and run by module.c without Lua; its failures go through
 * ft_last_error, and a Lua-defined module refuses to run without the Lua side. */
static void test_core_without_lua(void) {
    ftm_module *seq = ftm_new(FTM_SEQUENTIAL, "Sequential");
    ftm_module *lin = ftm_linear(4, 3, 1), *relu = ftm_relu(0);
    CHECK("core builds without Lua", seq && lin && relu);
    if (!seq || !lin || !relu) return;
    CHECK("core adds children",
          ftm_add_child(seq, "0", lin) == 0 && ftm_add_child(seq, "1", relu) == 0);
    ftm_release(NULL, lin), ftm_release(NULL, relu); /* seq holds them */
    const int64_t shape[2] = {5, 4};
    ft_tensor *x, *y = NULL, *lin_y, *want;
    OK(ft_randn(shape, 2, FT_FLOAT32, FT_CPU, &x));
    ftm_ctx c = {.L = NULL};
    CHECK("core forward without Lua", ftm_forward(&c, seq, x, &y) == FT_OK);
    OK(ft_linear(x, lin->params[0].t, lin->params[1].t, &lin_y));
    OK(ft_clamp(lin_y, 1, 0, 0, 0, &want));
    CHECK("core forward = relu(linear) through the shim", y && equal(y, want));

    CHECK("core error in ft_last_error",
          !ftm_linear(0, 3, 1) && strstr(ft_last_error(), "Linear: features must be positive"));
    ftm_module *again = ftm_relu(0);
    CHECK("core duplicate child refused", again && ftm_add_child(seq, "1", again) == -1 &&
                                              strstr(ft_last_error(), "duplicate child name '1'"));
    ftm_release(NULL, again);

    ftm_module *lua_defined = ftm_new(FTM_LUA, "Net");
    ft_tensor *none = NULL;
    CHECK("Lua-defined module refuses without Lua",
          lua_defined && ftm_forward(&c, lua_defined, x, &none) == FT_ERR && !none &&
              strstr(c.msg, "needs a Lua state"));
    ftm_release(NULL, lua_defined);
    ftm_release(NULL, seq);
    ft_free(x), ft_free(y), ft_free(lin_y), ft_free(want);
}

int main(void) {
    test_convert();
    test_autocast();
    test_core_without_lua();
    return check_exit();
}
