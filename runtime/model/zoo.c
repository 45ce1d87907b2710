/* zoo.c: torchvision's resnets (torchvision/models/resnet.py, "v1.5": the stride of a
 * Bottleneck is on its 3x3 conv), with the same children, names and initialisation.
 *
 * A ResNet is a named Sequential: conv1, bn1, relu, maxpool, layer1..layer4, avgpool,
 * flatten, fc. torchvision's forward runs exactly those in that order, with torch.flatten
 * between avgpool and fc; here that step is a Flatten child (it has no parameters, so the
 * state_dict names are torchvision's).
 */
#include <stdio.h>
#include <string.h>

#include "model/module.h"

static const int64_t ONE[2] = {1, 1};

static ftm_module *conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
    const int64_t kk[2] = {k, k}, ss[2] = {stride, stride}, pp[2] = {k / 2, k / 2};
    return ftm_conv2d(in, out, kk, ss, pp, ONE, 1, /*bias=*/0);
}

static ftm_module *bn2d(int64_t n) { return ftm_batchnorm(2, n, 1e-5, 0.1); }

/* Adds child `name` and drops the constructor's reference. A NULL child (a failed
 * constructor) fails the whole build. */
static int add(ftm_module *m, const char *name, ftm_module *child) {
    if (!child) return -1;
    int r = ftm_add_child(m, name, child);
    ftm_release(NULL, child);
    return r;
}

static ftm_module *block(ftm_kind kind, int64_t inplanes, int64_t planes, int64_t stride,
                         ftm_module *downsample) {
    if (inplanes < 1 || planes < 1 || stride < 1) {
        ft_set_last_error("resnet block: inplanes, planes and stride must be positive");
        return NULL;
    }
    int basic = kind == FTM_BASICBLOCK;
    ftm_module *m = ftm_new(kind, basic ? "BasicBlock" : "Bottleneck");
    if (!m) return NULL;
    int ok;
    if (basic) {
        ok = add(m, "conv1", conv(inplanes, planes, 3, stride)) == 0 &&
             add(m, "bn1", bn2d(planes)) == 0 && add(m, "relu", ftm_relu(1)) == 0 &&
             add(m, "conv2", conv(planes, planes, 3, 1)) == 0 && add(m, "bn2", bn2d(planes)) == 0;
    } else {
        ok = add(m, "conv1", conv(inplanes, planes, 1, 1)) == 0 &&
             add(m, "bn1", bn2d(planes)) == 0 &&
             add(m, "conv2", conv(planes, planes, 3, stride)) == 0 &&
             add(m, "bn2", bn2d(planes)) == 0 &&
             add(m, "conv3", conv(planes, planes * 4, 1, 1)) == 0 &&
             add(m, "bn3", bn2d(planes * 4)) == 0 && add(m, "relu", ftm_relu(1)) == 0;
    }
    if (ok && downsample) ok = ftm_add_child(m, "downsample", downsample) == 0;
    if (!ok) {
        ftm_release(NULL, m);
        return NULL;
    }
    return m;
}

ftm_module *ftm_basic_block(int64_t inplanes, int64_t planes, int64_t stride,
                            ftm_module *downsample) {
    return block(FTM_BASICBLOCK, inplanes, planes, stride, downsample);
}

ftm_module *ftm_bottleneck(int64_t inplanes, int64_t planes, int64_t stride,
                           ftm_module *downsample) {
    return block(FTM_BOTTLENECK, inplanes, planes, stride, downsample);
}

/* torchvision's _make_layer: the first block changes the width and the stride (with a 1x1
 * conv + BN shortcut when either changes), the others keep them. */
