/* dist.h: data-parallel training over c10d (torch/ft_dist.h), shared by the Lua module ft.dist
 * (dist.c), the learner (learner/learner_dist.c) and the launcher (launch.c, used by main.c).
 *
 * One process group per process, as torch.distributed's default group. Its rank and size come
 * from the variables every launcher sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT): ftlua --nproc, torchrun, or Slurm's through docs/distributed.md.
 * Ranks are 0-based, as in RANK.
 */
#ifndef FTL_DIST_H
#define FTL_DIST_H

#include "torch/ft_dist.h"

/* The process group, or NULL before ft.dist.init (or in a world of one without it). */
ft_dist *ftr_dist_group(void);
/* This process's rank and the world size: the group's, else the environment's (0 and 1 when
 * nothing is set). */
int ftr_dist_rank(void);
int ftr_dist_world(void);
/* Rank 0: the one that prints, plots and writes files. */
int ftr_dist_is_main(void);
/* An integer environment variable, or def when unset or not a number. */
int ftr_env_int(const char *name, int def);

/* The launcher (launch.c): runs argv (ftlua's own command line without the launcher options)
 * as nproc local ranks of a world of nnodes * nproc, watches them, and stops the others when
 * one fails. Returns the exit status for main. */
typedef struct {
    int nproc, nnodes, node_rank;
    const char *master_addr;
    int master_port;
    const char *progname; /* prefixes the launcher's messages */
} ftr_launch_opts;
int ftr_launch(const ftr_launch_opts *o, int argc, char **argv);

#endif
