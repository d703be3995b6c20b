/* C3 of the reliability matrix: a room relays 100 members' sequence-
 * numbered datagrams to all of them, and every delivery is either received
 * once or counted as dropped, by the room or by the receiving socket. */
#include <errno.h>
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

#include "matrix_fanout.h"
#include "netkit.h"
#include "nkt_loop.h"
#include "nkt_peer.h"

/* ---- C3: room fan-out accounting ---- */

struct c3 {
    nk_loop *loop;
    nk_udp_room *room;
    uint64_t want_in;
};

static bool c3_in(void *arg)
{
    struct c3 *c = arg;
    nk_udp_room_stats s;
    nk_udp_room_get_stats(c->room, &s);
    return s.messages_in >= c->want_in;
}

/* UdpRcvbufErrors from /proc/net/snmp (machine-wide), or -1. */
static long long udp_rcvbuf_errors(void)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return -1;
    char head[1024], vals[1024];
    long long v = -1;
    while (fgets(head, sizeof head, f)) {
        if (strncmp(head, "Udp:", 4) != 0 || !fgets(vals, sizeof vals, f))
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
        break;
    }
    fclose(f);
    return v;
}

/* Receive one datagram without waiting; *ovfl gets the socket's drop
 * counter (SO_RXQ_OVFL) as of that datagram. */
static int recv_ovfl(int fd, void *buf, size_t len, uint32_t *ovfl)
{
    struct iovec iov = {buf, len};
    union {
        char b[CMSG_SPACE(sizeof(uint32_t))];
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (r < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL)
            memcpy(ovfl, CMSG_DATA(cm), sizeof *ovfl);
    return (int)r;
}

/* C3. 100 members each send 100 sequence-numbered datagrams by default
 * (NK_TEST_C3_ROUNDS=10000 for the row's figure): 1 000 000 deliveries.
 * Every (sender, receiver) pair is checked for duplicates, and the losses
 * must equal exactly the room's own drop counters plus the receivers'
 * socket drop counters (SO_RXQ_OVFL). /proc/net/snmp's UdpRcvbufErrors is
 * machine-wide (other tests run concurrently), so it only bounds them. */
void c3_run(size_t rounds, int rcvbuf)
{
    enum { M = 100 };
    struct c3 c = {0};
    assert_int_equal(nk_loop_new(&c.loop), 0);
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.rcvbuf = 4 << 20;
    o.sndbuf = 4 << 20;
    nk_addr bind;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &bind), 0);
    assert_int_equal(nk_udp_room_open(c.loop, &bind, &o, NULL, NULL, &c.room),
                     0);
    nk_addr room;
    assert_int_equal(nk_udp_room_local_addr(c.room, &room), 0);
    static int p[M];
    /* Each socket's drop count, as last reported (SO_RXQ_OVFL comes only
     * with datagrams received after a drop, so start from zero). */
    static uint32_t drops_seen[M];
    memset(drops_seen, 0, sizeof drops_seen);
    int one = 1;
    for (int i = 0; i < M; i++) {
        p[i] = nkt_udp_socket(AF_INET, NULL);
        assert_true(p[i] >= 0);
        if (setsockopt(p[i], SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
                       sizeof rcvbuf))
            (void)setsockopt(p[i], SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                             sizeof rcvbuf);
        assert_int_equal(setsockopt(p[i], SOL_SOCKET, SO_RXQ_OVFL, &one,
                                    sizeof one), 0);
        assert_int_equal(nkt_udp_sendto(p[i], "", 0, &room), 0);
    }
    c.want_in = M;
    assert_int_equal(nkt_run_until(c.loop, c3_in, &c, 100000, 10000, NULL), 0);
    nk_udp_room_stats s0;
    nk_udp_room_get_stats(c.room, &s0);
    assert_int_equal(s0.members, M);
    /* got[r][s]: bitmap of rounds receiver r got from sender s. */
    size_t words = (rounds + 63) / 64;
    uint64_t *got = calloc((size_t)M * M * words, sizeof *got);
    assert_non_null(got);
    long long kernel_before = udp_rcvbuf_errors();
    uint64_t received = 0, dups = 0, strays = 0;
    for (size_t round = 0; round < rounds; round++) {
        for (int i = 0; i < M; i++) {
            uint32_t d[2] = {(uint32_t)i, (uint32_t)round};
            assert_int_equal(nkt_udp_sendto(p[i], d, sizeof d, &room),
                             (int)sizeof d);
        }
        c.want_in += M;
        assert_int_equal(nkt_run_until(c.loop, c3_in, &c, 1000000, 20000,
                                       NULL), 0);
        for (int r = 0; r < M; r++) {
            uint32_t d[2];
            int n;
            while ((n = recv_ovfl(p[r], d, sizeof d, &drops_seen[r])) >= 0) {
                if (n != (int)sizeof d || d[0] >= M || d[1] >= rounds) {
                    strays++;
                    continue;
                }
                uint64_t *w = &got[((size_t)r * M + d[0]) * words + d[1] / 64];
                uint64_t bit = UINT64_C(1) << (d[1] % 64);
                if (*w & bit)
                    dups++;
                *w |= bit;
                received++;
            }
        }
    }
    /* One marker per receiver, sent straight to it, reads its final drop
     * counter. */
    int marker = nkt_udp_socket(AF_INET, NULL);
    assert_true(marker >= 0);
    uint64_t socket_drops = 0;
    for (int r = 0; r < M; r++) {
        nk_addr to;
        assert_int_equal(nkt_sock_name(p[r], &to), 0);
        assert_int_equal(nkt_udp_sendto(marker, "m", 1, &to), 1);
        uint32_t ov = drops_seen[r];
        int n = -EAGAIN;
        for (int k = 0; k < 100000 && n != 1; k++) {
            uint32_t d[2];
            struct pollfd pf = {.fd = p[r], .events = POLLIN};
            assert_int_equal(poll(&pf, 1, 5000), 1);
            n = recv_ovfl(p[r], d, sizeof d, &ov);
            if (n == (int)sizeof d)
                received++; /* a late relay still counts */
        }
        assert_int_equal(n, 1);
        socket_drops += ov;
    }
    long long kernel = udp_rcvbuf_errors() - kernel_before;
    nk_udp_room_stats s;
    nk_udp_room_get_stats(c.room, &s);
    uint64_t expected = (uint64_t)M * M * rounds;
    uint64_t lost = expected - received;
    uint64_t room_lost = s.delivery_drops + s.send_errors;
    print_message("C3: %llu deliveries expected, %llu received, room drops "
                  "%llu, socket drops %llu, UdpRcvbufErrors delta %lld\n",
                  (unsigned long long)expected, (unsigned long long)received,
                  (unsigned long long)room_lost,
                  (unsigned long long)socket_drops, kernel);
    assert_int_equal(dups, 0);
    assert_int_equal(strays, 0);
    assert_int_equal(s.relayed, (uint64_t)M * rounds);
    assert_int_equal(s.deliveries_out + room_lost, expected);
    assert_int_equal(lost, room_lost + socket_drops);
    if (kernel_before >= 0)
        assert_true((long long)socket_drops <= kernel);
    free(got);
    close(marker);
    for (int i = 0; i < M; i++)
        close(p[i]);
    nk_udp_room_close(c.room);
    assert_int_equal(nk_loop_free(c.loop), 0);
}

