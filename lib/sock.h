/* Internal socket helpers shared by the TCP and UDP layers: socket creation
 * with the right flags, options, listen/connect/bind, send/recv with
 * MSG_NOSIGNAL and EINTR retried, and accept with the spare-descriptor
 * answer to EMFILE. Every function returns 0 (or a count / fd) or -errno. */
#ifndef NK_LIB_SOCK_H
#define NK_LIB_SOCK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "netkit/addr.h"

/* Options applied to a new socket. Start from NK__SOCK_OPTS_INIT. */
struct nk__sock_opts {
    bool reuseaddr; /* SO_REUSEADDR (listening / bound sockets) */
    bool reuseport; /* SO_REUSEPORT; ignored where the system lacks it */
    int v6only;     /* IPV6_V6ONLY: -1 system default, 0 off, 1 on */
    bool nodelay;   /* TCP_NODELAY (stream sockets only) */
    int sndbuf;     /* SO_SNDBUF, 0 = leave */
    int rcvbuf;     /* SO_RCVBUF, 0 = leave */
};

#define NK__SOCK_OPTS_INIT                                                    \
    {                                                                         \
        .reuseaddr = true, .reuseport = false, .v6only = -1,                  \
        .nodelay = false, .sndbuf = 0, .rcvbuf = 0                            \
    }

/* New socket, nonblocking and close-on-exec: fd or -errno. */
int nk__socket(int family, int type);

/* Apply @o (NULL = defaults) to @fd: 0 or -errno. */
int nk__sock_apply(int fd, int family, int type, const struct nk__sock_opts *o);

/* Socket + options + bind + listen: listening fd or -errno. */
int nk__tcp_listen(const nk_addr *addr, int backlog,
                   const struct nk__sock_opts *o);

/* Nonblocking connect: 0 connected, 1 in progress (wait for POLLOUT, then
 * nk__sock_error), or -errno (no fd is left open). *fd_out set on 0 and 1. */
int nk__tcp_connect(const nk_addr *addr, const struct nk__sock_opts *o,
                    int *fd_out);

/* Datagram socket bound to @bind_addr: fd or -errno. */
int nk__udp_open(const nk_addr *bind_addr, const struct nk__sock_opts *o);

/* setsockopt() of one int option: 0 or -errno. */
int nk__sock_set_int(int fd, int level, int name, int value);

/* Errors a datagram socket reports late, for an earlier datagram to some
 * destination (an ICMP unreachable): they say nothing about the call that
 * returned them. @e is a positive errno value. */
static inline bool nk__is_icmp_error(int e)
{
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH ||
           e == EHOSTDOWN;
}

/* Pending SO_ERROR as 0 or -errno (clears it). */
int nk__sock_error(int fd);

/* getsockname / getpeername into an nk_addr: 0 or -errno / NK_E*. */
int nk__sock_name(int fd, nk_addr *out);
int nk__sock_peer(int fd, nk_addr *out);

/* send with MSG_NOSIGNAL, EINTR retried: bytes or -errno (-EAGAIN). */
ssize_t nk__send(int fd, const void *buf, size_t len);

/* recv, EINTR retried: bytes, 0 at EOF, or -errno. */
ssize_t nk__recv(int fd, void *buf, size_t len);

/* Milliseconds on the monotonic clock, for the deadlines of blocking
 * calls. */
int64_t nk__now_ms(void);

/* poll() one fd, EINTR retried against a monotonic deadline: 1 ready,
 * -ETIMEDOUT, or -errno. timeout_ms < 0 waits forever. */
int nk__wait_fd(int fd, short events, int timeout_ms);

/* accept4 with the spare-descriptor trick for EMFILE/ENFILE. */
struct nk__acceptor {
    int reserve_fd; /* open /dev/null kept for shedding, or -1 */
};

/* Opens the reserve (/dev/null, O_CLOEXEC): 0 or -errno. */
int nk__acceptor_init(struct nk__acceptor *a);
void nk__acceptor_free(struct nk__acceptor *a);

/* One accept: fd >= 0 (nonblocking, cloexec, peer filled if non-NULL);
 * -EAGAIN nothing pending; -EMFILE/-ENFILE: out of fds. If *shed is true one
 * pending connection was accepted and closed at once (the peer sees EOF/RST,
 * it never hangs) and the caller may call again; if false no reserve was
 * available and the caller must pause accepting (timer) to avoid spinning.
 * -ECONNABORTED and similar: skip and call again. */
int nk__accept(struct nk__acceptor *a, int listen_fd, nk_addr *peer,
               bool *shed);

#endif
