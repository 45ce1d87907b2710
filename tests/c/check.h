/* check.h: the smallest test harness that prints what tests/run.sh counts.
 * Each CHECK prints "ok <name>" or "FAIL <name>: <file>:<line>: <expr>". main returns
 * check_exit() so the program's exit status also says whether anything failed. */
#ifndef CHECK_H
#define CHECK_H
#include <math.h>
#include <stdio.h>

static int check_failures;

#define CHECK(name, cond)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            printf("ok %s\n", name);                                                               \
        } else {                                                                                   \
            printf("FAIL %s: %s:%d: %s\n", name, __FILE__, __LINE__, #cond);                       \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_CLOSE(name, a, b, tol)                                                               \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        double check_s_ = fabs(check_b_) > 1 ? fabs(check_b_) : 1;                                 \
        if (fabs(check_a_ - check_b_) <= (tol)*check_s_) {                                         \
            printf("ok %s\n", name);                                                               \
        } else {                                                                                   \
            printf("FAIL %s: %s:%d: %.9g != %.9g\n", name, __FILE__, __LINE__, check_a_,           \
                   check_b_);                                                                      \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define SKIP(name, why) printf("skip %s: %s\n", name, why)

static inline int check_exit(void) { return check_failures ? 1 : 0; }
#endif
