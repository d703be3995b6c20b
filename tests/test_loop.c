/* The event loop: fd watchers, deferred callbacks, run and stop. Timers
 * are in test_loop_timer.c, the edges in test_loop_edge.c. */
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
#include "nkt_proc.h"

/* ---- helpers ------------------------------------------------------- */

static void nop_timer_cb(nk_timer *t, void *user)
{
    (void)t;
    (void)user;
}

static void make_pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

/* ---- fd watchers --------------------------------------------------- */

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void drain_nothing(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    (void)user;
}

struct rw {
    int reads;
    int writes;
    unsigned last;
    char buf[16];
    ssize_t got;
};

static void rw_cb(nk_io *io, unsigned events, void *user)
{
    struct rw *s = user;
    s->last = events;
    if (events & NK_READ) {
        s->reads++;
        s->got = read(nk_io_fd(io), s->buf, sizeof s->buf);
    }
    if (events & NK_WRITE) {
        s->writes++;
        nk_io_set(io, nk_io_events(io) & ~(unsigned)NK_WRITE);
    }
}

static bool one_read(void *arg)
{
    return ((struct rw *)arg)->reads >= 1;
}

static void test_io_read_fires_when_data_arrives(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    struct rw s = {0};
    nk_io *io = NULL;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, rw_cb, &s, &io), 0);
    assert_int_equal(nk_io_fd(io), sv[0]);
    assert_int_equal(nk_io_events(io), NK_READ);
    /* Nothing readable yet: a non-blocking iteration delivers nothing. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(s.reads, 0);
    assert_int_equal(write(sv[1], "hi", 2), 2);
    assert_int_equal(nkt_run_until(loop, one_read, &s, 10, 2000, NULL), 0);
    assert_int_equal(s.reads, 1);
    assert_int_equal(s.last, NK_READ);
    assert_int_equal(s.got, 2);
    assert_memory_equal(s.buf, "hi", 2);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

static void test_io_write_fires_and_interest_drops_from_callback(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    struct rw s = {0};
    nk_io *io = NULL;
    assert_int_equal(
        nk_io_start(loop, sv[0], NK_READ | NK_WRITE, rw_cb, &s, &io), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 1);
    assert_int_equal(s.writes, 1);
    assert_int_equal(s.last, NK_WRITE);
    assert_int_equal(nk_io_events(io), NK_READ);
    /* Write interest was dropped in the callback: no more write events. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(s.writes, 1);
    assert_int_equal(s.reads, 0);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

static void test_io_zero_interest_then_set(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    struct rw s = {0};
    nk_io *io = NULL;
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(nk_io_start(loop, sv[0], 0, rw_cb, &s, &io), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(s.reads, 0);
    assert_int_equal(nk_io_set(io, NK_READ), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(s.reads, 1);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

static void test_io_hangup_reported_as_watched_bits(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    struct rw s = {0};
    nk_io *io = NULL;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, rw_cb, &s, &io), 0);
    close(sv[1]);
    assert_int_equal(nkt_run_until(loop, one_read, &s, 10, 2000, NULL), 0);
    assert_int_equal(s.last, NK_READ); /* never a bit that is not watched */
    assert_int_equal(s.got, 0);        /* EOF */
    nk_io_stop(io);
    close(sv[0]);
    nkt_loop_free_empty(loop);
}

/* Two watchers ready in the same iteration; whichever runs first stops
 * the other (and itself): the other's fetched event must not be
 * delivered. */
struct pairstop {
    nk_io *io[2];
    int calls[2];
    int fds[2];
};

static void pairstop_cb(nk_io *io, unsigned events, void *user)
{
    (void)events;
    struct pairstop *p = user;
    int me = io == p->io[0] ? 0 : 1;
    p->calls[me]++;
    nk_io_stop(p->io[1 - me]);
    p->io[1 - me] = NULL;
    nk_io_stop(io);
    p->io[me] = NULL;
}

static void test_io_stop_self_and_other_in_same_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    struct pairstop p = {0};
    assert_int_equal(nk_io_start(loop, a[0], NK_READ, pairstop_cb, &p, &p.io[0]), 0);
    assert_int_equal(nk_io_start(loop, b[0], NK_READ, pairstop_cb, &p, &p.io[1]), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    /* Both readable before the iteration: both events are fetched. */
    struct pollfd pf[2] = {{a[0], POLLIN, 0}, {b[0], POLLIN, 0}};
    assert_int_equal(poll(pf, 2, 1000), 2);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 0);
    assert_int_equal(p.calls[0] + p.calls[1], 1);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.ios, 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    nkt_loop_free_empty(loop);
}

