/* The event loop at its edges: signals, 100 000 timers (C4), cross-thread
 * posts (B17), the embeddable fd, run modes, bad arguments, and every
 * allocation failure. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "netkit.h"
#include "loop_internal.h"
#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_loop.h"
#include "nkt_proc.h"

static void make_pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

static bool is_epoll(nk_loop *loop)
{
    return strcmp(nk_loop_backend(loop), "epoll") == 0;
}

static void nop_io(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    (void)user;
}

static void nop_timer(nk_timer *t, void *user)
{
    (void)t;
    (void)user;
}

static void nop_signal(nk_signal *s, int signum, void *user)
{
    (void)s;
    (void)signum;
    (void)user;
}

static void count_task(nk_loop *loop, void *user)
{
    (void)loop;
    (*(int *)user)++;
}

/* ---- signals ------------------------------------------------------- */

struct sigs {
    int usr1;
    int term;
    int last;
};

static void sig_cb(nk_signal *s, int signum, void *user)
{
    (void)s;
    struct sigs *g = user;
    g->last = signum;
    if (signum == SIGUSR1)
        g->usr1++;
    if (signum == SIGTERM)
        g->term++;
}

static bool got_usr1(void *arg)
{
    return ((struct sigs *)arg)->usr1 >= 1;
}

static bool got_term(void *arg)
{
    return ((struct sigs *)arg)->term >= 1;
}

static bool timer_done(void *arg)
{
    return *(int *)arg >= 1;
}

static void count_timer(nk_timer *t, void *user)
{
    (void)t;
    (*(int *)user)++;
}

static void test_signal_watchers_get_raised_signals(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct sigs g = {0};
    nk_signal *usr1, *term;
    assert_int_equal(nk_signal_start(loop, SIGUSR1, sig_cb, &g, &usr1), 0);
    assert_int_equal(nk_signal_start(loop, SIGTERM, sig_cb, &g, &term), 0);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.signals, 2);
    assert_int_equal(st.ios, 0); /* the signalfd is the loop's own */

    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(nkt_run_until(loop, got_usr1, &g, 10, 2000, NULL), 0);
    assert_int_equal(g.last, SIGUSR1);
    assert_int_equal(g.term, 0);

    nk_signal_stop(usr1);
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(nkt_run_until(loop, got_term, &g, 10, 2000, NULL), 0);
    assert_int_equal(g.last, SIGTERM);
    assert_int_equal(g.usr1, 1);
    nk_signal_stop(term);

    /* The loop stays usable, and a signal can be watched again. */
    int fired = 0;
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1, 0, count_timer, &fired, &t), 0);
    assert_int_equal(nkt_run_until(loop, timer_done, &fired, 10, 2000, NULL), 0);
    nk_timer_stop(t);
    assert_int_equal(nk_signal_start(loop, SIGUSR1, sig_cb, &g, &usr1), 0);
    assert_int_equal(raise(SIGUSR1), 0);
    g.usr1 = 0;
    assert_int_equal(nkt_run_until(loop, got_usr1, &g, 10, 2000, NULL), 0);
    nk_signal_stop(usr1);
    nkt_loop_free_empty(loop);
}

static void stop_self_signal(nk_signal *s, int signum, void *user)
{
    (void)signum;
    (*(int *)user)++;
    nk_signal_stop(s);
}

