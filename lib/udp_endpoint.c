/* UDP endpoint: one datagram socket, receiving in batches on a loop or with
 * a blocking call, sending one datagram or many per system call.
 *
 * Nothing is allocated per datagram: the receive set (one buffer of
 * max_datagram bytes, one iovec and one address per batch slot) and the
 * send set are built once when the endpoint opens and reused. */
#include "netkit/udp.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>
#if defined(__linux__)
#include <linux/errqueue.h>
#endif

#include "alloc.h"
#include "compiler.h"
#include "loop_internal.h"
#include "netkit/error.h"
#include "sock.h"
#include "udp_batch.h"

/* Room for any address the endpoint sends to or receives from. */
union sa_any {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
};

struct nk_udp_endpoint {
    nk_loop *loop;
    int fd;
    int family; /* of the socket */
    bool connected;
    bool closing;
    bool watching; /* io initialised */
    bool receiving;
    bool errq_pending; /* the error queue may hold entries (recv_errors) */
    unsigned depth; /* nesting of our own dispatch: free when it ends */
    nk_addr peer;
    nk_udp_endpoint_opts opts;
    nk_udp_recv_cb cb;
    void *user;
    nk_io io;
    nk_timer backoff;     /* re-enables receiving after a hard error */
    uint64_t backoff_ms;  /* current delay; 0 when receiving works */

    /* receive set: recv_batch slots of max_datagram bytes each */
    unsigned char *rbuf;
    struct mmsghdr *rmsg;
    struct iovec *riov;
    union sa_any *rname;
    unsigned rdirty;      /* slots from this one on are ready for a receive */
    /* Slots [rnext, rfilled) hold datagrams read but not delivered yet: the
     * rest of a batch when the callback paused receiving. They go first. */
    unsigned rnext, rfilled;
    struct nk__task resume; /* delivers them after a resume */

    /* send set: send_batch slots */
    struct mmsghdr *smsg;
    struct iovec *siov;
    union sa_any *sname;

    nk_udp_endpoint_stats stats;
};

static const nk_udp_endpoint_opts default_opts = NK_UDP_ENDPOINT_OPTS_INIT;

static void free_endpoint(nk_udp_endpoint *ep)
{
    nk__free(ep->rbuf);
    nk__free(ep->rmsg);
    nk__free(ep->riov);
    nk__free(ep->rname);
    nk__free(ep->smsg);
    nk__free(ep->siov);
    nk__free(ep->sname);
    nk__free(ep);
}

static int check_opts(const nk_udp_endpoint_opts *o)
{
    if (o->max_datagram < 1 || o->max_datagram > 65536)
        return NK_EINVAL;
    if (o->recv_batch < 1 || o->recv_batch > 1024)
        return NK_EINVAL;
    if (o->send_batch < 1 || o->send_batch > 1024)
        return NK_EINVAL;
    if (o->max_per_wakeup < 1 || o->v6only < -1 || o->v6only > 1)
        return NK_EINVAL;
    if (o->sndbuf < 0 || o->rcvbuf < 0)
        return NK_EINVAL;
    return 0;
}

static int alloc_sets(nk_udp_endpoint *ep)
{
    const nk_udp_endpoint_opts *o = &ep->opts;
    size_t ns = o->send_batch;
    ep->smsg = nk__calloc(ns, sizeof *ep->smsg);
    ep->siov = nk__calloc(ns, sizeof *ep->siov);
    ep->sname = nk__calloc(ns, sizeof *ep->sname);
    if (!ep->smsg || !ep->siov || !ep->sname)
        return -ENOMEM;
    for (size_t i = 0; i < ns; i++) {
        ep->smsg[i].msg_hdr.msg_iov = &ep->siov[i];
        ep->smsg[i].msg_hdr.msg_iovlen = 1;
    }
    if (ep->loop == NULL || ep->cb == NULL)
        return 0; /* blocking use: the caller's buffer receives */

    size_t nr = o->recv_batch;
    /* One slot per datagram of the batch. Pages of the big buffer are only
     * touched as far as datagrams actually fill them. */
    ep->rbuf = nk__malloc(nr * o->max_datagram);
    ep->rmsg = nk__calloc(nr, sizeof *ep->rmsg);
    ep->riov = nk__calloc(nr, sizeof *ep->riov);
    ep->rname = nk__calloc(nr, sizeof *ep->rname);
    if (!ep->rbuf || !ep->rmsg || !ep->riov || !ep->rname)
        return -ENOMEM;
    for (size_t i = 0; i < nr; i++) {
        ep->riov[i].iov_base = ep->rbuf + i * o->max_datagram;
        ep->riov[i].iov_len = o->max_datagram;
        ep->rmsg[i].msg_hdr.msg_iov = &ep->riov[i];
        ep->rmsg[i].msg_hdr.msg_iovlen = 1;
        ep->rmsg[i].msg_hdr.msg_name = &ep->rname[i];
    }
    ep->rdirty = (unsigned)nr; /* msg_namelen is still 0 everywhere */
    return 0;
}

