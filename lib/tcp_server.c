/* tcp_server: a listener that accepts in bounded batches and hands each
 * connection to the shared connection code (tcp_conn.c). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "loop_internal.h"
#include "netkit/error.h"
#include "sock.h"
#include "tcp_conn.h"

struct nk_tcp_server {
    struct nk__tcp_cfg cfg; /* first: cfg->owner is also the server */
    nk_tcp_server_opts opts;
    nk_io io;
    nk_timer retry;          /* accepting paused while out of fds */
    struct nk__acceptor acceptor;
    nk_addr addr;
    nk_tcp_server_stats stats;
    bool paused;             /* by the application */
    bool backoff;            /* by the out-of-fds timer */
};

static void count_close(struct nk__tcp_cfg *cfg, int reason)
{
    nk_tcp_server *s = cfg->owner;
    nk_tcp_server_stats *st = &s->stats;
    switch (reason) {
    case 0:
    case NK_EDROPPED: st->closed_local++; break;
    case NK_EOF: st->closed_eof++; break;
    case -ECONNRESET:
    case -EPIPE: st->closed_reset++; break;
    case -ETIMEDOUT: st->closed_timeout++; break;
    case NK_ELINE_TOO_LONG:
    case NK_EFRAME_TOO_LARGE:
    case NK_EMIDFRAME: st->closed_frame++; break;
    case NK_EQUEUE_FULL: st->closed_queue++; break;
    default: st->closed_other++; break;
    }
}

static void release(struct nk__tcp_cfg *cfg)
{
    nk_tcp_server *s = cfg->owner;
    nk__free(s->cfg.scratch);
    nk__free(s);
}

static void set_listening(nk_tcp_server *s)
{
    unsigned want = (s->paused || s->backoff) ? 0 : NK_READ;
    if (s->io.events != want)
        (void)nk__io_set(&s->io, want);
}

static void retry_accept(nk_timer *t, void *arg)
{
    (void)t;
    nk_tcp_server *s = arg;
    s->backoff = false;
    set_listening(s);
}

static void accept_one(nk_tcp_server *s, int fd, const nk_addr *peer)
{
    if (s->opts.max_connections && s->cfg.active >= s->opts.max_connections) {
        /* Over the cap: the client gets EOF at once instead of waiting. */
        close(fd);
        s->stats.rejected++;
        return;
    }
    if (s->opts.nodelay)
        (void)nk__sock_set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    int err = 0;
    nk_tcp_conn *c = nk__tcp_conn_new(&s->cfg, fd, &err);
    if (!c) {
        close(fd);
        s->stats.accept_errors++;
        return;
    }
    s->stats.accepted++;
    if (s->opts.on_open) {
        s->cfg.opening = c;
        s->cfg.opening_peer = *peer;
        s->opts.on_open(c, nk_tcp_conn_user(c));
        s->cfg.opening = NULL;
    }
}

static void on_listener(nk_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    nk_tcp_server *s = arg;
    /* Bounded batch: other connections get their turn between batches. */
    for (unsigned i = 0; i < s->opts.accept_batch; i++) {
        if (s->cfg.dying || s->paused)
            return;
        bool shed = false;
        nk_addr peer;
        int fd = nk__accept(&s->acceptor, s->io.fd, &peer, &shed);
        if (fd >= 0) {
            accept_one(s, fd, &peer);
            continue;
        }
        if (fd == -EAGAIN)
            return;
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS ||
            fd == -ENOMEM) {
            if (shed) {
                s->stats.shed++;
                continue;
            }
            /* Nothing to shed: the pending connection stays queued and the
             * level-triggered listener would wake us at once, forever.
             * Stop watching it for a while instead of spinning. */
            s->stats.accept_pauses++;
            s->backoff = true;
            set_listening(s);
            nk__timer_start(&s->retry, s->opts.accept_retry_ms, 0);
            return;
        }
        s->stats.accept_errors++; /* ECONNABORTED and the like: next one */
    }
}

