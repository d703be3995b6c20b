/* The fault layer: scripted failures in front of the C library's socket and
 * I/O calls. This file is compiled without the renaming macros, so the
 * calls below reach the real C library (and the sanitizers' interceptors). */
#include "nkt_fault.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>

struct script {
    int err;               /* errno script */
    long err_left;         /* calls still to fail; -1 forever */
    unsigned long err_skip;
    int storm_err;         /* storm: every storm_period-th call fails */
    unsigned storm_period;
    unsigned long storm_count;
    size_t cap;            /* short transfers */
    long cap_left;
    unsigned mmsg_k;       /* partial sendmmsg / recvmmsg */
    long mmsg_left;
    nkt_fault_pred pred;
    void *pred_ctx;
    unsigned long calls;
    unsigned long injected;
    unsigned long cut;     /* transfers the cap made shorter */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct script scripts[NKT_SYS_COUNT];

static const char *const names[NKT_SYS_COUNT] = {
    [NKT_SEND] = "send",         [NKT_SENDTO] = "sendto",
    [NKT_SENDMSG] = "sendmsg",   [NKT_SENDMMSG] = "sendmmsg",
    [NKT_RECV] = "recv",         [NKT_RECVFROM] = "recvfrom",
    [NKT_RECVMSG] = "recvmsg",   [NKT_RECVMMSG] = "recvmmsg",
    [NKT_ACCEPT] = "accept",     [NKT_ACCEPT4] = "accept4",
    [NKT_WRITEV] = "writev",     [NKT_READV] = "readv",
    [NKT_READ] = "read",         [NKT_WRITE] = "write",
    [NKT_SOCKET] = "socket",     [NKT_CONNECT] = "connect",
    [NKT_POLL] = "poll",         [NKT_EPOLL_WAIT] = "epoll_wait",
    [NKT_SETSOCKOPT] = "setsockopt", [NKT_BIND] = "bind",
    [NKT_LISTEN] = "listen",     [NKT_SHUTDOWN] = "shutdown",
};

static bool valid(enum nkt_sys s)
{
    return (unsigned)s < NKT_SYS_COUNT;
}

void nkt_fault_reset(void)
{
    pthread_mutex_lock(&lock);
    memset(scripts, 0, sizeof scripts);
    pthread_mutex_unlock(&lock);
}

void nkt_fault_errno_after(enum nkt_sys s, unsigned long skip, int err,
                           int times)
{
    if (!valid(s))
        return;
    pthread_mutex_lock(&lock);
    scripts[s].err = err;
    scripts[s].err_left = times;
    scripts[s].err_skip = skip;
    pthread_mutex_unlock(&lock);
}

void nkt_fault_errno(enum nkt_sys s, int err, int times)
{
    nkt_fault_errno_after(s, 0, err, times);
}

void nkt_fault_storm(enum nkt_sys s, int err, unsigned period)
{
    if (!valid(s))
        return;
    pthread_mutex_lock(&lock);
    scripts[s].storm_err = err;
    scripts[s].storm_period = period;
    scripts[s].storm_count = 0;
    pthread_mutex_unlock(&lock);
}

void nkt_fault_eintr_storm(void)
{
    static const enum nkt_sys interruptible[] = {
        NKT_SEND,   NKT_SENDTO, NKT_SENDMSG, NKT_SENDMMSG, NKT_RECV,
        NKT_RECVFROM, NKT_RECVMSG, NKT_RECVMMSG, NKT_ACCEPT, NKT_ACCEPT4,
        NKT_WRITEV, NKT_READV,  NKT_CONNECT, NKT_POLL,     NKT_EPOLL_WAIT,
    };
    for (size_t i = 0; i < sizeof interruptible / sizeof interruptible[0]; i++)
        nkt_fault_storm(interruptible[i], EINTR, 2);
}

void nkt_fault_short(enum nkt_sys s, size_t max_bytes, int times)
{
    if (!valid(s))
        return;
    pthread_mutex_lock(&lock);
    scripts[s].cap = max_bytes > 0 ? max_bytes : 1;
    scripts[s].cap_left = times;
    pthread_mutex_unlock(&lock);
}

void nkt_fault_mmsg_partial(enum nkt_sys s, unsigned k, int times)
{
    if (!valid(s))
        return;
    pthread_mutex_lock(&lock);
    scripts[s].mmsg_k = k > 0 ? k : 1;
    scripts[s].mmsg_left = times;
    pthread_mutex_unlock(&lock);
}

void nkt_fault_filter(enum nkt_sys s, nkt_fault_pred pred, void *ctx)
{
    if (!valid(s))
        return;
    pthread_mutex_lock(&lock);
    scripts[s].pred = pred;
    scripts[s].pred_ctx = ctx;
    pthread_mutex_unlock(&lock);
}

int nkt_fault_peer_port_is(int fd, void *ctx)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    unsigned short port = 0;
    if (ss.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return port != 0 && port == *(const unsigned short *)ctx;
}

unsigned long nkt_fault_calls(enum nkt_sys s)
{
    if (!valid(s))
        return 0;
    pthread_mutex_lock(&lock);
    unsigned long n = scripts[s].calls;
    pthread_mutex_unlock(&lock);
    return n;
}

unsigned long nkt_fault_injected(enum nkt_sys s)
{
    if (!valid(s))
        return 0;
    pthread_mutex_lock(&lock);
    unsigned long n = scripts[s].injected;
    pthread_mutex_unlock(&lock);
    return n;
}

unsigned long nkt_fault_cut(enum nkt_sys s)
{
    if (!valid(s))
        return 0;
    pthread_mutex_lock(&lock);
    unsigned long n = scripts[s].cut;
    pthread_mutex_unlock(&lock);
    return n;
}

const char *nkt_fault_sys_name(enum nkt_sys s)
{
    return valid(s) ? names[s] : "?";
}

/* What one call should do. */
struct decision {
    int err;     /* fail with this errno (0: do not fail) */
    size_t cap;  /* SIZE_MAX: no cap */
    unsigned k;  /* UINT_MAX: no message limit */
};

static bool is_datagram(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return false; /* not a socket: a pipe or eventfd is a stream */
    return type == SOCK_DGRAM;
}

static bool take(long *left)
{
    if (*left == 0)
        return false;
    if (*left > 0)
        (*left)--;
    return true;
}

static struct decision decide(enum nkt_sys s, int fd)
{
    struct decision d = {.err = 0, .cap = SIZE_MAX, .k = UINT_MAX};
    pthread_mutex_lock(&lock);
    struct script *sc = &scripts[s];
    sc->calls++;
    if (sc->pred != NULL && fd >= 0 && !sc->pred(fd, sc->pred_ctx))
        goto out;
    if (sc->err_left != 0) {
        if (sc->err_skip > 0) {
            sc->err_skip--;
        } else if (take(&sc->err_left)) {
            d.err = sc->err;
            sc->injected++;
            goto out;
        }
    }
    if (sc->storm_period > 0 &&
        ++sc->storm_count % sc->storm_period == 0) {
        d.err = sc->storm_err;
        sc->injected++;
        goto out;
    }
    if (sc->cap_left != 0 && !is_datagram(fd) && take(&sc->cap_left)) {
        d.cap = sc->cap;
        sc->injected++;
    }
    if (sc->mmsg_left != 0 && take(&sc->mmsg_left)) {
        d.k = sc->mmsg_k;
        sc->injected++;
    }
out:
    pthread_mutex_unlock(&lock);
    return d;
}

/* A transfer of @s was cut short by its cap. */
static void note_cut(enum nkt_sys s)
{
    pthread_mutex_lock(&lock);
    scripts[s].cut++;
    pthread_mutex_unlock(&lock);
}

/* @len cut to @cap, counting the calls it actually shortens. */
static size_t capped(enum nkt_sys s, size_t len, size_t cap)
{
    if (len <= cap)
        return len;
    note_cut(s);
    return cap;
}

/* Copy @in, cut to @cap bytes in total, into @out (at most @max entries). */
static int cap_iov(const struct iovec *in, int cnt, size_t cap,
                   struct iovec *out, int max)
{
    int n = 0;
    for (int i = 0; i < cnt && n < max && cap > 0; i++) {
        if (in[i].iov_len == 0)
            continue;
        out[n] = in[i];
        if (out[n].iov_len > cap)
            out[n].iov_len = cap;
        cap -= out[n].iov_len;
        n++;
    }
    return n;
}

enum { MAX_IOV = 64 };

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

ssize_t nkt_sys_send(int fd, const void *buf, size_t len, int flags)
{
    struct decision d = decide(NKT_SEND, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return send(fd, buf, capped(NKT_SEND, len, d.cap), flags);
}

ssize_t nkt_sys_sendto(int fd, const void *buf, size_t len, int flags,
                       const struct sockaddr *to, socklen_t tolen)
{
    struct decision d = decide(NKT_SENDTO, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return sendto(fd, buf, capped(NKT_SENDTO, len, d.cap), flags, to, tolen);
}

ssize_t nkt_sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct decision d = decide(NKT_SENDMSG, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    if (d.cap == SIZE_MAX || msg == NULL ||
        iov_total(msg->msg_iov, (int)msg->msg_iovlen) <= d.cap)
        return sendmsg(fd, msg, flags);
    note_cut(NKT_SENDMSG);
    struct iovec iov[MAX_IOV];
    struct msghdr m = *msg;
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)cap_iov(msg->msg_iov, (int)msg->msg_iovlen, d.cap,
                                   iov, MAX_IOV);
    return sendmsg(fd, &m, flags);
}

int nkt_sys_sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
    struct decision d = decide(NKT_SENDMMSG, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return sendmmsg(fd, vec, vlen < d.k ? vlen : d.k, flags);
}

ssize_t nkt_sys_recv(int fd, void *buf, size_t len, int flags)
{
    struct decision d = decide(NKT_RECV, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return recv(fd, buf, capped(NKT_RECV, len, d.cap), flags);
}

ssize_t nkt_sys_recvfrom(int fd, void *buf, size_t len, int flags,
                         struct sockaddr *from, socklen_t *fromlen)
{
    struct decision d = decide(NKT_RECVFROM, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return recvfrom(fd, buf, capped(NKT_RECVFROM, len, d.cap), flags, from,
                    fromlen);
}

ssize_t nkt_sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct decision d = decide(NKT_RECVMSG, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    if (d.cap == SIZE_MAX || msg == NULL ||
        iov_total(msg->msg_iov, (int)msg->msg_iovlen) <= d.cap)
        return recvmsg(fd, msg, flags);
    note_cut(NKT_RECVMSG);
    struct iovec iov[MAX_IOV];
    struct iovec *orig = msg->msg_iov;
    size_t orig_len = msg->msg_iovlen;
    msg->msg_iov = iov;
    msg->msg_iovlen = (size_t)cap_iov(orig, (int)orig_len, d.cap, iov, MAX_IOV);
    ssize_t n = recvmsg(fd, msg, flags);
    int e = errno;
    msg->msg_iov = orig;
    msg->msg_iovlen = orig_len;
    errno = e;
    return n;
}

int nkt_sys_recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen,
                     int flags, struct timespec *tmo)
{
    struct decision d = decide(NKT_RECVMMSG, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return recvmmsg(fd, vec, vlen < d.k ? vlen : d.k, flags, tmo);
}

int nkt_sys_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct decision d = decide(NKT_ACCEPT, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return accept(fd, addr, len);
}

int nkt_sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    struct decision d = decide(NKT_ACCEPT4, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return accept4(fd, addr, len, flags);
}

ssize_t nkt_sys_writev(int fd, const struct iovec *iov, int cnt)
{
    struct decision d = decide(NKT_WRITEV, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    if (d.cap == SIZE_MAX || iov_total(iov, cnt) <= d.cap)
        return writev(fd, iov, cnt);
    note_cut(NKT_WRITEV);
    struct iovec cut[MAX_IOV];
    return writev(fd, cut, cap_iov(iov, cnt, d.cap, cut, MAX_IOV));
}

ssize_t nkt_sys_readv(int fd, const struct iovec *iov, int cnt)
{
    struct decision d = decide(NKT_READV, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    if (d.cap == SIZE_MAX || iov_total(iov, cnt) <= d.cap)
        return readv(fd, iov, cnt);
    note_cut(NKT_READV);
    struct iovec cut[MAX_IOV];
    return readv(fd, cut, cap_iov(iov, cnt, d.cap, cut, MAX_IOV));
}

ssize_t nkt_sys_read(int fd, void *buf, size_t len)
{
    struct decision d = decide(NKT_READ, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return read(fd, buf, capped(NKT_READ, len, d.cap));
}

ssize_t nkt_sys_write(int fd, const void *buf, size_t len)
{
    struct decision d = decide(NKT_WRITE, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return write(fd, buf, capped(NKT_WRITE, len, d.cap));
}

int nkt_sys_socket(int domain, int type, int protocol)
{
    struct decision d = decide(NKT_SOCKET, -1);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return socket(domain, type, protocol);
}

int nkt_sys_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct decision d = decide(NKT_CONNECT, fd);
    if (d.err == EINTR) {
        /* A signal during connect() leaves the connection going on in the
         * background; only then does the kernel report EINTR. */
        int rc = connect(fd, addr, len);
        if (rc < 0 && errno != EINPROGRESS)
            return rc;
        errno = EINTR;
        return -1;
    }
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return connect(fd, addr, len);
}

int nkt_sys_setsockopt(int fd, int level, int name, const void *val,
                       socklen_t len)
{
    struct decision d = decide(NKT_SETSOCKOPT, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return setsockopt(fd, level, name, val, len);
}

int nkt_sys_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct decision d = decide(NKT_BIND, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return bind(fd, addr, len);
}

int nkt_sys_listen(int fd, int backlog)
{
    struct decision d = decide(NKT_LISTEN, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return listen(fd, backlog);
}

int nkt_sys_shutdown(int fd, int how)
{
    struct decision d = decide(NKT_SHUTDOWN, fd);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return shutdown(fd, how);
}

int nkt_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    struct decision d = decide(NKT_POLL, -1);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return poll(fds, nfds, timeout);
}

#ifdef __linux__
int nkt_sys_epoll_wait(int epfd, struct epoll_event *events, int maxevents,
                       int timeout)
{
    struct decision d = decide(NKT_EPOLL_WAIT, -1);
    if (d.err) {
        errno = d.err;
        return -1;
    }
    return epoll_wait(epfd, events, maxevents, timeout);
}
#endif