static void on_io(nk_io *io, unsigned events, void *user);
static void on_backoff(nk_timer *t, void *user);

static int open_common(nk_loop *loop, const nk_addr *bind_addr,
                       const nk_addr *peer, const nk_udp_endpoint_opts *opts,
                       nk_udp_recv_cb cb, void *user, nk_udp_endpoint **out)
{
    if (out == NULL || bind_addr == NULL || nk_addr_family(bind_addr) == 0)
        return NK_EINVAL;
    if (opts == NULL)
        opts = &default_opts;
    int rc = check_opts(opts);
    if (rc < 0)
        return rc;

    nk_udp_endpoint *ep = nk__calloc(1, sizeof *ep);
    if (ep == NULL)
        return -ENOMEM;
    ep->fd = -1;
    ep->loop = loop;
    ep->cb = cb;
    ep->user = user;
    ep->opts = *opts;
    ep->family = nk_addr_family(bind_addr);
    if ((rc = alloc_sets(ep)) < 0)
        goto fail;

    struct nk__sock_opts so = NK__SOCK_OPTS_INIT;
    so.reuseaddr = opts->reuseaddr;
    so.reuseport = opts->reuseport;
    so.v6only = opts->v6only;
    so.sndbuf = opts->sndbuf;
    so.rcvbuf = opts->rcvbuf;
    rc = nk__udp_open(bind_addr, &so);
    if (rc < 0)
        goto fail;
    ep->fd = rc;

    if (opts->broadcast &&
        (rc = nk__sock_set_int(ep->fd, SOL_SOCKET, SO_BROADCAST, 1)) < 0)
        goto fail;
#if defined(__linux__)
    if (opts->recv_errors) {
        rc = ep->family == AF_INET6
                 ? nk__sock_set_int(ep->fd, IPPROTO_IPV6, IPV6_RECVERR, 1)
                 : nk__sock_set_int(ep->fd, IPPROTO_IP, IP_RECVERR, 1);
        /* A dual-stack socket reports IPv4 errors through IP_RECVERR. */
        if (rc == 0 && ep->family == AF_INET6 && opts->v6only != 1)
            (void)nk__sock_set_int(ep->fd, IPPROTO_IP, IP_RECVERR, 1);
        if (rc < 0)
            goto fail;
    }
#endif
    if (peer != NULL) {
        if (connect(ep->fd, &peer->u.sa, peer->len) < 0) {
            rc = -errno;
            goto fail;
        }
        ep->peer = *peer;
        nk_addr_normalize(&ep->peer);
        ep->connected = true;
    }
    if (loop != NULL && cb != NULL) {
        nk__io_init(&ep->io, loop, ep->fd, on_io, ep);
        nk__timer_init(&ep->backoff, loop, on_backoff, ep);
        ep->watching = true;
        if ((rc = nk__io_set(&ep->io, NK_READ)) < 0)
            goto fail;
        ep->receiving = true;
    }
    *out = ep;
    return 0;

fail:
    if (ep->watching)
        nk__io_stop(&ep->io);
    if (ep->fd >= 0)
        close(ep->fd);
    free_endpoint(ep);
    return rc;
}

