/* udp_endpoint: echo over IPv4 and IPv6, truncation reported with the real
 * size (A1), oversized sends refused (A2), empty datagrams (A3), batches in
 * order both ways, asynchronous errors as events (not a dead or spinning
 * loop), blocking receive with a timeout, close from the callback, and a
 * pause from the callback that keeps the rest of the batch (F3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <net/if.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/udp.h"

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_loop.h"
#include "nkt_peer.h"

#define WAIT_MS 5000
#define MAX_ITERS 100000

/* What an endpoint's callback saw. */
struct seen {
    unsigned datagrams;
    unsigned errors;
    int last_error;
    nk_addr last_error_from;
    bool error_had_from;
    unsigned want;          /* done when datagrams + errors >= want */
    size_t len[16];
    size_t size[16];
    bool truncated[16];
    nk_addr from[16];
    unsigned char first[16];
    uint32_t next_seq;      /* for in-order checks */
    bool in_order;
    bool echo;              /* reply with the datagram */
    bool close_in_cb;
    unsigned pause_at;      /* pause receiving when datagrams reaches it */
    unsigned recv_at;       /* ... take one with nk_udp_endpoint_recv() */
    uint32_t recv_seq;      /* what that took */
};

static void on_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    struct seen *s = user;
    if (ev->error != 0) {
        s->errors++;
        s->last_error = ev->error;
        s->error_had_from = ev->from != NULL;
        if (ev->from)
            s->last_error_from = *ev->from;
        return;
    }
    unsigned k = s->datagrams < 16 ? s->datagrams : 15;
    s->len[k] = ev->len;
    s->size[k] = ev->size;
    s->truncated[k] = ev->truncated;
    s->from[k] = *ev->from;
    s->first[k] = ev->len > 0 ? ((const unsigned char *)ev->data)[0] : 0;
    if (ev->len == sizeof(uint32_t)) {
        uint32_t seq;
        memcpy(&seq, ev->data, sizeof seq);
        if (seq != s->next_seq)
            s->in_order = false;
        s->next_seq = seq + 1;
    }
    s->datagrams++;
    if (s->echo)
        nk_udp_endpoint_send_to(ep, ev->data, ev->len, ev->from);
    if (s->close_in_cb)
        nk_udp_endpoint_close(ep);
    if (s->pause_at != 0 && s->datagrams == s->pause_at)
        assert_int_equal(nk_udp_endpoint_set_receiving(ep, false), 0);
    if (s->recv_at != 0 && s->datagrams == s->recv_at) {
        assert_int_equal(nk_udp_endpoint_recv(ep, &s->recv_seq,
                                              sizeof s->recv_seq, 0, NULL,
                                              NULL),
                         4);
        s->next_seq = s->recv_seq + 1;
    }
}

static bool seen_enough(void *arg)
{
    struct seen *s = arg;
    return s->datagrams + s->errors >= s->want;
}

static nk_addr addr_of(const char *text)
{
    nk_addr a;
    assert_int_equal(nk_addr_parse(text, &a), 0);
    return a;
}

static nk_udp_endpoint *bind_on(nk_loop *loop, const char *text,
                                const nk_udp_endpoint_opts *o, struct seen *s,
                                nk_addr *local)
{
    nk_addr a = addr_of(text);
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(loop, &a, o, on_recv, s, &ep), 0);
    assert_int_equal(nk_udp_endpoint_local_addr(ep, local), 0);
    assert_true(nk_addr_port(local) > 0);
    return ep;
}

