/* augment_cuda.cu: the CUDA twin of ftd_aug_batch (augment_cuda.h). Built only with CUDA.
 *
 * One thread per output pixel of the whole batch runs ftd_aug_pixel, the very function the CPU
 * kernel runs (augment.h marks it __host__ __device__ under nvcc), so both sides compute the same
 * arithmetic; they differ only by the device's float rounding (fused multiply-adds, logf/expf
 * within 2 ulp). Plans (one 3x3 map per image) are made on the host, as on the CPU.
 *
 * Streams: the workspace's stream is a BLOCKING stream, so it is ordered after the work queued
 * on the legacy default stream, which libtorch uses. That matters: dst comes from libtorch's
 * caching allocator and may be a block whose previous tensor a queued kernel still reads. We
 * synchronise our stream before returning, so dst is complete and the staging buffer is free.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* augment.h is a C header without extern "C" guards: its functions (ftd_aug_plan_make) live in
 * augment.o with C linkage. Its system headers are included above, outside the block. */
extern "C" {
#include "data/augment.h"
}
#include "data/augment_cuda.h"

struct ftd_aug_cuda {
    int device;
    cudaStream_t stream;
    uint8_t *host; /* pinned staging for the uint8 batch */
    size_t host_cap;
    uint8_t *src; /* the batch on the device */
    size_t src_cap;
    ftd_aug_plan *plans; /* per-image plans on the device */
    size_t plans_cap;    /* in plans */
};

#define THREADS 256

/* Output pixel idx of the whole batch [n,S,S] -> its 3 floats in dst [n,3,S,S]. */
static __global__ void aug_kernel(const uint8_t *src, int n, int h, int w,
                                  const ftd_aug_plan *plans, int S, float *dst) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long plane = (long long)S * S;
    if (idx >= plane * n) return;
    int i = (int)(idx / plane);
    int r = (int)(idx % plane);
    int y = r / S, x = r % S;
    float v[3];
    ftd_aug_pixel(&plans[i], src + (size_t)i * h * w * 3, h, w, y, x, v);
    float *o = dst + (size_t)i * 3 * plane + r;
    o[0] = v[0];
    o[plane] = v[1];
    o[2 * plane] = v[2];
}

static int cuda_fail(cudaError_t e, const char *what, char *err, size_t errlen) {
    if (e == cudaSuccess) return 0;
    if (err && errlen) snprintf(err, errlen, "CUDA %s: %s", what, cudaGetErrorString(e));
    return -1;
}

/* Runs with c's device current and restores the caller's: libtorch and the caller keep theirs. */
typedef struct {
    int prev;
} device_guard;

static cudaError_t guard_enter(device_guard *g, int device) {
    cudaError_t e = cudaGetDevice(&g->prev);
    if (e != cudaSuccess) return e;
    return cudaSetDevice(device);
}

static void guard_exit(const device_guard *g) { cudaSetDevice(g->prev); }

extern "C" ftd_aug_cuda *ftd_aug_cuda_new(int device, char *err, size_t errlen) {
    int count = 0;
    if (cuda_fail(cudaGetDeviceCount(&count), "device count", err, errlen)) return NULL;
    if (device < 0 || device >= count) {
        if (err && errlen)
            snprintf(err, errlen, "CUDA: no device cuda:%d (%d devices)", device, count);
        return NULL;
    }
    ftd_aug_cuda *c = (ftd_aug_cuda *)calloc(1, sizeof *c);
    if (!c) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->device = device;
    device_guard g;
    cudaError_t e = guard_enter(&g, device);
    if (e == cudaSuccess) {
        e = cudaStreamCreate(&c->stream); /* blocking: see the top of the file */
        guard_exit(&g);
    }
    if (cuda_fail(e, "stream", err, errlen)) {
        free(c);
        return NULL;
    }
    return c;
}

extern "C" void ftd_aug_cuda_free(ftd_aug_cuda *c) {
    if (!c) return;
    device_guard g;
    if (guard_enter(&g, c->device) == cudaSuccess) {
        cudaStreamSynchronize(c->stream);
        cudaFreeHost(c->host);
        cudaFree(c->src);
        cudaFree(c->plans);
        cudaStreamDestroy(c->stream);
        guard_exit(&g);
    }
    free(c);
}

/* Make sure the staging and device buffers hold `bytes` of batch and n plans. */
static cudaError_t reserve(ftd_aug_cuda *c, size_t bytes, size_t n) {
    cudaError_t e = cudaSuccess;
    if (bytes > c->host_cap) {
        cudaFreeHost(c->host);
        c->host = NULL;
        c->host_cap = 0;
        if ((e = cudaHostAlloc((void **)&c->host, bytes, cudaHostAllocDefault)) != cudaSuccess)
            return e;
        c->host_cap = bytes;
    }
    if (bytes > c->src_cap) {
        cudaFree(c->src);
        c->src = NULL;
        c->src_cap = 0;
        if ((e = cudaMalloc((void **)&c->src, bytes)) != cudaSuccess) return e;
        c->src_cap = bytes;
    }
    if (n > c->plans_cap) {
        cudaFree(c->plans);
        c->plans = NULL;
        c->plans_cap = 0;
        if ((e = cudaMalloc((void **)&c->plans, n * sizeof(ftd_aug_plan))) != cudaSuccess) return e;
        c->plans_cap = n;
    }
    return e;
}

extern "C" int ftd_aug_cuda_batch(ftd_aug_cuda *c, const uint8_t *src, int n, int h, int w,
                                  const ftd_aug_params *per_image, int out_size,
                                  const float mean[3], const float std[3], float *dst, char *err,
                                  size_t errlen) {
    if (!c || !src || !per_image || !dst || n < 0 || h <= 0 || w <= 0 || out_size <= 0) {
        if (err && errlen) snprintf(err, errlen, "augment (CUDA): bad arguments");
        return -1;
    }
    if (n == 0) return 0;
    ftd_aug_plan *plans = (ftd_aug_plan *)malloc(sizeof *plans * (size_t)n);
    if (!plans) {
        if (err && errlen) snprintf(err, errlen, "augment (CUDA): out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (ftd_aug_plan_make(&per_image[i], h, w, out_size, mean, std, &plans[i])) {
            free(plans);
            if (err && errlen) snprintf(err, errlen, "augment (CUDA): bad sizes or crop");
            return -1;
        }
    size_t bytes = (size_t)n * h * w * 3;
    long long total = (long long)n * out_size * out_size;
    unsigned blocks = (unsigned)((total + THREADS - 1) / THREADS);
    device_guard g;
    cudaError_t e = guard_enter(&g, c->device);
    if (e == cudaSuccess) {
        e = reserve(c, bytes, (size_t)n);
        if (e == cudaSuccess) {
            memcpy(c->host, src, bytes); /* pinned: the copy below is a fast DMA */
            e = cudaMemcpyAsync(c->src, c->host, bytes, cudaMemcpyHostToDevice, c->stream);
        }
        if (e == cudaSuccess) /* from pageable memory: returns once plans is copied out */
            e = cudaMemcpyAsync(c->plans, plans, sizeof *plans * (size_t)n, cudaMemcpyHostToDevice,
                                c->stream);
        if (e == cudaSuccess) {
            aug_kernel<<<blocks, THREADS, 0, c->stream>>>(c->src, n, h, w, c->plans, out_size, dst);
            e = cudaGetLastError();
        }
        cudaError_t s = cudaStreamSynchronize(c->stream); /* before plans is freed */
        if (e == cudaSuccess) e = s;
        guard_exit(&g);
    }
    free(plans);
    return cuda_fail(e, "augment", err, errlen);
}