int nk_udp_endpoint_bind(nk_loop *loop, const nk_addr *bind_addr,
                         const nk_udp_endpoint_opts *opts, nk_udp_recv_cb cb,
                         void *user, nk_udp_endpoint **out)
{
    return open_common(loop, bind_addr, NULL, opts, cb, user, out);
}

int nk_udp_endpoint_connect(nk_loop *loop, const nk_addr *peer,
                            const nk_udp_endpoint_opts *opts,
                            nk_udp_recv_cb cb, void *user,
                            nk_udp_endpoint **out)
{
    if (peer == NULL)
        return NK_EINVAL;
    nk_addr any;
    int rc = nk_addr_parse(nk_addr_family(peer) == AF_INET6 ? "[::]:0"
                                                             : "0.0.0.0:0",
                           &any);
    if (rc < 0)
        return NK_EINVAL;
    return open_common(loop, &any, peer, opts, cb, user, out);
}

void nk_udp_endpoint_close(nk_udp_endpoint *ep)
{
    if (ep == NULL || ep->closing)
        return;
    ep->closing = true;
    if (ep->watching) {
        nk__io_stop(&ep->io);
        nk__timer_stop(&ep->backoff);
        nk__loop_cancel_task(ep->loop, &ep->resume);
    }
    if (ep->fd >= 0)
        close(ep->fd);
    ep->fd = -1;
    /* Closed from inside our own dispatch: on_io frees it on the way out. */
    if (ep->depth == 0)
        free_endpoint(ep);
}

/* The destination as the socket wants it: an IPv4 address becomes
 * IPv4-mapped for an IPv6 socket, a mapped one becomes plain for IPv4. */
static int dest_for(const nk_udp_endpoint *ep, const nk_addr *to,
                    union sa_any *out, socklen_t *len, size_t *limit)
{
    /* nk_addr_family(), inlined: on an IPv6 socket this runs once per
     * datagram sent (IPv4 destinations on an IPv4 socket are filled in
     * nk_udp_endpoint_send_batch() directly). */
    int fam = to->len ? to->u.sa.sa_family : 0;
    if (fam != AF_INET && fam != AF_INET6)
        return NK_EINVAL;
    memset(out, 0, sizeof *out);
    if (fam == AF_INET && ep->family == AF_INET6) {
        out->v6.sin6_family = AF_INET6;
        out->v6.sin6_port = to->u.v4.sin_port;
        out->v6.sin6_addr.s6_addr[10] = 0xff;
        out->v6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&out->v6.sin6_addr.s6_addr[12], &to->u.v4.sin_addr, 4);
        *len = sizeof out->v6;
        *limit = NK_UDP_MAX_IPV4;
    } else if (fam == AF_INET6 && ep->family == AF_INET) {
        if (!IN6_IS_ADDR_V4MAPPED(&to->u.v6.sin6_addr))
            return -EAFNOSUPPORT;
        out->v4.sin_family = AF_INET;
        out->v4.sin_port = to->u.v6.sin6_port;
        memcpy(&out->v4.sin_addr, &to->u.v6.sin6_addr.s6_addr[12], 4);
        *len = sizeof out->v4;
        *limit = NK_UDP_MAX_IPV4;
    } else {
        memcpy(out, &to->u, to->len);
        *len = to->len;
        *limit = fam == AF_INET || IN6_IS_ADDR_V4MAPPED(&to->u.v6.sin6_addr)
                     ? NK_UDP_MAX_IPV4
                     : NK_UDP_MAX_IPV6;
    }
    return 0;
}

/* Fill send slot @i for @m: 0 or a negative code for that datagram. Out of
 * line: the batch send's loop fills IPv4 slots itself, and inlining this
 * there costs that loop 3 instructions per delivery (callgrind). */