static void wait_for(nk_loop *loop, struct seen *s, unsigned want)
{
    s->want = want;
    assert_int_equal(nkt_run_until(loop, seen_enough, s, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
}

/* A server endpoint on the loop echoes; a connected blocking client sends
 * and reads the reply. */
static void echo_over(const char *bind_text)
{
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.echo = true, .in_order = true};
    nk_addr srv;
    nk_udp_endpoint *ep = bind_on(loop, bind_text, NULL, &s, &srv);

    nk_udp_endpoint *cl = NULL;
    assert_int_equal(nk_udp_endpoint_connect(NULL, &srv, NULL, NULL, NULL, &cl), 0);
    nk_addr cl_addr;
    assert_int_equal(nk_udp_endpoint_local_addr(cl, &cl_addr), 0);
    assert_int_equal(nk_udp_endpoint_send_to(cl, "hello", 5, NULL), 5);
    wait_for(loop, &s, 1);
    assert_int_equal(nk_addr_port(&s.from[0]), nk_addr_port(&cl_addr));
    assert_int_equal(nk_addr_family(&s.from[0]), nk_addr_family(&srv));

    char buf[64];
    nk_addr from;
    nk_udp_recv_info info;
    assert_int_equal(nk_udp_endpoint_recv(cl, buf, sizeof buf, WAIT_MS, &from,
                                          &info), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_true(nk_addr_equal(&from, &srv));
    assert_false(info.truncated);
    assert_int_equal(info.size, 5);

    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.datagrams_in, 1);
    assert_int_equal(st.datagrams_out, 1);
    assert_int_equal(st.bytes_out, 5);
    nk_udp_endpoint_close(cl);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

static void test_udp_echo_ipv4(void **state)
{
    (void)state;
    echo_over("127.0.0.1:0");
}

static void test_udp_echo_ipv6(void **state)
{
    (void)state;
    echo_over("[::1]:0");
}

/* A1: with a 1024-byte buffer, 1025 B, 8 KiB and 65507 B to 127.0.0.1 and
 * 65527 B to ::1 are each reported truncated with their real size; the
 * 10-byte datagram after them arrives intact. */
static void test_udp_truncation_reports_real_size(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.max_datagram = 1024;
    o.rcvbuf = 1 << 20;
    struct seen s = {.in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "[::]:0", &o, &s, &local);

    nk_addr to4 = addr_of("127.0.0.1:0"), to6 = addr_of("[::1]:0");
    nk_addr_set_port(&to4, nk_addr_port(&local));
    nk_addr_set_port(&to6, nk_addr_port(&local));
    int p4 = nkt_udp_socket(AF_INET, NULL);
    int p6 = nkt_udp_socket(AF_INET6, NULL);
    assert_true(p4 >= 0 && p6 >= 0);
    static unsigned char big[NK_UDP_MAX_IPV6];
    memset(big, 'a', sizeof big);
    const size_t sizes[] = {1025, 8192, NK_UDP_MAX_IPV4, NK_UDP_MAX_IPV6};
    for (size_t i = 0; i < 4; i++) {
        int fd = i < 3 ? p4 : p6;
        const nk_addr *to = i < 3 ? &to4 : &to6;
        big[0] = (unsigned char)('A' + i);
        wait_for(loop, &s, (unsigned)i); /* one at a time: keeps order */
        assert_int_equal(nkt_udp_sendto(fd, big, sizes[i], to), (int)sizes[i]);
    }
    assert_int_equal(nkt_udp_sendto(p4, "0123456789", 10, &to4), 10);
    wait_for(loop, &s, 5);
    for (size_t i = 0; i < 4; i++) {
        assert_true(s.truncated[i]);
        assert_int_equal(s.len[i], 1024);
        assert_int_equal(s.size[i], sizes[i]);
        assert_int_equal(s.first[i], 'A' + i);
    }
    assert_false(s.truncated[4]);
    assert_int_equal(s.len[4], 10);
    assert_int_equal(s.size[4], 10);
    assert_int_equal(nk_addr_family(&s.from[0]), AF_INET); /* normalized */
    assert_int_equal(nk_addr_family(&s.from[3]), AF_INET6);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.truncated, 4);
    assert_int_equal(st.datagrams_in, 5);
    close(p4);
    close(p6);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* The blocking receive reports truncation as NK_ETRUNC with the size. */
static void test_udp_blocking_recv_truncation_and_timeout(void **state)
{
    (void)state;
    nk_addr any = addr_of("127.0.0.1:0"), local;
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &any, NULL, NULL, NULL, &ep), 0);
    assert_int_equal(nk_udp_endpoint_local_addr(ep, &local), 0);
    int p = nkt_udp_socket(AF_INET, NULL);
    assert_true(p >= 0);
    char buf[8];
    nk_udp_recv_info info;
    nk_addr from;
    assert_int_equal(nk_udp_endpoint_recv(ep, buf, sizeof buf, 0, &from, &info),
                     -ETIMEDOUT);
    assert_int_equal(nkt_udp_sendto(p, "0123456789abcdef", 16, &local), 16);
    assert_int_equal(nk_udp_endpoint_recv(ep, buf, sizeof buf, WAIT_MS, &from,
                                          &info), NK_ETRUNC);
    assert_true(info.truncated);
    assert_int_equal(info.len, 8);
    assert_int_equal(info.size, 16);
    assert_memory_equal(buf, "01234567", 8);
    assert_int_equal(nkt_udp_sendto(p, "", 0, &local), 0);
    assert_int_equal(nk_udp_endpoint_recv(ep, buf, sizeof buf, WAIT_MS, &from,
                                          &info), 0);
    assert_false(info.truncated);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    assert_true(nk_addr_equal(&from, &pa));
    close(p);
    nk_udp_endpoint_close(ep);
}

