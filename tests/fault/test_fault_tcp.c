/* TCP under injected system-call faults: an echo server stays byte-exact
 * under 1-byte writes and reads, EINTR storms and EAGAIN; an injected reset
 * closes one connection once with its reason; queued sends complete or are
 * cancelled by one close; running out of descriptors sheds without
 * spinning; a failing allocator gives -ENOMEM or a close, never a leak. */
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

#include "nkt_alloc.h"
#include "nkt_fault.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_proc.h"
#include "nkt_stream.h"

#define WAIT_MS 10000
#define MAX_CLOSES 64

struct fx {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    bool echo;
    unsigned produce;    /* records of PRODUCE_SIZE queued on open */
    size_t produce_size;
    unsigned opens;
    unsigned closes;
    int reasons[MAX_CLOSES];
    nk_tcp_conn_stats at_close[MAX_CLOSES];
    nk_tcp_conn *last;   /* most recently opened, until it closes */
    size_t peak_queued;
    int send_errors;
    int last_send_error;
};

static struct fx fx;

static void on_open(nk_tcp_conn *c, void *user)
{
    struct fx *f = user;
    f->opens++;
    f->last = c;
    for (unsigned i = 0; i < f->produce; i++) {
        uint8_t rec[1024];
        nkt_stream_fill(42, (uint64_t)i * f->produce_size, rec,
                        f->produce_size);
        int rc = nk_tcp_conn_send(c, rec, f->produce_size);
        if (rc < 0) {
            f->send_errors++;
            break;
        }
    }
}

static void on_data(nk_tcp_conn *c, const void *data, size_t len, void *user)
{
    struct fx *f = user;
    if (!f->echo)
        return;
    int rc = nk_tcp_conn_send(c, data, len);
    if (rc < 0) {
        f->send_errors++;
        f->last_send_error = rc;
    }
    nk_tcp_conn_stats st;
    nk_tcp_conn_get_stats(c, &st);
    if (st.queued > f->peak_queued)
        f->peak_queued = st.queued;
}

static void on_close(nk_tcp_conn *c, int reason, void *user)
{
    struct fx *f = user;
    if (f->closes < MAX_CLOSES) {
        f->reasons[f->closes] = reason;
        nk_tcp_conn_get_stats(c, &f->at_close[f->closes]);
    }
    f->closes++;
    if (f->last == c)
        f->last = NULL;
}

static int start_server(struct fx *f, const nk_tcp_server_opts *o)
{
    nk_tcp_server_opts opts = NK_TCP_SERVER_OPTS_INIT;
    if (o)
        opts = *o;
    opts.on_open = on_open;
    opts.conn.on_data = on_data;
    opts.conn.on_close = on_close;
    opts.conn.user = f;
    nk_addr a;
    if (nk_addr_parse("127.0.0.1:0", &a) != 0)
        return -1;
    int rc = nk_tcp_server_start(f->loop, &a, &opts, &f->srv);
    if (rc != 0)
        return rc;
    return nk_tcp_server_addr(f->srv, &f->addr);
}

static int setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    fx.echo = true;
    nkt_fault_reset();
    if (nk_loop_new(&fx.loop) != 0 || start_server(&fx, NULL) != 0)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nkt_fault_reset();
    nk_tcp_server_free(f->srv);
    /* Run the deferred closes; the loop must then be empty. */
    for (int i = 0; i < 10; i++) {
        if (nk_loop_free(f->loop) == 0)
            return 0;
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    }
    return -1;
}

static nk_tcp_server_stats server_stats(struct fx *f)
{
    nk_tcp_server_stats st;
    nk_tcp_server_get_stats(f->srv, &st);
    return st;
}

/* ---- a raw client in its own thread: send a seeded stream, read the
 * echo back and check it, then close (which wakes the loop: the server
 * sees EOF). ---- */

