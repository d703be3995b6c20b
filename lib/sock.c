/* Socket helpers shared by the TCP and UDP layers. Every descriptor made here
 * is nonblocking and close-on-exec from birth (no window for a fork+exec to
 * inherit it), every send uses MSG_NOSIGNAL (no SIGPIPE whatever the
 * application's disposition), and EINTR is retried here so callers never
 * see it. */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "netkit/error.h"

static const struct nk__sock_opts default_opts = NK__SOCK_OPTS_INIT;

int nk__socket(int family, int type)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : -errno;
}

int nk__sock_set_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0
                                                                  : -errno;
}

int nk__sock_apply(int fd, int family, int type,
                   const struct nk__sock_opts *o)
{
    if (o == NULL)
        o = &default_opts;
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    int rc;

    if (o->reuseaddr &&
        (rc = nk__sock_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0)
        return rc;
#ifdef SO_REUSEPORT
    if (o->reuseport) {
        rc = nk__sock_set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        /* Optional: kernels without it answer ENOPROTOOPT; go on without. */
        if (rc < 0 && rc != -ENOPROTOOPT)
            return rc;
    }
#endif
    /* The system default for IPV6_V6ONLY differs between systems (and is a
     * sysctl on Linux), so a dual-stack or v6-only socket must say so. */
    if (family == AF_INET6 && o->v6only >= 0 &&
        (rc = nk__sock_set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY,
                               o->v6only ? 1 : 0)) < 0)
        return rc;
    if (type == SOCK_STREAM && o->nodelay &&
        (rc = nk__sock_set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1)) < 0)
        return rc;
    if (o->sndbuf > 0 &&
        (rc = nk__sock_set_int(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf)) < 0)
        return rc;
    if (o->rcvbuf > 0 &&
        (rc = nk__sock_set_int(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf)) < 0)
        return rc;
    return 0;
}

/* socket() + options, for the family of @addr. */
static int open_for(const nk_addr *addr, int type,
                    const struct nk__sock_opts *o)
{
    int family = nk_addr_family(addr);
    if (family == 0)
        return NK_EINVAL;
    int fd = nk__socket(family, type);
    if (fd < 0)
        return fd;
    int rc = nk__sock_apply(fd, family, type, o);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int nk__tcp_listen(const nk_addr *addr, int backlog,
                   const struct nk__sock_opts *o)
{
    int fd = open_for(addr, SOCK_STREAM, o);
    if (fd < 0)
        return fd;
    if (bind(fd, &addr->u.sa, addr->len) < 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int nk__tcp_connect(const nk_addr *addr, const struct nk__sock_opts *o,
                    int *fd_out)
{
    if (fd_out == NULL)
        return NK_EINVAL;
    int fd = open_for(addr, SOCK_STREAM, o);
    if (fd < 0)
        return fd;
    if (connect(fd, &addr->u.sa, addr->len) == 0) {
        *fd_out = fd;
        return 0;
    }
    /* On a nonblocking socket EINTR, like EINPROGRESS, leaves the connection
     * going on in the background; retrying connect() would give EALREADY. */
    if (errno == EINPROGRESS || errno == EINTR) {
        *fd_out = fd;
        return 1;
    }
    int e = errno;
    close(fd);
    return -e;
}

int nk__udp_open(const nk_addr *bind_addr, const struct nk__sock_opts *o)
{
    int fd = open_for(bind_addr, SOCK_DGRAM, o);
    if (fd < 0)
        return fd;
    if (bind(fd, &bind_addr->u.sa, bind_addr->len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int nk__sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

static int name_common(int fd, nk_addr *out, bool peer)
{
    if (out == NULL)
        return NK_EINVAL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                  : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (rc < 0)
        return -errno;
    return nk_addr_from_sockaddr(out, (struct sockaddr *)&ss, len);
}

int nk__sock_name(int fd, nk_addr *out)
{
    return name_common(fd, out, false);
}

int nk__sock_peer(int fd, nk_addr *out)
{
    return name_common(fd, out, true);
}

ssize_t nk__send(int fd, const void *buf, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t nk__recv(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int64_t nk__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int nk__wait_fd(int fd, short events, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? nk__now_ms() + timeout_ms : -1;
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - nk__now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        int n = poll(&p, 1, wait);
        if (n > 0)
            return (p.revents & POLLNVAL) ? -EBADF : 1;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
        /* EINTR: poll again with what is left of the original budget, so
         * a stream of signals cannot stretch the wait. */
    }
}

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int nk__acceptor_init(struct nk__acceptor *a)
{
    if (a == NULL)
        return NK_EINVAL;
    a->reserve_fd = open_reserve();
    return a->reserve_fd >= 0 ? 0 : -errno;
}

void nk__acceptor_free(struct nk__acceptor *a)
{
    if (a != NULL && a->reserve_fd >= 0) {
        close(a->reserve_fd);
        a->reserve_fd = -1;
    }
}

static int accept_retry(int listen_fd, struct sockaddr *sa, socklen_t *len)
{
    for (;;) {
        int fd = accept4(listen_fd, sa, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

int nk__accept(struct nk__acceptor *a, int listen_fd, nk_addr *peer,
               bool *shed)
{
    if (shed != NULL)
        *shed = false;
    /* A reserve lost earlier (reopen failed) comes back once fds are free. */
    if (a != NULL && a->reserve_fd < 0)
        a->reserve_fd = open_reserve();

    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept_retry(listen_fd, (struct sockaddr *)&ss, &len);
    if (fd >= 0) {
        if (peer != NULL &&
            nk_addr_from_sockaddr(peer, (struct sockaddr *)&ss, len) < 0)
            memset(peer, 0, sizeof *peer);
        return fd;
    }
    if ((fd != -EMFILE && fd != -ENFILE) || a == NULL || a->reserve_fd < 0)
        return fd;

    /* Out of descriptors. The pending connection stays in the kernel's
     * queue, so the listener stays readable and a level-triggered loop
     * would wake up and fail again forever, while the client waits with no
     * answer. Spend the one descriptor kept in reserve to take the
     * connection off the queue and close it at once: the client sees EOF
     * instead of hanging, and the loop makes progress (the idea of libuv's
     * uv__emfile_trick, one connection at a time here). Limits: it sheds one
     * connection per call; another thread may take the freed slot before
     * us (then the accept fails again and we report no shed); and with
     * ENFILE (system-wide) or a race the reserve may not reopen, in which
     * case *shed stays false on the next call and the caller must stop
     * accepting for a while instead of spinning. */
    int err = fd;
    close(a->reserve_fd);
    a->reserve_fd = -1;
    int victim = accept_retry(listen_fd, NULL, NULL);
    if (victim >= 0) {
        close(victim);
        if (shed != NULL)
            *shed = true;
    }
    a->reserve_fd = open_reserve();
    /* Linux reserves the descriptor before looking at the queue, so EMFILE
     * comes even with nothing pending: report that honestly. */
    if (victim == -EAGAIN)
        return -EAGAIN;
    if (victim < 0 && victim != -EMFILE && victim != -ENFILE)
        return victim;
    return err;
}