static NK__NOINLINE int fill_slot(nk_udp_endpoint *ep, unsigned i, const nk_udp_msg *m)
{
    struct msghdr *h = &ep->smsg[i].msg_hdr;
    size_t limit = NK_UDP_MAX_IPV6;
    if (m->data == NULL && m->len > 0)
        return NK_EINVAL;
    if (m->to != NULL) {
        socklen_t len = 0;
        int rc = dest_for(ep, m->to, &ep->sname[i], &len, &limit);
        if (rc < 0)
            return rc;
        h->msg_name = &ep->sname[i];
        h->msg_namelen = len;
    } else {
        if (!ep->connected)
            return -EDESTADDRREQ;
        h->msg_name = NULL;
        h->msg_namelen = 0;
        if (nk_addr_family(&ep->peer) == AF_INET)
            limit = NK_UDP_MAX_IPV4;
    }
    /* Say so now rather than leave it to the system: the size limit is the
     * family's, the same whatever the socket buffers. */
    if (m->len > limit)
        return -EMSGSIZE;
    ep->siov[i].iov_base = (void *)(uintptr_t)m->data;
    ep->siov[i].iov_len = m->len;
    /* msg_control, msg_controllen and msg_flags stay 0 from the
     * allocation: sendmmsg() writes only msg_len. */
    return 0;
}

static void count_send_error(nk_udp_endpoint *ep, int code)
{
    if (code == -EAGAIN || code == -EWOULDBLOCK || code == -ENOBUFS)
        ep->stats.send_drops++;
    else
        ep->stats.send_errors++;
}

int nk_udp_endpoint_send_batch(nk_udp_endpoint *ep, nk_udp_msg *msgs,
                               size_t count)
{
    /* The count sent is returned as an int. */
    if (ep == NULL || (msgs == NULL && count > 0) || count > INT_MAX)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    size_t i = 0, sent = 0, retry_at = SIZE_MAX;
    unsigned retries = 0;
    struct mmsghdr *smsg = ep->smsg;
    struct iovec *siov = ep->siov;
    union sa_any *sname = ep->sname;
    bool v4sock = ep->family == AF_INET;
    while (i < count) {
        /* Fill slots from i on, stopping before a datagram that cannot be
         * sent at all (it gets its result, and the batch goes on). */
        unsigned n = 0;
        size_t room = ep->opts.send_batch;
        if (room > count - i)
            room = count - i;
        while (n < room) {
            const nk_udp_msg *m = &msgs[i + n];
            const nk_addr *to = m->to;
            if (v4sock && to != NULL && to->len != 0
                && to->u.sa.sa_family == AF_INET
                && m->len <= NK_UDP_MAX_IPV4
                && (m->data != NULL || m->len == 0)) {
                /* What fill_slot() does for the common case, an IPv4
                 * destination on an IPv4 socket, with the slot arrays in
                 * locals: this runs once per datagram of a fan-out.
                 * Measured (bench/cg_one.sh, callgrind): through
                 * fill_slot() instead, a 64-member room costs 142
                 * instructions per delivery instead of 97, and the UDP
                 * echo 287 per datagram instead of 243. */
                sname[n].v4 = to->u.v4;
                smsg[n].msg_hdr.msg_name = &sname[n];
                smsg[n].msg_hdr.msg_namelen = sizeof sname[n].v4;
                siov[n].iov_base = (void *)(uintptr_t)m->data;
                siov[n].iov_len = m->len;
                n++;
                continue;
            }
            int rc = fill_slot(ep, n, m);
            if (rc < 0) {
                if (n == 0) {
                    msgs[i].result = rc;
                    count_send_error(ep, rc);
                    i++;
                    if (room > count - i)
                        room = count - i;
                    continue;
                }
                break;
            }
            n++;
        }
        if (n == 0)
            continue;
        ep->stats.send_calls++;
        int r = nk__udp_send_batch(ep->fd, smsg, n);
        if (r < 0) {
            /* The first datagram was not sent. A late ICMP error left on
             * the socket by another destination fails whatever send comes
             * next, and clears as it does: try that datagram again, a
             * bounded number of times. */
            if (nk__is_icmp_error(-r) && !ep->connected) {
                ep->errq_pending = true;
                if (retry_at != i) {
                    retry_at = i;
                    retries = 0;
                }
                if (retries++ < 3)
                    continue;
            }
            msgs[i].result = r;
            count_send_error(ep, r);
            i++;
            continue;
        }
        /* Partial: the system took r datagrams; carry on from index i+r. */
        uint64_t bytes = 0;
        for (int j = 0; j < r; j++) {
            msgs[i + (size_t)j].result = (int)smsg[j].msg_len;
            bytes += smsg[j].msg_len;
        }
        ep->stats.datagrams_out += (uint64_t)r;
        ep->stats.bytes_out += bytes;
        i += (size_t)r;
        sent += (size_t)r;
    }
    return (int)sent;
}