static ftm_module *make_layer(ftm_kind kind, int64_t *inplanes, int64_t planes, int blocks,
                              int64_t stride) {
    int64_t expansion = kind == FTM_BASICBLOCK ? 1 : 4;
    ftm_module *seq = ftm_new(FTM_SEQUENTIAL, "Sequential");
    if (!seq) return NULL;
    ftm_module *down = NULL;
    int ok = 1;
    if (stride != 1 || *inplanes != planes * expansion) {
        down = ftm_new(FTM_SEQUENTIAL, "Sequential");
        ok = down && add(down, "0", conv(*inplanes, planes * expansion, 1, stride)) == 0 &&
             add(down, "1", bn2d(planes * expansion)) == 0;
    }
    char name[16];
    for (int i = 0; ok && i < blocks; i++) {
        snprintf(name, sizeof name, "%d", i);
        ok = add(seq, name,
                 block(kind, *inplanes, planes, i == 0 ? stride : 1, i == 0 ? down : NULL)) == 0;
        *inplanes = planes * expansion;
    }
    ftm_release(NULL, down);
    if (!ok) {
        ftm_release(NULL, seq);
        return NULL;
    }
    return seq;
}

/* torchvision: Conv2d weights kaiming_normal_(mode="fan_out", nonlinearity="relu"); BN
 * weight 1, bias 0 (already so); Linear keeps torch's default init. */
static int init_convs(ftm_module *m) {
    if (m->kind == FTM_CONV2D &&
        ft_kaiming_normal_(m->params[0].t, 0, /*fan_in=*/0, /*relu=*/1) != FT_OK) {
        ft_set_last_error("resnet init: %s", ft_last_error());
        return -1;
    }
    for (int i = 0; i < m->nchildren; i++)
        if (init_convs(m->children[i].m) != 0) return -1;
    return 0;
}

ftm_module *ftm_resnet(int depth, int64_t num_classes) {
    static const struct {
        int depth;
        ftm_kind kind;
        int layers[4];
    } ARCHS[] = {
        {18, FTM_BASICBLOCK, {2, 2, 2, 2}},   {34, FTM_BASICBLOCK, {3, 4, 6, 3}},
        {50, FTM_BOTTLENECK, {3, 4, 6, 3}},   {101, FTM_BOTTLENECK, {3, 4, 23, 3}},
        {152, FTM_BOTTLENECK, {3, 8, 36, 3}},
    };
    int a = -1;
    for (int i = 0; i < 5; i++)
        if (ARCHS[i].depth == depth) a = i;
    if (a < 0 || num_classes < 1) {
        ft_set_last_error("resnet: depth must be 18, 34, 50, 101 or 152 and num_classes positive");
        return NULL;
    }
    ftm_kind kind = ARCHS[a].kind;
    ftm_module *m = ftm_new(FTM_SEQUENTIAL, "ResNet");
    if (!m) return NULL;
    int64_t inplanes = 64;
    const int64_t k7[2] = {7, 7}, s2[2] = {2, 2}, p3[2] = {3, 3}, k3[2] = {3, 3}, p1[2] = {1, 1};
    int ok = add(m, "conv1", ftm_conv2d(3, 64, k7, s2, p3, ONE, 1, 0)) == 0 &&
             add(m, "bn1", bn2d(64)) == 0 && add(m, "relu", ftm_relu(1)) == 0 &&
             add(m, "maxpool", ftm_maxpool2d(k3, s2, p1, 0)) == 0;
    static const char *const LAYER[4] = {"layer1", "layer2", "layer3", "layer4"};
    for (int i = 0; ok && i < 4; i++)
        ok = add(m, LAYER[i],
                 make_layer(kind, &inplanes, 64 << i, ARCHS[a].layers[i], i == 0 ? 1 : 2)) == 0;
    ok = ok && add(m, "avgpool", ftm_adaptive_pool2d(FTM_ADAPTIVE_AVGPOOL2D, ONE, 1)) == 0 &&
         add(m, "flatten", ftm_flatten(1, -1)) == 0 &&
         add(m, "fc", ftm_linear(inplanes, num_classes, 1)) == 0 && init_convs(m) == 0;
    /* fastai's _resnet_split, on the resnet itself: stem + layer1 + layer2, layer3 + layer4,
     * and the classifier. */
    static const char SPLIT[] =
        "conv1,bn1,relu,maxpool,layer1,layer2;layer3,layer4;avgpool,flatten,fc";
    if (ok && !(m->split = strdup(SPLIT))) ok = 0;
    if (!ok) {
        ftm_release(NULL, m);
        return NULL;
    }
    return m;
}