/* Two readable watchers; whichever runs first switches the other to
 * write-only: the other's fetched read event must not be delivered, and
 * its new interest takes effect on the next iteration. */
struct switcher {
    nk_io *io[2];
    unsigned got[2][4];
    int n[2];
};

static void switch_cb(nk_io *io, unsigned events, void *user)
{
    struct switcher *w = user;
    int me = io == w->io[0] ? 0 : 1;
    if (w->n[me] < 4)
        w->got[me][w->n[me]++] = events;
    if (w->n[0] + w->n[1] == 1)
        assert_int_equal(nk_io_set(w->io[1 - me], NK_WRITE), 0);
    else if (events & NK_WRITE)
        assert_int_equal(nk_io_set(io, 0), 0);
}

static void test_io_interest_of_other_watcher_changed_from_callback(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int a[2], b[2];
    make_pair(a);
    make_pair(b);
    struct switcher w;
    memset(&w, 0, sizeof w);
    assert_int_equal(nk_io_start(loop, a[0], NK_READ, switch_cb, &w, &w.io[0]), 0);
    assert_int_equal(nk_io_start(loop, b[0], NK_READ, switch_cb, &w, &w.io[1]), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    struct pollfd pf[2] = {{a[0], POLLIN, 0}, {b[0], POLLIN, 0}};
    assert_int_equal(poll(pf, 2, 1000), 2);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(w.n[0] + w.n[1], 1);
    int first = w.n[0] ? 0 : 1;
    assert_int_equal(w.got[first][0], NK_READ);
    /* Next iteration: the first stays readable (data not read); the other
     * now reports writable only, though its data is still unread. */
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(w.n[first], 2);
    assert_int_equal(w.n[1 - first], 1);
    assert_int_equal(w.got[1 - first][0], NK_WRITE);
    assert_int_equal(nk_io_events(w.io[1 - first]), 0);
    nk_io_stop(w.io[0]);
    nk_io_stop(w.io[1]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    nkt_loop_free_empty(loop);
}

static void test_embedded_watcher_and_timer_lifecycle(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    /* Zeroed and never started: stopping is harmless. */
    nk_io io;
    nk_timer t;
    memset(&io, 0, sizeof io);
    memset(&t, 0, sizeof t);
    nk__io_stop(&io);
    nk__timer_stop(&t);
    assert_false(nk__timer_active(&t));

    nk__io_init(&io, loop, -1, rw_cb, NULL);
    assert_int_equal(nk__io_set(&io, NK_READ), NK_EINVAL);
    nk__io_init(&io, loop, sv[0], rw_cb, NULL);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.ios, 0);
    assert_int_equal(nk__io_set(&io, 0), 0); /* started, no interest */
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.ios, 1);
    nk_io *other;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, rw_cb, NULL, &other), -EEXIST);
    nk__io_stop(&io);
    nk__io_stop(&io); /* idempotent */

    nk__timer_init(&t, loop, nop_timer_cb, NULL);
    assert_false(nk__timer_active(&t));
    nk__timer_start(&t, 1000, 0);
    assert_true(nk__timer_active(&t));
    nk__timer_start(&t, 2000, 0); /* re-arm: still one timer */
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 1);
    nk__timer_stop(&t);
    nk__timer_stop(&t);
    assert_false(nk__timer_active(&t));
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

/* B14: the first callback stops the other watcher, closes its fd, and
 * watches a fresh, idle fd that got the same number. The stale event
 * fetched for the old fd must reach nobody. */
struct reuse {
    nk_loop *loop;
    nk_io *io[2];
    int fd[2];   /* watched read ends */
    int peer[2]; /* write ends */
    nk_io *fresh;
    int fresh_fd;
    int fresh_peer;
    int calls[2];
    int fresh_calls;
    bool reused;
};

static void fresh_cb(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    ((struct reuse *)user)->fresh_calls++;
}