int nk_udp_endpoint_send_to(nk_udp_endpoint *ep, const void *data, size_t len,
                            const nk_addr *to)
{
    if (ep == NULL || (data == NULL && len > 0))
        return NK_EINVAL;
    nk_udp_msg m = {.data = data, .len = len, .to = to, .result = 0};
    int rc = nk_udp_endpoint_send_batch(ep, &m, 1);
    if (rc < 0)
        return rc;
    return m.result;
}

#if defined(__linux__)
/* Read the socket's error queue (IP_RECVERR): each entry names the
 * destination of the datagram that failed. Bounded per call. */
static int drain_errors(nk_udp_endpoint *ep, bool deliver)
{
    int delivered = 0;
    ep->errq_pending = false;
    for (int k = 0; k < 64 && !ep->closing; k++) {
        if (deliver && !ep->receiving) {
            ep->errq_pending = true; /* paused: the rest waits */
            break;
        }
        if (k == 63)
            ep->errq_pending = true; /* more may be left: next wakeup */
        union sa_any name;
        unsigned char payload[1];
        union {
            struct cmsghdr align;
            unsigned char buf[512];
        } ctrl;
        struct iovec iov = {payload, sizeof payload};
        struct msghdr h = {.msg_name = &name,
                           .msg_namelen = sizeof name,
                           .msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = ctrl.buf,
                           .msg_controllen = sizeof ctrl.buf};
        ssize_t r = recvmsg(ep->fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        int err = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&h); c; c = CMSG_NXTHDR(&h, c)) {
            if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                (c->cmsg_level == IPPROTO_IPV6 &&
                 c->cmsg_type == IPV6_RECVERR)) {
                struct sock_extended_err ee;
                memcpy(&ee, CMSG_DATA(c), sizeof ee);
                err = -(int)ee.ee_errno;
            }
        }
        if (err == 0)
            continue;
        ep->stats.async_errors++;
        if (!deliver)
            continue;
        nk_addr from;
        bool have = nk_addr_from_sockaddr(&from, &name.sa, h.msg_namelen) == 0;
        if (have)
            nk_addr_normalize(&from);
        nk_udp_recv_event ev = {.error = err, .from = have ? &from : NULL};
        ep->cb(ep, &ev, ep->user);
        delivered++;
    }
    return delivered;
}
#else
static int drain_errors(nk_udp_endpoint *ep, bool deliver)
{
    (void)ep;
    (void)deliver;
    return 0;
}
#endif

static void deliver_error(nk_udp_endpoint *ep, int err)
{
    nk_udp_recv_event ev = {.error = err,
                            .from = ep->connected ? &ep->peer : NULL};
    ep->cb(ep, &ev, ep->user);
}

static void count_received(nk_udp_endpoint *ep, size_t stored, bool truncated)
{
    ep->stats.datagrams_in++;
    ep->stats.bytes_in += stored;
    if (truncated)
        ep->stats.truncated++;
}

/* The source of the datagram in receive slot @i; false for one that
 * cannot come from a UDP socket (not IPv4 or IPv6). */
static inline bool slot_source(const nk_udp_endpoint *ep, unsigned i,
                               nk_addr *from)
{
    const union sa_any *name = &ep->rname[i];
    socklen_t namelen = ep->rmsg[i].msg_hdr.msg_namelen;
    if (name->sa.sa_family == AF_INET && namelen >= sizeof name->v4) {
        /* An IPv4 socket's source, the common case: what
         * nk_addr_from_sockaddr() makes of it, built in place. Measured
         * (bench/cg_one.sh, callgrind): through nk_addr_from_sockaddr()
         * and nk_addr_normalize() instead, the UDP echo costs 287 user
         * instructions per datagram instead of 245. */
        memset(from, 0, sizeof *from);
        from->u.v4 = name->v4;
        from->len = sizeof name->v4;
        return true;
    }
    if (nk_addr_from_sockaddr(from, &name->sa, namelen) < 0)
        return false;
    nk_addr_normalize(from);
    return true;
}