/* A2: one byte over the family's maximum is refused synchronously with
 * -EMSGSIZE, and the endpoint stays usable. */
static void test_udp_oversized_send_is_emsgsize(void **state)
{
    (void)state;
    nk_addr any = addr_of("[::]:0");
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &any, NULL, NULL, NULL, &ep), 0);
    int p = nkt_udp_socket(AF_INET, NULL);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    int p6 = nkt_udp_socket(AF_INET6, NULL);
    nk_addr pa6;
    assert_int_equal(nkt_sock_name(p6, &pa6), 0);
    static unsigned char big[NK_UDP_MAX_IPV6 + 1];
    assert_int_equal(nk_udp_endpoint_send_to(ep, big, NK_UDP_MAX_IPV4 + 1, &pa),
                     -EMSGSIZE);
    assert_int_equal(nk_udp_endpoint_send_to(ep, big, NK_UDP_MAX_IPV6 + 1, &pa6),
                     -EMSGSIZE);
    assert_int_equal(nk_udp_endpoint_send_to(ep, big, NK_UDP_MAX_IPV4, &pa),
                     NK_UDP_MAX_IPV4);
    assert_int_equal(nk_udp_endpoint_send_to(ep, "ok", 2, &pa), 2);
    static unsigned char in[NK_UDP_MAX_IPV4];
    assert_int_equal(nkt_udp_recv(p, in, sizeof in, WAIT_MS, NULL),
                     NK_UDP_MAX_IPV4);
    assert_int_equal(nkt_udp_recv(p, in, sizeof in, WAIT_MS, NULL), 2);
    assert_memory_equal(in, "ok", 2);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.send_errors, 2);
    assert_int_equal(st.datagrams_out, 2);
    close(p);
    close(p6);
    nk_udp_endpoint_close(ep);
}