struct client {
    pthread_t th;
    nk_addr addr;
    size_t len;
    uint64_t seed;
    int rc;
    atomic_bool done;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    uint8_t buf[4096];
    int fd = nkt_tcp_connect(&cl->addr);
    if (fd < 0) {
        cl->rc = fd;
        atomic_store(&cl->done, true);
        return NULL;
    }
    int rc = 0;
    for (size_t off = 0; off < cl->len && rc == 0; off += sizeof buf) {
        size_t n = cl->len - off < sizeof buf ? cl->len - off : sizeof buf;
        nkt_stream_fill(cl->seed, off, buf, n);
        rc = nkt_send_all(fd, buf, n);
    }
    for (size_t off = 0; off < cl->len && rc == 0; off += sizeof buf) {
        size_t n = cl->len - off < sizeof buf ? cl->len - off : sizeof buf;
        rc = nkt_read_exact(fd, buf, n, WAIT_MS);
        if (rc == 0 && !nkt_stream_check(cl->seed, off, buf, n))
            rc = -EILSEQ;
    }
    cl->rc = rc;
    atomic_store(&cl->done, true);
    close(fd);
    return NULL;
}

struct echo_wait {
    struct fx *f;
    struct client *cl;
    unsigned closes;
};

static bool echo_done(void *arg)
{
    struct echo_wait *w = arg;
    return atomic_load(&w->cl->done) && w->f->closes >= w->closes;
}

/* Echo @len bytes through the server with one client; returns the loop
 * iterations it took. */
static uint64_t echo_once(struct fx *f, size_t len, uint64_t seed)
{
    struct client cl = {.addr = f->addr, .len = len, .seed = seed};
    atomic_init(&cl.done, false);
    unsigned closes = f->closes;
    assert_int_equal(pthread_create(&cl.th, NULL, client_main, &cl), 0);
    struct echo_wait w = {.f = f, .cl = &cl, .closes = closes + 1};
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, echo_done, &w, 10000000, WAIT_MS, &iters);
    pthread_join(cl.th, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cl.rc, 0);
    assert_int_equal(f->closes, closes + 1);
    assert_int_equal(f->reasons[closes], NK_EOF);
    assert_int_equal(f->at_close[closes].bytes_in, len);
    assert_int_equal(f->at_close[closes].bytes_out, len);
    assert_int_equal(f->at_close[closes].queued, 0);
    assert_int_equal(f->send_errors, 0);
    return iters;
}

/* B8: every send and every receive of the library moves at most one byte;
 * the echo is still byte-exact. */
static void test_echo_exact_under_one_byte_writes_and_reads(void **state)
{
    struct fx *f = *state;
    nkt_fault_short(NKT_SEND, 1, -1);
    nkt_fault_short(NKT_RECV, 1, -1);
    echo_once(f, 16384, 1);
    assert_true(nkt_fault_injected(NKT_SEND) >= 16384);
    assert_true(nkt_fault_injected(NKT_RECV) >= 16384);
}

/* B9: EINTR on every other send, receive, accept and loop wait. */
static void test_echo_exact_under_eintr_storm(void **state)
{
    struct fx *f = *state;
    nkt_fault_eintr_storm();
    echo_once(f, 256 * 1024, 2);
    assert_true(nkt_fault_injected(NKT_SEND) > 0);
    assert_true(nkt_fault_injected(NKT_RECV) > 0);
}

/* EAGAIN on writes the socket would have taken: the echo is queued, then
 * flushed when the loop says writable, in order. */
static void test_eagain_on_send_queues_then_flushes_in_order(void **state)
{
    struct fx *f = *state;
    nkt_fault_storm(NKT_SEND, EAGAIN, 3);
    echo_once(f, 256 * 1024, 3);
    assert_true(nkt_fault_injected(NKT_SEND) > 0);
    assert_true(f->peak_queued > 0);
}

struct closes_wait {
    struct fx *f;
    unsigned closes;
};

static bool closes_reached(void *arg)
{
    struct closes_wait *w = arg;
    return w->f->closes >= w->closes;
}

static bool opens_reached(void *arg)
{
    struct closes_wait *w = arg;
    return w->f->opens >= w->closes;
}

static void run_until_closes(struct fx *f, unsigned n)
{
    struct closes_wait w = {.f = f, .closes = n};
    assert_int_equal(nkt_run_until(f->loop, closes_reached, &w, 100000,
                                   WAIT_MS, NULL),
                     0);
}

static void run_until_opens(struct fx *f, unsigned n)
{
    struct closes_wait w = {.f = f, .closes = n};
    assert_int_equal(nkt_run_until(f->loop, opens_reached, &w, 100000,
                                   WAIT_MS, NULL),
                     0);
}

