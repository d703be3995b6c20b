/* Load generator, UDP echo mode: K connected sockets each keep W datagrams
 * in flight (sendmmsg/recvmmsg). A datagram is a 16-hex-digit sequence
 * number (uppercasing leaves it alone) then pattern text; the reply must be
 * the same header and the uppercased text. A datagram not answered within
 * the timeout counts as lost and frees its window slot. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#define HDR 16
#define BATCH 64

struct slot {
    uint64_t seq, t_sent;
    bool busy;
    char hdr[HDR + 1];
};

struct usock {
    int fd;
    uint64_t next_seq;
    int busy;
    struct slot *slots;
};

struct ustate {
    const struct lg_opts *o;
    struct usock *u;
    bool measuring, stop;
    uint64_t sent, replies, all, lost, late, errors;
    struct lg_hist hist;
    char *rbuf;
};

static size_t body_off(uint64_t seq)
{
    return (size_t)((seq * 31u) % LG_PATLEN);
}

static void fill(struct ustate *s, struct usock *u, uint64_t now)
{
    const struct lg_opts *o = s->o;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH][2];
    int n = 0;
    if (s->stop)
        return;
    while (u->busy < o->depth && n < BATCH) {
        uint64_t seq = u->next_seq;
        struct slot *sl = &u->slots[seq % (uint64_t)o->depth];
        if (sl->busy)
            break; /* an older datagram still holds this slot */
        sl->seq = seq;
        sl->busy = true;
        sl->t_sent = now;
        snprintf(sl->hdr, sizeof sl->hdr, "%016" PRIX64, seq);
        iov[n][0] = (struct iovec){sl->hdr, HDR};
        iov[n][1] = (struct iovec){lg_pat + body_off(seq), (size_t)o->size - HDR};
        memset(&mm[n], 0, sizeof mm[n]);
        mm[n].msg_hdr.msg_iov = iov[n];
        mm[n].msg_hdr.msg_iovlen = 2;
        u->next_seq++;
        u->busy++;
        n++;
    }
    int done = 0;
    while (done < n) {
        int r = sendmmsg(u->fd, mm + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* Not sent (full buffer, refused): the timeout will count them. */
            break;
        }
        done += r;
    }
    s->sent += (uint64_t)n;
}

static void check_reply(struct ustate *s, struct usock *u, const char *p, size_t len,
                        int flags, uint64_t now)
{
    const struct lg_opts *o = s->o;
    char hex[HDR + 1];
    if (len != (size_t)o->size || (flags & MSG_TRUNC)) {
        fprintf(stderr, "loadgen: udp: reply of %zu bytes, want %d\n", len, o->size);
        s->errors++;
        return;
    }
    memcpy(hex, p, HDR);
    hex[HDR] = 0;
    uint64_t seq = strtoull(hex, NULL, 16);
    struct slot *sl = &u->slots[seq % (uint64_t)o->depth];
    if (!sl->busy || sl->seq != seq) {
        s->late++;
        return;
    }
    if (memcmp(p, sl->hdr, HDR) != 0 ||
        memcmp(p + HDR, lg_upat + body_off(seq), len - HDR) != 0) {
        fprintf(stderr, "loadgen: udp: wrong reply to datagram %" PRIu64 "\n", seq);
        s->errors++;
    }
    sl->busy = false;
    u->busy--;
    s->all++;
    if (s->measuring) {
        s->replies++;
        lg_hist_add(&s->hist, now - sl->t_sent);
    }
}

static void on_readable(struct ustate *s, struct usock *u)
{
    const struct lg_opts *o = s->o;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    size_t cap = (size_t)o->size + 64;
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){s->rbuf + (size_t)i * cap, cap};
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(u->fd, mm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
        return;
    uint64_t now = lg_now_ns();
    for (int i = 0; i < n; i++)
        check_reply(s, u, iov[i].iov_base, mm[i].msg_len, mm[i].msg_hdr.msg_flags, now);
    fill(s, u, now);
}