static void deliver_datagram(nk_udp_endpoint *ep, unsigned i)
{
    const struct mmsghdr *m = &ep->rmsg[i];
    size_t size = m->msg_len; /* real size: received with MSG_TRUNC */
    size_t len = size < ep->opts.max_datagram ? size : ep->opts.max_datagram;
    bool truncated = (m->msg_hdr.msg_flags & MSG_TRUNC) || size > len;
    nk_addr from;
    if (!slot_source(ep, i, &from))
        return;
    count_received(ep, len, truncated);
    nk_udp_recv_event ev = {.error = 0,
                            .from = &from,
                            .data = ep->riov[i].iov_base,
                            .len = len,
                            .size = size,
                            .truncated = truncated};
    ep->cb(ep, &ev, ep->user);
}

/* Deliver the datagrams read and not yet delivered, in order, until the
 * callback closes the endpoint (the rest is then discarded with it) or
 * pauses it (the rest is kept for the resume). */
static void deliver_read(nk_udp_endpoint *ep)
{
    /* ep->rnext, not a local: nk_udp_endpoint_recv() called from the
     * callback takes kept datagrams too. */
    while (ep->rnext < ep->rfilled && !ep->closing && ep->receiving)
        deliver_datagram(ep, ep->rnext++);
}

/* For nk_udp_endpoint_recv(): the first datagram kept from a paused batch,
 * which comes before anything still in the socket. False if none is kept;
 * else *rc is what nk_udp_endpoint_recv() returns. */
static bool recv_kept(nk_udp_endpoint *ep, void *buf, size_t len,
                      nk_addr *from, nk_udp_recv_info *info, int *rc)
{
    while (ep->rnext < ep->rfilled) {
        unsigned i = ep->rnext++;
        nk_addr src;
        if (!slot_source(ep, i, &src))
            continue;
        const struct mmsghdr *m = &ep->rmsg[i];
        size_t size = m->msg_len;
        size_t stored = size < ep->opts.max_datagram ? size
                                                     : ep->opts.max_datagram;
        size_t got = stored < len ? stored : len;
        bool truncated = (m->msg_hdr.msg_flags & MSG_TRUNC) || size > got;
        if (got > 0)
            memcpy(buf, ep->riov[i].iov_base, got);
        count_received(ep, got, truncated);
        if (from != NULL)
            *from = src;
        if (info != NULL)
            *info = (nk_udp_recv_info){
                .len = got, .size = size, .truncated = truncated};
        *rc = truncated ? NK_ETRUNC : (int)got;
        return true;
    }
    return false;
}

