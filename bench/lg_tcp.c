/* Load generator, TCP mode: C connections each keep D requests of S bytes in
 * flight. Each connection's requests are one continuous slice of the pattern
 * stream, so a batch of requests is one send(), and every reply byte is
 * checked against the uppercased stream at the same offset. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

struct tconn {
    int fd;
    bool out_armed;
    size_t base;               /* where this connection's stream starts */
    uint64_t issued, done;     /* messages */
    uint64_t sent, received;   /* bytes */
    uint64_t *t_sent;          /* send time of message m at [m % depth] */
};

struct tstate {
    const struct lg_opts *o;
    int ep;
    struct tconn *c;
    bool stop_issuing, measuring;
    uint64_t issued_total, done_total, errors;
    struct lg_hist hist;
};

static void arm(struct tstate *s, struct tconn *c, bool out)
{
    if (c->out_armed == out)
        return;
    struct epoll_event e = {.events = EPOLLIN | (out ? EPOLLOUT : 0u),
                            .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e);
    c->out_armed = out;
}

static void issue_and_flush(struct tstate *s, struct tconn *c, uint64_t now)
{
    const struct lg_opts *o = s->o;
    uint64_t room = (uint64_t)o->depth - (c->issued - c->done);
    if (s->o->count && s->issued_total + room > s->o->count)
        room = s->o->count - s->issued_total;
    if (s->stop_issuing)
        room = 0;
    for (uint64_t k = 0; k < room; k++)
        c->t_sent[(c->issued + k) % (uint64_t)o->depth] = now;
    c->issued += room;
    s->issued_total += room;
    uint64_t target = c->issued * (uint64_t)o->size;
    while (c->sent < target) {
        size_t off = (size_t)((c->base + c->sent) % LG_PATLEN);
        size_t n = (size_t)(target - c->sent);
        if (n > LG_PATLEN)
            n = LG_PATLEN;
        ssize_t w = send(c->fd, lg_pat + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            lg_die("tcp send: %s", strerror(errno));
        }
        c->sent += (uint64_t)w;
    }
    arm(s, c, c->sent < target);
}

static void on_readable(struct tstate *s, struct tconn *c, char *buf, size_t cap)
{
    ssize_t n = recv(c->fd, buf, cap, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0)
        lg_die("tcp: connection %d closed by the server after %llu bytes: %s",
               (int)(c - s->c), (unsigned long long)c->received,
               n == 0 ? "end of stream" : strerror(errno));
    if (c->received + (uint64_t)n > c->sent)
        lg_die("tcp: more reply bytes than request bytes");
    size_t off = (size_t)((c->base + c->received) % LG_PATLEN);
    if (memcmp(buf, lg_upat + off, (size_t)n) != 0) {
        size_t i = 0;
        while (buf[i] == lg_upat[off + i])
            i++;
        fprintf(stderr, "loadgen: tcp: wrong reply byte at offset %llu of "
                        "connection %d: got 0x%02x, want 0x%02x\n",
                (unsigned long long)(c->received + i), (int)(c - s->c),
                (unsigned char)buf[i], (unsigned char)lg_upat[off + i]);
        s->errors++;
        s->stop_issuing = true;
    }
    c->received += (uint64_t)n;
    uint64_t now = lg_now_ns();
    uint64_t done = c->received / (uint64_t)s->o->size;
    for (uint64_t m = c->done; m < done; m++) {
        if (s->measuring)
            lg_hist_add(&s->hist, now - c->t_sent[m % (uint64_t)s->o->depth]);
    }
    s->done_total += done - c->done;
    c->done = done;
    issue_and_flush(s, c, now);
}

static void connect_all(struct tstate *s)
{
    const struct lg_opts *o = s->o;
    for (int i = 0; i < o->conns; i++) {
        struct tconn *c = &s->c[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            lg_die("socket: %s", strerror(errno));
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* Blocking connect: simple, and loopback completes at once. */
        if (connect(c->fd, (const struct sockaddr *)&o->addr, sizeof o->addr) < 0)
            lg_die("connect: %s", strerror(errno));
        c->base = ((size_t)i * 7919u) % LG_PATLEN;
        c->t_sent = calloc((size_t)o->depth, sizeof *c->t_sent);
        if (!c->t_sent)
            lg_die("out of memory");
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &e);
    }
}

