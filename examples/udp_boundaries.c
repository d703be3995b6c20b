/* udp_boundaries: the seed's section 5 ("does UDP stick packets?") shown
 * on loopback, with numbers instead of claims.
 *
 * 1. Three UDP sends arrive as exactly three datagrams: each receive
 *    returns one whole datagram, boundaries kept.
 * 2. Three TCP sends of the same bytes can arrive as one read: TCP is a
 *    byte stream and keeps no boundaries (the "sticky packet" problem).
 * 3. A datagram larger than the receive buffer is truncated: the rest is
 *    lost. The seed only warns about it; libnetkit reports it, with the
 *    datagram's real size, instead of passing the piece on as the whole.
 *
 * It needs no server: it plays both sides itself and exits 0.
 *
 * usage: udp_boundaries [--help]
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "example.h"

static const char *usage_text = "udp_boundaries [--help]";
static const char *const words[3] = {"one", "two", "three"};

static int fail(const char *what, int rc)
{
    fprintf(stderr, "udp_boundaries: %s: %s\n", what, nk_strerror(rc));
    return 1;
}

static int udp_part(nk_udp_endpoint *rx, nk_udp_endpoint *tx,
                    const nk_addr *to)
{
    printf("UDP: 3 sends\n");
    for (int i = 0; i < 3; i++)
        nk_udp_endpoint_send_to(tx, words[i], strlen(words[i]), to);
    for (int i = 0; i < 3; i++) {
        char buf[1024];
        int n = nk_udp_endpoint_recv(rx, buf, sizeof buf, 1000, NULL, NULL);
        if (n < 0)
            return fail("udp receive", n);
        printf("  receive %d: %d bytes \"%.*s\"\n", i + 1, n, n, buf);
    }
    return 0;
}

/* Plain sockets here: the point is what the kernel does to a stream. */
static int tcp_part(void)
{
    printf("TCP: 3 sends\n");
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0 || cs < 0 || bind(ls, (struct sockaddr *)&a, alen) < 0 ||
        listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0 ||
        connect(cs, (struct sockaddr *)&a, alen) < 0)
        return fail("tcp setup", -errno);
    int ss = accept(ls, NULL, NULL);
    if (ss < 0)
        return fail("accept", -errno);
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(words[i]);
        if (send(cs, words[i], len, MSG_NOSIGNAL) != (ssize_t)len)
            return fail("tcp send", -errno);
        total += len;
    }
    /* Wait (at most a second) until all the bytes are waiting, then read
     * once: one read returns what three sends wrote. */
    for (int waited = 0; waited < 100; waited++) {
        int ready = 0;
        if (ioctl(ss, FIONREAD, &ready) == 0 && (size_t)ready >= total)
            break;
        poll(NULL, 0, 10);
    }
    char buf[1024];
    ssize_t n = recv(ss, buf, sizeof buf, 0);
    if (n < 0)
        return fail("tcp receive", -errno);
    printf("  read 1: %zd bytes \"%.*s\" (the three sends stuck together)\n",
           n, (int)n, buf);
    close(ss);
    close(cs);
    close(ls);
    return 0;
}

static int truncation_part(nk_udp_endpoint *rx, nk_udp_endpoint *tx,
                           const nk_addr *to)
{
    char big[100];
    memset(big, 'x', sizeof big);
    printf("UDP: a %zu-byte datagram into a 16-byte buffer\n", sizeof big);
    nk_udp_endpoint_send_to(tx, big, sizeof big, to);
    char buf[16];
    nk_udp_recv_info info;
    int rc = nk_udp_endpoint_recv(rx, buf, sizeof buf, 1000, NULL, &info);
    if (rc != NK_ETRUNC)
        return fail("expected a truncated datagram", rc);
    printf("  receive: %s: kept %zu of %zu bytes\n", nk_err_name(rc),
           info.len, info.size);
    return 0;
}

int main(int argc, char **argv)
{
    ex_setup_output();
    ex_parse_help_and_address(argc, argv, usage_text, NULL, NULL);

    nk_addr lo, to;
    nk_addr_parse("127.0.0.1:0", &lo);
    nk_udp_endpoint *rx, *tx;
    int rc = nk_udp_endpoint_bind(NULL, &lo, NULL, NULL, NULL, &rx);
    if (rc < 0)
        return fail("bind", rc);
    rc = nk_udp_endpoint_bind(NULL, &lo, NULL, NULL, NULL, &tx);
    if (rc < 0)
        return fail("bind", rc);
    nk_udp_endpoint_local_addr(rx, &to);

    int status = udp_part(rx, tx, &to) || tcp_part() ||
                 truncation_part(rx, tx, &to);
    nk_udp_endpoint_close(tx);
    nk_udp_endpoint_close(rx);
    return status;
}