int nk_tcp_server_start(nk_loop *loop, const nk_addr *addr,
                        const nk_tcp_server_opts *opts, nk_tcp_server **out)
{
    static const nk_tcp_server_opts defaults = NK_TCP_SERVER_OPTS_INIT;
    if (!loop || !addr || !out || addr->len == 0)
        return NK_EINVAL;
    const nk_tcp_server_opts *o = opts ? opts : &defaults;
    if (o->read_chunk == 0 || o->read_chunk > NK__TCP_READ_CHUNK_MAX ||
        o->accept_batch == 0 || o->backlog < 0 || o->accept_retry_ms == 0 ||
        o->v6only < -1 || o->v6only > 1 || nk__tcp_conn_opts_check(&o->conn))
        return NK_EINVAL;
    nk_tcp_server *s = nk__calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    nk__tcp_cfg_init(&s->cfg, loop, &o->conn);
    s->opts = *o;
    s->cfg.owner = s;
    s->cfg.on_closed = count_close;
    s->cfg.release = release;
    s->cfg.scratch_size = o->read_chunk;
    s->cfg.scratch = nk__malloc(o->read_chunk);
    s->acceptor.reserve_fd = -1;
    int r = s->cfg.scratch ? 0 : -ENOMEM;
    if (!r)
        r = nk__acceptor_init(&s->acceptor);
    struct nk__sock_opts so = NK__SOCK_OPTS_INIT;
    so.reuseport = o->reuseport;
    so.v6only = o->v6only;
    int fd = -1;
    if (!r) {
        fd = nk__tcp_listen(addr, o->backlog, &so);
        if (fd < 0)
            r = fd;
    }
    if (!r)
        r = nk__sock_name(fd, &s->addr);
    if (!r) {
        nk__io_init(&s->io, loop, fd, on_listener, s);
        nk__timer_init(&s->retry, loop, retry_accept, s);
        s->paused = o->start_paused;
        r = nk__io_set(&s->io, s->paused ? 0 : NK_READ);
    }
    if (r) {
        if (fd >= 0)
            close(fd);
        nk__acceptor_free(&s->acceptor);
        nk__free(s->cfg.scratch);
        nk__free(s);
        return r;
    }
    *out = s;
    return 0;
}

void nk_tcp_server_free(nk_tcp_server *s)
{
    if (!s || s->cfg.dying)
        return;
    int fd = s->io.fd;
    nk__io_stop(&s->io);
    nk__timer_stop(&s->retry);
    close(fd);
    nk__acceptor_free(&s->acceptor);
    nk__tcp_cfg_close_all(&s->cfg);
    /* Freed by the deferred task once every on_close has run. */
    nk__tcp_cfg_retire(&s->cfg);
}

int nk_tcp_server_pause(nk_tcp_server *s)
{
    if (!s)
        return NK_EINVAL;
    if (s->cfg.dying)
        return NK_ECLOSED;
    s->paused = true;
    set_listening(s);
    return 0;
}

int nk_tcp_server_resume(nk_tcp_server *s)
{
    if (!s)
        return NK_EINVAL;
    if (s->cfg.dying)
        return NK_ECLOSED;
    s->paused = false;
    unsigned want = s->backoff ? 0 : NK_READ;
    return s->io.events == want ? 0 : nk__io_set(&s->io, want);
}

int nk_tcp_server_port(const nk_tcp_server *s)
{
    return s ? nk_addr_port(&s->addr) : NK_EINVAL;
}

int nk_tcp_server_addr(const nk_tcp_server *s, nk_addr *out)
{
    if (!s || !out)
        return NK_EINVAL;
    *out = s->addr;
    return 0;
}

void nk_tcp_server_get_stats(const nk_tcp_server *s, nk_tcp_server_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    *out = s->stats;
    out->active = s->cfg.active;
    out->read_pauses = s->cfg.read_pauses;
}
