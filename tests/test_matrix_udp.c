/* UDP and room rows of the reliability matrix beyond the module suites:
 * A1 truncation counted at the endpoint, A3 an empty datagram delivered
 * once, B7 a real EAGAIN burst, D3 the rate limiter under a flood of
 * sources, D4 the amplification budget with 50 members (open and
 * validated), D5 a truly spoofed join through a raw socket, D6 the room's
 * own address as source and two rooms that are members of each other.
 * Raw-socket rows skip, with the reason printed, where the process may not
 * open one. */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <setjmp.h>
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
#include "nkt_main.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_proc.h"

#define WAIT_MS 5000
#define MAX_ITERS 1000000

static nk_addr addr_of(const char *text)
{
    nk_addr a;
    assert_int_equal(nk_addr_parse(text, &a), 0);
    return a;
}

static int peer_on(const char *text)
{
    nk_addr a = addr_of(text);
    int fd = nkt_udp_socket(nk_addr_family(&a), &a);
    assert_true(fd >= 0);
    return fd;
}

/* Bytes waiting on a UDP socket, drained: total payload bytes. */
static size_t drain(int fd, size_t *count)
{
    size_t bytes = 0;
    char buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r < 0)
            break;
        bytes += (size_t)r;
        if (count)
            (*count)++;
    }
    return bytes;
}

/* ---- a room on its own loop ---- */

struct rx {
    nk_loop *loop;
    nk_udp_room *room;
    nk_addr addr;
    uint64_t want_in;
    unsigned leaves_ttl;
    nk_addr last_left;
};

static void rx_leave(nk_udp_room *room, const nk_udp_room_member_event *ev,
                     void *user)
{
    (void)room;
    struct rx *x = user;
    if (ev->reason == NK_ROOM_LEAVE_TTL)
        x->leaves_ttl++;
    x->last_left = *ev->addr;
}

static void rx_open(struct rx *x, const char *bind_text,
                    const nk_udp_room_opts *o)
{
    memset(x, 0, sizeof *x);
    assert_int_equal(nk_loop_new(&x->loop), 0);
    nk_udp_room_hooks h = {.on_join = NULL, .on_leave = rx_leave,
                           .on_message = NULL};
    nk_addr a = addr_of(bind_text);
    assert_int_equal(nk_udp_room_open(x->loop, &a, o, &h, x, &x->room), 0);
    assert_int_equal(nk_udp_room_local_addr(x->room, &x->addr), 0);
}

static void rx_close(struct rx *x)
{
    nk_udp_room_close(x->room);
    assert_int_equal(nk_loop_free(x->loop), 0);
}

static nk_udp_room_stats rx_stats(const struct rx *x)
{
    nk_udp_room_stats s;
    nk_udp_room_get_stats(x->room, &s);
    return s;
}

static bool rx_got_in(void *arg)
{
    struct rx *x = arg;
    return rx_stats(x).messages_in >= x->want_in;
}

