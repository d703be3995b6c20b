/* udp_room over loopback, against plain POSIX peers: relay to every member,
 * membership by whole address (A11 included), echo to the sender on and
 * off, time-to-live driven by the loop's timer, the member cap under a
 * flood of sources (D2), leave message, hooks and counters, rate limit,
 * empty and oversized datagrams (A1 sizes over IPv4 and IPv6, A3, D7),
 * a dead member (B15), relaying without allocation, fan-out accounting (C3),
 * validation and the amplification budget (D4), close from a hook (B14),
 * a spoofed join (D5) and forged self and room-to-room reflection (D6),
 * with raw sockets; hooks that remove many members or the sender (F5). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/ip.h>
#include <netinet/udp.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/room.h"

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_loop.h"
#include "nkt_peer.h"

#define WAIT_MS 5000
#define MAX_ITERS 100000

struct fx {
    nk_loop *loop;
    nk_udp_room *room;
    nk_addr addr;  /* the room, as peers reach it */
    unsigned joins, leaves;
    nk_room_leave_reason last_reason;
    nk_addr last_left;
    size_t max_members_seen;
    bool upper;          /* on_message uppercases */
    bool close_in_hook;
    uint64_t want_in;    /* wait until messages_in reaches this */
    unsigned want_leaves;
    /* Cascades: members in order of joining, and leaves seen for each. */
    nk_addr joined[64];
    unsigned njoined;
    unsigned left[64];
    bool remove_newcomer;   /* on_join removes the member that joined */
    int purge_in;           /* hook that removes every other member, once */
    bool purged;
    unsigned messages_seen; /* on_message calls */
    unsigned from_nonmember;/* ... whose sender was not a member */
};

enum { PURGE_ON_JOIN = 1, PURGE_ON_MESSAGE, PURGE_ON_LEAVE };

static int joined_index(const struct fx *f, const nk_addr *a)
{
    for (unsigned i = 0; i < f->njoined; i++)
        if (nk_addr_equal(&f->joined[i], a))
            return (int)i;
    return -1;
}

/* From hook @hook: remove every member but @keep, the first time. */
static void purge_from(nk_udp_room *room, struct fx *f, int hook,
                       const nk_addr *keep)
{
    if (f->purge_in != hook || f->purged)
        return;
    f->purged = true;
    for (unsigned i = 0; i < f->njoined; i++)
        if (!nk_addr_equal(&f->joined[i], keep))
            assert_int_equal(nk_udp_room_remove(room, &f->joined[i]), 0);
}

static void on_join(nk_udp_room *room, const nk_udp_room_member_event *ev,
                    void *user)
{
    (void)room;
    struct fx *f = user;
    f->joins++;
    if (ev->members > f->max_members_seen)
        f->max_members_seen = ev->members;
    if (f->njoined < 64 && joined_index(f, ev->addr) < 0)
        f->joined[f->njoined++] = *ev->addr;
    if (f->remove_newcomer)
        assert_int_equal(nk_udp_room_remove(room, ev->addr), 0);
    purge_from(room, f, PURGE_ON_JOIN, ev->addr);
}

static void on_leave(nk_udp_room *room, const nk_udp_room_member_event *ev,
                     void *user)
{
    (void)room;
    struct fx *f = user;
    f->leaves++;
    f->last_reason = ev->reason;
    f->last_left = *ev->addr;
    int i = joined_index(f, ev->addr);
    if (i >= 0)
        f->left[i]++;
    purge_from(room, f, PURGE_ON_LEAVE, ev->addr);
}

static char upper_buf[2048];

static int on_message(nk_udp_room *room, nk_udp_room_message *msg, void *user)
{
    struct fx *f = user;
    nk_udp_room_member_info mi;
    f->messages_seen++;
    if (nk_udp_room_member(room, msg->from, &mi) != 0)
        f->from_nonmember++;
    purge_from(room, f, PURGE_ON_MESSAGE, msg->from);
    if (f->close_in_hook) {
        nk_udp_room_close(room);
        f->room = NULL;
        return NK_ROOM_DROP;
    }
    if (!f->upper)
        return NK_ROOM_RELAY;
    const char *d = msg->data;
    if (msg->len > 0 && d[0] == '#')
        return NK_ROOM_DROP;
    size_t n = msg->len < sizeof upper_buf ? msg->len : sizeof upper_buf;
    for (size_t i = 0; i < n; i++)
        upper_buf[i] = (d[i] >= 'a' && d[i] <= 'z') ? (char)(d[i] - 32) : d[i];
    msg->data = upper_buf;
    msg->len = n;
    return NK_ROOM_RELAY;
}

static nk_addr addr_of(const char *text)
{
    nk_addr a;
    assert_int_equal(nk_addr_parse(text, &a), 0);
    return a;
}

static void room_up(struct fx *f, const char *bind_text,
                    const nk_udp_room_opts *o)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(nk_loop_new(&f->loop), 0);
    nk_udp_room_hooks h = {.on_join = on_join, .on_leave = on_leave,
                           .on_message = on_message};
    nk_addr a = addr_of(bind_text);
    assert_int_equal(nk_udp_room_open(f->loop, &a, o, &h, f, &f->room), 0);
    nk_addr local;
    assert_int_equal(nk_udp_room_local_addr(f->room, &local), 0);
    f->addr = addr_of(nk_addr_family(&local) == AF_INET6 ? "[::1]:0"
                                                         : "127.0.0.1:0");
    nk_addr_set_port(&f->addr, nk_addr_port(&local));
}

