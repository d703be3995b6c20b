/* TCP under a failing allocator: the n-th allocation fails, for every n,
 * while starting a server, accepting, queueing a send, adding a timer, and
 * across a whole session; each gives -ENOMEM or a close with a reason, and
 * nothing leaks. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/tcp.h"

#include "fault_tcp_fx.h"
#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_fault.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_proc.h"
#include "nkt_stream.h"

/* ---- B10: allocation failure at every n ---- */

static void test_alloc_failure_at_every_n_starting_server(void **state)
{
    struct fx *f = *state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    size_t live = nkt_alloc_live_bytes();
    int fds = nkt_fd_count();
    int n;
    for (n = 1; n < 100; n++) {
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        nk_tcp_server *s = NULL;
        int rc = nk_tcp_server_start(f->loop, &a, NULL, &s);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < n);
            nk_tcp_server_free(s);
            nk_loop_run(f->loop, NK_RUN_NOWAIT);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(nkt_alloc_live_bytes(), live);
        assert_int_equal(nkt_fd_count(), fds);
    }
    assert_true(n > 1 && n < 100);
    assert_int_equal(nkt_alloc_live_bytes(), live);
    assert_int_equal(nkt_fd_count(), fds);
}

struct accept_wait {
    struct fx *f;
    uint64_t handled;
};

static bool accept_handled(void *arg)
{
    struct accept_wait *w = arg;
    nk_tcp_server_stats st = fx_stats(w->f);
    return st.accepted + st.accept_errors >= w->handled;
}

/* Fail allocation n while a connection is accepted: the client is closed
 * (EOF, counted in accept_errors) or served; nothing leaks. */
static void test_alloc_failure_at_every_n_accepting(void **state)
{
    struct fx *f = *state;
    size_t live = nkt_alloc_live_bytes();
    int n;
    uint64_t handled = 0;
    for (n = 1; n < 100; n++) {
        int c = nkt_tcp_connect(&f->addr);
        assert_true(c >= 0);
        unsigned opens = f->opens;
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        struct accept_wait w = {.f = f, .handled = ++handled};
        int rc = nkt_run_until(f->loop, accept_handled, &w, 1000, WAIT_MS,
                               NULL);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        assert_int_equal(rc, 0);
        if (f->opens == opens) {
            assert_int_equal(fx_stats(f).accept_errors, (uint64_t)n);
            int eof = nkt_expect_eof(c, WAIT_MS);
            assert_true(eof == 0 || eof == -ECONNRESET);
            close(c);
            assert_int_equal(nkt_alloc_live_bytes(), live);
            continue;
        }
        assert_true(used < n);
        fx_echo_hello(f, c);
        close(c);
        fx_run_until_closes(f, 1);
        break;
    }
    assert_true(n > 1 && n < 100);
    assert_int_equal(fx_stats(f).accepted, 1);
    nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

/* Fail allocation n while a send must be queued (the socket says EAGAIN):
 * -ENOMEM takes nothing and leaves the connection open, or the bytes are
 * queued and arrive exactly once. */
static void test_alloc_failure_at_every_n_queueing_send(void **state)
{
    struct fx *f = *state;
    f->echo = false;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    fx_run_until_opens(f, 1);
    nk_tcp_conn *conn = f->last;
    int n;
    for (n = 1; n < 100; n++) {
        nkt_fault_errno(NKT_SEND, EAGAIN, 1);
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        int rc = nk_tcp_conn_send(conn, "abc", 3);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == -ENOMEM) {
            assert_int_equal(f->closes, 0);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(used < n);
        break;
    }
    assert_true(n > 1 && n < 100);
    assert_int_equal(nkt_run_until(f->loop, fx_fd_readable, &c, 100000, WAIT_MS,
                                   NULL),
                     0);
    char buf[8];
    assert_int_equal(nkt_read_some(c, buf, sizeof buf, WAIT_MS), 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(nkt_read_some(c, buf, sizeof buf, 0), -ETIMEDOUT);
    close(c);
    fx_run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], NK_EOF);
}