static void test_signal_stopped_in_its_callback_and_pending_discarded(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int calls = 0;
    nk_signal *s;
    assert_int_equal(nk_signal_start(loop, SIGUSR2, stop_self_signal, &calls, &s), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(calls, 1);
    /* A delivery still pending when the watcher stops is discarded, not
     * handed to the default action (which would end this process). */
    assert_int_equal(nk_signal_start(loop, SIGUSR2, stop_self_signal, &calls, &s), 0);
    assert_int_equal(raise(SIGUSR2), 0);
    nk_signal_stop(s);
    sigset_t blocked;
    pthread_sigmask(SIG_BLOCK, NULL, &blocked);
    assert_false(sigismember(&blocked, SIGUSR2));
    assert_int_equal(calls, 1);
    nkt_loop_free_empty(loop);
}

static void test_signal_bad_arguments(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_signal *s = NULL;
    const int bad[] = {0, -1, SIGKILL, SIGSTOP, NSIG, 1000, 32, 33};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(nk_signal_start(loop, bad[i], nop_signal, NULL, &s),
                         NK_EINVAL);
    assert_int_equal(nk_signal_start(NULL, SIGUSR1, nop_signal, NULL, &s), NK_EINVAL);
    assert_int_equal(nk_signal_start(loop, SIGUSR1, NULL, NULL, &s), NK_EINVAL);
    assert_int_equal(nk_signal_start(loop, SIGUSR1, nop_signal, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_signal_start(loop, SIGUSR1, nop_signal, NULL, &s), 0);
    nk_signal *s2 = NULL;
    assert_int_equal(nk_signal_start(loop, SIGUSR1, nop_signal, NULL, &s2), -EEXIST);
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk_signal_stop(s);
    nk_signal_stop(NULL);
    nkt_loop_free_empty(loop);
}

/* ---- C4: 100 000 timers -------------------------------------------- */

#define C4_N 100000

struct c4 {
    nk_timer *t[C4_N];
    uint64_t timeout[C4_N];
    uint64_t started_at;
    uint64_t last_deadline;
    uint64_t last_seq;
    int fired;
    int early;
    int out_of_order;
    int cancelled_fired;
    bool cancelled[C4_N];
};

static struct c4 *c4;

static void c4_cb(nk_timer *t, void *user)
{
    size_t i = (size_t)(uintptr_t)user;
    if (c4->cancelled[i])
        c4->cancelled_fired++;
    if (nkt_now_ms() < c4->started_at + c4->timeout[i])
        c4->early++;
    if (c4->fired && (t->deadline < c4->last_deadline
                      || (t->deadline == c4->last_deadline
                          && t->seq < c4->last_seq)))
        c4->out_of_order++;
    c4->last_deadline = t->deadline;
    c4->last_seq = t->seq;
    c4->fired++;
    nk_timer_stop(t);
    c4->t[i] = NULL;
}

static bool c4_done(void *arg)
{
    (void)arg;
    return c4->fired >= C4_N / 2;
}

static void test_c4_100k_timers_fire_in_order_cancelled_never(void **state)
{
    (void)state;
    c4 = calloc(1, sizeof *c4);
    assert_non_null(c4);
    nk_loop *loop = nkt_loop_new();
    size_t base = nkt_alloc_live_bytes();
    uint64_t rng = 0x9E3779B97F4A7C15u; /* fixed seed */
    c4->started_at = nkt_now_ms();
    for (size_t i = 0; i < C4_N; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        c4->timeout[i] = rng % 300;
        assert_int_equal(nk_timer_start(loop, c4->timeout[i], 0, c4_cb,
                                        (void *)(uintptr_t)i, &c4->t[i]),
                         0);
    }
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, C4_N);
    /* Cancel every other one, in a scattered order. */
    for (size_t k = 0; k < C4_N; k++) {
        size_t i = (k * 7919u) % C4_N; /* a permutation: 7919 is prime */
        if (i % 2)
            continue;
        c4->cancelled[i] = true;
        nk_timer_stop(c4->t[i]);
        c4->t[i] = NULL;
    }
    int cancelled = 0;
    for (size_t i = 0; i < C4_N; i++)
        cancelled += c4->cancelled[i];
    assert_int_equal(cancelled, C4_N / 2);
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, C4_N / 2);

    uint64_t iters = 0;
    assert_int_equal(nkt_run_until(loop, c4_done, NULL, 100000, 10000, &iters), 0);
    assert_int_equal(c4->fired, C4_N / 2);
    assert_int_equal(c4->early, 0);
    assert_int_equal(c4->out_of_order, 0);
    assert_int_equal(c4->cancelled_fired, 0);
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 0);
    assert_int_equal(nkt_alloc_live_bytes(), base);
    /* No spin: about one iteration per millisecond of span at most. */
    assert_true(iters <= 2000);
    nkt_loop_free_empty(loop);
    free(c4);
    c4 = NULL;
}

