/* bench_overhead.c: the cost of one tiny op (1-element add) called straight from C through the
 * shim, the floor that the Lua binding adds its own overhead to. Prints ns per call. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "torch/ft_torch.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 200000;
    int64_t shape[1] = {1};
    ft_tensor *a = NULL;
    if (ft_full(shape, 1, 1.0, FT_FLOAT32, FT_CPU, &a) != FT_OK) {
        fprintf(stderr, "bench_overhead: %s\n", ft_last_error());
        return 1;
    }
    for (int rep = 0; rep < 2; rep++) { /* the first pass warms up */
        double t0 = now();
        for (long i = 0; i < n; i++) {
            ft_tensor *c = NULL;
            if (ft_binary(FT_ADD, a, a, &c) != FT_OK) return 1;
            ft_free(c);
        }
        if (rep == 1) printf("%.1f\n", (now() - t0) / n * 1e9);
    }
    ft_free(a);
    return 0;
}
