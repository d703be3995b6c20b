/* Load generator, room mode: R receivers register with the relay (each
 * sends one datagram), then senders send S-byte messages, either keeping W
 * messages in flight (saturation: a message is done once every receiver has
 * it) or at a fixed rate. Each message carries a hex header (sender, sequence
 * number); receivers check the body byte for byte. A message not delivered
 * to every receiver within the timeout counts the missing deliveries lost. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#define HDR 16 /* "M" + 3 hex sender + 12 hex sequence */
#define RING 65536u
#define BATCH 64

struct rslot {
    uint64_t seq, t_sent;
    uint32_t count;
    bool busy, measured;
};

struct sender {
    int fd;
    uint64_t next_seq, oldest, outstanding;
    struct rslot *ring;
};

struct rstate {
    const struct lg_opts *o;
    int ep;
    int *rfd;
    struct sender *snd;
    bool measuring, stop;
    uint64_t sent, deliveries, all, expected, got, late, errors, probes_seen;
    bool *seen;
    struct lg_hist hist;
    char rbuf[BATCH][2048];
};

static size_t body_off(uint64_t seq)
{
    return (size_t)((seq * 61u) % LG_PATLEN);
}

static void retire(struct rstate *s, struct rslot *sl, struct sender *d)
{
    if (sl->measured) {
        s->expected += (uint64_t)s->o->receivers;
        s->got += sl->count;
    }
    sl->busy = false;
    d->outstanding--;
}

static void send_batch(struct rstate *s, struct sender *d, int n, uint64_t now)
{
    const struct lg_opts *o = s->o;
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH][2];
    char hdr[BATCH][HDR + 1];
    int idx = (int)(d - s->snd);
    for (int i = 0; i < n; i++) {
        uint64_t seq = d->next_seq++;
        struct rslot *sl = &d->ring[seq % RING];
        if (sl->busy)
            retire(s, sl, d); /* wrapped around: count what it got */
        *sl = (struct rslot){.seq = seq, .t_sent = now, .busy = true,
                             .measured = s->measuring};
        d->outstanding++;
        snprintf(hdr[i], sizeof hdr[i], "M%03X%012" PRIX64, idx, seq);
        iov[i][0] = (struct iovec){hdr[i], HDR};
        iov[i][1] = (struct iovec){lg_pat + body_off(seq), (size_t)o->size - HDR};
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_iov = iov[i];
        mm[i].msg_hdr.msg_iovlen = 2;
    }
    int done = 0;
    while (done < n) {
        int r = sendmmsg(d->fd, mm + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* unsent ones expire as lost */
        done += r;
    }
    if (s->measuring)
        s->sent += (uint64_t)n;
}

static void on_datagram(struct rstate *s, int r, const char *p, size_t len, uint64_t now)
{
    const struct lg_opts *o = s->o;
    char hex[13];
    if (len > 0 && p[0] == 'P' && r >= 0) {
        if (!s->seen[r]) {
            s->seen[r] = true;
            s->probes_seen++;
        }
        return;
    }
    if (len == 0 || p[0] != 'M' || r < 0)
        return; /* registrations relayed to members, or a sender's echo */
    if (len != (size_t)o->size) {
        fprintf(stderr, "loadgen: room: delivery of %zu bytes, want %d\n", len, o->size);
        s->errors++;
        return;
    }
    memcpy(hex, p + 1, 3);
    hex[3] = 0;
    unsigned long idx = strtoul(hex, NULL, 16);
    memcpy(hex, p + 4, 12);
    hex[12] = 0;
    uint64_t seq = strtoull(hex, NULL, 16);
    if (idx >= (unsigned long)o->senders ||
        memcmp(p + HDR, lg_pat + body_off(seq), len - HDR) != 0) {
        fprintf(stderr, "loadgen: room: wrong delivery (sender %lu seq %" PRIu64 ")\n",
                idx, seq);
        s->errors++;
        return;
    }
    struct sender *d = &s->snd[idx];
    struct rslot *sl = &d->ring[seq % RING];
    if (!sl->busy || sl->seq != seq) {
        s->late++;
        return;
    }
    s->all++;
    if (s->measuring) {
        s->deliveries++;
        lg_hist_add(&s->hist, now - sl->t_sent);
    }
    if (++sl->count >= (uint32_t)o->receivers)
        retire(s, sl, d);
}