/* ---- B17: cross-thread posts --------------------------------------- */

#define B17_THREADS 4
#define B17_POSTS 100000

struct b17 {
    nk_loop *loop;
    pthread_t loop_thread;
    uint32_t next[B17_THREADS];
    int errors;
    int wrong_thread;
    long ran;
};

static struct b17 *b17_state;

struct poster {
    struct b17 *b;
    uint32_t id;
    int failures;
};

static void b17_cb(nk_loop *loop, void *user)
{
    (void)loop;
    struct b17 *b = b17_state;
    uintptr_t v = (uintptr_t)user;
    uint32_t th = (uint32_t)(v >> 24);
    uint32_t seq = (uint32_t)(v & 0xFFFFFFu);
    if (!pthread_equal(pthread_self(), b->loop_thread))
        b->wrong_thread++;
    if (th >= B17_THREADS || b->next[th] != seq)
        b->errors++;
    else
        b->next[th]++;
    b->ran++;
}

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (uint32_t i = 0; i < B17_POSTS; i++) {
        uintptr_t v = ((uintptr_t)p->id << 24) | i;
        if (nk_loop_post(p->b->loop, b17_cb, (void *)v) != 0)
            p->failures++;
    }
    return NULL;
}

static void *controller_main(void *arg)
{
    struct b17 *b = arg;
    pthread_t th[B17_THREADS];
    struct poster p[B17_THREADS];
    for (uint32_t i = 0; i < B17_THREADS; i++) {
        p[i] = (struct poster){b, i, 0};
        pthread_create(&th[i], NULL, poster_main, &p[i]);
    }
    for (int i = 0; i < B17_THREADS; i++)
        pthread_join(th[i], NULL);
    nk_loop_stop(b->loop);
    intptr_t failures = 0;
    for (int i = 0; i < B17_THREADS; i++)
        failures += p[i].failures;
    return (void *)failures;
}

static void test_b17_posts_from_4_threads_run_once_in_order(void **state)
{
    (void)state;
    struct b17 *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b17_state = b;
    b->loop = nkt_loop_new();
    b->loop_thread = pthread_self();
    /* Keeps the loop alive until the stop, whatever the posts' timing. */
    nk_timer *keep;
    assert_int_equal(nk_timer_start(b->loop, 60000, 0, nop_timer, NULL, &keep), 0);
    pthread_t ctl;
    assert_int_equal(pthread_create(&ctl, NULL, controller_main, b), 0);
    assert_int_equal(nk_loop_run(b->loop, NK_RUN_DEFAULT), 0);
    void *failures;
    pthread_join(ctl, &failures);
    assert_int_equal((intptr_t)failures, 0);
    /* The stop came after every post: all of them ran before run()
     * returned, each once, in each thread's order, on this thread. */
    assert_int_equal(b->ran, (long)B17_THREADS * B17_POSTS);
    assert_int_equal(b->errors, 0);
    assert_int_equal(b->wrong_thread, 0);
    for (int i = 0; i < B17_THREADS; i++)
        assert_int_equal(b->next[i], B17_POSTS);
    nk_timer_stop(keep);
    nkt_loop_free_empty(b->loop);
    free(b);
    b17_state = NULL;
}