/* Run until the room has handled @n more datagrams. */
static void rx_wait_in(struct rx *x, uint64_t n)
{
    x->want_in = rx_stats(x).messages_in + n;
    assert_int_equal(nkt_run_until(x->loop, rx_got_in, x, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
}

static void rx_say(struct rx *x, int fd, const void *d, size_t len)
{
    assert_int_equal(nkt_udp_sendto(fd, d, len, &x->addr), (int)len);
    rx_wait_in(x, 1);
}

/* A member that completes the validation handshake. */
static int validated_peer(struct rx *x)
{
    int fd = peer_on("127.0.0.1:0");
    char hello[NK_ROOM_HELLO_LEN], buf[128], reply[64];
    assert_int_equal(nk_udp_room_client_hello(hello, sizeof hello),
                     NK_ROOM_HELLO_LEN);
    rx_say(x, fd, hello, sizeof hello);
    int n = nkt_udp_recv(fd, buf, sizeof buf, WAIT_MS, NULL);
    assert_true(n > 0);
    int r = nk_udp_room_client_handle(buf, (size_t)n, reply, sizeof reply);
    assert_true(r > 0);
    rx_say(x, fd, reply, (size_t)r);
    return fd;
}

/* ---- raw IPv4/UDP with a forged source ---- */

static int raw_socket(void)
{
    int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    return fd < 0 ? -errno : fd;
}

/* Send @len bytes from @src to @dst as a hand-built IPv4 packet. */
static void raw_send(int raw, const nk_addr *src, const nk_addr *dst,
                     const void *data, size_t len)
{
    uint8_t pkt[1500];
    assert_true(len + sizeof(struct iphdr) + sizeof(struct udphdr) <=
                sizeof pkt);
    struct iphdr ip = {0};
    ip.version = 4;
    ip.ihl = 5;
    ip.ttl = 64;
    ip.protocol = IPPROTO_UDP;
    ip.tot_len = htons((uint16_t)(sizeof ip + sizeof(struct udphdr) + len));
    ip.saddr = src->u.v4.sin_addr.s_addr;
    ip.daddr = dst->u.v4.sin_addr.s_addr;
    struct udphdr uh = {0};
    uh.source = src->u.v4.sin_port;
    uh.dest = dst->u.v4.sin_port;
    uh.len = htons((uint16_t)(sizeof uh + len));
    uh.check = 0; /* no checksum: allowed over IPv4 */
    memcpy(pkt, &ip, sizeof ip);
    memcpy(pkt + sizeof ip, &uh, sizeof uh);
    memcpy(pkt + sizeof ip + sizeof uh, data, len);
    size_t total = sizeof ip + sizeof uh + len;
    assert_int_equal(sendto(raw, pkt, total, 0, &dst->u.sa, dst->len),
                     (ssize_t)total);
}

/* Open a raw socket or skip the test with the reason printed. */
#define RAW_OR_SKIP(fd)                                                       \
    do {                                                                      \
        (fd) = raw_socket();                                                  \
        if ((fd) < 0)                                                         \
            nkt_skip("socket(AF_INET, SOCK_RAW) gives %s: a forged source "   \
                     "needs CAP_NET_RAW",                                     \
                     nk_err_name(fd));                                        \
    } while (0)

/* ---- A1 at the endpoint ---- */

struct a1 {
    unsigned events, truncated, intact;
    size_t sizes[8];
};

static void a1_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    (void)ep;
    struct a1 *a = user;
    assert_int_equal(ev->error, 0);
    if (a->events < 8)
        a->sizes[a->events] = ev->size;
    a->events++;
    if (ev->truncated) {
        assert_int_equal(ev->len, 1024);
        assert_true(ev->size > 1024);
        a->truncated++;
    } else if (ev->len == 10 && memcmp(ev->data, "0123456789", 10) == 0) {
        a->intact++;
    }
}

static bool a1_done(void *arg)
{
    return ((struct a1 *)arg)->events >= 5;
}

static void test_a1_oversized_datagrams_truncated_and_counted(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.max_datagram = 1024;
    o.rcvbuf = 1 << 20;
    struct a1 a = {0};
    nk_udp_endpoint *ep;
    nk_addr any = addr_of("[::]:0");
    int r = nk_udp_endpoint_bind(loop, &any, &o, a1_recv, &a, &ep);
    if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) {
        nk_loop_free(loop);
        nkt_skip("no IPv6 (%s)", nk_strerror(r));
    }
    assert_int_equal(r, 0);
    nk_addr local;
    assert_int_equal(nk_udp_endpoint_local_addr(ep, &local), 0);
    nk_addr to4 = addr_of("127.0.0.1:0"), to6 = addr_of("[::1]:0");
    nk_addr_set_port(&to4, nk_addr_port(&local));
    nk_addr_set_port(&to6, nk_addr_port(&local));
    int c4 = peer_on("127.0.0.1:0"), c6 = peer_on("[::1]:0");
    static char big[NK_UDP_MAX_IPV6];
    memset(big, 'b', sizeof big);
    nk_udp_endpoint_stats before;
    nk_udp_endpoint_get_stats(ep, &before);
    assert_int_equal(nkt_udp_sendto(c4, big, 1025, &to4), 1025);
    assert_int_equal(nkt_udp_sendto(c4, big, 8192, &to4), 8192);
    assert_int_equal(nkt_udp_sendto(c4, big, NK_UDP_MAX_IPV4, &to4),
                     NK_UDP_MAX_IPV4);
    assert_int_equal(nkt_udp_sendto(c6, big, NK_UDP_MAX_IPV6, &to6),
                     NK_UDP_MAX_IPV6);
    assert_int_equal(nkt_udp_sendto(c4, "0123456789", 10, &to4), 10);
    assert_int_equal(nkt_run_until(loop, a1_done, &a, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
    for (int i = 0; i < 20; i++)
        nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(a.events, 5); /* one event per datagram, no more */
    nk_udp_endpoint_stats after;
    nk_udp_endpoint_get_stats(ep, &after);
    assert_int_equal(a.truncated, 4);
    assert_int_equal(a.intact, 1);
    assert_int_equal(after.truncated - before.truncated, 4);
    assert_int_equal(a.sizes[0], 1025);
    assert_int_equal(a.sizes[1], 8192);
    assert_int_equal(a.sizes[2], NK_UDP_MAX_IPV4);
    assert_int_equal(a.sizes[3], NK_UDP_MAX_IPV6);
    /* A2 from the same endpoint: one byte over IPv4's maximum. */
    assert_int_equal(nk_udp_endpoint_send_to(ep, big, NK_UDP_MAX_IPV4 + 1,
                                             &to4), -EMSGSIZE);
    assert_int_equal(nk_udp_endpoint_send_to(ep, "ok", 2, &to4), 2);
    close(c4);
    close(c6);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* ---- A3: zero-length datagram ---- */

struct a3 {
    unsigned events;
    size_t lens[4];
    nk_addr from[4];
    char last;
};

static void a3_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    (void)ep;
    struct a3 *a = user;
    assert_int_equal(ev->error, 0);
    assert_non_null(ev->from);
    if (a->events < 4) {
        a->lens[a->events] = ev->len;
        a->from[a->events] = *ev->from;
    }
    if (ev->len == 1)
        a->last = *(const char *)ev->data;
    a->events++;
}

static bool a3_two(void *arg)
{
    return ((struct a3 *)arg)->events >= 2;
}

/* An empty datagram is delivered as one event of length 0 with its
 * source, then "x"; no other callback fires (no "nothing to read"). */
static void test_a3_empty_datagram_delivered_once_with_source(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct a3 a = {0};
    nk_udp_endpoint *ep;
    nk_addr bind = addr_of("127.0.0.1:0"), local, src;
    assert_int_equal(nk_udp_endpoint_bind(loop, &bind, NULL, a3_recv, &a, &ep),
                     0);
    assert_int_equal(nk_udp_endpoint_local_addr(ep, &local), 0);
    int c = peer_on("127.0.0.1:0");
    assert_int_equal(nkt_sock_name(c, &src), 0);
    assert_int_equal(nkt_udp_sendto(c, "", 0, &local), 0);
    assert_int_equal(nkt_udp_sendto(c, "x", 1, &local), 1);
    assert_int_equal(nkt_run_until(loop, a3_two, &a, MAX_ITERS, WAIT_MS, NULL),
                     0);
    for (int i = 0; i < 20; i++)
        nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(a.events, 2);
    assert_int_equal(a.lens[0], 0);
    assert_true(nk_addr_equal(&a.from[0], &src));
    assert_int_equal(a.lens[1], 1);
    assert_int_equal(a.last, 'x');
    nk_udp_endpoint_stats s;
    nk_udp_endpoint_get_stats(ep, &s);
    assert_int_equal(s.datagrams_in, 2);
    assert_int_equal(s.bytes_in, 1);
    close(c);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* ---- B7 (a): a real EAGAIN burst ---- */

struct b7 {
    int ticks;
};

static void b7_tick(nk_timer *t, void *user)
{
    (void)t;
    ((struct b7 *)user)->ticks++;
}

static bool b7_ticked(void *arg)
{
    return ((struct b7 *)arg)->ticks >= 3;
}

static void test_b7_real_eagain_burst_dropped_counted_loop_serves(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.sndbuf = 1; /* the system rounds it up to its minimum */
    nk_udp_endpoint *ep;
    nk_addr bind = addr_of("127.0.0.1:0");
    assert_int_equal(nk_udp_endpoint_bind(loop, &bind, &o, NULL, NULL, &ep), 0);
    /* The receiver never reads, with the smallest buffer too. */
    int sink = peer_on("127.0.0.1:0");
    int one = 1;
    setsockopt(sink, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    nk_addr to;
    assert_int_equal(nkt_sock_name(sink, &to), 0);
    struct b7 b = {0};
    nk_timer *t;
    assert_int_equal(nk_timer_start(loop, 1, 1, b7_tick, &b, &t), 0);
    static char payload[1400];
    memset(payload, 'e', sizeof payload);
    enum { N = 10000 };
    unsigned ok = 0, dropped = 0, other = 0;
    uint64_t t0 = nkt_now_ms();
    for (int i = 0; i < N; i++) {
        int r = nk_udp_endpoint_send_to(ep, payload, sizeof payload, &to);
        if (r == (int)sizeof payload)
            ok++;
        else if (r == -EAGAIN || r == -ENOBUFS)
            dropped++;
        else
            other++;
        if (i % 1000 == 0)
            nk_loop_run(loop, NK_RUN_NOWAIT);
    }
    uint64_t burst_ms = nkt_now_ms() - t0;
    nk_udp_endpoint_stats s;
    nk_udp_endpoint_get_stats(ep, &s);
    print_message("B7: %u sent, %u dropped (EAGAIN/ENOBUFS) of %d in %llu ms\n",
                  ok, dropped, N, (unsigned long long)burst_ms);
    assert_int_equal(other, 0);
    assert_int_equal(ok + dropped, N);
    assert_int_equal(s.datagrams_out, ok);
    assert_int_equal(s.send_drops, dropped);
    assert_int_equal(s.send_errors, 0);
    /* Nothing queued, no write interest left behind: the loop goes on
     * serving its timer without spinning. */
    uint64_t iters = 0;
    b.ticks = 0;
    assert_int_equal(nkt_run_until(loop, b7_ticked, &b, 1000, WAIT_MS, &iters),
                     0);
    assert_true(iters <= 30);
    nk_timer_stop(t);
    close(sink);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* ---- D3: rate-limiter table flood ---- */

static void test_d3_limiter_flood_bounded_memory_drops_counted(void **state)
{
    (void)state;
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.max_members = 64;
    o.rate_limit = 1; /* per second: no refill within the test */
    o.rate_burst = 1;
    o.unreachable_limit = 0;
    struct rx x;
    rx_open(&x, "127.0.0.1:0", &o);
    int keep = peer_on("127.0.0.1:0");
    rx_say(&x, keep, "", 0);
    size_t memory = rx_stats(&x).memory;
    /* 4000 sources (NK_TEST_D3_SOURCES for more), one socket at a time,
     * each sending 3 datagrams at once: 1 within its burst, 2 over. */
    const char *env = getenv("NK_TEST_D3_SOURCES");
    unsigned n = env ? (unsigned)strtoul(env, NULL, 10)
                     : nkt_under_valgrind() ? 300 : 4000;
    for (unsigned i = 0; i < n; i++) {
        char text[32];
        unsigned host = i / 250;
        snprintf(text, sizeof text, "127.%u.%u.%u:0", host >> 8, host & 255,
                 2 + i % 250);
        int s = peer_on(text);
        for (int k = 0; k < 3; k++)
            assert_int_equal(nkt_udp_sendto(s, "", 0, &x.addr), 0);
        rx_wait_in(&x, 3);
        close(s);
        if (i % 100 == 0) {
            nk_udp_room_stats st = rx_stats(&x);
            assert_true(st.members <= o.max_members);
            assert_int_equal(st.memory, memory); /* no growth per packet */
        }
    }
    nk_udp_room_stats st = rx_stats(&x);
    unsigned admitted = (unsigned)o.max_members - 1; /* besides keep */
    print_message("D3: %u sources: %zu members, %llu rate drops, %llu "
                  "rejected, memory %zu bytes\n", n, st.members,
                  (unsigned long long)st.drops[NK_ROOM_DROP_RATE],
                  (unsigned long long)st.rejected, st.memory);
    assert_int_equal(st.members, o.max_members);
    assert_int_equal(st.memory, memory);
    assert_int_equal(st.drops[NK_ROOM_DROP_RATE], 2u * admitted);
    assert_int_equal(st.rejected, 3u * (n - admitted));
    assert_int_equal(st.drops[NK_ROOM_DROP_FULL], 3u * (n - admitted));
    close(keep);
    rx_close(&x);
}

/* ---- D4: amplification budget ---- */

/* One round: every member says one line; the room relays it to all. */
static void chat_round(struct rx *x, const int *m, int n, int round)
{
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "m%d r%d", i, round);
        assert_int_equal(nkt_udp_sendto(m[i], line, (size_t)len, &x->addr),
                         len);
    }
    rx_wait_in(x, (uint64_t)n);
    for (int i = 0; i < n; i++)
        drain(m[i], NULL);
}

static bool attacker_gone(void *arg)
{
    return ((struct rx *)arg)->leaves_ttl > 0;
}

static void test_d4_open_mode_attacker_dropped_after_ttl(void **state)
{
    (void)state;
    enum { N = 50 };
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    /* Members chat in rounds well inside the time-to-live. */
    o.member_ttl_ms = nkt_under_valgrind() ? 3000 : 300;
    o.rcvbuf = 4 << 20;
    struct rx x;
    rx_open(&x, "127.0.0.1:0", &o);
    int attacker = peer_on("127.0.0.1:0");
    nk_addr aa;
    assert_int_equal(nkt_sock_name(attacker, &aa), 0);
    uint64_t t0 = nkt_now_ms(); /* the attacker's last datagram */
    rx_say(&x, attacker, "j", 1);
    int m[N];
    for (int i = 0; i < N; i++) {
        m[i] = peer_on("127.0.0.1:0");
        rx_say(&x, m[i], "", 0);
    }
    size_t to_attacker = 0;
    int round = 0;
    nk_udp_room_member_info mi = {0};
    while (!attacker_gone(&x) && nkt_now_ms() - t0 < 30000) {
        chat_round(&x, m, N, round++);
        to_attacker += drain(attacker, NULL);
        (void)nk_udp_room_member(x.room, &aa, &mi); /* while a member */
        (void)nkt_run_until(x.loop, attacker_gone, &x, 100, 5, NULL);
    }
    assert_true(attacker_gone(&x));
    assert_true(nk_addr_equal(&x.last_left, &aa));
    assert_true(nkt_now_ms() - t0 >= o.member_ttl_ms);
    unsigned long long in = mi.bytes_in, out = mi.bytes_out;
    print_message("D4 open: attacker sent %llu byte(s), got %zu bytes before "
                  "its %u ms time-to-live ended; member stats: %llu out, "
                  "amplification %llux\n", in, to_attacker, o.member_ttl_ms,
                  out, out / (in ? in : 1));
    assert_true(mi.bytes_in == 1);
    assert_true(mi.bytes_out >= 1);
    /* After the time-to-live nothing more goes to it. */
    for (int i = 0; i < 10; i++)
        chat_round(&x, m, N, round++);
    assert_int_equal(drain(attacker, NULL), 0);
    assert_int_equal(nk_udp_room_member(x.room, &aa, &mi), NK_EINVAL);
    nk_udp_room_stats s = rx_stats(&x);
    assert_int_equal(s.members, N);
    assert_true(s.expirations >= 1);
    for (int i = 0; i < N; i++)
        close(m[i]);
    close(attacker);
    rx_close(&x);
}

static void test_d4_validated_mode_attacker_gets_at_most_3x(void **state)
{
    (void)state;
    enum { N = 50 };
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.validate = true;
    o.rcvbuf = 4 << 20;
    struct rx x;
    rx_open(&x, "127.0.0.1:0", &o);
    int attacker = peer_on("127.0.0.1:0");
    nk_addr aa;
    assert_int_equal(nkt_sock_name(attacker, &aa), 0);
    rx_say(&x, attacker, "j", 1);
    int m[N];
    for (int i = 0; i < N; i++)
        m[i] = validated_peer(&x);
    size_t to_attacker = drain(attacker, NULL);
    for (int r = 0; r < 20; r++) {
        chat_round(&x, m, N, r);
        to_attacker += drain(attacker, NULL);
    }
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_room_member(x.room, &aa, &mi), 0);
    assert_false(mi.validated);
    assert_int_equal(mi.bytes_in, 1);
    print_message("D4 validated: attacker sent 1 byte, got %zu\n",
                  to_attacker);
    assert_true(to_attacker <= 3 * mi.bytes_in);
    assert_true(mi.bytes_out <= 3 * mi.bytes_in);
    nk_udp_room_stats s = rx_stats(&x);
    assert_int_equal(s.validations, N);
    assert_int_equal(s.unvalidated, 1);
    assert_true(s.budget_skips >= 20u * N - 3);
    for (int i = 0; i < N; i++)
        close(m[i]);
    close(attacker);
    rx_close(&x);
}

/* ---- D5: a truly spoofed join ---- */

static void d5_run(bool validate)
{
    int raw;
    RAW_OR_SKIP(raw);
    /* The victim listens where the forged source says: a port of its own,
     * so that the two D5 tests can run at once. */
    nk_addr victim_addr = addr_of("127.0.0.77:0");
    int victim = nkt_udp_socket(AF_INET, &victim_addr);
    assert_true(victim >= 0);
    assert_int_equal(nkt_sock_name(victim, &victim_addr), 0);
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.validate = validate;
    struct rx x;
    rx_open(&x, "127.0.0.1:0", &o);
    char hello[NK_ROOM_HELLO_LEN];
    assert_int_equal(nk_udp_room_client_hello(hello, sizeof hello),
                     NK_ROOM_HELLO_LEN);
    raw_send(raw, &victim_addr, &x.addr, hello, sizeof hello);
    rx_wait_in(&x, 1);
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_room_member(x.room, &victim_addr, &mi), 0);
    assert_false(mi.validated); /* marked unvalidated in either mode */
    int m[5];
    for (int i = 0; i < 5; i++)
        m[i] = validate ? validated_peer(&x) : peer_on("127.0.0.1:0");
    for (int r = 0; r < 20; r++)
        chat_round(&x, m, 5, r);
    size_t got = drain(victim, NULL);
    assert_int_equal(nk_udp_room_member(x.room, &victim_addr, &mi), 0);
    assert_false(mi.validated);
    print_message("D5 %s: forged join of %zu bytes from 127.0.0.77:%d; the "
                  "victim received %zu bytes\n",
                  validate ? "validated" : "open", sizeof hello,
                  nk_addr_port(&victim_addr), got);
    if (validate) {
        assert_true(got <= 3 * sizeof hello);
        assert_true(mi.bytes_out <= 3 * mi.bytes_in);
        assert_int_equal(rx_stats(&x).unvalidated, 1);
    } else {
        assert_true(got > 0); /* open mode: exposed until the TTL */
    }
    for (int i = 0; i < 5; i++)
        close(m[i]);
    close(victim);
    close(raw);
    rx_close(&x);
}

static void test_d5_spoofed_join_validated_within_budget(void **state)
{
    (void)state;
    d5_run(true);
}

static void test_d5_spoofed_join_open_marked_unvalidated(void **state)
{
    (void)state;
    d5_run(false);
}

/* ---- D6: self and loop reflection ---- */

static void test_d6_room_never_adds_itself(void **state)
{
    (void)state;
    int raw;
    RAW_OR_SKIP(raw);
    struct rx x;
    rx_open(&x, "127.0.0.1:0", NULL);
    raw_send(raw, &x.addr, &x.addr, "me", 2);
    rx_wait_in(&x, 1);
    nk_udp_room_stats s = rx_stats(&x);
    assert_int_equal(s.members, 0);
    assert_int_equal(s.joins, 0);
    assert_int_equal(s.drops[NK_ROOM_DROP_SELF], 1);
    assert_int_equal(s.deliveries_out, 0);
    close(raw);
    rx_close(&x);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void test_d6_two_rooms_in_a_loop_stopped_by_limits(void **state)
{
    (void)state;
    int raw;
    RAW_OR_SKIP(raw);
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.rate_limit = 20;
    o.rate_burst = 10;
    o.member_ttl_ms = 400;
    /* Both rooms on one loop, so neither waits for the other. */
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_room *ra, *rb;
    nk_addr bind = addr_of("127.0.0.1:0"), aa, ab;
    assert_int_equal(nk_udp_room_open(loop, &bind, &o, NULL, NULL, &ra), 0);
    assert_int_equal(nk_udp_room_open(loop, &bind, &o, NULL, NULL, &rb), 0);
    assert_int_equal(nk_udp_room_local_addr(ra, &aa), 0);
    assert_int_equal(nk_udp_room_local_addr(rb, &ab), 0);
    /* A forged datagram from B to A starts the reflection. */
    raw_send(raw, &ab, &aa, "ping", 4);
    /* Run 1.5 s: the traffic is bounded by the rate limits, then stops. */
    uint64_t t0 = nkt_now_ms();
    assert_int_equal(nkt_run_until(loop, never, NULL, 10000000, 1500, NULL),
                     -ETIMEDOUT);
    assert_true(nkt_now_ms() - t0 >= 1500);
    nk_udp_room_stats sa, sb;
    nk_udp_room_get_stats(ra, &sa);
    nk_udp_room_get_stats(rb, &sb);
    uint64_t in = sa.messages_in + sb.messages_in;
    /* burst + rate x elapsed per direction, with margin for scheduling. */
    uint64_t bound = 2 * (o.rate_burst + o.rate_limit * 2);
    print_message("D6 loop: %llu datagrams in 1.5 s (bound %llu); rate drops "
                  "%llu + %llu, expirations %llu + %llu\n",
                  (unsigned long long)in, (unsigned long long)bound,
                  (unsigned long long)sa.drops[NK_ROOM_DROP_RATE],
                  (unsigned long long)sb.drops[NK_ROOM_DROP_RATE],
                  (unsigned long long)sa.expirations,
                  (unsigned long long)sb.expirations);
    assert_true(sa.relayed + sb.relayed <= bound);
    assert_true(sa.drops[NK_ROOM_DROP_RATE] + sb.drops[NK_ROOM_DROP_RATE] >= 1);
    /* After the time-to-live the loop is gone: nothing moves any more. */
    assert_int_equal(sa.members + sb.members, 0);
    uint64_t before = in;
    for (int i = 0; i < 50; i++)
        nk_loop_run(loop, NK_RUN_NOWAIT);
    nk_udp_room_get_stats(ra, &sa);
    nk_udp_room_get_stats(rb, &sb);
    assert_int_equal(sa.messages_in + sb.messages_in, before);
    close(raw);
    nk_udp_room_close(ra);
    nk_udp_room_close(rb);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* ---- D6 with the defaults and with a wildcard bind ---- */

/* A non-loopback IPv4 address of this host, or false. */
static bool lan_address(nk_addr *out)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) != 0)
        return false;
    bool found = false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        const struct sockaddr_in *sin = (const void *)i->ifa_addr;
        if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
            continue;
        found = nk_addr_from_sockaddr(out, i->ifa_addr,
                                      sizeof(struct sockaddr_in)) == 0;
    }
    freeifaddrs(ifs);
    return found;
}