static bool fd_readable(void *arg)
{
    struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Echo "hello" through the server on an open raw client. */
static void echo_hello(struct fx *f, int c)
{
    assert_int_equal(nkt_send_all(c, "hello", 5), 0);
    assert_int_equal(nkt_run_until(f->loop, fd_readable, &c, 100000, WAIT_MS,
                                   NULL),
                     0);
    char buf[5];
    assert_int_equal(nkt_read_exact(c, buf, 5, WAIT_MS), 0);
    assert_memory_equal(buf, "hello", 5);
}

/* A reset reported by recv on one connection closes that one with reason
 * -ECONNRESET, once; the other connection keeps being served. */
static void test_reset_on_recv_closes_once_others_unaffected(void **state)
{
    struct fx *f = *state;
    int c1 = nkt_tcp_connect(&f->addr);
    int c2 = nkt_tcp_connect(&f->addr);
    assert_true(c1 >= 0 && c2 >= 0);
    run_until_opens(f, 2);
    nk_addr l1;
    assert_int_equal(nkt_sock_name(c1, &l1), 0);
    unsigned short port = (unsigned short)nk_addr_port(&l1);
    nkt_fault_filter(NKT_RECV, nkt_fault_peer_port_is, &port);
    nkt_fault_errno(NKT_RECV, ECONNRESET, 1);

    assert_int_equal(nkt_send_all(c1, "x", 1), 0);
    run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], -ECONNRESET);
    assert_int_equal(nkt_fault_injected(NKT_RECV), 1);
    assert_int_equal(server_stats(f).closed_reset, 1);
    int eof = nkt_expect_eof(c1, WAIT_MS);
    assert_true(eof == 0 || eof == -ECONNRESET);

    echo_hello(f, c2);
    echo_hello(f, c2);
    assert_int_equal(f->closes, 1); /* delivered once */
    close(c2);
    run_until_closes(f, 2);
    assert_int_equal(f->reasons[1], NK_EOF);
    close(c1);
}

/* B8: 10 000 sends queued at once (1-byte writes) all complete, in order. */
static void test_ten_thousand_queued_sends_complete_in_order(void **state)
{
    struct fx *f = *state;
    f->echo = false;
    f->produce = 10000;
    f->produce_size = 8;
    nkt_fault_short(NKT_SEND, 1, -1);
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    run_until_opens(f, 1);
    assert_int_equal(f->send_errors, 0);
    nk_tcp_conn_stats st;
    nk_tcp_conn_get_stats(f->last, &st);
    assert_true(st.queued >= 80000 - 1); /* at most one byte went at once */

    /* The loop flushes while this thread reads: one read per wakeup. */
    uint8_t buf[4096];
    size_t got = 0;
    while (got < 80000) {
        assert_int_equal(nkt_run_until(f->loop, fd_readable, &c, 1000000,
                                       WAIT_MS, NULL),
                         0);
        int n = nkt_read_some(c, buf, sizeof buf, WAIT_MS);
        assert_true(n > 0);
        assert_true(nkt_stream_check(42, got, buf, (size_t)n));
        got += (size_t)n;
    }
    assert_int_equal(got, 80000);
    nk_tcp_conn_get_stats(f->last, &st);
    assert_int_equal(st.bytes_out, 80000);
    assert_int_equal(st.queued, 0);
    close(c);
    run_until_closes(f, 1);
    assert_int_equal(f->closes, 1);
    assert_int_equal(f->reasons[0], NK_EOF);
}

/* B8: 10 000 queued sends of 1 KiB; the peer reads 64 KiB and resets. The
 * rest is cancelled by exactly one close with reason reset; what arrived
 * was an exact prefix. */