static void test_posts_never_run_are_dropped_by_free(void **state)
{
    (void)state;
    size_t base = nkt_alloc_live_bytes();
    nk_loop *loop = nkt_loop_new();
    int runs = 0;
    for (int i = 0; i < 10; i++)
        assert_int_equal(nk_loop_post(loop, count_task, &runs), 0);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.pending, 10);
    assert_int_equal(nk_loop_free(loop), 0);
    assert_int_equal(runs, 0);
    assert_int_equal(nkt_alloc_live_bytes(), base);
}

static void test_post_from_loop_thread_runs_in_same_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int runs = 0;
    assert_int_equal(nk_loop_post(loop, count_task, &runs), 0);
    assert_int_equal(nk_loop_post(loop, count_task, &runs), 0);
    /* Posts keep DEFAULT alive until they ran. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(runs, 2);
    nkt_loop_free_empty(loop);
}

/* ---- F4: free the loop right after a cross-thread call returns ------ */

#define F4_ROUNDS 2000
#define F4_POSTS 2

struct f4 {
    nk_loop *loop;
    uint64_t deadline; /* the spinning task gives up after it */
    bool spin;         /* loop thread only, as is ran */
    int ran;
};

static void f4_count(nk_loop *loop, void *user)
{
    (void)loop;
    ((struct f4 *)user)->ran++;
}

/* Re-queued every iteration: the loop never blocks, so it sees a post or
 * a stop the moment it is published, while its sender is still inside the
 * call (before the wakeup write). */
static void f4_spin(nk_loop *loop, void *user)
{
    struct f4 *f = user;
    if (f->spin && nkt_now_ms() < f->deadline)
        assert_int_equal(nk_loop_defer(loop, f4_spin, f), 0);
}

static void *f4_poster(void *arg)
{
    struct f4 *f = arg;
    for (int i = 0; i < F4_POSTS; i++)
        nk_loop_post(f->loop, f4_count, f);
    return NULL;
}

static void *f4_stopper(void *arg)
{
    nk_loop_stop(((struct f4 *)arg)->loop);
    return NULL;
}

static void test_f4_loop_freed_as_soon_as_posts_and_stop_seen(void **state)
{
    (void)state;
    int rounds = nkt_under_valgrind() ? F4_ROUNDS / 10 : F4_ROUNDS;
    for (int round = 0; round < rounds; round++) {
        struct f4 f = {.loop = nkt_loop_new(), .spin = true};
        f.deadline = nkt_now_ms() + 5000;
        assert_int_equal(nk_loop_defer(f.loop, f4_spin, &f), 0);
        pthread_t poster, stopper;
        assert_int_equal(pthread_create(&poster, NULL, f4_poster, &f), 0);
        assert_int_equal(pthread_create(&stopper, NULL, f4_stopper, &f), 0);
        /* Returns on the stop: the spinning task keeps DEFAULT going. */
        assert_int_equal(nk_loop_run(f.loop, NK_RUN_DEFAULT), 0);
        while (f.ran < F4_POSTS && nkt_now_ms() < f.deadline)
            assert_true(nk_loop_run(f.loop, NK_RUN_NOWAIT) >= 0);
        assert_int_equal(f.ran, F4_POSTS);
        /* Both senders' last calls were seen: free at once, while they may
         * still be inside them. */
        f.spin = false;
        assert_int_equal(nk_loop_free(f.loop), 0);
        pthread_join(poster, NULL);
        pthread_join(stopper, NULL);
    }
}

/* ---- embedding: nk_loop_fd, nk_loop_timeout ------------------------ */

static int fd_readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0);
}

static void read_all(nk_io *io, unsigned events, void *user)
{
    (void)events;
    char buf[64];
    while (read(nk_io_fd(io), buf, sizeof buf) > 0)
        (*(int *)user)++;
}

static void *post_one(void *arg)
{
    static int dummy;
    nk_loop_post(arg, count_task, &dummy);
    return NULL;
}