/* D6 "the room never adds itself", for a room bound to 0.0.0.0: one
 * datagram forged from the host's own LAN address and the room's port.
 * Today the room takes it for a stranger, adds itself and relays to
 * itself for ever (about 200 000 datagrams a second here, validated mode
 * included; only a rate limit slows it). */
static void test_d6_wildcard_room_never_adds_its_lan_address(void **state)
{
    (void)state;
    int raw;
    RAW_OR_SKIP(raw);
    nk_addr lan;
    if (!lan_address(&lan)) {
        close(raw);
        nkt_skip("no non-loopback IPv4 address here");
    }
    struct rx x;
    rx_open(&x, "0.0.0.0:0", NULL);
    assert_int_equal(nk_addr_set_port(&lan, nk_addr_port(&x.addr)), 0);
    raw_send(raw, &lan, &lan, "me", 2);
    rx_wait_in(&x, 1);
    assert_int_equal(nkt_run_until(x.loop, never, NULL, 10000000, 300, NULL),
                     -ETIMEDOUT);
    nk_udp_room_stats s = rx_stats(&x);
    print_message("D6 wildcard: %llu datagrams in 300 ms, %zu members, %llu "
                  "self drops\n", (unsigned long long)s.messages_in,
                  s.members, (unsigned long long)s.drops[NK_ROOM_DROP_SELF]);
    assert_int_equal(s.members, 0);
    assert_int_equal(s.drops[NK_ROOM_DROP_SELF], 1);
    assert_true(s.messages_in <= 10);
    close(raw);
    rx_close(&x);
}