int lg_run_tcp(const struct lg_opts *o)
{
    static struct tstate st;
    struct tstate *s = &st;
    static char buf[65536];
    struct epoll_event evs[256];

    s->o = o;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->c = calloc((size_t)o->conns, sizeof *s->c);
    if (!s->c)
        lg_die("out of memory");
    connect_all(s);

    uint64_t start = lg_now_ns();
    bool counted = o->count > 0;
    uint64_t t0 = counted ? start : start + (uint64_t)(o->warmup * 1e9);
    uint64_t t1 = t0 + (uint64_t)(o->secs * 1e9);
    struct lg_cpu cpu0 = lg_srv_cpu(o->pid), cpu1 = cpu0;
    uint64_t done0 = 0, done1 = 0, tend = 0;
    s->measuring = counted;
    for (int i = 0; i < o->conns; i++)
        issue_and_flush(s, &s->c[i], start);

    uint64_t drain_deadline = 0;
    for (;;) {
        int n = epoll_wait(s->ep, evs, 256, 10);
        for (int i = 0; i < n; i++) {
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(s, evs[i].data.ptr, buf, sizeof buf);
        }
        for (int i = 0; i < n; i++) {
            struct tconn *c = evs[i].data.ptr;
            if (c->out_armed && (evs[i].events & EPOLLOUT))
                issue_and_flush(s, c, lg_now_ns());
        }
        uint64_t now = lg_now_ns();
        if (counted) {
            if (s->done_total >= o->count || s->errors) {
                tend = now;
                done1 = s->done_total;
                cpu1 = lg_srv_cpu(o->pid);
                break;
            }
            if (now > start + 120000000000ull)
                lg_die("tcp: %llu of %llu replies after 120 s",
                       (unsigned long long)s->done_total, (unsigned long long)o->count);
            continue;
        }
        if (!s->measuring && !s->stop_issuing && now >= t0) {
            s->measuring = true;
            done0 = s->done_total;
            cpu0 = lg_srv_cpu(o->pid);
        }
        if (s->measuring && (now >= t1 || s->errors)) {
            s->measuring = false;
            s->stop_issuing = true;
            tend = now;
            done1 = s->done_total;
            cpu1 = lg_srv_cpu(o->pid);
            drain_deadline = now + 10000000000ull; /* generous: a loaded machine */
        }
        if (s->stop_issuing && (s->done_total == s->issued_total || now > drain_deadline))
            break;
    }
    if (s->done_total != s->issued_total && !s->errors) {
        fprintf(stderr, "loadgen: tcp: %llu replies missing at the end\n",
                (unsigned long long)(s->issued_total - s->done_total));
        s->errors++;
    }
    double secs = (double)(tend - (counted ? start : t0)) / 1e9;
    double msgs = (double)(done1 - done0);
    lg_result_begin("tcp", o);
    lg_result_kv("conns", "%d", o->conns);
    lg_result_kv("size", "%d", o->size);
    lg_result_kv("depth", "%d", o->depth);
    lg_result_kv("secs", "%.3f", secs);
    lg_result_kv("msgs", "%.0f", msgs);
    lg_result_kv("total_msgs", "%llu", (unsigned long long)s->done_total);
    lg_result_kv("msgs_per_s", "%.0f", msgs / secs);
    lg_result_kv("mb_per_s", "%.2f", msgs * o->size / secs / 1e6);
    lg_result_latency(&s->hist);
    lg_result_cpu(o, &cpu0, &cpu1, msgs, secs);
    lg_result_kv("errors", "%llu", (unsigned long long)s->errors);
    lg_result_end();
    for (int i = 0; i < o->conns; i++)
        close(s->c[i].fd);
    return s->errors ? 1 : 0;
}
