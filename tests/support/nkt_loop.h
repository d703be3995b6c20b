/* Waiting on a loop with a deadline: event-driven, never a sleep. */
#ifndef NKT_LOOP_H
#define NKT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "netkit/loop.h"

/* Milliseconds on the monotonic clock. */
uint64_t nkt_now_ms(void);

/* A new loop, asserting (cmocka) that it was made. */
nk_loop *nkt_loop_new(void);

/* Free @loop, asserting that nothing is left on it: no watcher, timer,
 * signal or pending callback (libuv's MAKE_VALGRIND_HAPPY idea). */
void nkt_loop_free_empty(nk_loop *loop);

/* Run NK_RUN_ONCE iterations until done(arg) is true (checked before the
 * first iteration and after each). An internal timer wakes the loop at the
 * deadline, so this never blocks forever.
 * Returns 0 when done, -ETIMEDOUT after max_ms, -ELOOP after
 * max_iterations iterations, or nk_loop_run()'s negative code.
 * *iterations_out (may be NULL) receives the iterations run. */
int nkt_run_until(nk_loop *loop, bool (*done)(void *arg), void *arg,
                  uint64_t max_iterations, uint64_t max_ms,
                  uint64_t *iterations_out);

#endif