/* D6 "no unbounded traffic" with the room's defaults: two open rooms that
 * one forged datagram made members of each other bounce it only until the
 * default per-member rate limit drops it (each relay refreshes the other's
 * time-to-live, so the time-to-live alone would never end it). The limit
 * ends a bounce that runs faster than it, as on one host; a slower path
 * needs a lower limit or echo_sender off. */
static void test_d6_default_rooms_loop_is_bounded(void **state)
{
    (void)state;
    if (nkt_under_valgrind()) {
        /* Valgrind slows the bounce below the default limit. */
        nkt_skip("under valgrind the bounce runs slower than the default "
                 "rate limit, which then never engages");
    }
    int raw;
    RAW_OR_SKIP(raw);
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_room *ra, *rb;
    nk_addr bind = addr_of("127.0.0.1:0"), aa, ab;
    assert_int_equal(nk_udp_room_open(loop, &bind, NULL, NULL, NULL, &ra), 0);
    assert_int_equal(nk_udp_room_open(loop, &bind, NULL, NULL, NULL, &rb), 0);
    assert_int_equal(nk_udp_room_local_addr(ra, &aa), 0);
    assert_int_equal(nk_udp_room_local_addr(rb, &ab), 0);
    raw_send(raw, &ab, &aa, "ping", 4);
    uint64_t started = nkt_now_ms();
    assert_int_equal(nkt_run_until(loop, never, NULL, 10000000, 1000, NULL),
                     -ETIMEDOUT);
    uint64_t elapsed_ms = nkt_now_ms() - started;
    nk_udp_room_stats sa, sb;
    nk_udp_room_get_stats(ra, &sa);
    nk_udp_room_get_stats(rb, &sb);
    uint64_t in = sa.messages_in + sb.messages_in;
    print_message("D6 defaults: %llu + %llu datagrams in %llu ms, rate "
                  "drops %llu + %llu\n",
                  (unsigned long long)sa.messages_in,
                  (unsigned long long)sb.messages_in,
                  (unsigned long long)elapsed_ms,
                  (unsigned long long)sa.drops[NK_ROOM_DROP_RATE],
                  (unsigned long long)sb.drops[NK_ROOM_DROP_RATE]);
    /* The default per-member limit ended the bounce: one drop, and no more
     * than each bucket's burst plus its refill got through. */
    nk_udp_room_opts d = NK_UDP_ROOM_OPTS_INIT;
    uint64_t burst = d.rate_burst ? d.rate_burst : d.rate_limit;
    assert_true(d.rate_limit > 0);
    assert_int_equal(sa.drops[NK_ROOM_DROP_RATE] + sb.drops[NK_ROOM_DROP_RATE],
                     1);
    assert_true(in <= 2 * (burst + d.rate_limit * (elapsed_ms + 999) / 1000) +
                          2);
    /* Quiet now: a further run moves no counter. */
    for (int i = 0; i < 10; i++)
        (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    nk_udp_room_get_stats(ra, &sa);
    nk_udp_room_get_stats(rb, &sb);
    assert_int_equal(sa.messages_in + sb.messages_in, in);
    close(raw);
    nk_udp_room_close(ra);
    nk_udp_room_close(rb);
    assert_int_equal(nk_loop_free(loop), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a1_oversized_datagrams_truncated_and_counted),
        cmocka_unit_test(test_a3_empty_datagram_delivered_once_with_source),
        cmocka_unit_test(test_b7_real_eagain_burst_dropped_counted_loop_serves),
        cmocka_unit_test(test_d3_limiter_flood_bounded_memory_drops_counted),
        cmocka_unit_test(test_d4_open_mode_attacker_dropped_after_ttl),
        cmocka_unit_test(test_d4_validated_mode_attacker_gets_at_most_3x),
        cmocka_unit_test(test_d5_spoofed_join_validated_within_budget),
        cmocka_unit_test(test_d5_spoofed_join_open_marked_unvalidated),
        cmocka_unit_test(test_d6_room_never_adds_itself),
        cmocka_unit_test(test_d6_two_rooms_in_a_loop_stopped_by_limits),
        cmocka_unit_test(test_d6_wildcard_room_never_adds_its_lan_address),
        cmocka_unit_test(test_d6_default_rooms_loop_is_bounded),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