static void test_ten_thousand_queued_sends_cancelled_by_one_reset(void **state)
{
    struct fx *f = *state;
    f->echo = false;
    f->produce = 10000;
    f->produce_size = 1024;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    run_until_opens(f, 1);
    assert_int_equal(f->send_errors, 0);
    uint8_t buf[4096];
    for (size_t off = 0; off < 65536; off += sizeof buf) {
        assert_int_equal(nkt_read_exact(c, buf, sizeof buf, WAIT_MS), 0);
        assert_true(nkt_stream_check(42, off, buf, sizeof buf));
    }
    nkt_close_rst(c);
    run_until_closes(f, 1);
    assert_true(f->reasons[0] == -ECONNRESET || f->reasons[0] == -EPIPE);
    assert_true(f->at_close[0].bytes_out >= 65536);
    assert_true(f->at_close[0].bytes_out < 10000 * 1024);
    assert_int_equal(server_stats(f).closed_reset, 1);
    /* Exactly once: nothing more arrives however long the loop runs. */
    for (int i = 0; i < 5; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(f->closes, 1);
}

struct shed_wait {
    struct fx *f;
    uint64_t shed;
};

static bool shed_reached(void *arg)
{
    struct shed_wait *w = arg;
    return server_stats(w->f).shed >= w->shed;
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
    nk_tcp_server_stats st = server_stats(f);
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
    run_until_opens(f, 1);
    echo_hello(f, ok);
    close(ok);
    run_until_closes(f, 1);
    assert_int_equal(server_stats(f).accepted, 1);
}

static void test_accept_emfile_sheds_each_pending_client(void **state)
{
    shed_and_recover(*state, EMFILE);
}

static void test_accept_enfile_sheds_each_pending_client(void **state)
{
    shed_and_recover(*state, ENFILE);
}

static bool timer_fired;
static void on_timer(nk_timer *t, void *user)
{
    (void)t;
    (void)user;
    timer_fired = true;
}
static bool fired(void *arg)
{
    (void)arg;
    return timer_fired;
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
    assert_int_equal(start_server(f, &o), 0);
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    nkt_fault_errno(NKT_ACCEPT4, EMFILE, -1);

    /* 200 ms of a listener that cannot accept: ten retries, no spin. */
    timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(f->loop, 200, 0, on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, fired, NULL, 100, WAIT_MS, &iters);
    nk_timer_stop(t);
    assert_int_equal(rc, 0);
    nk_tcp_server_stats st = server_stats(f);
    assert_true(st.accept_pauses >= 2);
    assert_true(st.accept_pauses <= 12);
    assert_true(iters <= 3 * st.accept_pauses + 3);
    assert_int_equal(st.accepted, 0);

    nkt_fault_reset();
    run_until_opens(f, 1);
    echo_hello(f, c);
    close(c);
    run_until_closes(f, 1);
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
    assert_int_equal(nkt_run_until(f->loop, opens_reached, &w, 5, WAIT_MS,
                                   &iters),
                     0);
    assert_int_equal(iters, 1);
    nk_tcp_server_stats st = server_stats(f);
    assert_int_equal(st.accept_errors, 3);
    assert_int_equal(st.accepted, 1);
    echo_hello(f, c);
    close(c);
    run_until_closes(f, 1);
}

/* accept() out of kernel memory (ENOMEM, nothing to shed): the server
 * pauses accepting, retries on its timer, and then serves the client. */
static void test_accept_enomem_pauses_then_serves(void **state)
{
    struct fx *f = *state;
    nk_tcp_server_free(f->srv);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.accept_retry_ms = 20;
    assert_int_equal(start_server(f, &o), 0);
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    nkt_fault_errno(NKT_ACCEPT4, ENOMEM, 2);
    uint64_t iters = 0;
    struct closes_wait w = {.f = f, .closes = 1};
    assert_int_equal(nkt_run_until(f->loop, opens_reached, &w, 20, WAIT_MS,
                                   &iters),
                     0);
    nk_tcp_server_stats st = server_stats(f);
    assert_int_equal(st.accept_pauses, 2);
    assert_int_equal(st.accepted, 1);
    assert_true(iters <= 6);
    echo_hello(f, c);
    close(c);
    run_until_closes(f, 1);
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

/* A send that meets a reset closes that connection with the reason, once:
 * nk_tcp_conn_send reports it, on_close repeats it, the client sees the
 * end of its stream. */
static void test_reset_on_send_closes_once(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    run_until_opens(f, 1);
    nkt_fault_errno(NKT_SEND, ECONNRESET, 1);
    assert_int_equal(nkt_send_all(c, "x", 1), 0);
    run_until_closes(f, 1);
    assert_int_equal(f->send_errors, 1);
    assert_int_equal(f->reasons[0], -ECONNRESET);
    assert_int_equal(server_stats(f).closed_reset, 1);
    int eof = nkt_expect_eof(c, WAIT_MS);
    assert_true(eof == 0 || eof == -ECONNRESET);
    for (int i = 0; i < 3; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(f->closes, 1);
    close(c);
}

static bool queued_something(void *arg)
{
    struct fx *f = arg;
    return f->peak_queued > 0;
}

/* EAGAIN queues the echo; EPIPE on the flush cancels it: one close with
 * -EPIPE, and the queued bytes never reach the client. */
static void test_epipe_on_flush_cancels_queue_with_one_close(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    run_until_opens(f, 1);
    nkt_fault_errno(NKT_SEND, EAGAIN, 1);
    assert_int_equal(nkt_send_all(c, "hello", 5), 0);
    assert_int_equal(nkt_run_until(f->loop, queued_something, f, 1000,
                                   WAIT_MS, NULL),
                     0);
    assert_int_equal(f->send_errors, 0);
    nkt_fault_errno(NKT_SEND, EPIPE, 1);
    run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], -EPIPE);
    assert_int_equal(f->at_close[0].bytes_out, 0);
    assert_int_equal(server_stats(f).closed_reset, 1);
    int eof = nkt_expect_eof(c, WAIT_MS); /* no "hello" first */
    assert_true(eof == 0 || eof == -ECONNRESET);
    close(c);
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
    run_until_opens(f, 1);
    nk_tcp_conn_close(r.conn);
    run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], NK_EOF);
}

