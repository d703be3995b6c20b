/* nkt_run_until: a bounded, event-driven wait on a loop. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <time.h>

#include "loop_internal.h"
#include "nkt_loop.h"

uint64_t nkt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void guard_cb(nk_timer *t, void *user)
{
    (void)t;
    *(bool *)user = true;
}

int nkt_run_until(nk_loop *loop, bool (*done)(void *arg), void *arg,
                  uint64_t max_iterations, uint64_t max_ms,
                  uint64_t *iterations_out)
{
    uint64_t deadline = nkt_now_ms() + max_ms;
    uint64_t iters = 0;
    bool fired = false;
    /* Embedded, so it allocates nothing: usable under a failing
     * allocator. */
    nk_timer guard;
    nk__timer_init(&guard, loop, guard_cb, &fired);
    nk__timer_start(&guard, max_ms, 0);
    int r;
    for (;;) {
        if (done(arg)) {
            r = 0;
            break;
        }
        if (fired || nkt_now_ms() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        if (iters >= max_iterations) {
            r = -ELOOP;
            break;
        }
        int rr = nk_loop_run(loop, NK_RUN_ONCE);
        iters++;
        if (rr < 0) {
            r = rr;
            break;
        }
    }
    nk__timer_stop(&guard);
    if (iterations_out)
        *iterations_out = iters;
    return r;
}

nk_loop *nkt_loop_new(void)
{
    nk_loop *loop = NULL;
    assert_int_equal(nk_loop_new(&loop), 0);
    assert_non_null(loop);
    return loop;
}

void nkt_loop_free_empty(nk_loop *loop)
{
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.ios, 0);
    assert_int_equal(st.timers, 0);
    assert_int_equal(st.signals, 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(nk_loop_free(loop), 0);
}