static void expire(struct ustate *s, uint64_t now)
{
    const struct lg_opts *o = s->o;
    uint64_t limit = (uint64_t)o->timeout_ms * 1000000u;
    for (int i = 0; i < o->conns; i++) {
        struct usock *u = &s->u[i];
        for (int k = 0; k < o->depth; k++) {
            struct slot *sl = &u->slots[k];
            if (sl->busy && now - sl->t_sent > limit) {
                sl->busy = false;
                u->busy--;
                if (s->measuring)
                    s->lost++;
            }
        }
        fill(s, u, now);
    }
}

int lg_run_udp(const struct lg_opts *o)
{
    static struct ustate st;
    struct ustate *s = &st;
    struct epoll_event evs[64];
    if (o->size < HDR)
        lg_die("udp: size must be at least %d", HDR);
    s->o = o;
    s->u = calloc((size_t)o->conns, sizeof *s->u);
    s->rbuf = malloc((size_t)BATCH * ((size_t)o->size + 64));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!s->u || !s->rbuf)
        lg_die("out of memory");
    for (int i = 0; i < o->conns; i++) {
        struct usock *u = &s->u[i];
        u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (u->fd < 0 || connect(u->fd, (const struct sockaddr *)&o->addr, sizeof o->addr))
            lg_die("udp socket: %s", strerror(errno));
        u->slots = calloc((size_t)o->depth, sizeof *u->slots);
        if (!u->slots)
            lg_die("out of memory");
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = u};
        epoll_ctl(ep, EPOLL_CTL_ADD, u->fd, &e);
    }
    uint64_t start = lg_now_ns();
    uint64_t t0 = start + (uint64_t)(o->warmup * 1e9);
    uint64_t t1 = t0 + (uint64_t)(o->secs * 1e9), tend = 0;
    uint64_t sent0 = 0, sent1 = 0, last_expire = start;
    struct lg_cpu cpu0 = {0, 0, 0, 0}, cpu1 = cpu0;
    for (int i = 0; i < o->conns; i++)
        fill(s, &s->u[i], start);
    for (;;) {
        int n = epoll_wait(ep, evs, 64, 5);
        for (int i = 0; i < n; i++)
            on_readable(s, evs[i].data.ptr);
        uint64_t now = lg_now_ns();
        if (now - last_expire > 5000000u) {
            expire(s, now);
            last_expire = now;
        }
        if (!s->measuring && !s->stop && now >= t0) {
            s->measuring = true;
            cpu0 = lg_srv_cpu(o->pid);
            sent0 = s->sent;
        }
        if (s->measuring && now >= t1) {
            cpu1 = lg_srv_cpu(o->pid);
            sent1 = s->sent;
            tend = now;
            s->measuring = false;
            s->stop = true;
            break;
        }
    }
    double secs = (double)(tend - t0) / 1e9;
    uint64_t sent = sent1 - sent0;
    lg_result_begin("udp", o);
    lg_result_kv("sockets", "%d", o->conns);
    lg_result_kv("window", "%d", o->depth);
    lg_result_kv("size", "%d", o->size);
    lg_result_kv("secs", "%.3f", secs);
    lg_result_kv("msgs", "%llu", (unsigned long long)s->replies);
    lg_result_kv("total_msgs", "%llu", (unsigned long long)s->all);
    lg_result_kv("msgs_per_s", "%.0f", (double)s->replies / secs);
    lg_result_kv("mb_per_s", "%.2f", (double)s->replies * o->size / secs / 1e6);
    lg_result_kv("loss_pct", "%.3f", sent ? 100.0 * (double)s->lost / (double)sent : 0.0);
    lg_result_kv("late", "%llu", (unsigned long long)s->late);
    lg_result_latency(&s->hist);
    lg_result_cpu(o, &cpu0, &cpu1, (double)s->replies, secs);
    uint64_t errors = s->errors + (s->replies == 0);
    lg_result_kv("errors", "%llu", (unsigned long long)errors);
    lg_result_end();
    return errors ? 1 : 0;
}
