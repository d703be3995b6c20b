/* udp_endpoint under injected system-call faults: buffer exhaustion drops
 * exactly what failed and never spins, a sendmmsg that stops part-way loses
 * nothing silently, an EINTR storm on the receive side loses nothing, and a
 * failing allocator gives -ENOMEM or a working endpoint, never a leak. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/udp.h"

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_fault.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_proc.h"

#define RECV_MS 5000

struct fx {
    nk_loop *loop;
    nk_udp_endpoint *ep;
    nk_addr ep_addr;
    int peer;          /* raw POSIX socket on the other side */
    nk_addr peer_addr;
    /* What the endpoint's callback saw. */
    unsigned got;
    unsigned target;
    unsigned errors;
    uint32_t next_seq;
    bool in_order;
};

static void on_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    (void)ep;
    struct fx *f = user;
    if (ev->error != 0) {
        f->errors++;
        return;
    }
    uint32_t seq;
    if (ev->len != sizeof seq) {
        f->in_order = false;
        return;
    }
    memcpy(&seq, ev->data, sizeof seq);
    if (seq != f->next_seq)
        f->in_order = false;
    f->next_seq = seq + 1;
    f->got++;
}

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    f.in_order = true;
    nkt_fault_reset();
    if (nk_loop_new(&f.loop) != 0)
        return -1;
    nk_addr any;
    if (nk_addr_parse("127.0.0.1:0", &any) != 0)
        return -1;
    if (nk_udp_endpoint_bind(f.loop, &any, NULL, on_recv, &f, &f.ep) != 0)
        return -1;
    if (nk_udp_endpoint_local_addr(f.ep, &f.ep_addr) != 0)
        return -1;
    f.peer = nkt_udp_socket(AF_INET, NULL);
    if (f.peer < 0 || nkt_sock_name(f.peer, &f.peer_addr) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nkt_fault_reset();
    nk_udp_endpoint_close(f->ep);
    close(f->peer);
    /* Let the deferred close run, then the loop must be empty. */
    nk_loop_run(f->loop, NK_RUN_NOWAIT);
    return nk_loop_free(f->loop) == 0 ? 0 : -1;
}

static unsigned long send_injected(void)
{
    return nkt_fault_injected(NKT_SENDMSG) + nkt_fault_injected(NKT_SENDMMSG) +
           nkt_fault_injected(NKT_SENDTO) + nkt_fault_injected(NKT_SEND);
}

static void arm_all_sends(int err, int times)
{
    nkt_fault_errno(NKT_SENDMSG, err, times);
    nkt_fault_errno(NKT_SENDMMSG, err, times);
    nkt_fault_errno(NKT_SENDTO, err, times);
    nkt_fault_errno(NKT_SEND, err, times);
}

/* Read datagrams on the raw peer; each must be the 4-byte @expect[i]. */
static void peer_expects(struct fx *f, const uint32_t *expect, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t v = UINT32_MAX;
        assert_int_equal(nkt_udp_recv(f->peer, &v, sizeof v, RECV_MS, NULL),
                         (int)sizeof v);
        assert_int_equal(v, expect[i]);
    }
    char extra[8];
    assert_int_equal(nkt_udp_recv(f->peer, extra, sizeof extra, 0, NULL),
                     -ETIMEDOUT);
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

/* Idle the loop until a 30 ms timer fires: a watcher left armed for
 * writing on a writable socket would wake it thousands of times. */