static void reuse_cb(nk_io *io, unsigned events, void *user)
{
    (void)events;
    struct reuse *r = user;
    int me = io == r->io[0] ? 0 : 1;
    int other = 1 - me;
    r->calls[me]++;
    if (r->reused)
        return;
    r->reused = true;
    int old_fd = r->fd[other];
    nk_io_stop(r->io[other]);
    r->io[other] = NULL;
    close(r->fd[other]);
    int sv[2];
    make_pair(sv);
    /* The fresh socket takes the number just freed (the lowest free one
     * usually; dup2 makes sure). */
    if (sv[0] != old_fd) {
        assert_int_equal(dup3(sv[0], old_fd, O_CLOEXEC), old_fd);
        close(sv[0]);
    }
    r->fresh_fd = old_fd;
    r->fd[other] = -1;
    r->fresh_peer = sv[1];
    assert_int_equal(
        nk_io_start(r->loop, old_fd, NK_READ, fresh_cb, r, &r->fresh), 0);
}

static void test_io_fd_reuse_in_same_iteration_gets_no_stale_event(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct reuse r = {.loop = loop};
    for (int i = 0; i < 2; i++) {
        int sv[2];
        make_pair(sv);
        r.fd[i] = sv[0];
        r.peer[i] = sv[1];
        assert_int_equal(
            nk_io_start(loop, sv[0], NK_READ, reuse_cb, &r, &r.io[i]), 0);
        assert_int_equal(write(sv[1], "x", 1), 1);
    }
    struct pollfd pf[2] = {{r.fd[0], POLLIN, 0}, {r.fd[1], POLLIN, 0}};
    assert_int_equal(poll(pf, 2, 1000), 2);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 1);
    assert_int_equal(r.calls[0] + r.calls[1], 1);
    assert_int_equal(r.fresh_calls, 0);
    /* The fresh watcher works once its fd really is readable. */
    assert_int_equal(write(r.fresh_peer, "y", 1), 1);
    for (int i = 0; i < 10 && r.fresh_calls == 0; i++)
        assert_true(nk_loop_run(loop, NK_RUN_ONCE) >= 0);
    assert_int_equal(r.fresh_calls, 1);
    for (int i = 0; i < 2; i++) {
        if (r.io[i])
            nk_io_stop(r.io[i]);
        if (r.fd[i] >= 0)
            close(r.fd[i]);
        close(r.peer[i]);
    }
    nk_io_stop(r.fresh);
    close(r.fresh_fd);
    close(r.fresh_peer);
    nkt_loop_free_empty(loop);
}

/* Misuse that nk_io_start() forbids: the fd closed while still watched.
 * poll(2) reports POLLNVAL on every call for it; the watcher must hear of
 * it once (as its watched bits, so its read fails with EBADF), not once
 * per iteration. epoll drops the registration with the last reference to
 * the file: nothing is reported. */
struct closed_watch {
    int calls;
    unsigned last;
    int err;
};

static void closed_cb(nk_io *io, unsigned events, void *user)
{
    struct closed_watch *c = user;
    char b;
    c->calls++;
    c->last = events;
    c->err = read(nk_io_fd(io), &b, 1) < 0 ? errno : 0;
}