static void test_loop_fd_readable_when_event_pending(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int fd = nk_loop_fd(loop);
    if (!is_epoll(loop)) {
        assert_int_equal(fd, NK_ENOTSUP);
        const char *backend = nk_loop_backend(loop);
        nkt_loop_free_empty(loop);
        nkt_skip("the %s backend has no loop fd", backend);
    }
    assert_true(fd >= 0);
    assert_int_equal(fd_readable(fd), 0);
    int sv[2];
    make_pair(sv);
    int reads = 0;
    nk_io *io;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, read_all, &reads, &io), 0);
    assert_int_equal(fd_readable(fd), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(reads, 1);
    assert_int_equal(fd_readable(fd), 0);

    /* A post from another thread makes it readable too. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_one, loop), 0);
    pthread_join(th, NULL);
    assert_int_equal(poll(&p, 1, 2000), 1);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(fd_readable(fd), 0);

    /* Timers do not touch the fd: nk_loop_timeout says when to call. */
    assert_int_equal(nk_loop_timeout(loop), -1);
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 5000, 0, nop_timer, NULL, &t), 0);
    int to = nk_loop_timeout(loop);
    assert_true(to > 4900 && to <= 5000);
    assert_int_equal(nk_loop_defer(loop, count_task, &reads), 0);
    assert_int_equal(nk_loop_timeout(loop), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    nk_timer_stop(t);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

/* Busy-wait (no sleep): real time passes while the loop does not run. */
static void spin_until(uint64_t t)
{
    while (nkt_now_ms() < t)
        ;
}

static void test_loop_timeout_counts_down_without_running(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1000, 0, nop_timer, NULL, &t), 0);
    /* Read after the start: the deadline is then at most before + 1000,
     * whichever clock reading the start used. */
    uint64_t before = nkt_now_ms();
    assert_true(nk_loop_timeout(loop) <= 1000);
    /* An embedding program polls other things for a while: the timeout it
     * asks for next must count the time gone, not the time of the last
     * iteration. */
    spin_until(before + 30);
    int to = nk_loop_timeout(loop);
    assert_in_range(to, 0, 1000 - 30);
    /* Past the deadline: due now. */
    assert_int_equal(nk_timer_restart(t, 5, 0), 0);
    spin_until(nkt_now_ms() + 6);
    assert_int_equal(nk_loop_timeout(loop), 0);
    nk_timer_stop(t);
    nkt_loop_free_empty(loop);
}

/* ---- run modes ----------------------------------------------------- */

static void test_run_modes_nowait_once_default(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int fired = 0;
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 20, 0, count_timer, &fired, &t), 0);
    nk_loop_stats a, b;
    nk_loop_get_stats(loop, &a);
    uint64_t t0 = nkt_now_ms();
    /* NOWAIT: one iteration, no waiting, the timer is not due. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    nk_loop_get_stats(loop, &b);
    assert_int_equal(b.iterations - a.iterations, 1);
    assert_int_equal(fired, 0);
    assert_true(nkt_now_ms() - t0 < 20);
    /* ONCE: waits for the timer and fires it, in one iteration. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 0);
    nk_loop_get_stats(loop, &a);
    assert_int_equal(a.iterations - b.iterations, 1);
    assert_int_equal(fired, 1);
    assert_true(nkt_now_ms() - t0 >= 20);
    /* A repeating timer: each ONCE waits for and fires one period. */
    assert_int_equal(nk_timer_restart(t, 10, 10), 0);
    nk_loop_get_stats(loop, &a);
    fired = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 1);
    nk_loop_get_stats(loop, &b);
    assert_int_equal(fired, 3);
    assert_int_equal(b.iterations - a.iterations, 3);
    nk_timer_stop(t);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 0);
    nkt_loop_free_empty(loop);
}

/* ---- bad arguments ------------------------------------------------- */