static void assert_loop_idles(nk_loop *loop)
{
    timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(loop, 30, 0, on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(loop, fired, NULL, 10, 2000, &iters);
    nk_timer_stop(t);
    assert_int_equal(rc, 0);
    assert_true(iters <= 3);
}

/* B7b: ENOBUFS on the next 5 sends drops exactly those 5 datagrams, each
 * reported to its sender and counted, and nothing waits for POLLOUT. */
static void test_enobufs_drops_exactly_five_without_spin(void **state)
{
    struct fx *f = *state;
    nk_udp_endpoint_stats before, after;
    nk_udp_endpoint_get_stats(f->ep, &before);
    arm_all_sends(ENOBUFS, 5);

    uint32_t sent[10];
    unsigned nsent = 0;
    for (uint32_t i = 0; i < 10; i++) {
        int rc = nk_udp_endpoint_send_to(f->ep, &i, sizeof i, &f->peer_addr);
        if (i < 5) {
            assert_int_equal(rc, -ENOBUFS);
        } else {
            assert_int_equal(rc, (int)sizeof i);
            sent[nsent++] = i;
        }
    }
    assert_int_equal(send_injected(), 5);
    nk_udp_endpoint_get_stats(f->ep, &after);
    assert_int_equal(after.send_drops - before.send_drops, 5);
    assert_int_equal(after.send_errors, before.send_errors);
    assert_int_equal(after.datagrams_out - before.datagrams_out, 5);
    peer_expects(f, sent, nsent);
    assert_loop_idles(f->loop);
}

/* B7b in a batch: each failed sendmmsg drops the one datagram it was at,
 * the batch resumes after it; results and counters say which. */
static void test_enobufs_in_batch_drops_one_per_failed_call(void **state)
{
    struct fx *f = *state;
    nk_udp_endpoint_stats before, after;
    nk_udp_endpoint_get_stats(f->ep, &before);
    uint32_t v[10];
    nk_udp_msg m[10];
    for (uint32_t i = 0; i < 10; i++) {
        v[i] = i;
        m[i] = (nk_udp_msg){.data = &v[i], .len = sizeof v[i],
                            .to = &f->peer_addr, .result = 12345};
    }
    arm_all_sends(ENOBUFS, 5);
    assert_int_equal(nk_udp_endpoint_send_batch(f->ep, m, 10), 5);
    uint32_t expect[5];
    for (unsigned i = 0; i < 10; i++) {
        if (i < 5)
            assert_int_equal(m[i].result, -ENOBUFS);
        else
            assert_int_equal(m[i].result, (int)sizeof v[i]);
        if (i >= 5)
            expect[i - 5] = v[i];
    }
    assert_int_equal(send_injected(), 5);
    nk_udp_endpoint_get_stats(f->ep, &after);
    assert_int_equal(after.send_drops - before.send_drops, 5);
    assert_int_equal(after.datagrams_out - before.datagrams_out, 5);
    peer_expects(f, expect, 5);
    assert_loop_idles(f->loop);
}

/* B8: sendmmsg takes only 3 of 10: the batch goes on from index 3 and
 * every datagram arrives, in order. */
static void test_partial_sendmmsg_resumes_at_first_unsent(void **state)
{
    struct fx *f = *state;
    uint32_t v[10];
    nk_udp_msg m[10];
    for (uint32_t i = 0; i < 10; i++) {
        v[i] = 100 + i;
        m[i] = (nk_udp_msg){.data = &v[i], .len = sizeof v[i],
                            .to = &f->peer_addr, .result = 12345};
    }
    nkt_fault_mmsg_partial(NKT_SENDMMSG, 3, -1);
    assert_int_equal(nk_udp_endpoint_send_batch(f->ep, m, 10), 10);
    for (unsigned i = 0; i < 10; i++)
        assert_int_equal(m[i].result, (int)sizeof v[i]);
#ifdef __linux__
    assert_int_equal(nkt_fault_calls(NKT_SENDMMSG), 4); /* 3+3+3+1 */
    assert_int_equal(nkt_fault_injected(NKT_SENDMMSG), 4);
#endif
    peer_expects(f, v, 10);
}

/* B8: the kernel stops at index k because datagram k fails; the next call
 * reports its error. The library must report it at index k and send the
 * rest: never a silent loss. */
static void test_partial_sendmmsg_reports_the_failed_datagram(void **state)
{
    struct fx *f = *state;
    nk_udp_endpoint_stats before, after;
    nk_udp_endpoint_get_stats(f->ep, &before);
    uint32_t v[10];
    nk_udp_msg m[10];
    for (uint32_t i = 0; i < 10; i++) {
        v[i] = 200 + i;
        m[i] = (nk_udp_msg){.data = &v[i], .len = sizeof v[i],
                            .to = &f->peer_addr, .result = 12345};
    }
    nkt_fault_mmsg_partial(NKT_SENDMMSG, 3, 1);
    nkt_fault_errno_after(NKT_SENDMMSG, 1, EPERM, 1);
    /* Without sendmmsg, the per-datagram path meets the same script. */
    nkt_fault_errno_after(NKT_SENDMSG, 3, EPERM, 1);
    assert_int_equal(nk_udp_endpoint_send_batch(f->ep, m, 10), 9);
    uint32_t expect[9];
    unsigned n = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (i == 3) {
            assert_int_equal(m[i].result, -EPERM);
        } else {
            assert_int_equal(m[i].result, (int)sizeof v[i]);
            expect[n++] = v[i];
        }
    }
    nk_udp_endpoint_get_stats(f->ep, &after);
    assert_int_equal(after.send_errors - before.send_errors, 1);
    assert_int_equal(after.datagrams_out - before.datagrams_out, 9);
    peer_expects(f, expect, n);
}

static bool got_target(void *arg)
{
    struct fx *f = arg;
    return f->got >= f->target || !f->in_order || f->errors > 0;
}

/* B9: EINTR on every other receive (and on the loop's wait): all 200
 * datagrams arrive in order and no error event fires. Sent in rounds of
 * 50 so none can be lost to a full socket buffer. */
static void test_eintr_storm_on_receive_loses_nothing(void **state)
{
    struct fx *f = *state;
    nkt_fault_storm(NKT_RECVMMSG, EINTR, 2);
    nkt_fault_storm(NKT_RECVMSG, EINTR, 2);
    nkt_fault_storm(NKT_EPOLL_WAIT, EINTR, 2);
    nkt_fault_storm(NKT_POLL, EINTR, 2);
    uint32_t seq = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 50; i++, seq++)
            assert_int_equal(nkt_udp_sendto(f->peer, &seq, sizeof seq,
                                            &f->ep_addr),
                             (int)sizeof seq);
        f->target = seq;
        assert_int_equal(nkt_run_until(f->loop, got_target, f, 10000, RECV_MS,
                                       NULL),
                         0);
        assert_true(f->in_order);
        assert_int_equal(f->errors, 0);
        assert_int_equal(f->got, seq);
    }
    assert_true(nkt_fault_injected(NKT_RECVMMSG) +
                    nkt_fault_injected(NKT_RECVMSG) >
                0);
}