static void test_io_fd_closed_while_watched_is_reported_once(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    bool poll_backend = strcmp(nk_loop_backend(loop), "poll") == 0;
    int sv[2];
    make_pair(sv);
    struct closed_watch c = {0};
    nk_io *io;
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, closed_cb, &c, &io), 0);
    close(sv[0]);
    nk_loop_stats a, b;
    nk_loop_get_stats(loop, &a);
    for (int i = 0; i < 10; i++)
        assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    nk_loop_get_stats(loop, &b);
    assert_int_equal(b.iterations - a.iterations, 10);
    assert_int_equal(c.calls, poll_backend ? 1 : 0);
    if (poll_backend) {
        assert_int_equal(c.last, NK_READ);
        assert_int_equal(c.err, EBADF);
    }
    /* nk_io_set() watches the fd again: reported once more. */
    assert_int_equal(nk_io_set(io, NK_READ), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    assert_int_equal(c.calls, poll_backend ? 2 : 0);
    nk_io_stop(io);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

/* Misuse again: the watched number closed, then the watcher stopped,
 * while the file lives on through a dup (and, second round, while the
 * number already names another file). epoll cannot remove a registration
 * by a closed or reused number, so it stays, and its events would carry
 * the freed watcher: they must reach nobody and must not make the loop
 * spin. */
static void test_io_stopped_after_its_fd_closed_while_file_lives_on(void **state)
{
    (void)state;
    for (int reuse = 0; reuse < 2; reuse++) {
        nk_loop *loop = nkt_loop_new();
        int sv[2], idle[2];
        make_pair(sv);
        make_pair(idle);
        int dup_fd = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
        assert_true(dup_fd >= 0);
        struct closed_watch c = {0};
        nk_io *io, *idle_io;
        assert_int_equal(nk_io_start(loop, sv[0], NK_READ, closed_cb, &c, &io), 0);
        /* Something to wait for, so the loop waits rather than returns. */
        assert_int_equal(
            nk_io_start(loop, idle[0], NK_READ, drain_nothing, NULL, &idle_io), 0);
        close(sv[0]);
        int other[2] = {-1, -1};
        if (reuse) {
            make_pair(other); /* usually takes the number just closed */
            if (other[0] != sv[0]) {
                assert_int_equal(dup3(other[0], sv[0], O_CLOEXEC), sv[0]);
                close(other[0]);
                other[0] = sv[0];
            }
        }
        nk_io_stop(io);
        assert_int_equal(write(sv[1], "x", 1), 1);
        uint64_t iters = 0;
        assert_int_equal(nkt_run_until(loop, never, NULL, 20, 50, &iters),
                         -ETIMEDOUT);
        assert_in_range(iters, 1, 3);
        assert_int_equal(c.calls, 0);
        /* The loop still works for the watchers it has. */
        struct rw s = {0};
        assert_int_equal(nk_io_start(loop, dup_fd, NK_READ, rw_cb, &s, &io), 0);
        assert_int_equal(nkt_run_until(loop, one_read, &s, 10, 2000, NULL), 0);
        assert_int_equal(s.got, 1);
        nk_io_stop(io);
        nk_io_stop(idle_io);
        if (reuse) {
            close(other[0]);
            close(other[1]);
        }
        close(dup_fd);
        close(sv[1]);
        close(idle[0]);
        close(idle[1]);
        nkt_loop_free_empty(loop);
    }
}

/* The same, out of descriptors: dropping the stale registration needs a
 * new epoll instance, hence a descriptor. The loop gives up its old one to
 * get it, and keeps working. */
static void stale_at_emfile_child(void *arg)
{
    (void)arg;
    nk_loop *loop = NULL;
    NKT_CHILD_ASSERT(nk_loop_new(&loop) == 0);
    int sv[2], idle[2];
    NKT_CHILD_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    NKT_CHILD_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, idle) == 0);
    int dup_fd = dup(sv[0]);
    NKT_CHILD_ASSERT(dup_fd >= 0);
    struct closed_watch c = {0};
    nk_io *io, *idle_io;
    NKT_CHILD_ASSERT(nk_io_start(loop, sv[0], NK_READ, closed_cb, &c, &io) == 0);
    NKT_CHILD_ASSERT(
        nk_io_start(loop, idle[0], NK_READ, drain_nothing, NULL, &idle_io) == 0);
    close(sv[0]);
    /* Every descriptor taken, the one just closed included. */
    int filled = 0;
    while (dup(idle[1]) >= 0)
        filled++;
    NKT_CHILD_ASSERT(errno == EMFILE && filled > 0);
    nk_io_stop(io);
    NKT_CHILD_ASSERT(write(sv[1], "x", 1) == 1);
    uint64_t iters = 0;
    NKT_CHILD_ASSERT(nkt_run_until(loop, never, NULL, 20, 50, &iters)
                     == -ETIMEDOUT);
    NKT_CHILD_ASSERT(iters >= 1 && iters <= 3 && c.calls == 0);
    struct rw s = {0};
    NKT_CHILD_ASSERT(nk_io_start(loop, dup_fd, NK_READ, rw_cb, &s, &io) == 0);
    NKT_CHILD_ASSERT(nkt_run_until(loop, one_read, &s, 10, 2000, NULL) == 0);
    nk_io_stop(io);
    nk_io_stop(idle_io);
    NKT_CHILD_ASSERT(nk_loop_free(loop) == 0);
}

static void test_io_stale_registration_dropped_at_emfile(void **state)
{
    (void)state;
    if (nkt_under_valgrind())
        nkt_skip("valgrind emulates RLIMIT_NOFILE");
    int open_now = nkt_fd_count();
    assert_true(open_now > 0);
    struct rlimit lim = {.rlim_cur = (rlim_t)open_now + 16,
                         .rlim_max = (rlim_t)open_now + 16};
    assert_int_equal(nkt_child(stale_at_emfile_child, NULL, &lim, false, 15000),
                     0);
}

/* ---- deferred callbacks -------------------------------------------- */

struct deferred {
    nk_loop *loop;
    int order[8];
    int n;
    uint64_t iter[8];
};