/* A3: an empty datagram is delivered as such with its source, then "x". */
static void test_udp_zero_length_and_max_size_delivered(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    static unsigned char big[NK_UDP_MAX_IPV4];
    memset(big, 'z', sizeof big);
    assert_int_equal(nkt_udp_sendto(p, "", 0, &local), 0);
    assert_int_equal(nkt_udp_sendto(p, "x", 1, &local), 1);
    assert_int_equal(nkt_udp_sendto(p, big, sizeof big, &local), (int)sizeof big);
    wait_for(loop, &s, 3);
    assert_int_equal(s.len[0], 0);
    assert_int_equal(s.size[0], 0);
    assert_false(s.truncated[0]);
    assert_true(nk_addr_equal(&s.from[0], &pa));
    assert_int_equal(s.len[1], 1);
    assert_int_equal(s.first[1], 'x');
    assert_int_equal(s.len[2], NK_UDP_MAX_IPV4);
    assert_false(s.truncated[2]);
    assert_int_equal(s.errors, 0);
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

#define BURST 400

/* Many datagrams arrive through few receive calls, each once, in order. */
static void test_udp_batched_receive_in_order(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.rcvbuf = 4 << 20;
    o.max_datagram = 2048;
    struct seen s = {.in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", &o, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    for (uint32_t i = 0; i < BURST; i++)
        assert_int_equal(nkt_udp_sendto(p, &i, sizeof i, &local), 4);
    wait_for(loop, &s, BURST);
    assert_int_equal(s.datagrams, BURST);
    assert_true(s.in_order);
    assert_int_equal(s.next_seq, BURST);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    /* 32 per call: at most one extra (empty) call per wakeup of 64. */
    assert_true(st.recv_calls <= BURST / 32 + BURST / 64 + 2);
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* A batch send delivers every datagram, in order, in few system calls. */
static void test_udp_batched_send_in_order(void **state)
{
    (void)state;
    nk_addr any = addr_of("127.0.0.1:0");
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &any, NULL, NULL, NULL, &ep), 0);
    int p = nkt_udp_socket(AF_INET, NULL);
    int big = 4 << 20;
    setsockopt(p, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    static uint32_t seq[BURST];
    static nk_udp_msg msgs[BURST];
    for (uint32_t i = 0; i < BURST; i++) {
        seq[i] = i;
        msgs[i] = (nk_udp_msg){.data = &seq[i], .len = 4, .to = &pa};
    }
    assert_int_equal(nk_udp_endpoint_send_batch(ep, msgs, BURST), BURST);
    for (uint32_t i = 0; i < BURST; i++) {
        assert_int_equal(msgs[i].result, 4);
        uint32_t got = UINT32_MAX;
        assert_int_equal(nkt_udp_recv(p, &got, sizeof got, WAIT_MS, NULL), 4);
        assert_int_equal(got, i);
    }
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.datagrams_out, BURST);
    assert_int_equal(st.send_calls, (BURST + 255) / 256);
    close(p);
    nk_udp_endpoint_close(ep);
}

/* A bad datagram in the middle of a batch gets its own result; the rest
 * are sent. */
static void test_udp_batch_reports_each_failure(void **state)
{
    (void)state;
    nk_addr any = addr_of("127.0.0.1:0");
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &any, NULL, NULL, NULL, &ep), 0);
    int p = nkt_udp_socket(AF_INET, NULL);
    nk_addr pa, v6 = addr_of("[::1]:9");
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    static unsigned char big[NK_UDP_MAX_IPV4 + 1];
    nk_udp_msg msgs[4] = {
        {.data = "a", .len = 1, .to = &pa},
        {.data = big, .len = sizeof big, .to = &pa},
        {.data = "c", .len = 1, .to = &v6},
        {.data = "d", .len = 1, .to = &pa},
    };
    assert_int_equal(nk_udp_endpoint_send_batch(ep, msgs, 4), 2);
    assert_int_equal(msgs[0].result, 1);
    assert_int_equal(msgs[1].result, -EMSGSIZE);
    assert_int_equal(msgs[2].result, -EAFNOSUPPORT);
    assert_int_equal(msgs[3].result, 1);
    char b[4];
    assert_int_equal(nkt_udp_recv(p, b, sizeof b, WAIT_MS, NULL), 1);
    assert_int_equal(b[0], 'a');
    assert_int_equal(nkt_udp_recv(p, b, sizeof b, WAIT_MS, NULL), 1);
    assert_int_equal(b[0], 'd');
    close(p);
    nk_udp_endpoint_close(ep);
}

/* A port with nothing behind it (bound once, then closed). */
static nk_addr dead_port(int family)
{
    int fd = nkt_udp_socket(family, NULL);
    assert_true(fd >= 0);
    nk_addr a;
    assert_int_equal(nkt_sock_name(fd, &a), 0);
    close(fd);
    return a;
}

/* ICMP port unreachable on a connected endpoint comes back as one
 * -ECONNREFUSED event; the loop neither dies nor spins. */
static void test_udp_connected_refused_is_error_event(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_addr dead = dead_port(AF_INET);
    struct seen s = {.in_order = true};
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_connect(loop, &dead, NULL, on_recv, &s, &ep), 0);
    /* The system may rate-limit ICMP errors machine-wide (tests run in
     * parallel): a few datagrams, each waited for, make this robust. */
    s.want = 1;
    uint64_t iters = 0;
    int rc = -ETIMEDOUT;
    for (int attempt = 0; attempt < 5 && rc == -ETIMEDOUT; attempt++) {
        assert_int_equal(nk_udp_endpoint_send_to(ep, "x", 1, NULL), 1);
        rc = nkt_run_until(loop, seen_enough, &s, MAX_ITERS, 1000, &iters);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.last_error, -ECONNREFUSED);
    assert_true(s.error_had_from);
    assert_true(nk_addr_equal(&s.last_error_from, &dead));
    assert_true(iters <= 3);
    /* Nothing more is pending: a bounded run sees no further event. */
    (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(s.errors, 1);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.async_errors, 1);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* Blocking receive on a connected endpoint returns -ECONNREFUSED. */
static void test_udp_blocking_recv_refused(void **state)
{
    (void)state;
    nk_addr dead = dead_port(AF_INET6);
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_connect(NULL, &dead, NULL, NULL, NULL, &ep), 0);
    char b[4];
    int rc = -ETIMEDOUT;
    for (int attempt = 0; attempt < 5 && rc == -ETIMEDOUT; attempt++) {
        assert_int_equal(nk_udp_endpoint_send_to(ep, "x", 1, NULL), 1);
        rc = nk_udp_endpoint_recv(ep, b, sizeof b, 1000, NULL, NULL);
    }
    assert_int_equal(rc, -ECONNREFUSED);
    nk_udp_endpoint_close(ep);
}

