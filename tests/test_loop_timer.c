/* Loop timers: order, ties, never early, repeat, restart and stop from
 * callbacks, and re-arming at 0 without starving I/O. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>

#include <cmocka.h>

#include "netkit.h"
#include "loop_internal.h"
#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_loop.h"

/* ---- helpers ------------------------------------------------------- */

static void make_pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

struct rw {
    int reads;
};

static void rw_cb(nk_io *io, unsigned events, void *user)
{
    char buf[16];
    if (events & NK_READ) {
        ((struct rw *)user)->reads++;
        (void)!read(nk_io_fd(io), buf, sizeof buf);
    }
}

static bool one_read(void *arg)
{
    return ((struct rw *)arg)->reads >= 1;
}

/* ---- timers -------------------------------------------------------- */

struct order {
    int seen[16];
    int n;
    uint64_t started;
    uint64_t fired_at[16];
    uint64_t want_ms[16];
};

struct tag {
    struct order *o;
    int id;
};

static void order_cb(nk_timer *t, void *user)
{
    struct tag *g = user;
    g->o->fired_at[g->o->n] = nkt_now_ms();
    g->o->seen[g->o->n++] = g->id;
    nk_timer_stop(t);
}

static bool order_done(void *arg)
{
    return ((struct order *)arg)->n >= 5;
}

static const uint64_t order_ms[5] = {30, 10, 20, 10, 0};

/* Started from one callback, the five timers share one reading of the
 * loop's clock, so their deadlines differ exactly by their timeouts however
 * slowly the code runs (valgrind); started from outside a run, each start
 * reads the clock anew. */
static void start_order_timers(nk_loop *loop, void *user)
{
    struct tag *tags = user;
    nk_timer *t;
    for (int i = 0; i < 5; i++)
        assert_int_equal(nk_timer_start(loop, order_ms[i], 0, order_cb,
                                        &tags[i], &t), 0);
}

static void test_timers_fire_in_deadline_order_ties_in_start_order(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct order o = {0};
    struct tag tags[5];
    const uint64_t *ms = order_ms;
    o.started = nkt_now_ms();
    for (int i = 0; i < 5; i++)
        tags[i] = (struct tag){&o, i};
    assert_int_equal(nk_loop_defer(loop, start_order_timers, tags), 0);
    assert_int_equal(nkt_run_until(loop, order_done, &o, 100, 2000, NULL), 0);
    const int expect[5] = {4, 1, 3, 2, 0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(o.seen[i], expect[i]);
        /* Never early. */
        assert_true(o.fired_at[i] - o.started >= ms[expect[i]]);
    }
    nkt_loop_free_empty(loop);
}

struct rep {
    int fires;
    int stop_at;
    uint64_t last;
    uint64_t min_gap;
};

static void rep_cb(nk_timer *t, void *user)
{
    struct rep *r = user;
    /* Loop time: the period is measured from the iteration that fired. */
    uint64_t now = nk_loop_now(t->loop);
    if (r->fires && now - r->last < r->min_gap)
        r->min_gap = now - r->last;
    r->last = now;
    /* Re-inserted before the callback: it is still active here. */
    assert_true(nk__timer_active(t));
    if (++r->fires == r->stop_at)
        nk_timer_stop(t);
}

static void test_timer_repeats_until_stopped_in_callback(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct rep r = {.stop_at = 4, .min_gap = UINT64_MAX};
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1, 5, rep_cb, &r, &t), 0);
    /* The only handle stops itself: DEFAULT returns when nothing is left. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(r.fires, 4);
    assert_true(r.min_gap >= 5);
    nkt_loop_free_empty(loop);
}

struct restart {
    int fires;
    nk_timer *t;
};

static void restart_cb(nk_timer *t, void *user)
{
    struct restart *r = user;
    r->fires++;
    if (r->fires < 3)
        assert_int_equal(nk_timer_restart(t, 2, 0), 0);
}

static void test_one_shot_timer_restarted_from_its_callback(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct restart r = {0};
    assert_int_equal(nk_timer_start(loop, 1, 0, restart_cb, &r, &r.t), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(r.fires, 3);
    /* A fired one-shot is still a handle until stopped: it does not keep
     * the loop running, but the loop cannot be freed under it. */
    assert_false(nk__timer_active(r.t));
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 1);
    /* Restart re-arms it (counted once), and it fires again. */
    assert_int_equal(nk_timer_restart(r.t, 0, 0), 0);
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 1);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(r.fires, 4);
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk_timer_stop(r.t);
    nkt_loop_free_empty(loop);
}

/* A timer re-armed at 0 from its callback fires once per iteration and
 * does not keep the loop from polling I/O. */
struct zero {
    int fires;
};

static void zero_cb(nk_timer *t, void *user)
{
    ((struct zero *)user)->fires++;
    nk_timer_restart(t, 0, 0);
}

static void test_timer_rearmed_at_zero_does_not_starve_io(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct zero z = {0};
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 0, 0, zero_cb, &z, &t), 0);
    int sv[2];
    make_pair(sv);
    struct rw s = {0};
    nk_io *io;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, rw_cb, &s, &io), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    uint64_t iters = 0;
    assert_int_equal(nkt_run_until(loop, one_read, &s, 10, 2000, &iters), 0);
    assert_int_equal(iters, 1);
    assert_int_equal(z.fires, 1);
    nk_timer_stop(t);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

struct stopper {
    nk_timer *victim;
    int fires;
};

static void victim_cb(nk_timer *t, void *user)
{
    (void)t;
    ((struct stopper *)user)->fires += 100;
}

static void stopper_cb(nk_timer *t, void *user)
{
    struct stopper *s = user;
    s->fires++;
    nk_timer_stop(s->victim);
    nk_timer_stop(t);
}