/* A plain POSIX listener on 127.0.0.1, port 0: fd (address in @out). */
static int raw_listener(nk_addr *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(nkt_sock_name(fd, out), 0);
    return fd;
}

/* The blocking client against a plain POSIX peer, every transfer cut to
 * one byte and every other call interrupted: byte-exact both ways. */
static void test_blocking_client_exact_under_one_byte_io_and_eintr(void **state)
{
    (void)state;
    enum { LEN = 32768 };
    static uint8_t out[LEN], in[LEN];
    nk_addr a;
    int lfd = raw_listener(&a);
    nkt_fault_short(NKT_SEND, 1, -1);
    nkt_fault_short(NKT_RECV, 1, -1);
    nkt_fault_eintr_storm();
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&a, WAIT_MS, &s), 0);
    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);

    nkt_stream_fill(5, 0, out, LEN);
    assert_int_equal(nk_tcp_sync_send_all(s, out, LEN, WAIT_MS), 0);
    assert_int_equal(nkt_read_exact(peer, in, LEN, WAIT_MS), 0);
    assert_memory_equal(in, out, LEN);

    nkt_stream_fill(6, 0, out, LEN);
    assert_int_equal(nkt_send_all(peer, out, LEN), 0);
    memset(in, 0, LEN);
    assert_int_equal(nk_tcp_sync_recv_exact(s, in, LEN, WAIT_MS), 0);
    assert_memory_equal(in, out, LEN);
    assert_true(nkt_fault_injected(NKT_SEND) >= LEN / 2);
    assert_true(nkt_fault_injected(NKT_RECV) >= LEN / 2);

    /* A reset reported by a receive is returned as it is. */
    nkt_fault_reset();
    nkt_fault_errno(NKT_RECV, ECONNRESET, 1);
    assert_int_equal(nkt_send_all(peer, "z", 1), 0);
    char c;
    assert_int_equal(nk_tcp_sync_recv(s, &c, 1, WAIT_MS), -ECONNRESET);
    nk_tcp_sync_close(s);
    close(peer);
    close(lfd);
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

/* The half-close's shutdown() failing: the connection closes with that
 * code as its reason, once. */
