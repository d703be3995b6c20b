/* tcp_client: a nonblocking connect with a timeout on a loop. Once the
 * socket is connected it becomes an ordinary connection (tcp_conn.c) with a
 * configuration block and a read buffer of its own. */
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

struct nk_tcp_client {
    nk_loop *loop;
    nk_tcp_client_opts opts;
    nk_io io;
    nk_timer timer;
    struct nk__task task;   /* reports a result found without waiting */
    int fd;
    int status;             /* result to report from the task */
    bool done;              /* reported or cancelled: free in the task */
};

/* A client connection's own block: configuration plus its read buffer. */
struct own_cfg {
    struct nk__tcp_cfg cfg;
    uint8_t scratch[];
};

static void release_own(struct nk__tcp_cfg *cfg)
{
    nk__free(cfg->owner);
}

static void free_task(nk_loop *loop, void *arg)
{
    (void)loop;
    nk__free(arg);
}

/* Stop watching; the client is freed by a task on the next iteration, so a
 * caller holding the pointer inside its callback stays safe. */
static void client_end(nk_tcp_client *cl)
{
    cl->done = true;
    nk__io_stop(&cl->io);
    nk__timer_stop(&cl->timer);
    nk__loop_cancel_task(cl->loop, &cl->task);
    nk__loop_defer_task(cl->loop, &cl->task, free_task, cl);
}

static void report(nk_tcp_client *cl, int status)
{
    nk_tcp_conn *conn = NULL;
    if (cl->fd >= 0)
        nk__io_stop(&cl->io);
    if (status == 0) {
        struct own_cfg *own = nk__malloc(sizeof *own + cl->opts.read_chunk);
        if (!own) {
            status = -ENOMEM;
        } else {
            nk__tcp_cfg_init(&own->cfg, cl->loop, &cl->opts.conn);
            own->cfg.scratch = own->scratch;
            own->cfg.scratch_size = cl->opts.read_chunk;
            own->cfg.owner = own;
            own->cfg.release = release_own;
            if (cl->opts.nodelay)
                (void)nk__sock_set_int(cl->fd, IPPROTO_TCP, TCP_NODELAY, 1);
            conn = nk__tcp_conn_new(&own->cfg, cl->fd, &status);
            if (!conn) {
                nk__free(own);
            } else {
                /* The block goes with its one connection. */
                own->cfg.dying = true;
                cl->fd = -1;
            }
        }
    }
    if (cl->fd >= 0) {
        close(cl->fd);
        cl->fd = -1;
    }
    client_end(cl);
    cl->opts.on_connect(cl, conn, status, cl->opts.conn.user);
}

static void on_writable(nk_io *io, unsigned events, void *arg)
{
    (void)io;
    (void)events;
    nk_tcp_client *cl = arg;
    report(cl, nk__sock_error(cl->fd));
}

static void on_timeout(nk_timer *t, void *arg)
{
    (void)t;
    report(arg, -ETIMEDOUT);
}

static void on_task(nk_loop *loop, void *arg)
{
    (void)loop;
    nk_tcp_client *cl = arg;
    report(cl, cl->status);
}

int nk_tcp_client_connect(nk_loop *loop, const nk_addr *addr,
                          const nk_tcp_client_opts *opts, nk_tcp_client **out)
{
    if (!loop || !addr || !opts || !opts->on_connect || addr->len == 0 ||
        opts->read_chunk == 0 || opts->read_chunk > NK__TCP_READ_CHUNK_MAX ||
        nk__tcp_conn_opts_check(&opts->conn))
        return NK_EINVAL;
    nk_tcp_client *cl = nk__calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->loop = loop;
    cl->opts = *opts;
    cl->fd = -1;
    nk__timer_init(&cl->timer, loop, on_timeout, cl);
    int fd = -1;
    int r = nk__tcp_connect(addr, NULL, &fd);
    if (r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -ENOBUFS ||
        r == -EAFNOSUPPORT || r == NK_EINVAL) {
        nk__free(cl);
        return r;
    }
    cl->fd = r >= 0 ? fd : -1;
    if (r == 1) {
        nk__io_init(&cl->io, loop, fd, on_writable, cl);
        int e = nk__io_set(&cl->io, NK_WRITE);
        if (e) {
            close(fd);
            nk__free(cl);
            return e;
        }
        if (opts->connect_timeout_ms)
            nk__timer_start(&cl->timer, opts->connect_timeout_ms, 0);
    } else {
        /* Connected or refused at once: still report from the loop, never
         * from inside this call. */
        nk__io_init(&cl->io, loop, -1, on_writable, cl);
        cl->status = r < 0 ? r : 0;
        nk__loop_defer_task(loop, &cl->task, on_task, cl);
    }
    if (out)
        *out = cl;
    return 0;
}

void nk_tcp_client_cancel(nk_tcp_client *cl)
{
    if (!cl || cl->done)
        return;
    if (cl->fd >= 0) {
        nk__io_stop(&cl->io);
        close(cl->fd);
        cl->fd = -1;
    }
    client_end(cl);
}