static void test_bad_arguments_give_exact_codes(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_io *io = NULL;
    nk_timer *t = NULL;
    int sv[2];
    make_pair(sv);

    assert_int_equal(nk_loop_new(NULL), NK_EINVAL);
    assert_int_equal(nk_loop_free(NULL), NK_EINVAL);
    assert_int_equal(nk_loop_run(NULL, NK_RUN_NOWAIT), NK_EINVAL);
    assert_int_equal(nk_loop_run(loop, (nk_run_mode)7), NK_EINVAL);
    assert_int_equal(nk_loop_post(NULL, count_task, NULL), NK_EINVAL);
    assert_int_equal(nk_loop_post(loop, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_loop_defer(NULL, count_task, NULL), NK_EINVAL);
    assert_int_equal(nk_loop_defer(loop, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_loop_fd(NULL), NK_EINVAL);

    struct {
        nk_loop *loop;
        int fd;
        unsigned events;
        nk_io_cb cb;
        nk_io **out;
        int want;
    } io_cases[] = {
        {NULL, sv[0], NK_READ, nop_io, &io, NK_EINVAL},
        {loop, -1, NK_READ, nop_io, &io, NK_EINVAL},
        {loop, sv[0], 4, nop_io, &io, NK_EINVAL},
        {loop, sv[0], NK_READ | 8, nop_io, &io, NK_EINVAL},
        {loop, sv[0], NK_READ, NULL, &io, NK_EINVAL},
        {loop, sv[0], NK_READ, nop_io, NULL, NK_EINVAL},
    };
    for (size_t i = 0; i < sizeof io_cases / sizeof *io_cases; i++)
        assert_int_equal(nk_io_start(io_cases[i].loop, io_cases[i].fd,
                                     io_cases[i].events, io_cases[i].cb, NULL,
                                     io_cases[i].out),
                         io_cases[i].want);

    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, nop_io, NULL, &io), 0);
    nk_io *io2 = NULL;
    assert_int_equal(nk_io_start(loop, sv[0], NK_WRITE, nop_io, NULL, &io2), -EEXIST);
    assert_int_equal(nk_io_start(loop, sv[0], 0, nop_io, NULL, &io2), -EEXIST);
    assert_null(io2);
    assert_int_equal(nk_io_set(NULL, NK_READ), NK_EINVAL);
    assert_int_equal(nk_io_set(io, 4), NK_EINVAL);
    assert_int_equal(nk_io_events(io), NK_READ); /* unchanged */
    assert_int_equal(nk_io_set(io, NK_READ | NK_WRITE), 0);
    assert_int_equal(nk_io_events(io), NK_READ | NK_WRITE);
    assert_int_equal(nk_io_fd(NULL), NK_EINVAL);
    assert_int_equal(nk_io_events(NULL), 0);
    nk_io_stop(io);
    nk_io_stop(NULL);

    if (is_epoll(loop)) {
        /* epoll refuses regular files; a closed fd is EBADF. */
        char path[] = "/tmp/nk_loop_XXXXXX";
        int f = mkstemp(path);
        assert_true(f >= 0);
        unlink(path);
        assert_int_equal(nk_io_start(loop, f, NK_READ, nop_io, NULL, &io), -EPERM);
        close(f);
        assert_int_equal(nk_io_start(loop, f, NK_READ, nop_io, NULL, &io), -EBADF);
    }

    assert_int_equal(nk_timer_start(NULL, 1, 0, nop_timer, NULL, &t), NK_EINVAL);
    assert_int_equal(nk_timer_start(loop, 1, 0, NULL, NULL, &t), NK_EINVAL);
    assert_int_equal(nk_timer_start(loop, 1, 0, nop_timer, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_timer_restart(NULL, 1, 0), NK_EINVAL);
    nk_timer_stop(NULL);
    /* A timeout too far away saturates instead of wrapping round. */
    assert_int_equal(nk_timer_start(loop, UINT64_MAX, 0, nop_timer, NULL, &t), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    nk_timer_stop(t);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

/* ---- allocation failures (B10) ------------------------------------- */

static void sig_nop_cb(nk_signal *s, int signum, void *user)
{
    (void)s;
    (void)signum;
    (void)user;
}

/* One scenario that exercises every allocation of the loop. Each call
 * either works or fails with exactly -ENOMEM; afterwards everything is
 * released. Returns how many calls failed. */
static int alloc_scenario(int highfd, int *ran)
{
    nk_loop *loop = NULL;
    int r = nk_loop_new(&loop);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        return 1;
    }
    int failed = 0;
    nk_io *io = NULL;
    nk_timer *t = NULL;
    nk_signal *s = NULL;
    r = nk_io_start(loop, highfd, NK_READ, nop_io, NULL, &io);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        io = NULL;
        failed++;
    }
    r = nk_timer_start(loop, 0, 0, count_timer, ran, &t);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        t = NULL;
        failed++;
    }
    r = nk_loop_defer(loop, count_task, ran);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        failed++;
    }
    r = nk_loop_post(loop, count_task, ran);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        failed++;
    }
    r = nk_signal_start(loop, SIGUSR2, sig_nop_cb, NULL, &s);
    if (r) {
        assert_int_equal(r, -ENOMEM);
        s = NULL;
        failed++;
    }
    /* A failed call left the loop consistent: it runs and frees. */
    assert_true(nk_loop_run(loop, NK_RUN_NOWAIT) >= 0);
    nk_io_stop(io);
    nk_timer_stop(t);
    nk_signal_stop(s);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 0);
    assert_int_equal(nk_loop_free(loop), 0);
    return failed;
}

