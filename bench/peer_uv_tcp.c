/* Uppercase echo on libuv, written as libuv's users write it well: one
 * shared read buffer, uv_try_write first, and a queued uv_write of the rest
 * (with reading paused) only when the socket would block. */
#include <uv.h>

#include "peer.h"
#include "upper.h"

static char rbuf[65536];

struct wreq {
    uv_write_t req;
    char data[];
};

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static void on_written(uv_write_t *req, int status)
{
    uv_stream_t *s = req->handle;
    free(req);
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0)
        return;
    upper_buf(b->base, (size_t)n);
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == UV_EAGAIN)
        w = 0;
    if (w < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (w < n) {
        size_t rest = (size_t)(n - w);
        struct wreq *r = malloc(sizeof *r + rest);
        if (!r)
            peer_die("malloc");
        memcpy(r->data, b->base + w, rest);
        uv_buf_t rb = uv_buf_init(r->data, (unsigned)rest);
        uv_read_stop(s);
        uv_write(&r->req, s, &rb, 1, on_written);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        peer_die("malloc");
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) < 0) {
        uv_close((uv_handle_t *)c, on_close);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 9999);
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_signal_t sigint, sigterm;

    signal(SIGPIPE, SIG_IGN);
    uv_tcp_init(loop, &server);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0) < 0 ||
        uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection) < 0)
        peer_die("listen");
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
