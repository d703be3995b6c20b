#include "nkt_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "netkit/error.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll one fd until @deadline (ms, monotonic): 1 ready, -ETIMEDOUT, -errno */
static int wait_until(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 1;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int nkt_tcp_connect(const nk_addr *a)
{
    if (a == NULL || a->len == 0)
        return -EINVAL;
    int fd = socket(a->u.sa.sa_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, &a->u.sa, a->len) < 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
        } else {
            rc = wait_until(fd, POLLOUT, now_ms() + NKT_PEER_TIMEOUT_MS);
            if (rc > 0) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                rc = -err;
            }
        }
    }
    if (rc == 0)
        rc = set_blocking(fd, true);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int nkt_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    long long deadline = now_ms() + NKT_PEER_TIMEOUT_MS;
    while (len > 0) {
        int rc = wait_until(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        deadline = now_ms() + NKT_PEER_TIMEOUT_MS; /* progress renews it */
    }
    return 0;
}

static int read_until(int fd, void *buf, size_t len, long long deadline)
{
    for (;;) {
        int rc = wait_until(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return (int)n;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
    }
}

int nkt_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    char *p = buf;
    long long deadline = now_ms() + timeout_ms;
    while (len > 0) {
        int n = read_until(fd, p, len, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            return NK_EOF;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int nkt_read_some(int fd, void *buf, size_t len, int timeout_ms)
{
    return read_until(fd, buf, len, now_ms() + timeout_ms);
}

int nkt_shutdown_wr(int fd)
{
    return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

void nkt_close_rst(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

int nkt_expect_eof(int fd, int timeout_ms)
{
    char c;
    int n = read_until(fd, &c, 1, now_ms() + timeout_ms);
    if (n == 0)
        return 0;
    return n > 0 ? -EPROTO : n;
}

int nkt_udp_socket(int family, const nk_addr *bind_addr)
{
    nk_addr any;
    if (bind_addr == NULL) {
        int rc = nk_addr_parse(family == AF_INET6 ? "[::1]:0" : "127.0.0.1:0",
                               &any);
        if (rc < 0)
            return -EINVAL;
        bind_addr = &any;
    }
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, &bind_addr->u.sa, bind_addr->len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int nkt_udp_sendto(int fd, const void *buf, size_t len, const nk_addr *to)
{
    for (;;) {
        ssize_t n = sendto(fd, buf, len, MSG_NOSIGNAL, &to->u.sa, to->len);
        if (n >= 0)
            return (int)n;
        if (errno != EINTR)
            return -errno;
    }
}

int nkt_udp_recv(int fd, void *buf, size_t len, int timeout_ms,
                 nk_addr *from)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int rc = wait_until(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t n = recvfrom(fd, buf, len, MSG_DONTWAIT,
                             (struct sockaddr *)&ss, &sl);
        if (n >= 0) {
            if (from != NULL &&
                nk_addr_from_sockaddr(from, (struct sockaddr *)&ss, sl) < 0)
                memset(from, 0, sizeof *from);
            return (int)n;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
    }
}

int nkt_sock_name(int fd, nk_addr *out)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    return nk_addr_from_sockaddr(out, (struct sockaddr *)&ss, sl) < 0
               ? -EAFNOSUPPORT
               : 0;
}