static void room_down(struct fx *f)
{
    nk_udp_room_close(f->room);
    assert_int_equal(nk_loop_free(f->loop), 0);
}

static nk_udp_room_stats stats(struct fx *f)
{
    nk_udp_room_stats s;
    nk_udp_room_get_stats(f->room, &s);
    return s;
}

static bool got_in(void *arg)
{
    struct fx *f = arg;
    return f->room == NULL || stats(f).messages_in >= f->want_in;
}

static bool got_leaves(void *arg)
{
    struct fx *f = arg;
    return f->leaves >= f->want_leaves;
}

/* Send from a peer and run the room until it has handled the datagram. */
static void say(struct fx *f, int fd, const void *data, size_t len)
{
    f->want_in = f->room ? stats(f).messages_in + 1 : 0;
    assert_int_equal(nkt_udp_sendto(fd, data, len, &f->addr), (int)len);
    assert_int_equal(nkt_run_until(f->loop, got_in, f, MAX_ITERS, WAIT_MS, NULL), 0);
}

static int peer_on(const char *text)
{
    nk_addr a = addr_of(text);
    int fd = nkt_udp_socket(nk_addr_family(&a), &a);
    assert_true(fd >= 0);
    return fd;
}

static void expect(int fd, const char *text)
{
    char buf[256];
    int n = nkt_udp_recv(fd, buf, sizeof buf - 1, WAIT_MS, NULL);
    assert_int_equal(n, (int)strlen(text));
    buf[n] = 0;
    assert_string_equal(buf, text);
}

static void expect_nothing(int fd)
{
    char buf[64];
    assert_int_equal(nkt_udp_recv(fd, buf, sizeof buf, 0, NULL), -ETIMEDOUT);
}

/* The seed's protocol: `register`, then every message to every member,
 * the sender included; `register` itself is relayed. */
static void test_room_relays_to_all_members_with_sender(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int a = peer_on("127.0.0.1:0"), b = peer_on("127.0.0.1:0");
    say(&f, a, "register", 8);
    expect(a, "register");
    say(&f, b, "register", 8);
    expect(a, "register");
    expect(b, "register");
    say(&f, a, "hello", 5);
    expect(a, "hello");
    expect(b, "hello");
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 2);
    assert_int_equal(s.joins, 2);
    assert_int_equal(s.messages_in, 3);
    assert_int_equal(s.relayed, 3);
    assert_int_equal(s.deliveries_out, 5);
    assert_int_equal(s.bytes_out, 8 + 16 + 10);
    assert_int_equal(f.joins, 2);
    close(a);
    close(b);
    room_down(&f);
}

/* Two members on one port but different addresses are two members. */
static void test_room_members_keyed_by_whole_address(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int a = peer_on("127.0.0.1:0");
    nk_addr aa;
    assert_int_equal(nkt_sock_name(a, &aa), 0);
    char text[64];
    snprintf(text, sizeof text, "127.0.0.2:%d", nk_addr_port(&aa));
    int b = peer_on(text);
    say(&f, a, "one", 3);
    say(&f, b, "two", 3);
    assert_int_equal(stats(&f).members, 2);
    expect(a, "one");
    expect(a, "two");
    expect(b, "two");
    nk_udp_room_member_info mi;
    nk_addr ba = addr_of(text);
    assert_int_equal(nk_udp_room_member(f.room, &aa, &mi), 0);
    assert_int_equal(mi.bytes_in, 3);
    assert_int_equal(mi.bytes_out, 6);
    assert_int_equal(nk_udp_room_member(f.room, &ba, &mi), 0);
    assert_int_equal(mi.bytes_out, 3);
    close(a);
    close(b);
    room_down(&f);
}

/* A11: one client reaching a dual-stack room as 127.0.0.1 and as
 * ::ffff:127.0.0.1 is one member, with one rate limit. */
static void test_room_v4_mapped_is_one_member(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.rate_limit = 1;
    o.rate_burst = 1;
    struct fx f;
    room_up(&f, "[::]:0", &o);
    nk_addr any6 = addr_of("[::]:0");
    int c = nkt_udp_socket(AF_INET6, &any6); /* dual-stack client */
    assert_true(c >= 0);
    nk_addr as_v4 = addr_of("127.0.0.1:0");
    nk_addr as_mapped = addr_of("[::ffff:127.0.0.1]:0");
    nk_addr_set_port(&as_v4, nk_addr_port(&f.addr));
    nk_addr_set_port(&as_mapped, nk_addr_port(&f.addr));
    f.want_in = 1;
    assert_int_equal(nkt_udp_sendto(c, "a", 1, &as_mapped), 1);
    assert_int_equal(nkt_run_until(f.loop, got_in, &f, MAX_ITERS, WAIT_MS, NULL), 0);
    int v4 = nkt_udp_socket(AF_INET, NULL);
    nk_addr cport;
    assert_int_equal(nkt_sock_name(c, &cport), 0);
    /* The member is known under its plain IPv4 form. */
    nk_addr plain = addr_of("127.0.0.1:0");
    nk_addr_set_port(&plain, nk_addr_port(&cport));
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_room_member(f.room, &plain, &mi), 0);
    nk_addr mapped_member = addr_of("[::ffff:127.0.0.1]:0");
    nk_addr_set_port(&mapped_member, nk_addr_port(&cport));
    assert_int_equal(nk_udp_room_member(f.room, &mapped_member, &mi), 0);
    f.want_in = 2;
    assert_int_equal(nkt_udp_sendto(c, "b", 1, &as_mapped), 1);
    assert_int_equal(nkt_run_until(f.loop, got_in, &f, MAX_ITERS, WAIT_MS, NULL), 0);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 1);
    assert_int_equal(s.drops[NK_ROOM_DROP_RATE], 1);
    close(v4);
    close(c);
    room_down(&f);
}