static void defer_record(nk_loop *loop, void *user)
{
    struct deferred *d = user;
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    d->iter[d->n] = st.iterations;
    d->order[d->n] = d->n;
    d->n++;
}

static void defer_requeue(nk_loop *loop, void *user)
{
    defer_record(loop, user);
    struct deferred *d = user;
    if (d->n < 4)
        assert_int_equal(nk_loop_defer(loop, defer_requeue, d), 0);
}

static void test_deferred_run_in_order_next_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct deferred d = {.loop = loop};
    for (int i = 0; i < 3; i++)
        assert_int_equal(nk_loop_defer(loop, defer_record, &d), 0);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.pending, 3);
    assert_int_equal(nk_loop_timeout(loop), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.iter[0], d.iter[2]);
    nkt_loop_free_empty(loop);
}

static void test_task_queued_by_task_runs_next_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct deferred d = {.loop = loop};
    assert_int_equal(nk_loop_defer(loop, defer_requeue, &d), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 1);
    assert_int_equal(d.n, 1);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(d.n, 4);
    for (int i = 1; i < 4; i++)
        assert_int_equal(d.iter[i], d.iter[i - 1] + 1);
    nkt_loop_free_empty(loop);
}

static void cancelled_cb(nk_loop *loop, void *user)
{
    (void)loop;
    (*(int *)user)++;
}

struct canceller {
    struct nk__task victim;
    int victim_runs;
    struct nk__task self;
};

static void canceller_cb(nk_loop *loop, void *user)
{
    struct canceller *c = user;
    nk__loop_cancel_task(loop, &c->victim);
}

static void test_internal_task_cancelled_by_earlier_task_never_runs(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct canceller c;
    memset(&c, 0, sizeof c);
    nk__loop_defer_task(loop, &c.self, canceller_cb, &c);
    nk__loop_defer_task(loop, &c.victim, cancelled_cb, &c.victim_runs);
    /* Queueing a queued task does nothing. */
    nk__loop_defer_task(loop, &c.victim, cancelled_cb, &c.victim_runs);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.pending, 2);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(c.victim_runs, 0);
    nkt_loop_free_empty(loop);
}

/* ---- run modes, stop, refs ----------------------------------------- */

static void test_run_default_returns_when_nothing_alive(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_ONCE), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 0);
    assert_int_equal(nk_loop_timeout(loop), -1);
    const char *b = nk_loop_backend(loop);
    assert_true(strcmp(b, "epoll") == 0 || strcmp(b, "poll") == 0);
    nkt_loop_free_empty(loop);
}

static void stop_cb(nk_timer *t, void *user)
{
    (void)t;
    nk_loop_stop(user);
}

static void test_stop_from_callback_returns_after_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1, 1, stop_cb, loop, &t), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 1);
    nk_timer_stop(t);
    nkt_loop_free_empty(loop);
}

static void test_stop_before_run_makes_run_return_after_one_iteration(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk__loop_ref(loop); /* alive forever otherwise */
    nk_loop_stop(loop);
    nk_loop_stats a, b;
    nk_loop_get_stats(loop, &a);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    nk_loop_get_stats(loop, &b);
    assert_int_equal(b.iterations - a.iterations, 1);
    /* ONCE with a ref returns 1 (still alive). */
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 1);
    nk__loop_unref(loop);
    assert_int_equal(nk_loop_run(loop, NK_RUN_NOWAIT), 0);
    nkt_loop_free_empty(loop);
}

struct sleeper {
    nk_loop *loop;
    pid_t tid;
    bool saw_sleep;
};

