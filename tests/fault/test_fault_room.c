/* udp_room under injected faults: a fan-out that meets ENOBUFS loses
 * exactly the deliveries that failed, counted; a sendmmsg that stops
 * part-way still reaches every member; an EINTR storm loses nothing; and a
 * failing allocator gives -ENOMEM at open, never a leak, while a join needs
 * no allocation at all. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/room.h"

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_fault.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_proc.h"

#define WAIT_MS 5000
#define MEMBERS 4

struct fx {
    nk_loop *loop;
    nk_udp_room *room;
    nk_addr addr;
    int peer[MEMBERS];
    uint64_t want_in; /* messages_in to wait for */
};

static struct fx fx;

static nk_udp_room_stats room_stats(struct fx *f)
{
    nk_udp_room_stats st;
    nk_udp_room_get_stats(f->room, &st);
    return st;
}

static bool messages_in_reached(void *arg)
{
    struct fx *f = arg;
    return room_stats(f).messages_in >= f->want_in;
}

/* Send @len bytes from @peer and run the loop until the room took it. */
static void say(struct fx *f, int peer, const void *data, size_t len)
{
    f->want_in = room_stats(f).messages_in + 1;
    assert_int_equal(nkt_udp_sendto(peer, data, len, &f->addr), (int)len);
    assert_int_equal(nkt_run_until(f->loop, messages_in_reached, f, 1000,
                                   WAIT_MS, NULL),
                     0);
}

/* Datagrams waiting on @fd (read and discarded). */
static int drain(int fd)
{
    char buf[64];
    int n = 0;
    while (nkt_udp_recv(fd, buf, sizeof buf, 0, NULL) >= 0)
        n++;
    return n;
}

static int setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    nkt_fault_reset();
    nk_addr a;
    if (nk_loop_new(&fx.loop) != 0 || nk_addr_parse("127.0.0.1:0", &a) != 0 ||
        nk_udp_room_open(fx.loop, &a, NULL, NULL, NULL, &fx.room) != 0 ||
        nk_udp_room_local_addr(fx.room, &fx.addr) != 0)
        return -1;
    for (int i = 0; i < MEMBERS; i++)
        if ((fx.peer[i] = nkt_udp_socket(AF_INET, NULL)) < 0)
            return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nkt_fault_reset();
    nk_udp_room_close(f->room);
    for (int i = 0; i < MEMBERS; i++)
        close(f->peer[i]);
    for (int i = 0; i < 10; i++) {
        if (nk_loop_free(f->loop) == 0)
            return 0;
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    }
    return -1;
}

