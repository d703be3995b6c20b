/* TCP servers and clients when descriptors or kernel resources run out
 * (injected at accept4, socket, setsockopt, bind, listen, connect): pending
 * clients are shed without spinning and service recovers; client connects
 * fail with their code, once, leaving nothing behind. */
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

struct shed_wait {
    struct fx *f;
    uint64_t shed;
};

static bool shed_reached(void *arg)
{
    struct shed_wait *w = arg;
    return fx_stats(w->f).shed >= w->shed;
}

/* B5 with injected EMFILE/ENFILE: each of 5 pending clients is shed (the
 * spare descriptor takes it off the queue and closes it), in a bounded
 * number of iterations; every client sees EOF; then service recovers. */
static void shed_and_recover(struct fx *f, int err)
{
    enum { N = 5 };
    int c[N];
    for (int i = 0; i < N; i++) {
        c[i] = nkt_tcp_connect(&f->addr);
        assert_true(c[i] >= 0);
    }
    int fds = nkt_fd_count();
    /* The first accept fails, the shedding one passes, and so on. */
    nkt_fault_errno(NKT_ACCEPT4, err, 1);
    nkt_fault_storm(NKT_ACCEPT4, err, 2);
    struct shed_wait w = {.f = f, .shed = N};
    uint64_t iters = 0;
    assert_int_equal(nkt_run_until(f->loop, shed_reached, &w, 4 * N, WAIT_MS,
                                   &iters),
                     0);
    nk_tcp_server_stats st = fx_stats(f);
    assert_int_equal(st.shed, N);
    assert_int_equal(st.accepted, 0);
    assert_int_equal(f->opens, 0);
    assert_int_equal(nkt_fd_count(), fds);
    for (int i = 0; i < N; i++) {
        int eof = nkt_expect_eof(c[i], WAIT_MS);
        assert_true(eof == 0 || eof == -ECONNRESET);
        close(c[i]);
    }
    nkt_fault_reset();
    int ok = nkt_tcp_connect(&f->addr);
    assert_true(ok >= 0);
    fx_run_until_opens(f, 1);
    fx_echo_hello(f, ok);
    close(ok);
    fx_run_until_closes(f, 1);
    assert_int_equal(fx_stats(f).accepted, 1);
}

static void test_accept_emfile_sheds_each_pending_client(void **state)
{
    shed_and_recover(*state, EMFILE);
}

static void test_accept_enfile_sheds_each_pending_client(void **state)
{
    shed_and_recover(*state, ENFILE);
}

/* B5, nothing to shed: every accept fails. The server stops watching the
 * listener and retries on a timer instead of spinning, and serves the
 * client once descriptors are back. */
static void test_accept_emfile_without_spare_pauses_without_spin(void **state)
{
    struct fx *f = *state;
    nk_tcp_server_free(f->srv);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.accept_retry_ms = 20;
    assert_int_equal(fx_start_server(f, &o), 0);
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    nkt_fault_errno(NKT_ACCEPT4, EMFILE, -1);

    /* 200 ms of a listener that cannot accept: ten retries, no spin. */
    fx_timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(f->loop, 200, 0, fx_on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, fx_fired, NULL, 100, WAIT_MS, &iters);
    nk_timer_stop(t);
    assert_int_equal(rc, 0);
    nk_tcp_server_stats st = fx_stats(f);
    assert_true(st.accept_pauses >= 2);
    assert_true(st.accept_pauses <= 12);
    assert_true(iters <= 3 * st.accept_pauses + 3);
    assert_int_equal(st.accepted, 0);

    nkt_fault_reset();
    fx_run_until_opens(f, 1);
    fx_echo_hello(f, c);
    close(c);
    fx_run_until_closes(f, 1);
}

/* A handshake aborted before accept() (ECONNABORTED) is counted and
 * skipped; the next pending client is accepted in the same wakeup. */
static void test_accept_aborted_handshake_skipped(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    nkt_fault_errno(NKT_ACCEPT4, ECONNABORTED, 3);
    uint64_t iters = 0;
    struct closes_wait w = {.f = f, .closes = 1};
    assert_int_equal(nkt_run_until(f->loop, fx_opens_reached, &w, 5, WAIT_MS,
                                   &iters),
                     0);
    assert_int_equal(iters, 1);
    nk_tcp_server_stats st = fx_stats(f);
    assert_int_equal(st.accept_errors, 3);
    assert_int_equal(st.accepted, 1);
    fx_echo_hello(f, c);
    close(c);
    fx_run_until_closes(f, 1);
}

/* accept() out of kernel memory (ENOMEM, nothing to shed): the server
 * pauses accepting, retries on its timer, and then serves the client. */
static void test_accept_enomem_pauses_then_serves(void **state)
{
    struct fx *f = *state;
    nk_tcp_server_free(f->srv);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.accept_retry_ms = 20;
    assert_int_equal(fx_start_server(f, &o), 0);
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    nkt_fault_errno(NKT_ACCEPT4, ENOMEM, 2);
    uint64_t iters = 0;
    struct closes_wait w = {.f = f, .closes = 1};
    assert_int_equal(nkt_run_until(f->loop, fx_opens_reached, &w, 20, WAIT_MS,
                                   &iters),
                     0);
    nk_tcp_server_stats st = fx_stats(f);
    assert_int_equal(st.accept_pauses, 2);
    assert_int_equal(st.accepted, 1);
    assert_true(iters <= 6);
    fx_echo_hello(f, c);
    close(c);
    fx_run_until_closes(f, 1);
}