static void test_room_echo_sender_off(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.echo_sender = false;
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int a = peer_on("127.0.0.1:0"), b = peer_on("127.0.0.1:0");
    say(&f, a, "reg-a", 5);
    say(&f, b, "reg-b", 5);
    expect(a, "reg-b");
    say(&f, a, "x", 1);
    expect(b, "x");
    /* The relay to a would have been sent in the same batch as b's. */
    expect_nothing(a);
    expect_nothing(b);
    close(a);
    close(b);
    room_down(&f);
}

/* Members that stay silent for member_ttl_ms leave, by the loop's timer. */
static void test_room_ttl_expiry_by_timer(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.member_ttl_ms = 50;
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int a = peer_on("127.0.0.1:0"), b = peer_on("127.0.0.1:0");
    say(&f, a, "", 0);
    say(&f, b, "", 0);
    assert_int_equal(stats(&f).members, 2);
    f.want_leaves = 2;
    uint64_t iters = 0;
    assert_int_equal(nkt_run_until(f.loop, got_leaves, &f, MAX_ITERS, WAIT_MS,
                                   &iters), 0);
    assert_true(iters <= 10); /* woken by the timer, not by polling */
    assert_int_equal(f.last_reason, NK_ROOM_LEAVE_TTL);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 0);
    assert_int_equal(s.expirations, 2);
    assert_int_equal(s.leaves, 2);
    close(a);
    close(b);
    room_down(&f);
}

/* D2 and D3: 2300 distinct sources (100300 with NKT_ROOM_FLOOD=100000),
 * one socket at a time, against a cap of 16 with a rate limit on: members
 * (and with them the limiter's buckets) never exceed the cap, memory stays
 * flat, each newcomer is joined or counted as rejected, and the first
 * member keeps being served. */
static void test_room_member_cap_under_flood(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.max_members = 16;
    o.unreachable_limit = 0;
    /* D3: the rate limiter lives in the member entries, so the same flood
     * cannot grow it either. */
    o.rate_limit = 5;
    struct fx f;
    room_up(&f, "[::]:0", &o);
    f.addr = addr_of("127.0.0.1:0");
    {
        nk_addr local;
        assert_int_equal(nk_udp_room_local_addr(f.room, &local), 0);
        nk_addr_set_port(&f.addr, nk_addr_port(&local));
    }
    int keep = peer_on("127.0.0.1:0");
    say(&f, keep, "", 0);
    size_t memory = stats(&f).memory;
    /* 2000 IPv4 sources by default; NKT_ROOM_FLOOD=100000 gives the full
     * row (400 addresses x 250 ports). Then IPv6 ::1 with many ports. */
    const char *env = getenv("NKT_ROOM_FLOOD");
    unsigned v4 = env ? (unsigned)strtoul(env, NULL, 10) : 2000;
    const unsigned v6 = 300;
    const unsigned sources = v4 + v6;
    nk_addr room4 = f.addr;
    /* Empty datagrams join without being relayed, so no relay goes to a
     * closed source (whose ICMP errors would only add noise). */
    for (unsigned i = 0; i < v4; i++) {
        char text[32];
        unsigned host = i / 250; /* 127.0.0.x, 127.0.1.x, ... */
        snprintf(text, sizeof text, "127.%u.%u.%u:0", host >> 8, host & 255,
                 1 + i % 250);
        int s = peer_on(text);
        say(&f, s, "", 0);
        close(s);
    }
    f.addr = addr_of("[::1]:0");
    nk_addr_set_port(&f.addr, nk_addr_port(&room4));
    for (unsigned i = 0; i < v6; i++) {
        int s = peer_on("[::1]:0");
        say(&f, s, "", 0);
        close(s);
    }
    f.addr = room4;
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 16);
    assert_int_equal(f.max_members_seen, 16);
    assert_int_equal(s.joins, 16);
    assert_int_equal(s.rejected, sources - 15);
    assert_int_equal(s.drops[NK_ROOM_DROP_FULL], sources - 15);
    assert_int_equal(s.memory, memory);
    /* The first member is still there and still served. */
    nk_udp_room_member_info mi;
    nk_addr ka;
    assert_int_equal(nkt_sock_name(keep, &ka), 0);
    assert_int_equal(nk_udp_room_member(f.room, &ka, &mi), 0);
    say(&f, keep, "still here", 10);
    expect(keep, "still here");
    assert_int_equal(stats(&f).relayed, 1);
    close(keep);
    room_down(&f);
}