static void join_all(struct fx *f)
{
    for (int i = 0; i < MEMBERS; i++)
        say(f, f->peer[i], "j", 1);
    assert_int_equal(room_stats(f).members, MEMBERS);
    for (int i = 0; i < MEMBERS; i++)
        drain(f->peer[i]);
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

/* B7b in a fan-out: ENOBUFS on the next 2 sendmmsg calls drops exactly 2
 * deliveries of one 4-member fan-out, counted; the other 2 arrive; the
 * loop then idles (no wait for POLLOUT). */
static void test_fanout_enobufs_drops_exactly_the_failed_deliveries(void **state)
{
    struct fx *f = *state;
    join_all(f);
    nk_udp_room_stats before = room_stats(f);
    nkt_fault_errno(NKT_SENDMMSG, ENOBUFS, 2);
    nkt_fault_errno(NKT_SENDMSG, ENOBUFS, 2);
    say(f, f->peer[0], "m", 1);
    nk_udp_room_stats after = room_stats(f);
    assert_int_equal(nkt_fault_injected(NKT_SENDMMSG) +
                         nkt_fault_injected(NKT_SENDMSG),
                     2);
    assert_int_equal(after.delivery_drops - before.delivery_drops, 2);
    assert_int_equal(after.deliveries_out - before.deliveries_out,
                     MEMBERS - 2);
    assert_int_equal(after.members, MEMBERS); /* nobody blamed */
    int got = 0;
    for (int i = 0; i < MEMBERS; i++)
        got += drain(f->peer[i]);
    assert_int_equal(got, MEMBERS - 2);

    timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(f->loop, 30, 0, on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, fired, NULL, 10, WAIT_MS, &iters);
    nk_timer_stop(t);
    assert_int_equal(rc, 0);
    assert_true(iters <= 3);
}

/* B8 in a fan-out: sendmmsg takes one message per call; every member
 * still receives the message once. */
static void test_fanout_partial_sendmmsg_reaches_every_member(void **state)
{
    struct fx *f = *state;
    join_all(f);
    nk_udp_room_stats before = room_stats(f);
    nkt_fault_mmsg_partial(NKT_SENDMMSG, 1, -1);
    say(f, f->peer[1], "hello", 5);
    nk_udp_room_stats after = room_stats(f);
    assert_int_equal(after.deliveries_out - before.deliveries_out, MEMBERS);
    assert_int_equal(after.delivery_drops, before.delivery_drops);
    for (int i = 0; i < MEMBERS; i++) {
        char buf[8];
        assert_int_equal(nkt_udp_recv(f->peer[i], buf, sizeof buf, 0, NULL),
                         5);
        assert_memory_equal(buf, "hello", 5);
        assert_int_equal(drain(f->peer[i]), 0);
    }
#ifdef __linux__
    assert_int_equal(nkt_fault_injected(NKT_SENDMMSG), MEMBERS);
#endif
}

/* B9: EINTR on every other receive, send and wait: 100 messages from one
 * member all reach every member, in order. */
static void test_eintr_storm_relays_everything_in_order(void **state)
{
    struct fx *f = *state;
    join_all(f);
    nkt_fault_eintr_storm();
    for (uint32_t seq = 0; seq < 100; seq++) {
        say(f, f->peer[seq % MEMBERS], &seq, sizeof seq);
        for (int i = 0; i < MEMBERS; i++) {
            uint32_t v = UINT32_MAX;
            assert_int_equal(nkt_udp_recv(f->peer[i], &v, sizeof v, 0, NULL),
                             (int)sizeof v);
            assert_int_equal(v, seq);
        }
    }
    nk_udp_room_stats st = room_stats(f);
    assert_int_equal(st.delivery_drops, 0);
    assert_int_equal(st.send_errors, 0);
    assert_true(nkt_fault_injected(NKT_RECVMMSG) + nkt_fault_injected(NKT_RECVMSG) > 0);
    assert_true(nkt_fault_injected(NKT_SENDMMSG) + nkt_fault_injected(NKT_SENDMSG) > 0);
}

/* A receive that keeps failing while a datagram waits: the room's loop
 * backs off instead of spinning, and relays the datagram once the
 * failures stop. */
static void test_persistent_receive_error_does_not_spin(void **state)
{
    struct fx *f = *state;
    join_all(f);
    nkt_fault_errno(NKT_RECVMMSG, ENOMEM, -1);
    nkt_fault_errno(NKT_RECVMSG, ENOMEM, -1);
    assert_int_equal(nkt_udp_sendto(f->peer[0], "x", 1, &f->addr), 1);
    timer_fired = false;
    nk_timer *t = NULL;
    assert_int_equal(nk_timer_start(f->loop, 50, 0, on_timer, NULL, &t), 0);
    uint64_t iters = 0;
    int rc = nkt_run_until(f->loop, fired, NULL, 1000000, WAIT_MS, &iters);
    nk_timer_stop(t);
    nkt_fault_reset();
    assert_int_equal(rc, 0);
    assert_true(iters <= 20);
    f->want_in = room_stats(f).messages_in + 1;
    assert_int_equal(nkt_run_until(f->loop, messages_in_reached, f, 1000,
                                   WAIT_MS, NULL),
                     0);
    for (int i = 0; i < MEMBERS; i++) {
        char c = 0;
        assert_int_equal(nkt_udp_recv(f->peer[i], &c, 1, WAIT_MS, NULL), 1);
        assert_int_equal(c, 'x');
    }
}

/* B10: fail allocation n for n = 1, 2, ... while opening a room: -ENOMEM
 * with nothing left behind, until it succeeds; the room then relays. */
static void test_alloc_failure_at_every_n_opening_room(void **state)
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
        nk_udp_room *r = NULL;
        int rc = nk_udp_room_open(f->loop, &a, NULL, NULL, NULL, &r);
        long used = nkt_alloc_count();
        nkt_alloc_fail_at(0);
        if (rc == 0) {
            assert_true(used < n);
            nk_addr ra;
            assert_int_equal(nk_udp_room_local_addr(r, &ra), 0);
            nk_udp_room *keep = f->room;
            nk_addr keep_addr = f->addr;
            f->room = r;
            f->addr = ra;
            say(f, f->peer[0], "hi", 2);
            char buf[4];
            assert_int_equal(nkt_udp_recv(f->peer[0], buf, sizeof buf,
                                          WAIT_MS, NULL),
                             2);
            f->room = keep;
            f->addr = keep_addr;
            nk_udp_room_close(r);
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

/* The room's socket failing to open or bind: the code, nothing left. */
static void test_open_failures_leak_nothing(void **state)
{
    struct fx *f = *state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    nkt_fault_errno(NKT_BIND, EADDRINUSE, 1);
    nk_udp_room *r = NULL;
    assert_int_equal(nk_udp_room_open(f->loop, &a, NULL, NULL, NULL, &r),
                     -EADDRINUSE);
    nkt_fault_errno(NKT_SOCKET, EMFILE, 1);
    assert_int_equal(nk_udp_room_open(f->loop, &a, NULL, NULL, NULL, &r),
                     -EMFILE);
    assert_int_equal(nkt_fd_count(), fds);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

/* B10 for joins: the member table is allocated at open, so a join (and the
 * relay that follows) needs no allocation and cannot fail for memory. */
static void test_join_needs_no_allocation(void **state)
{
    struct fx *f = *state;
    size_t live = nkt_alloc_live_bytes();
    nkt_alloc_reset();
    nkt_alloc_fail_at(1);
    join_all(f);
    long used = nkt_alloc_count();
    nkt_alloc_fail_at(0);
    assert_int_equal(used, 0);
    nk_udp_room_stats st = room_stats(f);
    assert_int_equal(st.joins, MEMBERS);
    assert_int_equal(st.deliveries_out, 1 + 2 + 3 + 4);
    assert_int_equal(nkt_alloc_live_bytes(), live);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fanout_enobufs_drops_exactly_the_failed_deliveries),
        T(test_fanout_partial_sendmmsg_reaches_every_member),
        T(test_eintr_storm_relays_everything_in_order),
        T(test_persistent_receive_error_does_not_spin),
        T(test_alloc_failure_at_every_n_opening_room),
        T(test_join_needs_no_allocation),
        T(test_open_failures_leak_nothing),
    };
#undef T
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