/* The state letter of thread tid ('S' while blocked in its wait). */
static char thread_state(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static void *stop_when_asleep(void *arg)
{
    struct sleeper *s = arg;
    /* Bounded wait for the loop thread to block in the kernel, so the
     * stop really has to wake it. */
    for (int i = 0; i < 5000 && !s->saw_sleep; i++) {
        if (thread_state(s->tid) == 'S')
            s->saw_sleep = true;
        else {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    nk_loop_stop(s->loop);
    return NULL;
}

static void test_stop_from_other_thread_wakes_blocked_loop(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk__loop_ref(loop); /* nothing to wait for but the stop */
    pthread_t th;
    struct sleeper s = {loop, gettid(), false};
    assert_int_equal(pthread_create(&th, NULL, stop_when_asleep, &s), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    pthread_join(th, NULL);
    assert_true(s.saw_sleep);
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    /* Blocked, not spinning: a handful of iterations at most. */
    assert_true(st.iterations <= 3);
    nk__loop_unref(loop);
    nkt_loop_free_empty(loop);
}

static void reenter_cb(nk_timer *t, void *user)
{
    int *r = user;
    *r = nk_loop_run(t->loop, NK_RUN_NOWAIT);
    nk_timer_stop(t);
}

static void test_run_from_callback_is_ebusy(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int r = 0;
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 0, 0, reenter_cb, &r, &t), 0);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(r, NK_EBUSY);
    nkt_loop_free_empty(loop);
}

static void test_loop_free_is_ebusy_with_live_handles(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1000, 0, nop_timer_cb, NULL, &t), 0);
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk_timer_stop(t);
    int sv[2];
    make_pair(sv);
    nk_io *io;
    assert_int_equal(nk_io_start(loop, sv[0], 0, rw_cb, NULL, &io), 0);
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    /* Pending deferred work runs before the loop is freed. */
    int runs = 0;
    assert_int_equal(nk_loop_defer(loop, cancelled_cb, &runs), 0);
    assert_int_equal(nk_loop_free(loop), 0);
    assert_int_equal(runs, 1);
}

/* ---- test support: nkt_run_until ---------------------------------- */

static void test_run_until_times_out_without_spinning(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    int sv[2];
    make_pair(sv);
    nk_io *io;
    /* An idle watcher: the loop has something to wait for, nothing comes. */
    assert_int_equal(nk_io_start(loop, sv[0], NK_READ, drain_nothing, NULL, &io), 0);
    uint64_t iters = 0, t0 = nkt_now_ms();
    assert_int_equal(nkt_run_until(loop, never, NULL, 1000, 50, &iters), -ETIMEDOUT);
    uint64_t took = nkt_now_ms() - t0;
    assert_true(took >= 50 && took < 5000);
    assert_true(iters >= 1 && iters <= 3);
    /* Its guard timer is gone afterwards. */
    nk_loop_stats st;
    nk_loop_get_stats(loop, &st);
    assert_int_equal(st.timers, 0);

    /* Always readable (never read): the iteration bound ends it. */
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(nkt_run_until(loop, never, NULL, 3, 5000, &iters), -ELOOP);
    assert_int_equal(iters, 3);
    nk_io_stop(io);
    close(sv[0]);
    close(sv[1]);
    nkt_loop_free_empty(loop);
}

static void test_loop_free_is_ebusy_while_referenced(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk__loop_ref(loop);
    assert_int_equal(nk_loop_free(loop), NK_EBUSY);
    nk__loop_unref(loop);
    nkt_loop_free_empty(loop);
}

/* ---- main ---------------------------------------------------------- */

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_read_fires_when_data_arrives),
        cmocka_unit_test(test_io_write_fires_and_interest_drops_from_callback),
        cmocka_unit_test(test_io_zero_interest_then_set),
        cmocka_unit_test(test_io_hangup_reported_as_watched_bits),
        cmocka_unit_test(test_io_stop_self_and_other_in_same_iteration),
        cmocka_unit_test(test_io_interest_of_other_watcher_changed_from_callback),
        cmocka_unit_test(test_embedded_watcher_and_timer_lifecycle),
        cmocka_unit_test(test_io_fd_reuse_in_same_iteration_gets_no_stale_event),
        cmocka_unit_test(test_io_fd_closed_while_watched_is_reported_once),
        cmocka_unit_test(test_io_stopped_after_its_fd_closed_while_file_lives_on),
        cmocka_unit_test(test_io_stale_registration_dropped_at_emfile),
        cmocka_unit_test(test_deferred_run_in_order_next_iteration),
        cmocka_unit_test(test_task_queued_by_task_runs_next_iteration),
        cmocka_unit_test(test_internal_task_cancelled_by_earlier_task_never_runs),
        cmocka_unit_test(test_run_default_returns_when_nothing_alive),
        cmocka_unit_test(test_stop_from_callback_returns_after_iteration),
        cmocka_unit_test(test_stop_before_run_makes_run_return_after_one_iteration),
        cmocka_unit_test(test_stop_from_other_thread_wakes_blocked_loop),
        cmocka_unit_test(test_run_from_callback_is_ebusy),
        cmocka_unit_test(test_loop_free_is_ebusy_with_live_handles),
        cmocka_unit_test(test_loop_free_is_ebusy_while_referenced),
        cmocka_unit_test(test_run_until_times_out_without_spinning),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