/* With recv_errors, an unconnected endpoint learns which destination
 * refused, and a send to another destination right after is not lost. */
static void test_udp_recv_errors_name_the_destination(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.recv_errors = true;
    struct seen s = {.in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "[::]:0", &o, &s, &local);
    nk_addr dead = dead_port(AF_INET);
    int p = nkt_udp_socket(AF_INET, NULL);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    nk_udp_msg msgs[3] = {
        {.data = "1", .len = 1, .to = &dead},
        {.data = "2", .len = 1, .to = &pa},
        {.data = "3", .len = 1, .to = &pa},
    };
    assert_int_equal(nk_udp_endpoint_send_batch(ep, msgs, 3), 3);
    char b[4];
    assert_int_equal(nkt_udp_recv(p, b, sizeof b, WAIT_MS, NULL), 1);
    assert_int_equal(b[0], '2');
    assert_int_equal(nkt_udp_recv(p, b, sizeof b, WAIT_MS, NULL), 1);
    assert_int_equal(b[0], '3');
    /* ICMP may be rate-limited machine-wide: resend to the dead port until
     * one refusal comes back (bounded). */
    s.want = 1;
    int rc = nkt_run_until(loop, seen_enough, &s, MAX_ITERS, 1000, NULL);
    for (int attempt = 0; attempt < 4 && rc == -ETIMEDOUT; attempt++) {
        assert_int_equal(nk_udp_endpoint_send_to(ep, "1", 1, &dead), 1);
        rc = nkt_run_until(loop, seen_enough, &s, MAX_ITERS, 1000, NULL);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(s.last_error, -ECONNREFUSED);
    assert_true(s.error_had_from);
    assert_true(nk_addr_equal(&s.last_error_from, &dead));
    /* And the endpoint still receives. */
    nk_addr to = addr_of("127.0.0.1:0");
    nk_addr_set_port(&to, nk_addr_port(&local));
    assert_int_equal(nkt_udp_sendto(p, "y", 1, &to), 1);
    wait_for(loop, &s, 2);
    assert_int_equal(s.datagrams, 1);
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* A dual-stack endpoint reports IPv4 senders as IPv4 and answers them. */
static void test_udp_dual_stack_normalizes_v4_senders(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.echo = true, .in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "[::]:0", NULL, &s, &local);
    nk_addr to = addr_of("127.0.0.1:0");
    nk_addr_set_port(&to, nk_addr_port(&local));
    int p = nkt_udp_socket(AF_INET, NULL);
    nk_addr pa;
    assert_int_equal(nkt_sock_name(p, &pa), 0);
    assert_int_equal(nkt_udp_sendto(p, "v4", 2, &to), 2);
    wait_for(loop, &s, 1);
    assert_int_equal(nk_addr_family(&s.from[0]), AF_INET);
    assert_true(nk_addr_equal(&s.from[0], &pa));
    char b[4];
    assert_int_equal(nkt_udp_recv(p, b, sizeof b, WAIT_MS, NULL), 2);
    assert_memory_equal(b, "v4", 2);
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* Closing the endpoint from its callback stops the rest of the batch. */
static void test_udp_close_from_callback(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.close_in_cb = true, .in_order = true};
    nk_addr local;
    (void)bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(nkt_udp_sendto(p, &i, 4, &local), 4);
    wait_for(loop, &s, 1);
    (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(s.datagrams, 1);
    close(p);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* Bad arguments: exact codes, nothing opened. */
static void test_udp_bad_arguments(void **state)
{
    (void)state;
    nk_udp_endpoint *ep = NULL;
    nk_addr a = addr_of("127.0.0.1:0"), empty;
    memset(&empty, 0, sizeof empty);
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    assert_int_equal(nk_udp_endpoint_bind(NULL, NULL, NULL, NULL, NULL, &ep), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, NULL, NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_bind(NULL, &empty, NULL, NULL, NULL, &ep), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_connect(NULL, NULL, NULL, NULL, NULL, &ep), NK_EINVAL);
    o.max_datagram = 0;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, &o, NULL, NULL, &ep), NK_EINVAL);
    o.max_datagram = 65537;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, &o, NULL, NULL, &ep), NK_EINVAL);
    o = (nk_udp_endpoint_opts)NK_UDP_ENDPOINT_OPTS_INIT;
    o.recv_batch = 0;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, &o, NULL, NULL, &ep), NK_EINVAL);
    assert_null(ep);
    assert_int_equal(nk_udp_endpoint_send_to(NULL, "x", 1, &a), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_recv(NULL, NULL, 0, 0, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_set_receiving(NULL, true), NK_EINVAL);
    nk_udp_endpoint_close(NULL);

    /* An unconnected endpoint has no default destination. */
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, NULL, NULL, NULL, &ep), 0);
    assert_int_equal(nk_udp_endpoint_send_to(ep, "x", 1, NULL), -EDESTADDRREQ);
    nk_addr peer;
    assert_int_equal(nk_udp_endpoint_peer_addr(ep, &peer), NK_EINVAL);
    /* A second endpoint on a bound port is refused, not shared. */
    nk_addr local;
    assert_int_equal(nk_udp_endpoint_local_addr(ep, &local), 0);
    nk_udp_endpoint *ep2 = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &local, NULL, NULL, NULL, &ep2),
                     -EADDRINUSE);
    nk_udp_endpoint_close(ep);
}

