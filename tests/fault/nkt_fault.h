/* System-call fault injection for the fault tests.
 *
 * The fault tests link netkit_faulty, a static build of lib/ in which every
 * socket and I/O call the library makes is renamed to nkt_sys_<call> (by the
 * forced include nkt_fault_rename.h). Those functions, defined here, pass
 * through to the C library unless the running test has scripted a fault:
 * "fail the next 5 sendmsg calls with ENOBUFS", "write at most 1 byte per
 * call", "sendmmsg handles only 2 messages". The test's own raw peers call
 * the real C library and are never affected.
 *
 * Every script is global to the process and guarded by one mutex, so the
 * loop thread and posting threads may both pass through it. A script stays
 * until nkt_fault_reset() (call it at the start and end of each test). */
#ifndef NKT_FAULT_H
#define NKT_FAULT_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

enum nkt_sys {
    NKT_SEND,
    NKT_SENDTO,
    NKT_SENDMSG,
    NKT_SENDMMSG,
    NKT_RECV,
    NKT_RECVFROM,
    NKT_RECVMSG,
    NKT_RECVMMSG,
    NKT_ACCEPT,
    NKT_ACCEPT4,
    NKT_WRITEV,
    NKT_READV,
    NKT_READ,
    NKT_WRITE,
    NKT_SOCKET,
    NKT_CONNECT,
    NKT_POLL,
    NKT_EPOLL_WAIT,
    NKT_SETSOCKOPT,
    NKT_BIND,
    NKT_LISTEN,
    NKT_SHUTDOWN,
    NKT_SYS_COUNT
};

/* Forget every script and zero every counter. */
void nkt_fault_reset(void);

/* The next @times calls of @s (-1: every call) fail with @err and transfer
 * nothing. EINTR on connect() is faithful to the kernel: the real connect
 * is started first, so the connection goes on in the background. */
void nkt_fault_errno(enum nkt_sys s, int err, int times);

/* As nkt_fault_errno(), after letting @skip calls through untouched. */
void nkt_fault_errno_after(enum nkt_sys s, unsigned long skip, int err,
                           int times);

/* Every @period-th call of @s fails with @err (period 2: every other call;
 * 0 stops the storm). Counted from the moment it is set. */
void nkt_fault_storm(enum nkt_sys s, int err, unsigned period);

/* EINTR on every other call of every call that can be interrupted
 * (socket transfers, readv/writev, accept, connect, poll, epoll_wait).
 * read() and write() are left out: the library uses them on its eventfd,
 * signalfd and wakeup pipe, which never block, so never see EINTR. */
void nkt_fault_eintr_storm(void);

/* Cap each of the next @times transfers of @s (-1: all) at @max_bytes
 * (at least 1: a cap of 0 would read as end of stream).
 * Applies to stream sockets and other non-datagram fds only: the kernel
 * never cuts a datagram short on send, so on datagram sockets it is
 * ignored. */
void nkt_fault_short(enum nkt_sys s, size_t max_bytes, int times);

/* The next @times sendmmsg/recvmmsg calls (-1: all) handle at most @k
 * messages (k >= 1), as the kernel does when a later message fails. */
void nkt_fault_mmsg_partial(enum nkt_sys s, unsigned k, int times);

/* Apply the scripts of @s only to fds for which @pred returns nonzero
 * (NULL: every fd). Calls on other fds pass through and are not counted as
 * injected. */
typedef int (*nkt_fault_pred)(int fd, void *ctx);
void nkt_fault_filter(enum nkt_sys s, nkt_fault_pred pred, void *ctx);

/* A predicate for nkt_fault_filter(): the fd's peer port equals
 * *(unsigned short *)ctx (in host order). Picks the server side of one
 * connection by the client's local port. */
int nkt_fault_peer_port_is(int fd, void *ctx);

/* Calls of @s seen since the last reset, and faults injected into them. */
unsigned long nkt_fault_calls(enum nkt_sys s);
unsigned long nkt_fault_injected(enum nkt_sys s);
/* Of those, transfers the cap of nkt_fault_short() really cut short: the
 * caller asked for more than the cap (a partial write or read). */
unsigned long nkt_fault_cut(enum nkt_sys s);

/* "sendmsg" and so on, for messages. */
const char *nkt_fault_sys_name(enum nkt_sys s);

/* The wrapped calls; netkit_faulty calls these instead of the C library. */
ssize_t nkt_sys_send(int fd, const void *buf, size_t len, int flags);
ssize_t nkt_sys_sendto(int fd, const void *buf, size_t len, int flags,
                       const struct sockaddr *to, socklen_t tolen);
ssize_t nkt_sys_sendmsg(int fd, const struct msghdr *msg, int flags);
int nkt_sys_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
                     int flags);
ssize_t nkt_sys_recv(int fd, void *buf, size_t len, int flags);
ssize_t nkt_sys_recvfrom(int fd, void *buf, size_t len, int flags,
                         struct sockaddr *from, socklen_t *fromlen);
ssize_t nkt_sys_recvmsg(int fd, struct msghdr *msg, int flags);
int nkt_sys_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
                     int flags, struct timespec *tmo);
int nkt_sys_accept(int fd, struct sockaddr *addr, socklen_t *len);
int nkt_sys_accept4(int fd, struct sockaddr *addr, socklen_t *len,
                    int flags);
ssize_t nkt_sys_writev(int fd, const struct iovec *iov, int cnt);
ssize_t nkt_sys_readv(int fd, const struct iovec *iov, int cnt);
ssize_t nkt_sys_read(int fd, void *buf, size_t len);
ssize_t nkt_sys_write(int fd, const void *buf, size_t len);
int nkt_sys_socket(int domain, int type, int protocol);
int nkt_sys_connect(int fd, const struct sockaddr *addr, socklen_t len);
int nkt_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout);
int nkt_sys_setsockopt(int fd, int level, int name, const void *val,
                       socklen_t len);
int nkt_sys_bind(int fd, const struct sockaddr *addr, socklen_t len);
int nkt_sys_listen(int fd, int backlog);
int nkt_sys_shutdown(int fd, int how);
#ifdef __linux__
int nkt_sys_epoll_wait(int epfd, struct epoll_event *events, int maxevents,
                       int timeout);
#endif

#endif