/* Fail allocation n while adding a timer: -ENOMEM, or a timer that fires. */
static void test_alloc_failure_at_every_n_adding_timer(void **state)
{
    struct fx *f = *state;
    size_t live = nkt_alloc_live_bytes();
    int n;
    for (n = 1; n < 100; n++) {
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        nk_timer *t = NULL;
        int rc = nk_timer_start(f->loop, 1, 0, fx_on_timer, NULL, &t);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == -ENOMEM) {
            assert_int_equal(nkt_alloc_live_bytes(), live);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(used < n);
        fx_timer_fired = false;
        assert_int_equal(nkt_run_until(f->loop, fx_fired, NULL, 100, WAIT_MS,
                                       NULL),
                         0);
        nk_timer_stop(t);
        break;
    }
    assert_true(n > 1 && n < 100);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

/* ---- B10 across a whole session: loop, server, accept, a queued echo,
 * a timer, close. ---- */

struct session_wait {
    struct fx *f;
    int c;
};

static bool opened_or_refused(void *arg)
{
    struct session_wait *w = arg;
    nk_tcp_server_stats st = fx_stats(w->f);
    return w->f->opens > 0 || st.accept_errors > 0;
}

static bool echoed_or_failed(void *arg)
{
    struct session_wait *w = arg;
    return fx_fd_readable(&w->c) || w->f->closes > 0 || w->f->send_errors > 0;
}

static void session_end(struct fx *s, int c)
{
    if (c >= 0)
        close(c);
    if (s->srv)
        nk_tcp_server_free(s->srv);
    for (int i = 0; i < 1000; i++) {
        if (nk_loop_free(s->loop) == 0)
            return;
        nk_loop_run(s->loop, NK_RUN_ONCE);
    }
    fail_msg("loop still busy after the session");
}

/* One session with allocation n failing (set by the caller). Returns 0 when
 * everything worked, else the clear error met: a -ENOMEM returned by a
 * call, or the reason of a close. Each failure is checked where it
 * happens: the peer sees the end of its stream, and the operation after it
 * succeeds. */
static int echo_session(void)
{
    struct fx s;
    memset(&s, 0, sizeof s);
    s.echo = true;
    int rc = nk_loop_new(&s.loop);
    if (rc != 0) {
        assert_int_equal(rc, -ENOMEM);
        return rc;
    }
    rc = fx_start_server(&s, NULL);
    if (rc != 0) {
        assert_int_equal(rc, -ENOMEM);
        s.srv = NULL;
        session_end(&s, -1);
        return rc;
    }
    int c = nkt_tcp_connect(&s.addr);
    assert_true(c >= 0);
    struct session_wait w = {.f = &s, .c = c};
    assert_int_equal(nkt_run_until(s.loop, opened_or_refused, &w, 1000,
                                   WAIT_MS, NULL),
                     0);
    if (s.opens == 0) {
        int eof = nkt_expect_eof(c, WAIT_MS);
        assert_true(eof == 0 || eof == -ECONNRESET);
        session_end(&s, c);
        return -ENOMEM;
    }
    int result = 0;
    /* The echo must be queued: the socket says EAGAIN once. */
    nkt_fault_errno(NKT_SEND, EAGAIN, 1);
    assert_int_equal(nkt_send_all(c, "hello", 5), 0);
    assert_int_equal(nkt_run_until(s.loop, echoed_or_failed, &w, 1000,
                                   WAIT_MS, NULL),
                     0);
    if (s.closes > 0) {
        assert_int_not_equal(s.reasons[0], 0);
        int eof = nkt_expect_eof(c, WAIT_MS);
        assert_true(eof == 0 || eof == -ECONNRESET);
        session_end(&s, c);
        return s.reasons[0];
    }
    if (s.send_errors > 0) {
        /* Nothing was taken; the connection works on. */
        assert_int_equal(s.last_send_error, -ENOMEM);
        result = -ENOMEM;
        nkt_alloc_fail_at(0);
        assert_int_equal(nkt_send_all(c, "hello", 5), 0);
        assert_int_equal(nkt_run_until(s.loop, fx_fd_readable, &c, 1000,
                                       WAIT_MS, NULL),
                         0);
    }
    char buf[5];
    assert_int_equal(nkt_read_exact(c, buf, 5, WAIT_MS), 0);
    assert_memory_equal(buf, "hello", 5);

    nk_timer *t = NULL;
    fx_timer_fired = false;
    rc = nk_timer_start(s.loop, 1, 0, fx_on_timer, NULL, &t);
    if (rc != 0) {
        assert_int_equal(rc, -ENOMEM);
        result = rc;
    } else {
        assert_int_equal(nkt_run_until(s.loop, fx_fired, NULL, 100, WAIT_MS,
                                       NULL),
                         0);
        nk_timer_stop(t);
    }
    close(c);
    fx_run_until_closes(&s, 1);
    assert_int_equal(s.reasons[0], NK_EOF);
    session_end(&s, -1);
    return result;
}

static void test_alloc_failure_at_every_n_whole_session(void **state)
{
    (void)state;
    size_t live = nkt_alloc_live_bytes();
    int fds = nkt_fd_count();
    int n, failures = 0;
    for (n = 1; n < 300; n++) {
        nkt_fault_reset();
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        int rc = echo_session();
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        assert_int_equal(nkt_alloc_live_bytes(), live);
        assert_int_equal(nkt_fd_count(), fds);
        if (rc == 0 && used < n)
            break; /* the whole session fits in n - 1 allocations */
        assert_int_not_equal(rc, 0);
        failures++;
    }
    print_message("a session makes %d allocations; each failure gave a "
                  "clear error\n",
                  n - 1);
    assert_true(n < 300);
    assert_int_equal(failures, n - 1);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_alloc_failure_at_every_n_starting_server),
        T(test_alloc_failure_at_every_n_accepting),
        T(test_alloc_failure_at_every_n_queueing_send),
        T(test_alloc_failure_at_every_n_adding_timer),
        T(test_alloc_failure_at_every_n_whole_session),
    };
#undef T
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
