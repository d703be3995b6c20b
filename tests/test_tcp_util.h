/* Shared by the TCP tests: a loop with an echo server whose callbacks count
 * what happened, and raw POSIX clients driven by the same loop (plain
 * socket calls, only scheduled through nk_io) so that one thread can run
 * hundreds of independent peers without sleeps. */
#ifndef TEST_TCP_UTIL_H
#define TEST_TCP_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_stream.h"

/* ---- server side: counters filled by the callbacks ---- */

struct srv_state {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    int opens, closes, datas, eofs, drains;
    int reasons[32]; /* close reasons in order (first 32) */
    int last_reason;
    bool echo;       /* on_data echoes */
    size_t bytes;    /* bytes delivered to on_data */
    nk_tcp_conn *last_conn;
    int unbalanced;  /* echo closes at NK_EOF with bytes_in != bytes_out */
};

static inline void st_open(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    st->opens++;
    st->last_conn = c;
}

static inline void st_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    st->datas++;
    st->bytes += n;
    if (st->echo) {
        int r = nk_tcp_conn_send(c, d, n);
        assert_true(r == 0 || r == 1 || r == -ECONNRESET || r == -EPIPE ||
                    r == NK_EQUEUE_FULL);
    }
}

static inline void st_close(nk_tcp_conn *c, int reason, void *user)
{
    struct srv_state *st = user;
    (void)c;
    if (st->closes < 32)
        st->reasons[st->closes] = reason;
    st->closes++;
    st->last_reason = reason;
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    if (st->echo && reason == NK_EOF && cs.bytes_in != cs.bytes_out)
        st->unbalanced++;
    if (st->last_conn == c)
        st->last_conn = NULL;
}

static inline void st_eof(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    (void)c;
    st->eofs++;
}

static inline void st_drain(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    (void)c;
    st->drains++;
}

static inline nk_tcp_server_opts echo_opts(struct srv_state *st)
{
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.backlog = 1024;
    o.on_open = st_open;
    o.conn.on_data = st_data;
    o.conn.on_close = st_close;
    o.conn.user = st;
    st->echo = true;
    return o;
}

static inline void srv_start(struct srv_state *st, const nk_tcp_server_opts *o)
{
    if (!st->loop)
        assert_int_equal(nk_loop_new(&st->loop), 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(nk_tcp_server_start(st->loop, &a, o, &st->srv), 0);
    assert_int_equal(nk_tcp_server_addr(st->srv, &st->addr), 0);
    assert_true(nk_tcp_server_port(st->srv) > 0);
}

static inline nk_tcp_server_stats srv_stats(const struct srv_state *st)
{
    nk_tcp_server_stats s;
    nk_tcp_server_get_stats(st->srv, &s);
    return s;
}

/* Free the server, run until its close callbacks ran, free the loop: the
 * loop must have no handle left. */
static inline void srv_finish(struct srv_state *st)
{
    nk_tcp_server_free(st->srv);
    st->srv = NULL;
    for (int i = 0; i < 100; i++)
        if (nk_loop_run(st->loop, NK_RUN_NOWAIT) == 0)
            break;
    nk_loop_stats ls;
    nk_loop_get_stats(st->loop, &ls);
    assert_int_equal(ls.ios, 0);
    assert_int_equal(ls.timers, 0);
    assert_int_equal(nk_loop_free(st->loop), 0);
    st->loop = NULL;
}

/* ---- raw clients on the loop ---- */

struct rawc {
    int fd;
    nk_io *io;
    uint64_t seed;
    size_t total;   /* bytes to send (and expect back when echoing) */
    size_t sent, recvd;
    bool connected, read_back, mismatch;
    int end;        /* 0 running, 1 EOF seen, -errno */
    int *done_count;
};

static inline void rawc_cb(nk_io *io, unsigned ev, void *user)
{
    struct rawc *c = user;
    uint8_t buf[16384];
    if (!c->connected && (ev & NK_WRITE)) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            c->end = -err;
            nk_io_stop(io);
            c->io = NULL;
            (*c->done_count)++;
            return;
        }
        c->connected = true;
    }
    if ((ev & NK_WRITE) && c->sent < c->total) {
        size_t n = c->total - c->sent;
        if (n > sizeof buf)
            n = sizeof buf;
        nkt_stream_fill(c->seed, c->sent, buf, n);
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w > 0)
            c->sent += (size_t)w;
        if (c->sent == c->total)
            nk_io_set(io, c->read_back ? NK_READ : 0);
    }
    if (ev & NK_READ) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r > 0) {
            if (!nkt_stream_check(c->seed, c->recvd, buf, (size_t)r))
                c->mismatch = true;
            c->recvd += (size_t)r;
            if (c->recvd >= c->total) {
                nk_io_stop(io);
                c->io = NULL;
                c->end = 1;
                (*c->done_count)++;
            }
        } else if (r == 0 || errno != EAGAIN) {
            c->end = r == 0 ? 1 : -errno;
            nk_io_stop(io);
            c->io = NULL;
            (*c->done_count)++;
        }
    }
}

/* Start a nonblocking connect to @a that sends @total bytes of stream
 * @seed and, if @read_back, reads the echo and checks it. */
static inline void rawc_start(struct rawc *c, nk_loop *loop, const nk_addr *a,
                       uint64_t seed, size_t total, bool read_back,
                       int *done_count)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->total = total;
    c->read_back = read_back;
    c->done_count = done_count;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    int r = connect(c->fd, &a->u.sa, a->len);
    assert_true(r == 0 || errno == EINPROGRESS);
    assert_int_equal(nk_io_start(loop, c->fd, NK_WRITE | NK_READ, rawc_cb, c,
                                 &c->io), 0);
    if (total == 0 && !read_back)
        nk_io_set(c->io, NK_WRITE);
}

static inline void rawc_close(struct rawc *c)
{
    if (c->io)
        nk_io_stop(c->io);
    c->io = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Predicates for nkt_run_until. */
struct count_goal {
    const int *value;
    int want;
};

static inline bool reached(void *arg)
{
    const struct count_goal *g = arg;
    return *g->value >= g->want;
}

static inline void run_until_count(nk_loop *loop, const int *value, int want,
                            uint64_t max_ms)
{
    struct count_goal g = {value, want};
    int r = nkt_run_until(loop, reached, &g, 10000000, max_ms, NULL);
    if (r != 0)
        fail_msg("waited for %d, have %d (code %d)", want, *value, r);
}

/* Raise RLIMIT_NOFILE to at least @need: true if possible. */
static inline bool raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= need)
        return true;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        return false;
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

#endif