static void on_connect_unexpected(nk_tcp_client *cl, nk_tcp_conn *conn,
                                  int status, void *user)
{
    (void)cl;
    (void)conn;
    (void)status;
    (*(int *)user)++;
}

/* B6: socket() fails with EMFILE for a client: -EMFILE at once, no
 * callback, no descriptor or memory left behind. */
static void test_client_connect_emfile_leaks_nothing(void **state)
{
    struct fx *f = *state;
    int calls = 0;
    nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
    o.on_connect = on_connect_unexpected;
    o.conn.user = &calls;
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    nkt_fault_errno(NKT_SOCKET, EMFILE, 1);
    nk_tcp_client *cl = NULL;
    assert_int_equal(nk_tcp_client_connect(f->loop, &f->addr, &o, &cl),
                     -EMFILE);
    for (int i = 0; i < 3; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(calls, 0);
    assert_int_equal(nkt_fd_count(), fds);
    assert_int_equal(nkt_alloc_live_bytes(), live);

    nkt_fault_errno(NKT_SOCKET, EMFILE, 1);
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&f->addr, 1000, &s), -EMFILE);
    assert_int_equal(nkt_fd_count(), fds);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

struct connect_result {
    int calls;
    int status;
    nk_tcp_conn *conn;
};

static void on_connect_record(nk_tcp_client *cl, nk_tcp_conn *conn,
                              int status, void *user)
{
    (void)cl;
    struct connect_result *r = user;
    r->calls++;
    r->status = status;
    r->conn = conn;
}

static bool connect_reported(void *arg)
{
    return ((struct connect_result *)arg)->calls > 0;
}

/* connect() refused at once: on_connect reports it once, from the loop;
 * nothing is left behind. */
static void test_client_connect_refused_reported_once_without_leak(void **state)
{
    struct fx *f = *state;
    struct connect_result r = {0};
    nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
    o.on_connect = on_connect_record;
    o.conn.user = &r;
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    nkt_fault_errno(NKT_CONNECT, ECONNREFUSED, 1);
    assert_int_equal(nk_tcp_client_connect(f->loop, &f->addr, &o, NULL), 0);
    assert_int_equal(r.calls, 0); /* never from inside the call */
    assert_int_equal(nkt_run_until(f->loop, connect_reported, &r, 100,
                                   WAIT_MS, NULL),
                     0);
    for (int i = 0; i < 3; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -ECONNREFUSED);
    assert_null(r.conn);
    assert_int_equal(nkt_fd_count(), fds);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

/* A signal during connect() leaves the connection going on: EINTR must
 * not be taken for a failure. */
static void test_client_connect_eintr_still_connects(void **state)
{
    struct fx *f = *state;
    struct connect_result r = {0};
    nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
    o.on_connect = on_connect_record;
    o.conn.user = &r;
    nkt_fault_errno(NKT_CONNECT, EINTR, 1);
    assert_int_equal(nk_tcp_client_connect(f->loop, &f->addr, &o, NULL), 0);
    assert_int_equal(nkt_run_until(f->loop, connect_reported, &r, 100,
                                   WAIT_MS, NULL),
                     0);
    assert_int_equal(nkt_fault_injected(NKT_CONNECT), 1);
    assert_int_equal(r.status, 0);
    assert_non_null(r.conn);
    fx_run_until_opens(f, 1);
    nk_tcp_conn_close(r.conn);
    fx_run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], NK_EOF);
}

/* Each step of starting a server failing in turn: its code, returned as
 * it is, and no descriptor or memory left behind. */
static void test_server_start_failures_leak_nothing(void **state)
{
    struct fx *f = *state;
    static const struct {
        enum nkt_sys sys;
        int err;
    } steps[] = {
        {NKT_SOCKET, EMFILE},       {NKT_SOCKET, ENFILE},
        {NKT_SETSOCKOPT, ENOBUFS},  {NKT_BIND, EADDRINUSE},
        {NKT_BIND, EACCES},         {NKT_LISTEN, EADDRINUSE},
    };
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        nkt_fault_reset();
        nkt_fault_errno(steps[i].sys, steps[i].err, 1);
        nk_tcp_server *s = NULL;
        int rc = nk_tcp_server_start(f->loop, &a, NULL, &s);
        if (rc != -steps[i].err)
            print_message("%s %d: got %d\n", nkt_fault_sys_name(steps[i].sys),
                          steps[i].err, rc);
        assert_int_equal(rc, -steps[i].err);
        assert_int_equal(nkt_fault_injected(steps[i].sys), 1);
        assert_int_equal(nkt_fd_count(), fds);
        assert_int_equal(nkt_alloc_live_bytes(), live);
    }
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_accept_emfile_sheds_each_pending_client),
        T(test_accept_enfile_sheds_each_pending_client),
        T(test_accept_emfile_without_spare_pauses_without_spin),
        T(test_accept_aborted_handshake_skipped),
        T(test_accept_enomem_pauses_then_serves),
        T(test_client_connect_emfile_leaks_nothing),
        T(test_client_connect_refused_reported_once_without_leak),
        T(test_client_connect_eintr_still_connects),
        T(test_server_start_failures_leak_nothing),
    };
#undef T
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