static void receive_some(nk_udp_endpoint *ep)
{
    unsigned budget = ep->opts.max_per_wakeup;
    bool got_any = false;
    if (!ep->receiving)
        return; /* paused: datagrams and errors wait */
    if (ep->rnext < ep->rfilled) {
        unsigned kept = ep->rfilled - ep->rnext;
        deliver_read(ep);
        budget = kept < budget ? budget - kept : 0;
    }
    /* The error queue is read when something says it has entries: a send
     * or receive that returned a late ICMP error, or a wakeup that brought
     * no datagram (the queue makes the socket report an error condition
     * until it is read). Not on every wakeup: that would cost a system
     * call per batch on a busy socket. */
    if (ep->opts.recv_errors && ep->errq_pending)
        drain_errors(ep, true);
    while (budget > 0 && !ep->closing && ep->receiving) {
        unsigned n = budget < ep->opts.recv_batch ? budget
                                                   : ep->opts.recv_batch;
        /* The system writes only the slots it fills: reset those of the
         * last call, not the whole batch, so a batch of 64 slots that
         * brings 3 datagrams costs 3 resets. */
        unsigned k = ep->rdirty < n ? ep->rdirty : n;
        for (unsigned i = 0; i < k; i++) {
            ep->rmsg[i].msg_hdr.msg_namelen = sizeof ep->rname[i];
            ep->rmsg[i].msg_hdr.msg_flags = 0;
            ep->rmsg[i].msg_len = 0;
        }
        if (ep->rdirty <= n)
            ep->rdirty = 0;
        ep->stats.recv_calls++;
        /* MSG_TRUNC: msg_len is the datagram's real size, even when it did
         * not fit; the returned msg_flags MSG_TRUNC says it did not. */
        int r = nk__udp_recv_batch(ep->fd, ep->rmsg, n, MSG_TRUNC);
        if (r > 0 && (unsigned)r > ep->rdirty)
            ep->rdirty = (unsigned)r;
        else if (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK)
            ep->rdirty = n; /* a failed call may have written its first */
        if (r == -EAGAIN || r == -EWOULDBLOCK) {
            if (!got_any && ep->opts.recv_errors && !ep->closing)
                drain_errors(ep, true);
            return;
        }
        if (r < 0) {
            budget--;
            if (nk__is_icmp_error(-r)) {
                /* With the error queue on, the entry there names the
                 * destination; it was (or is now) delivered from there. */
                if (ep->opts.recv_errors) {
                    drain_errors(ep, true);
                } else {
                    ep->stats.async_errors++;
                    deliver_error(ep, r);
                }
                continue;
            }
            deliver_error(ep, r);
            /* -ENOMEM and the like: the datagram stays queued and the
             * socket stays readable, so retrying at once would spin. Stop
             * watching and try again later, waiting longer each time. */
            if (!ep->closing) {
                ep->backoff_ms = ep->backoff_ms ? ep->backoff_ms * 2 : 10;
                if (ep->backoff_ms > 1000)
                    ep->backoff_ms = 1000;
                (void)nk__io_set(&ep->io, 0);
                nk__timer_start(&ep->backoff, ep->backoff_ms, 0);
            }
            return;
        }
        got_any = true;
        ep->backoff_ms = 0;
        ep->rnext = 0;
        ep->rfilled = (unsigned)r;
        deliver_read(ep);
        if ((unsigned)r < n)
            return; /* the socket is drained */
        budget -= (unsigned)r;
    }
}

static void on_io(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    nk_udp_endpoint *ep = user;
    ep->depth++;
    receive_some(ep);
    ep->depth--;
    if (ep->closing && ep->depth == 0)
        free_endpoint(ep);
}

/* Resumed with datagrams kept from a pause: deliver them now, since the
 * socket may have nothing new to wake the endpoint. */
static void on_resume(nk_loop *loop, void *user)
{
    (void)loop;
    on_io(NULL, 0, user);
}

static void on_backoff(nk_timer *t, void *user)
{
    (void)t;
    nk_udp_endpoint *ep = user;
    if (!ep->closing && ep->receiving)
        (void)nk__io_set(&ep->io, NK_READ);
}

int nk_udp_endpoint_recv(nk_udp_endpoint *ep, void *buf, size_t len,
                         int timeout_ms, nk_addr *from,
                         nk_udp_recv_info *info)
{
    /* The result is an int: a buffer over INT_MAX bytes cannot be
     * answered (and no datagram needs one); -1 is the only wait forever. */
    if (ep == NULL || (buf == NULL && len > 0) || len > INT_MAX ||
        timeout_ms < -1)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    int kept;
    if (recv_kept(ep, buf, len, from, info, &kept))
        return kept;
    int64_t deadline = timeout_ms >= 0 ? nk__now_ms() + timeout_ms : -1;
    for (;;) {
        union sa_any name;
        struct iovec iov = {buf, len};
        struct msghdr h = {.msg_name = &name,
                           .msg_namelen = sizeof name,
                           .msg_iov = &iov,
                           .msg_iovlen = 1};
        ssize_t r = recvmsg(ep->fd, &h, MSG_DONTWAIT | MSG_TRUNC);
        if (r >= 0) {
            size_t size = (size_t)r;
            size_t got = size < len ? size : len;
            bool truncated = (h.msg_flags & MSG_TRUNC) || size > len;
            count_received(ep, got, truncated);
            if (from != NULL &&
                nk_addr_from_sockaddr(from, &name.sa, h.msg_namelen) == 0)
                nk_addr_normalize(from);
            if (info != NULL) {
                info->len = got;
                info->size = size;
                info->truncated = truncated;
            }
            if (truncated)
                return NK_ETRUNC;
            return (int)got;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EAGAIN && e != EWOULDBLOCK) {
            if (nk__is_icmp_error(e))
                ep->stats.async_errors++;
            if (nk__is_icmp_error(e) && ep->opts.recv_errors)
                drain_errors(ep, false);
            return -e;
        }
        if (ep->opts.recv_errors)
            drain_errors(ep, false); /* else POLLERR would never clear */
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - nk__now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            wait = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        int rc = nk__wait_fd(ep->fd, POLLIN, wait);
        if (rc < 0)
            return rc;
    }
}