/* Pausing delivery keeps datagrams in the socket until resumed. */
static void test_udp_pause_and_resume(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    assert_int_equal(nk_udp_endpoint_set_receiving(ep, false), 0);
    int p = nkt_udp_socket(AF_INET, NULL);
    assert_int_equal(nkt_udp_sendto(p, "a", 1, &local), 1);
    /* The datagram is there, and a paused endpoint leaves it. */
    char b[2];
    (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(s.datagrams, 0);
    assert_int_equal(nk_udp_endpoint_set_receiving(ep, true), 0);
    wait_for(loop, &s, 1);
    assert_int_equal(s.first[0], 'a');
    (void)b;
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

static void send_seq(int fd, const nk_addr *to, uint32_t from, uint32_t to_seq)
{
    for (uint32_t i = from; i < to_seq; i++)
        assert_int_equal(nkt_udp_sendto(fd, &i, 4, to), 4);
}

/* F3: paused from inside the callback, mid-batch, the endpoint keeps the
 * rest of the batch it has read and delivers it first after resume, in
 * order, even when nothing new arrives to wake it; a blocking receive
 * meanwhile takes a kept one first; datagrams sent during the pause follow;
 * the counters equal what was delivered. */
static void test_udp_pause_in_callback_keeps_the_batch(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct seen s = {.in_order = true, .pause_at = 1};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    assert_true(p >= 0);

    send_seq(p, &local, 0, 10); /* one recvmmsg() batch of 10 */
    wait_for(loop, &s, 1);
    for (int k = 0; k < 5; k++)
        (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(s.datagrams, 1); /* paused: nothing more */
    assert_int_equal(nk_udp_endpoint_set_receiving(ep, true), 0);
    wait_for(loop, &s, 10); /* the kept nine, with no new datagram */

    s.pause_at = 12;
    send_seq(p, &local, 10, 20);
    wait_for(loop, &s, 12);
    send_seq(p, &local, 20, 25); /* while paused: they wait in the socket */
    for (int k = 0; k < 5; k++)
        (void)nk_loop_run(loop, NK_RUN_NOWAIT);
    assert_int_equal(s.datagrams, 12);
    uint32_t seq = 0;
    assert_int_equal(nk_udp_endpoint_recv(ep, &seq, sizeof seq, 0, NULL, NULL),
                     4);
    assert_int_equal(seq, 12);
    s.next_seq = 13;
    assert_int_equal(nk_udp_endpoint_set_receiving(ep, true), 0);
    wait_for(loop, &s, 24);

    assert_true(s.in_order);
    assert_int_equal(s.next_seq, 25);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.datagrams_in, 25);
    assert_int_equal(st.bytes_in, 25 * 4);
    close(p);
    nk_udp_endpoint_close(ep);
    nkt_loop_free_empty(loop);
}

/* A blocking receive from inside the callback, mid-batch, takes the next
 * datagram of the batch (not a newer one from the socket), and the
 * callbacks go on after it, in order. */
static void test_udp_recv_in_callback_takes_the_next_of_the_batch(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct seen s = {.in_order = true, .recv_at = 2};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    assert_true(p >= 0);
    send_seq(p, &local, 0, 10);
    wait_for(loop, &s, 9);
    assert_int_equal(s.recv_seq, 2);
    assert_true(s.in_order);
    assert_int_equal(s.next_seq, 10);
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    assert_int_equal(st.datagrams_in, 10);
    close(p);
    nk_udp_endpoint_close(ep);
    nkt_loop_free_empty(loop);
}

/* Receiving and answering allocates nothing: the buffers are built once. */
static void test_udp_echo_allocates_nothing(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    struct seen s = {.echo = true, .in_order = true};
    nk_addr local;
    nk_udp_endpoint *ep = bind_on(loop, "127.0.0.1:0", NULL, &s, &local);
    int p = nkt_udp_socket(AF_INET, NULL);
    assert_true(nkt_alloc_count() > 0); /* the counter sees the endpoint's */
    nkt_alloc_reset();
    for (uint32_t i = 0; i < 500; i++) {
        assert_int_equal(nkt_udp_sendto(p, &i, sizeof i, &local), 4);
        wait_for(loop, &s, i + 1);
        uint32_t back = UINT32_MAX;
        assert_int_equal(nkt_udp_recv(p, &back, sizeof back, WAIT_MS, NULL), 4);
        assert_int_equal(back, i);
    }
    assert_int_equal(nkt_alloc_count(), 0);
    close(p);
    nk_udp_endpoint_close(ep);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* Multicast membership: argument checks, then join and leave a group on
 * the loopback interface (skipped where the system has no multicast on
 * it). */
static void test_udp_multicast_join_and_leave(void **state)
{
    (void)state;
    nk_addr any4 = addr_of("0.0.0.0:0"), g4 = addr_of("239.255.42.99:0"),
            uni = addr_of("127.0.0.1:0"), g6 = addr_of("[ff02::4242]:0");
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &any4, NULL, NULL, NULL, &ep), 0);
    assert_int_equal(nk_udp_endpoint_multicast(ep, &uni, 0, true), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_multicast(ep, &g6, 0, true), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_multicast(NULL, &g4, 0, true), NK_EINVAL);
    unsigned lo = if_nametoindex("lo");
    int rc = nk_udp_endpoint_multicast(ep, &g4, lo, true);
    if (lo == 0 || rc == -ENODEV || rc == -EADDRNOTAVAIL) {
        nk_udp_endpoint_close(ep);
        nkt_skip("no multicast on the loopback interface (%s)",
                 nk_strerror(rc));
    }
    assert_int_equal(rc, 0);
    assert_int_equal(nk_udp_endpoint_multicast(ep, &g4, lo, true), -EADDRINUSE);
    assert_int_equal(nk_udp_endpoint_multicast(ep, &g4, lo, false), 0);
    assert_int_equal(nk_udp_endpoint_multicast(ep, &g4, lo, false), -EADDRNOTAVAIL);
    nk_udp_endpoint_close(ep);
}

int main(int argc, char **argv)
{
    /* Before any allocation: blocks from the system allocator must never
     * reach the counting one. */
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_echo_allocates_nothing),
        cmocka_unit_test(test_udp_echo_ipv4),
        cmocka_unit_test(test_udp_echo_ipv6),
        cmocka_unit_test(test_udp_truncation_reports_real_size),
        cmocka_unit_test(test_udp_blocking_recv_truncation_and_timeout),
        cmocka_unit_test(test_udp_oversized_send_is_emsgsize),
        cmocka_unit_test(test_udp_zero_length_and_max_size_delivered),
        cmocka_unit_test(test_udp_batched_receive_in_order),
        cmocka_unit_test(test_udp_batched_send_in_order),
        cmocka_unit_test(test_udp_batch_reports_each_failure),
        cmocka_unit_test(test_udp_connected_refused_is_error_event),
        cmocka_unit_test(test_udp_blocking_recv_refused),
        cmocka_unit_test(test_udp_recv_errors_name_the_destination),
        cmocka_unit_test(test_udp_dual_stack_normalizes_v4_senders),
        cmocka_unit_test(test_udp_close_from_callback),
        cmocka_unit_test(test_udp_bad_arguments),
        cmocka_unit_test(test_udp_pause_and_resume),
        cmocka_unit_test(test_udp_pause_in_callback_keeps_the_batch),
        cmocka_unit_test(test_udp_recv_in_callback_takes_the_next_of_the_batch),
        cmocka_unit_test(test_udp_multicast_join_and_leave),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
