/* clock.h: the one clock of the library, for timing things (progress bars, --report, the REPL).
 */
#ifndef FTLUA_BASE_CLOCK_H
#define FTLUA_BASE_CLOCK_H

double monotonic_seconds(void); /* CLOCK_MONOTONIC: never jumps with the wall clock */

#endif /* FTLUA_BASE_CLOCK_H */