static void test_room_leave_message(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.leave_message = "leave";
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int a = peer_on("127.0.0.1:0"), b = peer_on("127.0.0.1:0");
    say(&f, a, "", 0);
    say(&f, b, "", 0);
    say(&f, a, "leave\n", 6);
    assert_int_equal(f.leaves, 1);
    assert_int_equal(f.last_reason, NK_ROOM_LEAVE_MESSAGE);
    nk_addr aa;
    assert_int_equal(nkt_sock_name(a, &aa), 0);
    assert_true(nk_addr_equal(&f.last_left, &aa));
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 1);
    assert_int_equal(s.relayed, 0);
    expect_nothing(b);
    /* "leaves" is an ordinary message. */
    say(&f, b, "leaves", 6);
    expect(b, "leaves");
    close(a);
    close(b);
    room_down(&f);
}

/* on_message rewrites and drops; counters add up. */
static void test_room_hooks_and_counters(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    f.upper = true;
    int a = peer_on("127.0.0.1:0");
    say(&f, a, "hello", 5);
    expect(a, "HELLO");
    say(&f, a, "#secret", 7);
    expect_nothing(a);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.messages_in, 2);
    assert_int_equal(s.bytes_in, 12);
    assert_int_equal(s.drops[NK_ROOM_DROP_HOOK], 1);
    assert_int_equal(s.relayed, 1);
    assert_int_equal(s.deliveries_out, 1);
    assert_int_equal(nk_udp_room_remove(f.room, &f.addr), NK_EINVAL);
    nk_addr aa;
    assert_int_equal(nkt_sock_name(a, &aa), 0);
    assert_int_equal(nk_udp_room_remove(f.room, &aa), 0);
    assert_int_equal(f.last_reason, NK_ROOM_LEAVE_REMOVED);
    assert_int_equal(stats(&f).members, 0);
    close(a);
    room_down(&f);
}

/* F5: a hook (on_join, on_message, on_leave) that removes 40 members at
 * once: every one of them gets its on_leave exactly once, and the counters
 * equal the events. */
static void test_room_hook_removing_many_reports_every_leave(void **state)
{
    (void)state;
    enum { N = 41 };
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.leave_message = "bye";
    const struct {
        int hook;
        const char *text; /* from p[0], the one kept (joining last for
                             on_join) */
        unsigned leaves;
    } rows[] = {
        {PURGE_ON_JOIN, "hi", N - 1},
        {PURGE_ON_MESSAGE, "hi", N - 1},
        {PURGE_ON_LEAVE, "bye", N}, /* p[0] itself, then the 40 */
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        print_message("purge from hook %d\n", rows[r].hook);
        struct fx f;
        room_up(&f, "127.0.0.1:0", &o);
        int p[N];
        for (int i = 0; i < N; i++)
            p[i] = peer_on("127.0.0.1:0");
        /* p[0] joins first, or last when its join does the purge. */
        bool last = rows[r].hook == PURGE_ON_JOIN;
        for (int i = last ? 1 : 0; i < N; i++)
            say(&f, p[i], "", 0);
        f.purge_in = rows[r].hook;
        say(&f, p[0], rows[r].text, strlen(rows[r].text));
        assert_true(f.purged);
        assert_int_equal(f.njoined, N);
        assert_int_equal(f.leaves, rows[r].leaves);
        for (unsigned i = 0; i < f.njoined; i++)
            assert_int_equal(f.left[i], 1u - (i == (last ? N - 1u : 0u) &&
                                              rows[r].hook != PURGE_ON_LEAVE));
        nk_udp_room_stats s = stats(&f);
        assert_int_equal(s.leaves, f.leaves);
        assert_int_equal(s.joins, f.joins);
        assert_int_equal(s.joins, N);
        assert_int_equal(s.members, s.joins - s.leaves);
        for (int i = 0; i < N; i++)
            close(p[i]);
        room_down(&f);
    }
}

/* A newcomer removed by on_join: the datagram that made it join is not
 * relayed (counted as NK_ROOM_DROP_HOOK), and on_message never sees
 * a sender that is not a member. */
static void test_room_newcomer_removed_in_on_join_is_not_relayed(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int a = peer_on("127.0.0.1:0");
    int b = peer_on("127.0.0.1:0");
    say(&f, a, "", 0);
    f.remove_newcomer = true;
    say(&f, b, "hi", 2);
    expect_nothing(a);
    expect_nothing(b);
    assert_int_equal(f.from_nonmember, 0);
    assert_int_equal(f.messages_seen, 0);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.relayed, 0);
    assert_int_equal(s.deliveries_out, 0);
    assert_int_equal(s.drops[NK_ROOM_DROP_HOOK], 1);
    assert_int_equal(s.joins, 2);
    assert_int_equal(s.leaves, 1);
    assert_int_equal(f.leaves, 1);
    assert_int_equal(s.members, 1);
    close(a);
    close(b);
    room_down(&f);
}

static void test_room_rate_limit_per_source(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.rate_limit = 1; /* per second: no refill within this test */
    o.rate_burst = 2;
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int a = peer_on("127.0.0.1:0"), b = peer_on("127.0.0.1:0");
    for (int i = 0; i < 5; i++)
        say(&f, a, "m", 1);
    say(&f, b, "n", 1);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.drops[NK_ROOM_DROP_RATE], 3);
    assert_int_equal(s.relayed, 3);
    expect(a, "m");
    expect(a, "m");
    expect(a, "n");
    close(a);
    close(b);
    room_down(&f);
}