static void test_every_allocation_failure_gives_enomem_and_no_leak(void **state)
{
    (void)state;
    int sv[2];
    make_pair(sv);
    /* A high fd number makes the fd table grow, one more allocation. */
    int highfd = fcntl(sv[0], F_DUPFD_CLOEXEC, 300);
    assert_true(highfd >= 300);
    size_t base = nkt_alloc_live_bytes();
    int ran = 0;
    nkt_alloc_reset();
    assert_int_equal(alloc_scenario(highfd, &ran), 0);
    long total = nkt_alloc_count();
    assert_true(total >= 6);
    assert_int_equal(ran, 3);
    assert_int_equal(nkt_alloc_live_bytes(), base);
    for (long n = 1; n <= total; n++) {
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        ran = 0;
        int failed = alloc_scenario(highfd, &ran);
        assert_int_equal(failed, 1);
        assert_int_equal(nkt_alloc_live_bytes(), base);
    }
    nkt_alloc_reset();
    close(highfd);
    close(sv[0]);
    close(sv[1]);
}

static int group_setup(void **state)
{
    (void)state;
    nkt_alloc_install();
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_watchers_get_raised_signals),
        cmocka_unit_test(test_signal_stopped_in_its_callback_and_pending_discarded),
        cmocka_unit_test(test_signal_bad_arguments),
        cmocka_unit_test(test_c4_100k_timers_fire_in_order_cancelled_never),
        cmocka_unit_test(test_b17_posts_from_4_threads_run_once_in_order),
        cmocka_unit_test(test_posts_never_run_are_dropped_by_free),
        cmocka_unit_test(test_post_from_loop_thread_runs_in_same_iteration),
        cmocka_unit_test(test_f4_loop_freed_as_soon_as_posts_and_stop_seen),
        cmocka_unit_test(test_loop_fd_readable_when_event_pending),
        cmocka_unit_test(test_loop_timeout_counts_down_without_running),
        cmocka_unit_test(test_run_modes_nowait_once_default),
        cmocka_unit_test(test_bad_arguments_give_exact_codes),
        cmocka_unit_test(test_every_allocation_failure_gives_enomem_and_no_leak),
    };
    return nkt_run_tests(tests, group_setup, NULL, argc, argv);
}