/* Receiver r (or sender -1 - r) is readable. */
static void on_readable(struct rstate *s, int fd, int r)
{
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i] = (struct iovec){s->rbuf[i], sizeof s->rbuf[i]};
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, mm, BATCH, MSG_DONTWAIT, NULL);
    uint64_t now = lg_now_ns();
    for (int i = 0; i < n; i++)
        on_datagram(s, r, s->rbuf[i], mm[i].msg_len, now);
}

static void poll_once(struct rstate *s, int timeout_ms)
{
    struct epoll_event evs[128];
    int n = epoll_wait(s->ep, evs, 128, timeout_ms);
    for (int i = 0; i < n; i++) {
        int r = (int)evs[i].data.u32;
        int fd = r >= 0 ? s->rfd[r] : s->snd[-1 - r].fd;
        on_readable(s, fd, r);
    }
}

static void expire(struct rstate *s, uint64_t now, bool all)
{
    uint64_t limit = (uint64_t)s->o->timeout_ms * 1000000u;
    for (int i = 0; i < s->o->senders; i++) {
        struct sender *d = &s->snd[i];
        while (d->oldest < d->next_seq) {
            struct rslot *sl = &d->ring[d->oldest % RING];
            if (sl->busy && sl->seq == d->oldest) {
                if (!all && now - sl->t_sent <= limit)
                    break;
                retire(s, sl, d);
            }
            d->oldest++;
        }
    }
}

static int open_udp(const struct lg_opts *o, int ep, int tag)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    if (fd < 0 || connect(fd, (const struct sockaddr *)&o->addr, sizeof o->addr))
        lg_die("room socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    return fd;
}

/* Every socket says hello; then probes until each receiver has seen one. */
static void join(struct rstate *s)
{
    const struct lg_opts *o = s->o;
    for (int r = 0; r < o->receivers; r++) {
        if (send(s->rfd[r], "register", 8, 0) < 0)
            lg_die("room register: %s", strerror(errno));
        if (r % 16 == 15)
            poll_once(s, 10);
    }
    for (int i = 0; i < o->senders; i++)
        send(s->snd[i].fd, "register", 8, 0);
    uint64_t deadline = lg_now_ns() + 5000000000ull, next_probe = 0;
    while (s->probes_seen < (uint64_t)o->receivers) {
        uint64_t now = lg_now_ns();
        if (now > deadline)
            lg_die("room: only %llu of %d receivers get messages (registration failed)",
                   (unsigned long long)s->probes_seen, o->receivers);
        if (now >= next_probe) {
            /* A registration the relay dropped (its buffer full on a busy
             * machine) is sent again; a repeated one is harmless. */
            if (next_probe != 0) {
                for (int r = 0; r < o->receivers; r++) {
                    if (!s->seen[r])
                        send(s->rfd[r], "register", 8, 0);
                }
            }
            send(s->snd[0].fd, "Probe", 5, 0);
            next_probe = now + 100000000u;
        }
        poll_once(s, 10);
    }
    uint64_t settle = lg_now_ns() + 50000000u;
    while (lg_now_ns() < settle)
        poll_once(s, 10);
}

