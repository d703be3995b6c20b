/* Uppercase echo on libnetkit's TCP server with its defaults (raw framing,
 * TCP_NODELAY, shared read buffer, bounded write queue): the bench's view
 * of what a user writes. on_data's bytes are read-only, so the reply is
 * built in one uppercasing copy and sent. */
#include "nk_common.h"
#include "upper.h"

static unsigned char out[65536];

static void on_data(nk_tcp_conn *conn, const void *data, size_t len, void *user)
{
    (void)user;
    const unsigned char *p = data;
    while (len > 0) {
        size_t n = len < sizeof out ? len : sizeof out;
        upper_copy(out, p, n);
        if (nk_tcp_conn_send(conn, out, n) < 0)
            return; /* closing: on_close follows */
        p += n;
        len -= n;
    }
}

int main(int argc, char **argv)
{
    nk_addr addr;
    nk_tcp_server *srv;
    nk_loop *loop = nk_bench_setup(argc, argv, "127.0.0.1:9999", &addr);
    nk_tcp_server_opts opts = NK_TCP_SERVER_OPTS_INIT;
    opts.backlog = 4096;
    opts.conn.on_data = on_data;
    nk_bench_check(nk_tcp_server_start(loop, &addr, &opts, &srv), "listen");
    nk_bench_check(nk_loop_run(loop, NK_RUN_DEFAULT), "loop");
    return 0;
}