static void test_timer_stops_another_due_in_same_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct stopper s = {0};
    nk_timer *t;
    /* Same deadline: start order puts the stopper first. */
    assert_int_equal(nk_timer_start(loop, 0, 0, stopper_cb, &s, &t), 0);
    assert_int_equal(nk_timer_start(loop, 0, 0, victim_cb, &s, &s.victim), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(s.fires, 1);
    nkt_loop_free_empty(loop);
}

/* The cached time is refreshed when the wait ends: a timer started from
 * an I/O callback after a long wait is measured from the wake-up, not
 * from before the wait (it would fire early otherwise). */
struct late {
    nk_loop *loop;
    nk_timer *t;
    uint64_t started;
    uint64_t stale; /* real time minus loop time in the I/O callback */
    uint64_t fired;
    int wfd;
};

static void late_fire(nk_timer *t, void *user)
{
    (void)t;
    ((struct late *)user)->fired = nkt_now_ms();
}

static void late_io(nk_io *io, unsigned events, void *user)
{
    (void)events;
    struct late *l = user;
    char c;
    (void)!read(nk_io_fd(io), &c, 1);
    if (l->t)
        return;
    l->stale = nkt_now_ms() - nk_loop_now(l->loop);
    l->started = nk_loop_now(l->loop);
    assert_int_equal(nk_timer_start(l->loop, 30, 0, late_fire, l, &l->t), 0);
}

static void *write_later(void *arg)
{
    struct late *l = arg;
    /* The stimulus, not a synchronisation: the loop must have waited a
     * while before the data arrives. */
    struct timespec ts = {0, 80 * 1000 * 1000};
    nanosleep(&ts, NULL);
    (void)!write(l->wfd, "x", 1);
    return NULL;
}

static bool late_done(void *arg)
{
    return ((struct late *)arg)->fired != 0;
}

static void test_timer_started_after_long_wait_is_not_early(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    struct late l = {.loop = loop, .wfd = sv[1]};
    nk_io *io;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, late_io, &l, &io), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_later, &l), 0);
    assert_int_equal(nkt_run_until(loop, late_done, &l, 20, 5000, NULL), 0);
    pthread_join(th, NULL);
    assert_true(l.stale <= 5); /* not the 80 ms waited */
    assert_true(l.fired - l.started >= 30);
    nk_timer_stop(l.t);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

/* Random starts, restarts and stops (fixed seed) leave the heap in
 * order: every live timer fires once, in (deadline, start order). */
#define MIX_N 20000

struct mix {
    nk_timer *t[MIX_N];
    int fired_count[MIX_N];
    uint64_t last_deadline;
    uint64_t last_seq;
    int fired;
    int out_of_order;
};

static struct mix *mix;

static void mix_cb(nk_timer *t, void *user)
{
    size_t i = (size_t)(uintptr_t)user;
    if (mix->fired && (t->deadline < mix->last_deadline
                       || (t->deadline == mix->last_deadline
                           && t->seq < mix->last_seq)))
        mix->out_of_order++;
    mix->last_deadline = t->deadline;
    mix->last_seq = t->seq;
    mix->fired++;
    mix->fired_count[i]++;
}

static bool mix_done(void *arg)
{
    return mix->fired >= *(int *)arg;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random_restarts_and_stops_keep_heap_order(void **state)
{
    (void)state;
    mix = calloc(1, sizeof *mix);
    assert_non_null(mix);
    nk_loop *loop = nkt_loop_new();
    uint64_t rng = 12345;
    for (size_t i = 0; i < MIX_N; i++)
        assert_int_equal(nk_timer_start(loop, xorshift(&rng) % 100, 0, mix_cb,
                                        (void *)(uintptr_t)i, &mix->t[i]),
                         0);
    for (size_t k = 0; k < 3 * MIX_N; k++) {
        size_t i = xorshift(&rng) % MIX_N;
        switch (xorshift(&rng) % 3) {
        case 0:
            if (mix->t[i])
                assert_int_equal(nk_timer_restart(mix->t[i], xorshift(&rng) % 100, 0), 0);
            break;
        case 1:
            nk_timer_stop(mix->t[i]);
            mix->t[i] = NULL;
            break;
        default:
            if (!mix->t[i])
                assert_int_equal(nk_timer_start(loop, xorshift(&rng) % 100, 0,
                                                mix_cb, (void *)(uintptr_t)i,
                                                &mix->t[i]),
                                 0);
            break;
        }
    }
    int live = 0;
    for (size_t i = 0; i < MIX_N; i++)
        live += mix->t[i] != NULL;
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, (size_t)live);
    assert_int_equal(nkt_run_until(loop, mix_done, &live, 10000, 5000, NULL), 0);
    assert_int_equal(mix->fired, live);
    assert_int_equal(mix->out_of_order, 0);
    for (size_t i = 0; i < MIX_N; i++) {
        assert_int_equal(mix->fired_count[i], mix->t[i] ? 1 : 0);
        nk_timer_stop(mix->t[i]);
    }
    nkt_loop_free_empty(loop);
    free(mix);
    mix = NULL;
}

/* ---- main ---------------------------------------------------------- */

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers_fire_in_deadline_order_ties_in_start_order),
        cmocka_unit_test(test_timer_repeats_until_stopped_in_callback),
        cmocka_unit_test(test_one_shot_timer_restarted_from_its_callback),
        cmocka_unit_test(test_timer_rearmed_at_zero_does_not_starve_io),
        cmocka_unit_test(test_timer_stops_another_due_in_same_iteration),
        cmocka_unit_test(test_timer_started_after_long_wait_is_not_early),
        cmocka_unit_test(test_random_restarts_and_stops_keep_heap_order),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