/* A receive that keeps failing (the kernel out of memory) while a datagram
 * waits must not turn the level-triggered loop into a busy loop: the error
 * is reported, and the endpoint backs off rather than retrying at once. */
static bool got_one(void *arg)
{
    return ((struct fx *)arg)->got >= 1;
}

static void test_persistent_receive_error_does_not_spin(void **state)
{
    struct fx *f = *state;
    uint32_t v = 1;
    assert_int_equal(nkt_udp_sendto(f->peer, &v, sizeof v, &f->ep_addr),
                     (int)sizeof v);
    nkt_fault_errno(NKT_RECVMMSG, ENOMEM, -1);
    nkt_fault_errno(NKT_RECVMSG, ENOMEM, -1);
    timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(f->loop, 50, 0, on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, fired, NULL, 1000000, RECV_MS, &iters);
    nk_timer_stop(t);
    unsigned long calls = nkt_fault_calls(NKT_RECVMMSG) +
                          nkt_fault_calls(NKT_RECVMSG);
    nkt_fault_reset();
    print_message("50 ms of ENOMEM: %lu iterations, %lu receive calls, "
                  "%u error events\n",
                  (unsigned long)iters, calls, f->errors);
    assert_int_equal(rc, 0);
    assert_true(f->errors >= 1);
    assert_true(f->errors <= 10);
    assert_true(iters <= 20);
    /* Once memory is back, the datagram is delivered. */
    assert_int_equal(nkt_run_until(f->loop, got_one, f, 1000, RECV_MS, NULL),
                     0);
    assert_int_equal(f->got, 1);
}

/* Each step of binding an endpoint failing in turn: its code, and no
 * descriptor or memory left behind. */
static void test_bind_failures_leak_nothing(void **state)
{
    struct fx *f = *state;
    static const struct {
        enum nkt_sys sys;
        int err;
    } steps[] = {
        {NKT_SOCKET, EMFILE}, {NKT_SOCKET, ENOBUFS}, {NKT_BIND, EADDRINUSE},
        {NKT_BIND, EACCES},   {NKT_SETSOCKOPT, ENOBUFS},
    };
    nk_addr any;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &any), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.rcvbuf = 65536; /* so that setsockopt is called */
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        nkt_fault_reset();
        nkt_fault_errno(steps[i].sys, steps[i].err, 1);
        nk_udp_endpoint *ep = NULL;
        int rc = nk_udp_endpoint_bind(f->loop, &any, &o, on_recv, f, &ep);
        assert_int_equal(rc, -steps[i].err);
        assert_null(ep);
        assert_int_equal(nkt_fault_injected(steps[i].sys), 1);
        assert_int_equal(nkt_fd_count(), fds);
        assert_int_equal(nkt_alloc_live_bytes(), live);
    }
}

/* B10: fail allocation n for n = 1, 2, ... while binding an endpoint: each
 * attempt gives -ENOMEM with nothing left behind, until one needs fewer
 * allocations than n and succeeds. */
static void test_alloc_failure_at_every_n_binding_endpoint(void **state)
{
    struct fx *f = *state;
    nk_addr any;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &any), 0);
    size_t live = nkt_alloc_live_bytes();
    int fds = nkt_fd_count();
    int n;
    for (n = 1; n < 100; n++) {
        nkt_alloc_reset();
        nkt_alloc_fail_at(n);
        nk_udp_endpoint *ep = NULL;
        int rc = nk_udp_endpoint_bind(f->loop, &any, NULL, on_recv, f, &ep);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < n);
            /* It works: a datagram goes through it. */
            uint32_t v = 7;
            assert_int_equal(nk_udp_endpoint_send_to(ep, &v, sizeof v,
                                                     &f->peer_addr),
                             (int)sizeof v);
            peer_expects(f, &v, 1);
            nk_udp_endpoint_close(ep);
            nk_loop_run(f->loop, NK_RUN_NOWAIT);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(ep);
        assert_int_equal(nkt_alloc_live_bytes(), live);
        assert_int_equal(nkt_fd_count(), fds);
    }
    assert_true(n > 1); /* binding allocates: the failure was met */
    assert_true(n < 100);
    nk_loop_run(f->loop, NK_RUN_NOWAIT);
    assert_int_equal(nkt_alloc_live_bytes(), live);
    assert_int_equal(nkt_fd_count(), fds);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enobufs_drops_exactly_five_without_spin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enobufs_in_batch_drops_one_per_failed_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_sendmmsg_resumes_at_first_unsent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_sendmmsg_reports_the_failed_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eintr_storm_on_receive_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failure_at_every_n_binding_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_receive_error_does_not_spin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_failures_leak_nothing, setup, teardown),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
