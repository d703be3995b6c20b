/* Load generator, idle mode: open N connections (sources spread over
 * 127.0.0.2.. so one source address never runs out of ports), check that
 * each one echoes a short message, then leave them all idle and read how
 * much the server's memory grew, per connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#define MSG "hello, idle one!"
#define UMSG "HELLO, IDLE ONE!"
#define MSGLEN 16
#define INFLIGHT 256

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

struct iconn {
    int fd;
    int got;
    char buf[MSGLEN];
};

static int open_one(const struct lg_opts *o, int i, int ep, struct iconn *c)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        lg_die("idle: socket %d: %s", i, strerror(errno));
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % o->src_ips));
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0)
        lg_die("idle: bind: %s", strerror(errno));
    if (connect(c->fd, (const struct sockaddr *)&o->addr, sizeof o->addr) < 0 &&
        errno != EINPROGRESS)
        lg_die("idle: connect %d: %s", i, strerror(errno));
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

/* Returns true when @c has its whole echo back. */
static bool on_event(int ep, struct iconn *c, uint32_t events)
{
    if (events & EPOLLOUT) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            lg_die("idle: connect: %s", strerror(err));
        if (send(c->fd, MSG, MSGLEN, MSG_NOSIGNAL) != MSGLEN)
            lg_die("idle: send: %s", strerror(errno));
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
        return false;
    }
    ssize_t n = recv(c->fd, c->buf + c->got, (size_t)(MSGLEN - c->got), 0);
    if (n < 0 && errno == EAGAIN)
        return false;
    if (n <= 0)
        lg_die("idle: connection closed by the server: %s",
               n == 0 ? "end of stream" : strerror(errno));
    c->got += (int)n;
    if (c->got < MSGLEN)
        return false;
    if (memcmp(c->buf, UMSG, MSGLEN) != 0)
        lg_die("idle: wrong echo");
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    return true;
}

int lg_run_idle(const struct lg_opts *o)
{
    long pd0 = 0, rss0 = 0, pd1 = 0, rss1 = 0;
    struct epoll_event evs[256];
    if (o->pid <= 0 || !lg_srv_mem_kib(o->pid, &pd0, &rss0))
        lg_die("idle: --pid PID of the server is needed (and /proc/PID/smaps_rollup)");
    struct iconn *c = calloc((size_t)o->conns, sizeof *c);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!c)
        lg_die("out of memory");
    uint64_t start = lg_now_ns();
    int opened = 0, done = 0;
    while (done < o->conns) {
        while (opened < o->conns && opened - done < INFLIGHT) {
            open_one(o, opened, ep, &c[opened]);
            opened++;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++)
            done += on_event(ep, evs[i].data.ptr, evs[i].events);
        if (lg_now_ns() - start > 60000000000ull)
            lg_die("idle: only %d of %d connections answered after 60 s", done, o->conns);
    }
    double open_secs = (double)(lg_now_ns() - start) / 1e9;
    usleep(300000); /* let the server finish its side of the last writes */
    if (!lg_srv_mem_kib(o->pid, &pd1, &rss1))
        lg_die("idle: server gone");
    uint64_t hold_until = lg_now_ns() + (uint64_t)(o->secs * 1e9);
    while (lg_now_ns() < hold_until)
        usleep(10000);
    /* Still connected? A server that dropped idle connections would cheat. */
    int closed = 0;
    for (int i = 0; i < o->conns; i++) {
        char b;
        ssize_t n = recv(c[i].fd, &b, 1, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            closed++;
    }
    lg_result_begin("idle", o);
    lg_result_kv("conns", "%d", o->conns);
    lg_result_kv("open_secs", "%.2f", open_secs);
    lg_result_kv("private_dirty_kib", "%ld", pd1 - pd0);
    lg_result_kv("rss_kib", "%ld", rss1 - rss0);
    lg_result_kv("kib_per_conn", "%.3f", (double)(pd1 - pd0) / o->conns);
    lg_result_kv("rss_kib_per_conn", "%.3f", (double)(rss1 - rss0) / o->conns);
    lg_result_kv("closed_by_server", "%d", closed);
    lg_result_kv("errors", "%d", closed);
    lg_result_end();
    for (int i = 0; i < o->conns; i++)
        close(c[i].fd);
    close(ep);
    free(c);
    return closed ? 1 : 0;
}