static void test_shutdown_failure_closes_with_its_reason(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    run_until_opens(f, 1);
    nkt_fault_errno(NKT_SHUTDOWN, ENOBUFS, 1);
    assert_int_equal(nk_tcp_conn_shutdown(f->last), 0);
    run_until_closes(f, 1);
    assert_int_equal(nkt_fault_injected(NKT_SHUTDOWN), 1);
    assert_int_equal(f->reasons[0], -ENOBUFS);
    int eof = nkt_expect_eof(c, WAIT_MS);
    assert_true(eof == 0 || eof == -ECONNRESET);
    for (int i = 0; i < 3; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(f->closes, 1);
    close(c);
}

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
    nk_tcp_server_stats st = server_stats(w->f);
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
            assert_int_equal(server_stats(f).accept_errors, (uint64_t)n);
            int eof = nkt_expect_eof(c, WAIT_MS);
            assert_true(eof == 0 || eof == -ECONNRESET);
            close(c);
            assert_int_equal(nkt_alloc_live_bytes(), live);
            continue;
        }
        assert_true(used < n);
        echo_hello(f, c);
        close(c);
        run_until_closes(f, 1);
        break;
    }
    assert_true(n > 1 && n < 100);
    assert_int_equal(server_stats(f).accepted, 1);
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
    run_until_opens(f, 1);
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
    assert_int_equal(nkt_run_until(f->loop, fd_readable, &c, 100000, WAIT_MS,
                                   NULL),
                     0);
    char buf[8];
    assert_int_equal(nkt_read_some(c, buf, sizeof buf, WAIT_MS), 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(nkt_read_some(c, buf, sizeof buf, 0), -ETIMEDOUT);
    close(c);
    run_until_closes(f, 1);
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
        int rc = nk_timer_start(f->loop, 1, 0, on_timer, NULL, &t);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == -ENOMEM) {
            assert_int_equal(nkt_alloc_live_bytes(), live);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(used < n);
        timer_fired = false;
        assert_int_equal(nkt_run_until(f->loop, fired, NULL, 100, WAIT_MS,
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
    nk_tcp_server_stats st = server_stats(w->f);
    return w->f->opens > 0 || st.accept_errors > 0;
}

static bool echoed_or_failed(void *arg)
{
    struct session_wait *w = arg;
    return fd_readable(&w->c) || w->f->closes > 0 || w->f->send_errors > 0;
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
    rc = start_server(&s, NULL);
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
        assert_int_equal(nkt_run_until(s.loop, fd_readable, &c, 1000,
                                       WAIT_MS, NULL),
                         0);
    }
    char buf[5];
    assert_int_equal(nkt_read_exact(c, buf, 5, WAIT_MS), 0);
    assert_memory_equal(buf, "hello", 5);

    nk_timer *t = NULL;
    timer_fired = false;
    rc = nk_timer_start(s.loop, 1, 0, on_timer, NULL, &t);
    if (rc != 0) {
        assert_int_equal(rc, -ENOMEM);
        result = rc;
    } else {
        assert_int_equal(nkt_run_until(s.loop, fired, NULL, 100, WAIT_MS,
                                       NULL),
                         0);
        nk_timer_stop(t);
    }
    close(c);
    run_until_closes(&s, 1);
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

int main(void)
{
    nkt_alloc_install();
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_echo_exact_under_one_byte_writes_and_reads),
        T(test_echo_exact_under_eintr_storm),
        T(test_eagain_on_send_queues_then_flushes_in_order),
        T(test_reset_on_recv_closes_once_others_unaffected),
        T(test_ten_thousand_queued_sends_complete_in_order),
        T(test_ten_thousand_queued_sends_cancelled_by_one_reset),
        T(test_accept_emfile_sheds_each_pending_client),
        T(test_accept_enfile_sheds_each_pending_client),
        T(test_accept_emfile_without_spare_pauses_without_spin),
        T(test_accept_aborted_handshake_skipped),
        T(test_accept_enomem_pauses_then_serves),
        T(test_client_connect_emfile_leaks_nothing),
        T(test_reset_on_send_closes_once),
        T(test_epipe_on_flush_cancels_queue_with_one_close),
        T(test_client_connect_refused_reported_once_without_leak),
        T(test_client_connect_eintr_still_connects),
        T(test_blocking_client_exact_under_one_byte_io_and_eintr),
        T(test_server_start_failures_leak_nothing),
        T(test_shutdown_failure_closes_with_its_reason),
        T(test_alloc_failure_at_every_n_starting_server),
        T(test_alloc_failure_at_every_n_accepting),
        T(test_alloc_failure_at_every_n_queueing_send),
        T(test_alloc_failure_at_every_n_adding_timer),
        T(test_alloc_failure_at_every_n_whole_session),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