/* A1/A3/D7: empty datagrams refresh but are not relayed; truncated and
 * oversized ones are dropped and counted; the next one arrives intact. */
static void test_room_empty_and_oversized_not_relayed(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.max_datagram = 1024;
    o.rcvbuf = 1 << 20;
    struct fx f;
    room_up(&f, "[::]:0", &o); /* dual-stack: the IPv4 and IPv6 sizes */
    nk_addr to4 = addr_of("127.0.0.1:0");
    nk_addr_set_port(&to4, nk_addr_port(&f.addr));
    int a = peer_on("127.0.0.1:0"), b = peer_on("[::1]:0");
    static char big[65527];
    memset(big, 'b', sizeof big);
    f.addr = to4;
    say(&f, a, "", 0);
    say(&f, a, big, 1025);
    say(&f, a, big, 8192);
    say(&f, a, big, 65507);
    f.addr = addr_of("[::1]:0");
    nk_addr_set_port(&f.addr, nk_addr_port(&to4));
    say(&f, b, big, 65527);
    f.addr = to4;
    say(&f, a, "0123456789", 10);
    expect(a, "0123456789");
    expect_nothing(b); /* its oversized datagram made it no member */
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.drops[NK_ROOM_DROP_EMPTY], 1);
    assert_int_equal(s.drops[NK_ROOM_DROP_OVERSIZE], 4);
    assert_int_equal(s.truncations, 4);
    assert_int_equal(s.relayed, 1);
    assert_int_equal(s.members, 1);
    assert_int_equal(s.deliveries_out, 1);
    close(a);
    close(b);
    room_down(&f);
}

static bool dead_evicted(void *arg)
{
    struct fx *f = arg;
    return stats(f).evictions >= 1;
}

/* B15: a member whose port is closed is evicted after the ICMP refusals,
 * and the other members receive every message. */
static void test_room_dead_member_evicted_others_served(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = peer_on("127.0.0.1:0");
        say(&f, p[i], "", 0);
    }
    nk_addr dead;
    assert_int_equal(nkt_sock_name(p[3], &dead), 0);
    close(p[3]);
    int got[3] = {0, 0, 0};
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 3; i++) {
            say(&f, p[i], "msg", 3);
            for (int j = 0; j < 3; j++) {
                char buf[8];
                if (nkt_udp_recv(p[j], buf, sizeof buf, WAIT_MS, NULL) == 3)
                    got[j]++;
            }
        }
    }
    for (int j = 0; j < 3; j++)
        assert_int_equal(got[j], 30);
    /* ICMP errors may be rate-limited machine-wide when tests run in
     * parallel: keep chatting (bounded) until enough refusals came back. */
    for (int extra = 0; extra < 200 && !dead_evicted(&f); extra++) {
        say(&f, p[0], "more", 4);
        for (int j = 0; j < 3; j++) {
            char buf[8];
            assert_int_equal(nkt_udp_recv(p[j], buf, sizeof buf, WAIT_MS, NULL), 4);
        }
        (void)nkt_run_until(f.loop, dead_evicted, &f, 10, 5, NULL);
    }
    assert_true(dead_evicted(&f));
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.members, 3);
    assert_int_equal(s.evictions, 1);
    assert_true(s.unreachable >= 3);
    assert_int_equal(f.last_reason, NK_ROOM_LEAVE_UNREACHABLE);
    assert_true(nk_addr_equal(&f.last_left, &dead));
    for (int i = 0; i < 3; i++)
        close(p[i]);
    room_down(&f);
}

/* D4: in validated mode a silent 1-byte joiner is sent at most 3 bytes;
 * a client that answers the challenge becomes validated and gets
 * everything. */
static void test_room_validated_mode_budget_and_cookie(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.validate = true;
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int attacker = peer_on("127.0.0.1:0");
    say(&f, attacker, "j", 1);
    expect(attacker, "j"); /* 1 byte: within its budget of 3 */

    int c = peer_on("127.0.0.1:0");
    char hello[NK_ROOM_HELLO_LEN];
    assert_int_equal(nk_udp_room_client_hello(hello, sizeof hello),
                     NK_ROOM_HELLO_LEN);
    say(&f, c, hello, sizeof hello);
    char buf[64], reply[64];
    int n = nkt_udp_recv(c, buf, sizeof buf, WAIT_MS, NULL);
    assert_int_equal(n, NK_ROOM_COOKIE_MSG_LEN);
    int r = nk_udp_room_client_handle(buf, (size_t)n, reply, sizeof reply);
    assert_int_equal(r, NK_ROOM_COOKIE_MSG_LEN);
    assert_int_equal(nk_udp_room_client_handle("hi", 2, reply, sizeof reply), 0);
    say(&f, c, reply, (size_t)r);
    nk_addr ca, aa;
    assert_int_equal(nkt_sock_name(c, &ca), 0);
    assert_int_equal(nkt_sock_name(attacker, &aa), 0);
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_room_member(f.room, &ca, &mi), 0);
    assert_true(mi.validated);

    for (int i = 0; i < 20; i++) {
        say(&f, c, "chat line", 9);
        expect(c, "chat line");
    }
    assert_int_equal(nk_udp_room_member(f.room, &aa, &mi), 0);
    assert_false(mi.validated);
    assert_true(mi.bytes_out <= 3 * mi.bytes_in);
    expect_nothing(attacker);
    nk_udp_room_stats s = stats(&f);
    assert_int_equal(s.validations, 1);
    assert_int_equal(s.unvalidated, 1);
    assert_int_equal(s.budget_skips, 20);
    /* A forged answer is refused. */
    reply[10] ^= 1;
    say(&f, attacker, reply, (size_t)r);
    assert_int_equal(stats(&f).drops[NK_ROOM_DROP_COOKIE], 1);
    close(attacker);
    close(c);
    room_down(&f);
}

