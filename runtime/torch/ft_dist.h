/* ft_dist.h: the flat C API over PyTorch's distributed engine, c10d (the engine under torchrun
 * and DDP): a TCPStore rendezvous and a process group, Gloo on the CPU, NCCL on CUDA.
 *
 * Same rules as ft_torch.h: opaque handles, a status on every call that can fail, the message in
 * ft_last_error(), no C++ exception ever leaves. Messages name the master address, the port and
 * the rank, so a user sees which machine could not reach which.
 *
 * Ranks are 0-based, as in the RANK variable every launcher sets.
 */
#ifndef FT_DIST_H
#define FT_DIST_H

#include "torch/ft_torch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ft_dist ft_dist; /* opaque: a TCPStore and a process group */

typedef enum { FT_DIST_GLOO = 0, FT_DIST_NCCL } ft_dist_backend;

/* 1 when this build has the backend (Gloo: libtorch built with it and gloo's headers here;
 * NCCL: a CUDA libtorch with nccl.h). */
int ft_dist_has_backend(ft_dist_backend b) FT_NOEXCEPT;
const char *ft_dist_backend_name(ft_dist_backend b) FT_NOEXCEPT; /* "gloo", "nccl" */

/* Joins the world: rank 0 serves the TCPStore on port, every rank connects to addr:port
 * (retrying until timeout_s), then the process group connects every pair. device is the CUDA
 * index NCCL uses (ignored by Gloo). timeout_s also bounds every later collective: a dead peer
 * gives an error, not a hang. */
ft_status new_ft_dist(const char *addr, int port, int rank, int world, ft_dist_backend backend,
                      int device, double timeout_s, ft_dist **out) FT_NOEXCEPT;
/* NULL is fine. A group whose peers failed is not torn down (its destructor could wait for
 * them); its memory is left to the process exit. */
void free_ft_dist(ft_dist *d) FT_NOEXCEPT;

int ft_dist_rank(const ft_dist *d) FT_NOEXCEPT;
int ft_dist_world(const ft_dist *d) FT_NOEXCEPT;

/* Every rank passes the same list (same shapes and dtypes, in the same order) and its own
 * weight w_r (say, its share of the batch). Afterwards every tensor holds
 * sum_r(w_r * t_r) / sum_r(w_r) on every rank, and *total_weight (may be NULL) sum_r(w_r).
 * Tensors are flattened into buckets of about bucket_bytes (<= 0: 25 MB, DDP's default) that
 * go out as they are filled. NULL entries are skipped (a parameter without a gradient). */
ft_status ft_dist_all_reduce_mean(ft_dist *d, ft_tensor *const *ts, int n, double weight,
                                  int64_t bucket_bytes, double *total_weight) FT_NOEXCEPT;

/* The same mean, overlapped with backward (DDP's idea, over plain autograd hooks): a reducer
 * hooks the parameters; during backward each gradient is copied, times the rank's weight, into
 * its bucket as autograd produces it, and a bucket goes out as soon as all of its gradients
 * came, while backward goes on with earlier layers. Buckets follow the parameters in reverse
 * (backward's order). Every rank builds its reducer over the same parameter list.
 *   prepare(weight)       before backward
 *   finish(loss, &total)  after backward: sends what is left with the loss (replaced by the
 *                         weighted mean) and the weight, waits, and writes the mean into every
 *                         parameter's .grad. A parameter with no gradient here stays without.
 * Hooks that fire while the reducer is not prepared (a backward of the user's) do nothing. */
typedef struct ft_dist_reducer ft_dist_reducer;
ft_status new_ft_dist_reducer(ft_dist *d, ft_tensor *const *params, int n, int64_t bucket_bytes,
                              ft_dist_reducer **out) FT_NOEXCEPT;
void free_ft_dist_reducer(ft_dist_reducer *r) FT_NOEXCEPT; /* removes the hooks; NULL is fine */
ft_status ft_dist_reducer_prepare(ft_dist_reducer *r, double weight) FT_NOEXCEPT;
ft_status ft_dist_reducer_finish(ft_dist_reducer *r, ft_tensor *loss,
                                 double *total_weight) FT_NOEXCEPT;
int ft_dist_reducer_buckets(const ft_dist_reducer *r) FT_NOEXCEPT;

typedef enum { FT_DIST_SUM = 0, FT_DIST_MAX, FT_DIST_MIN } ft_dist_op;
/* In place on every rank: a tensor, or n doubles. */
ft_status ft_dist_all_reduce(ft_dist *d, ft_tensor *t, ft_dist_op op) FT_NOEXCEPT;
ft_status ft_dist_all_reduce_doubles(ft_dist *d, double *v, int n, ft_dist_op op) FT_NOEXCEPT;
/* Rank root's values into every rank's tensors (bucketed as above), or into a byte buffer. */
ft_status ft_dist_broadcast(ft_dist *d, ft_tensor *const *ts, int n, int root) FT_NOEXCEPT;
ft_status ft_dist_broadcast_bytes(ft_dist *d, void *buf, size_t nbytes, int root) FT_NOEXCEPT;
ft_status ft_dist_barrier(ft_dist *d) FT_NOEXCEPT;

#ifdef __cplusplus
}
#endif
#endif /* FT_DIST_H */