int lg_run_room(const struct lg_opts *o)
{
    static struct rstate st;
    struct rstate *s = &st;
    if (o->size < HDR || o->size > 2000 || o->senders > 4095)
        lg_die("room: size must be %d..2000, senders at most 4095", HDR);
    s->o = o;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->rfd = calloc((size_t)o->receivers, sizeof *s->rfd);
    s->seen = calloc((size_t)o->receivers, sizeof *s->seen);
    s->snd = calloc((size_t)o->senders, sizeof *s->snd);
    if (!s->rfd || !s->seen || !s->snd)
        lg_die("out of memory");
    for (int r = 0; r < o->receivers; r++)
        s->rfd[r] = open_udp(o, s->ep, r);
    for (int i = 0; i < o->senders; i++) {
        s->snd[i].fd = open_udp(o, s->ep, -1 - i);
        s->snd[i].ring = calloc(RING, sizeof *s->snd[i].ring);
        if (!s->snd[i].ring)
            lg_die("out of memory");
    }
    join(s);

    uint64_t start = lg_now_ns();
    uint64_t t0 = start + (uint64_t)(o->warmup * 1e9);
    uint64_t t1 = t0 + (uint64_t)(o->secs * 1e9), tend = t1;
    uint64_t last_expire = start, drain_deadline = 0;
    struct lg_cpu cpu0 = {0, 0, 0, 0}, cpu1 = cpu0;
    double per_sender = o->rate / o->senders;
    for (;;) {
        uint64_t now = lg_now_ns();
        if (!s->stop) {
            for (int i = 0; i < o->senders; i++) {
                struct sender *d = &s->snd[i];
                int64_t n;
                if (o->rate > 0)
                    n = (int64_t)(per_sender * (double)(now - start) / 1e9) -
                        (int64_t)d->next_seq;
                else
                    n = (int64_t)o->depth - (int64_t)d->outstanding;
                if (n > BATCH)
                    n = BATCH;
                if (n > 0)
                    send_batch(s, d, (int)n, now);
            }
        }
        poll_once(s, o->rate > 0 ? 1 : 5);
        now = lg_now_ns();
        if (now - last_expire > 5000000u) {
            expire(s, now, false);
            last_expire = now;
        }
        if (!s->measuring && !s->stop && now >= t0) {
            s->measuring = true;
            cpu0 = lg_srv_cpu(o->pid);
        }
        if (s->measuring && now >= t1) {
            cpu1 = lg_srv_cpu(o->pid);
            tend = now;
            s->measuring = false;
            s->stop = true;
            drain_deadline = now + (uint64_t)o->timeout_ms * 1000000u + 50000000u;
        }
        bool idle = true;
        for (int i = 0; i < o->senders; i++)
            idle = idle && s->snd[i].outstanding == 0;
        if (s->stop && (idle || now > drain_deadline))
            break;
    }
    expire(s, 0, true);
    double secs = (double)(tend - t0) / 1e9;
    lg_result_begin("room", o);
    lg_result_kv("receivers", "%d", o->receivers);
    lg_result_kv("senders", "%d", o->senders);
    lg_result_kv("size", "%d", o->size);
    if (o->rate > 0)
        lg_result_kv("rate", "%.0f", o->rate);
    else
        lg_result_kv("window", "%d", o->depth);
    lg_result_kv("secs", "%.3f", secs);
    lg_result_kv("msgs_per_s", "%.0f", (double)s->sent / secs);
    lg_result_kv("msgs", "%llu", (unsigned long long)s->deliveries);
    lg_result_kv("total_msgs", "%llu", (unsigned long long)s->all);
    lg_result_kv("deliveries_per_s", "%.0f", (double)s->deliveries / secs);
    lg_result_kv("loss_pct", "%.3f",
                 s->expected ? 100.0 * (double)(s->expected - s->got) / (double)s->expected
                             : 0.0);
    lg_result_kv("late", "%llu", (unsigned long long)s->late);
    lg_result_latency(&s->hist);
    lg_result_cpu(o, &cpu0, &cpu1, (double)s->deliveries, secs);
    uint64_t errors = s->errors + (s->deliveries == 0);
    lg_result_kv("errors", "%llu", (unsigned long long)errors);
    lg_result_end();
    return errors ? 1 : 0;
}