/* B14: the room closed from its own message hook is freed afterwards, and
 * nothing is relayed. */
static void test_room_close_from_hook(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int a = peer_on("127.0.0.1:0");
    f.close_in_hook = true;
    say(&f, a, "bye", 3);
    assert_null(f.room);
    expect_nothing(a);
    close(a);
    assert_int_equal(nk_loop_free(f.loop), 0);
}

/* The fan-out path allocates nothing: once members have joined, relaying
 * hundreds of messages makes no allocation at all. */
static void test_room_relay_allocates_nothing(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    int p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = peer_on("127.0.0.1:0");
        say(&f, p[i], "", 0);
    }
    assert_true(nkt_alloc_count() > 0); /* the counter sees the room's */
    nkt_alloc_reset();
    char buf[64];
    for (int m = 0; m < 400; m++) {
        say(&f, p[m % 8], "relay me", 8);
        for (int i = 0; i < 8; i++)
            assert_int_equal(nkt_udp_recv(p[i], buf, sizeof buf, WAIT_MS, NULL), 8);
    }
    assert_int_equal(nkt_alloc_count(), 0);
    assert_int_equal(stats(&f).deliveries_out, 400 * 8);
    for (int i = 0; i < 8; i++)
        close(p[i]);
    room_down(&f);
}

/* Datagrams the kernel dropped for full receive buffers, machine-wide. */
static long long rcvbuf_errors(void)
{
    FILE *fp = fopen("/proc/net/snmp", "r");
    if (fp == NULL)
        return -1;
    char head[1024], vals[1024];
    long long v = -1;
    while (fgets(head, sizeof head, fp) && fgets(vals, sizeof vals, fp)) {
        if (strncmp(head, "Udp:", 4) != 0)
            continue;
        char *hs, *vs;
        char *h = strtok_r(head, " \n", &hs);
        char *x = strtok_r(vals, " \n", &vs);
        while (h && x) {
            if (strcmp(h, "RcvbufErrors") == 0)
                v = atoll(x);
            h = strtok_r(NULL, " \n", &hs);
            x = strtok_r(NULL, " \n", &vs);
        }
    }
    fclose(fp);
    return v;
}

#define C3_MEMBERS 20
#define C3_ROUNDS 50

/* C3 (scaled down): every member sends sequence-numbered datagrams; for
 * every (sender, receiver) pair they arrive in order without duplicates,
 * and any loss is accounted for by the room's drop counters and the
 * kernel's receive-buffer drops. */
static void test_room_fanout_accounting(void **state)
{
    (void)state;
    struct fx f;
    room_up(&f, "127.0.0.1:0", NULL);
    static int p[C3_MEMBERS];
    static int next[C3_MEMBERS][C3_MEMBERS]; /* [receiver][sender] */
    memset(next, 0, sizeof next);
    for (int i = 0; i < C3_MEMBERS; i++) {
        p[i] = peer_on("127.0.0.1:0");
        say(&f, p[i], "", 0);
    }
    long long kernel_before = rcvbuf_errors();
    long dups = 0, received = 0;
    for (int round = 0; round < C3_ROUNDS; round++) {
        for (int i = 0; i < C3_MEMBERS; i++) {
            uint32_t d[2] = {(uint32_t)i, (uint32_t)round};
            say(&f, p[i], d, sizeof d);
        }
        for (int r = 0; r < C3_MEMBERS; r++) {
            uint32_t d[2];
            while (nkt_udp_recv(p[r], d, sizeof d, 0, NULL) == (int)sizeof d) {
                assert_true(d[0] < C3_MEMBERS);
                if ((int)d[1] < next[r][d[0]])
                    dups++;
                next[r][d[0]] = (int)d[1] + 1;
                received++;
            }
        }
    }
    long long kernel = rcvbuf_errors() - kernel_before;
    nk_udp_room_stats s = stats(&f);
    long expected = (long)C3_MEMBERS * C3_MEMBERS * C3_ROUNDS;
    long lost = expected - received;
    assert_int_equal(dups, 0);
    assert_int_equal(s.deliveries_out, expected);
    assert_int_equal(s.delivery_drops + s.send_errors, 0);
    /* Loopback loses nothing the kernel does not count. */
    assert_true(lost == 0 || (kernel_before >= 0 && lost <= kernel));
    for (int i = 0; i < C3_MEMBERS; i++)
        close(p[i]);
    room_down(&f);
}

/* D4, open mode: a silent joiner (a forged address, say) receives relays
 * only until its time-to-live runs out, and the room shows the ratio of
 * bytes sent to it over bytes received from it. */