int nk_udp_endpoint_set_receiving(nk_udp_endpoint *ep, bool on)
{
    if (ep == NULL || !ep->watching)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    bool was_on = ep->receiving;
    ep->receiving = on;
    if (on && !was_on && ep->rnext < ep->rfilled)
        nk__loop_defer_task(ep->loop, &ep->resume, on_resume, ep);
    /* While backing off after an error, the timer turns reading back on. */
    if (nk__timer_active(&ep->backoff))
        return 0;
    return nk__io_set(&ep->io, on ? NK_READ : 0);
}

int nk_udp_endpoint_local_addr(const nk_udp_endpoint *ep, nk_addr *out)
{
    if (ep == NULL || out == NULL)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    return nk__sock_name(ep->fd, out);
}

int nk_udp_endpoint_peer_addr(const nk_udp_endpoint *ep, nk_addr *out)
{
    if (ep == NULL || out == NULL || !ep->connected)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    *out = ep->peer;
    return 0;
}

int nk_udp_endpoint_fd(const nk_udp_endpoint *ep)
{
    if (ep == NULL)
        return NK_EINVAL;
    return ep->closing ? NK_ECLOSED : ep->fd;
}

nk_loop *nk_udp_endpoint_loop(const nk_udp_endpoint *ep)
{
    return ep != NULL ? ep->loop : NULL;
}

void nk_udp_endpoint_get_stats(const nk_udp_endpoint *ep,
                               nk_udp_endpoint_stats *out)
{
    if (out == NULL)
        return;
    if (ep == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = ep->stats;
}

int nk_udp_endpoint_multicast(nk_udp_endpoint *ep, const nk_addr *group,
                              unsigned ifindex, bool join)
{
    if (ep == NULL || group == NULL || ifindex > INT_MAX)
        return NK_EINVAL;
    if (ep->closing)
        return NK_ECLOSED;
    int fam = nk_addr_family(group);
    if (fam == AF_INET) {
        if (!IN_MULTICAST(ntohl(group->u.v4.sin_addr.s_addr)))
            return NK_EINVAL;
        if (ep->family != AF_INET)
            return NK_EINVAL;
        struct ip_mreqn m;
        memset(&m, 0, sizeof m);
        m.imr_multiaddr = group->u.v4.sin_addr;
        m.imr_ifindex = (int)ifindex;
        int opt = join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP;
        return setsockopt(ep->fd, IPPROTO_IP, opt, &m, sizeof m) == 0 ? 0
                                                                       : -errno;
    }
    if (fam == AF_INET6) {
        if (!IN6_IS_ADDR_MULTICAST(&group->u.v6.sin6_addr) ||
            ep->family != AF_INET6)
            return NK_EINVAL;
        struct ipv6_mreq m;
        memset(&m, 0, sizeof m);
        m.ipv6mr_multiaddr = group->u.v6.sin6_addr;
        m.ipv6mr_interface = ifindex;
        int opt = join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP;
        return setsockopt(ep->fd, IPPROTO_IPV6, opt, &m, sizeof m) == 0
                   ? 0
                   : -errno;
    }
    return NK_EINVAL;
}
