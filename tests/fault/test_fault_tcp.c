/* TCP connections under injected system-call faults: an echo server stays
 * byte-exact under 1-byte writes and reads, EINTR storms and EAGAIN; a
 * reset or EPIPE closes one connection once with its reason; queued sends
 * complete or are cancelled by one close; the blocking client stays exact
 * under the same faults. */
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

/* B8: every send of the library writes at most one byte, while reads
 * bring whole chunks: each echo is a partial write whose unsent tail is
 * queued, then flushed one byte per call; the echo is still byte-exact. */
static void test_echo_exact_under_one_byte_writes_and_reads(void **state)
{
    struct fx *f = *state;
    nkt_fault_short(NKT_SEND, 1, -1);
    echo_once(f, 16384, 1);
    /* Writes were cut short, and what they left was queued and sent. */
    assert_true(nkt_fault_cut(NKT_SEND) >= 16384 / 2);
    assert_true(f->peak_queued > 1);
    /* Then reads of one byte too: each echo is one byte, and exact. */
    nkt_fault_short(NKT_RECV, 1, -1);
    echo_once(f, 4096, 7);
    assert_true(nkt_fault_cut(NKT_RECV) >= 4096 / 2);
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

/* A reset reported by recv on one connection closes that one with reason
 * -ECONNRESET, once; the other connection keeps being served. */
static void test_reset_on_recv_closes_once_others_unaffected(void **state)
{
    struct fx *f = *state;
    int c1 = nkt_tcp_connect(&f->addr);
    int c2 = nkt_tcp_connect(&f->addr);
    assert_true(c1 >= 0 && c2 >= 0);
    fx_run_until_opens(f, 2);
    nk_addr l1;
    assert_int_equal(nkt_sock_name(c1, &l1), 0);
    unsigned short port = (unsigned short)nk_addr_port(&l1);
    nkt_fault_filter(NKT_RECV, nkt_fault_peer_port_is, &port);
    nkt_fault_errno(NKT_RECV, ECONNRESET, 1);

    assert_int_equal(nkt_send_all(c1, "x", 1), 0);
    fx_run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], -ECONNRESET);
    assert_int_equal(nkt_fault_injected(NKT_RECV), 1);
    assert_int_equal(fx_stats(f).closed_reset, 1);
    int eof = nkt_expect_eof(c1, WAIT_MS);
    assert_true(eof == 0 || eof == -ECONNRESET);

    fx_echo_hello(f, c2);
    fx_echo_hello(f, c2);
    assert_int_equal(f->closes, 1); /* delivered once */
    close(c2);
    fx_run_until_closes(f, 2);
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
    fx_run_until_opens(f, 1);
    assert_int_equal(f->send_errors, 0);
    nk_tcp_conn_stats st;
    nk_tcp_conn_get_stats(f->last, &st);
    assert_true(st.queued >= 80000 - 1); /* at most one byte went at once */

    /* The loop flushes while this thread reads: one read per wakeup. */
    uint8_t buf[4096];
    size_t got = 0;
    while (got < 80000) {
        assert_int_equal(nkt_run_until(f->loop, fx_fd_readable, &c, 1000000,
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
    fx_run_until_closes(f, 1);
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
    fx_run_until_opens(f, 1);
    assert_int_equal(f->send_errors, 0);
    uint8_t buf[4096];
    for (size_t off = 0; off < 65536; off += sizeof buf) {
        assert_int_equal(nkt_read_exact(c, buf, sizeof buf, WAIT_MS), 0);
        assert_true(nkt_stream_check(42, off, buf, sizeof buf));
    }
    nkt_close_rst(c);
    fx_run_until_closes(f, 1);
    assert_true(f->reasons[0] == -ECONNRESET || f->reasons[0] == -EPIPE);
    assert_true(f->at_close[0].bytes_out >= 65536);
    assert_true(f->at_close[0].bytes_out < 10000 * 1024);
    assert_int_equal(fx_stats(f).closed_reset, 1);
    /* Exactly once: nothing more arrives however long the loop runs. */
    for (int i = 0; i < 5; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(f->closes, 1);
}

/* A send that meets a reset closes that connection with the reason, once:
 * nk_tcp_conn_send reports it, on_close repeats it, the client sees the
 * end of its stream. */
static void test_reset_on_send_closes_once(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    fx_run_until_opens(f, 1);
    nkt_fault_errno(NKT_SEND, ECONNRESET, 1);
    assert_int_equal(nkt_send_all(c, "x", 1), 0);
    fx_run_until_closes(f, 1);
    assert_int_equal(f->send_errors, 1);
    assert_int_equal(f->reasons[0], -ECONNRESET);
    assert_int_equal(fx_stats(f).closed_reset, 1);
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
    fx_run_until_opens(f, 1);
    nkt_fault_errno(NKT_SEND, EAGAIN, 1);
    assert_int_equal(nkt_send_all(c, "hello", 5), 0);
    assert_int_equal(nkt_run_until(f->loop, queued_something, f, 1000,
                                   WAIT_MS, NULL),
                     0);
    assert_int_equal(f->send_errors, 0);
    nkt_fault_errno(NKT_SEND, EPIPE, 1);
    fx_run_until_closes(f, 1);
    assert_int_equal(f->reasons[0], -EPIPE);
    assert_int_equal(f->at_close[0].bytes_out, 0);
    assert_int_equal(fx_stats(f).closed_reset, 1);
    int eof = nkt_expect_eof(c, WAIT_MS); /* no "hello" first */
    assert_true(eof == 0 || eof == -ECONNRESET);
    close(c);
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

/* The half-close's shutdown() failing: the connection closes with that
 * code as its reason, once. */
static void test_shutdown_failure_closes_with_its_reason(void **state)
{
    struct fx *f = *state;
    int c = nkt_tcp_connect(&f->addr);
    assert_true(c >= 0);
    fx_run_until_opens(f, 1);
    nkt_fault_errno(NKT_SHUTDOWN, ENOBUFS, 1);
    assert_int_equal(nk_tcp_conn_shutdown(f->last), 0);
    fx_run_until_closes(f, 1);
    assert_int_equal(nkt_fault_injected(NKT_SHUTDOWN), 1);
    assert_int_equal(f->reasons[0], -ENOBUFS);
    int eof = nkt_expect_eof(c, WAIT_MS);
    assert_true(eof == 0 || eof == -ECONNRESET);
    for (int i = 0; i < 3; i++)
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(f->closes, 1);
    close(c);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_echo_exact_under_one_byte_writes_and_reads),
        T(test_echo_exact_under_eintr_storm),
        T(test_eagain_on_send_queues_then_flushes_in_order),
        T(test_reset_on_recv_closes_once_others_unaffected),
        T(test_ten_thousand_queued_sends_complete_in_order),
        T(test_ten_thousand_queued_sends_cancelled_by_one_reset),
        T(test_reset_on_send_closes_once),
        T(test_epipe_on_flush_cancels_queue_with_one_close),
        T(test_blocking_client_exact_under_one_byte_io_and_eintr),
        T(test_shutdown_failure_closes_with_its_reason),
    };
#undef T
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