static void test_room_open_mode_exposure_ends_with_ttl(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.member_ttl_ms = 100;
    struct fx f;
    room_up(&f, "127.0.0.1:0", &o);
    int victim = peer_on("127.0.0.1:0"), m = peer_on("127.0.0.1:0");
    nk_addr va;
    assert_int_equal(nkt_sock_name(victim, &va), 0);
    say(&f, victim, "j", 1);
    for (int i = 0; i < 5; i++)
        say(&f, m, "0123456789", 10);
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_room_member(f.room, &va, &mi), 0);
    assert_int_equal(mi.bytes_in, 1);
    assert_int_equal(mi.bytes_out, 1 + 5 * 10); /* ratio 51:1, bounded by TTL */
    assert_false(mi.validated);
    f.want_leaves = 1;
    assert_int_equal(nkt_run_until(f.loop, got_leaves, &f, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
    /* The victim joined first, so it is the first to go. */
    assert_int_equal(nk_udp_room_member(f.room, &va, &mi), NK_EINVAL);
    char buf[64];
    int got = 0;
    while (nkt_udp_recv(victim, buf, sizeof buf, 0, NULL) >= 0)
        got++;
    assert_int_equal(got, 6);
    say(&f, m, "after", 5);
    expect_nothing(victim);
    close(victim);
    close(m);
    room_down(&f);
}

/* A UDP datagram with a forged IPv4 source, through a raw socket: 0, or
 * -EPERM/-EACCES where raw sockets are not allowed. */
static int forge_udp(const nk_addr *src, const nk_addr *dst, const void *data,
                     size_t len)
{
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0)
        return -errno;
    unsigned char pkt[256];
    assert_true(len <= sizeof pkt - 28);
    memset(pkt, 0, 28);
    struct iphdr ip = {.ihl = 5, .version = 4, .ttl = 64,
                       .protocol = IPPROTO_UDP,
                       .tot_len = htons((uint16_t)(28 + len)),
                       .saddr = src->u.v4.sin_addr.s_addr,
                       .daddr = dst->u.v4.sin_addr.s_addr};
    struct udphdr udp;
    memset(&udp, 0, sizeof udp);
    udp.source = src->u.v4.sin_port;
    udp.dest = dst->u.v4.sin_port;
    udp.len = htons((uint16_t)(8 + len)); /* checksum 0: none, as IPv4 allows */
    memcpy(pkt, &ip, sizeof ip);
    memcpy(pkt + 20, &udp, sizeof udp);
    memcpy(pkt + 28, data, len);
    ssize_t n = sendto(fd, pkt, 28 + len, 0, &dst->u.sa, dst->len);
    int rc = n == (ssize_t)(28 + len) ? 0 : -errno;
    close(fd);
    return rc;
}

static bool some_rate_drop(void *arg)
{
    struct fx **two = arg;
    return stats(two[0]).drops[NK_ROOM_DROP_RATE] +
               stats(two[1]).drops[NK_ROOM_DROP_RATE] >
           0;
}

/* D6: a datagram forged with the room's own address as its source is
 * dropped and never makes the room a member of itself; two rooms made
 * members of each other by one forged datagram ping-pong only until the
 * per-source rate limit drops the message, then fall silent. */
static void test_room_self_and_loop_reflection(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.rate_limit = 50;
    o.rate_burst = 5;
    struct fx a, b;
    room_up(&a, "127.0.0.1:0", &o);
    int rc = forge_udp(&a.addr, &a.addr, "me", 2);
    if (rc == -EPERM || rc == -EACCES) {
        room_down(&a);
        nkt_skip("raw sockets not permitted (%s)", nk_strerror(rc));
    }
    assert_int_equal(rc, 0);
    a.want_in = 1;
    assert_int_equal(nkt_run_until(a.loop, got_in, &a, MAX_ITERS, WAIT_MS, NULL), 0);
    assert_int_equal(stats(&a).drops[NK_ROOM_DROP_SELF], 1);
    assert_int_equal(stats(&a).members, 0);

    /* Room b on the same loop, so both run together. */
    memset(&b, 0, sizeof b);
    nk_udp_room_hooks h = {.on_join = on_join, .on_leave = on_leave};
    nk_addr lo = addr_of("127.0.0.1:0");
    assert_int_equal(nk_udp_room_open(a.loop, &lo, &o, &h, &b, &b.room), 0);
    assert_int_equal(nk_udp_room_local_addr(b.room, &b.addr), 0);
    assert_int_equal(forge_udp(&a.addr, &b.addr, "ping", 4), 0);
    struct fx *two[2] = {&a, &b};
    uint64_t started = nkt_now_ms();
    assert_int_equal(nkt_run_until(a.loop, some_rate_drop, two, MAX_ITERS,
                                   WAIT_MS, NULL), 0);
    uint64_t elapsed_ms = nkt_now_ms() - started;
    /* Quiet now: a further bounded run moves no counter. */
    uint64_t in = stats(&a).messages_in + stats(&b).messages_in;
    for (int i = 0; i < 10; i++)
        (void)nk_loop_run(a.loop, NK_RUN_NOWAIT);
    assert_int_equal(stats(&a).messages_in + stats(&b).messages_in, in);
    print_message("room-to-room loop: %llu datagrams before the rate "
                  "limit ended it\n", (unsigned long long)in);
    /* Each room's bucket passes its burst plus what refills meanwhile
     * (slow runs, valgrind, refill more). */
    uint64_t refill = (uint64_t)o.rate_limit * (elapsed_ms + 999) / 1000;
    assert_true(in <= 1 + 2 * (o.rate_burst + 2 + refill));
    assert_int_equal(stats(&a).members, 1); /* each has the other */
    assert_int_equal(stats(&b).members, 1);
    nk_udp_room_close(b.room);
    room_down(&a);
}

/* D5: a join forged (raw socket) from another address. Validated room:
 * that address gets no more than 3x the forged bytes (here: only the
 * challenge), whatever the members say. Open room: it is a member, and
 * the stats show it as unvalidated. A socket bound at the forged address
 * observes what the room sends there. */
static void test_room_spoofed_join(void **state)
{
    (void)state;
    for (int validate = 1; validate >= 0; validate--) {
        nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
        o.validate = validate;
        struct fx f;
        room_up(&f, "127.0.0.1:0", &o);
        int victim = peer_on("127.0.0.77:0");
        nk_addr va;
        assert_int_equal(nkt_sock_name(victim, &va), 0);
        int rc = forge_udp(&va, &f.addr, "register", 8);
        if (rc == -EPERM || rc == -EACCES) {
            close(victim);
            room_down(&f);
            nkt_skip("raw sockets not permitted (%s)", nk_strerror(rc));
        }
        assert_int_equal(rc, 0);
        f.want_in = 1;
        assert_int_equal(nkt_run_until(f.loop, got_in, &f, MAX_ITERS, WAIT_MS,
                                       NULL), 0);
        int m = peer_on("127.0.0.1:0");
        for (int i = 0; i < 20; i++)
            say(&f, m, "a chat line", 11);
        size_t bytes = 0;
        char buf[64];
        int n;
        while ((n = nkt_udp_recv(victim, buf, sizeof buf, 0, NULL)) >= 0)
            bytes += (size_t)n;
        nk_udp_room_member_info mi;
        assert_int_equal(nk_udp_room_member(f.room, &va, &mi), 0);
        assert_false(mi.validated);
        assert_int_equal(stats(&f).unvalidated, 2); /* m never answered */
        if (validate) {
            assert_int_equal(bytes, NK_ROOM_COOKIE_MSG_LEN); /* <= 3 x 8 */
            assert_true(mi.bytes_out <= 3 * mi.bytes_in);
        } else {
            assert_int_equal(bytes, 8 + 20 * 11); /* exposed until its TTL */
        }
        close(m);
        close(victim);
        room_down(&f);
    }
}

static void test_room_bad_arguments(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_room *room = NULL;
    nk_addr a = addr_of("127.0.0.1:0");
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    assert_int_equal(nk_udp_room_open(NULL, &a, NULL, NULL, NULL, &room), NK_EINVAL);
    assert_int_equal(nk_udp_room_open(loop, NULL, NULL, NULL, NULL, &room), NK_EINVAL);
    assert_int_equal(nk_udp_room_open(loop, &a, NULL, NULL, NULL, NULL), NK_EINVAL);
    o.max_members = 0;
    assert_int_equal(nk_udp_room_open(loop, &a, &o, NULL, NULL, &room), NK_EINVAL);
    o = (nk_udp_room_opts)NK_UDP_ROOM_OPTS_INIT;
    o.max_datagram = 65508;
    assert_int_equal(nk_udp_room_open(loop, &a, &o, NULL, NULL, &room), NK_EINVAL);
    o = (nk_udp_room_opts)NK_UDP_ROOM_OPTS_INIT;
    o.leave_message = "";
    assert_int_equal(nk_udp_room_open(loop, &a, &o, NULL, NULL, &room), NK_EINVAL);
    assert_null(room);
    nk_udp_room_close(NULL);
    char small[4];
    assert_int_equal(nk_udp_room_client_hello(small, sizeof small), NK_ENOSPACE);
    assert_int_equal(nk_udp_room_client_hello(NULL, 64), NK_EINVAL);
    assert_int_equal(nk_loop_free(loop), 0);
}

int main(int argc, char **argv)
{
    /* Before any allocation: blocks from the system allocator must never
     * reach the counting one. */
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_relays_to_all_members_with_sender),
        cmocka_unit_test(test_room_members_keyed_by_whole_address),
        cmocka_unit_test(test_room_v4_mapped_is_one_member),
        cmocka_unit_test(test_room_echo_sender_off),
        cmocka_unit_test(test_room_ttl_expiry_by_timer),
        cmocka_unit_test(test_room_member_cap_under_flood),
        cmocka_unit_test(test_room_leave_message),
        cmocka_unit_test(test_room_hooks_and_counters),
        cmocka_unit_test(test_room_hook_removing_many_reports_every_leave),
        cmocka_unit_test(test_room_newcomer_removed_in_on_join_is_not_relayed),
        cmocka_unit_test(test_room_rate_limit_per_source),
        cmocka_unit_test(test_room_empty_and_oversized_not_relayed),
        cmocka_unit_test(test_room_dead_member_evicted_others_served),
        cmocka_unit_test(test_room_validated_mode_budget_and_cookie),
        cmocka_unit_test(test_room_close_from_hook),
        cmocka_unit_test(test_room_relay_allocates_nothing),
        cmocka_unit_test(test_room_fanout_accounting),
        cmocka_unit_test(test_room_open_mode_exposure_ends_with_ttl),
        cmocka_unit_test(test_room_self_and_loop_reflection),
        cmocka_unit_test(test_room_spoofed_join),
        cmocka_unit_test(test_room_bad_arguments),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
