/* tcp_upper_server: the seed's section-1 TCP server, rebuilt on libnetkit.
 *
 * The seed's server accepts one client and serves it alone until it leaves,
 * so every other client waits in the backlog; it assumes one recv() is one
 * message, ignores partial sends, and a client that vanishes mid-write
 * would kill a C version with SIGPIPE. This one serves any number of
 * clients at once on one event loop, replies to every chunk as it arrives,
 * lets the library queue what a socket cannot take at once (and stop
 * reading a client that never reads), logs connects, disconnects and
 * resets, and exits 0 on SIGINT or SIGTERM. Its backlog is the seed's 5
 * by default: a queue of finished handshakes, not a connection limit. For
 * bursts of new clients give it more (--backlog 511): Linux drops the
 * handshakes that find the queue full, and their clients retry a second
 * later. A client silent for --idle-timeout seconds (300; 0:
 * never) is closed, so clients that connect and say nothing, or a byte a
 * minute, do not hold descriptors for ever.
 *
 * usage: tcp_upper_server [--backlog N] [--idle-timeout SEC] [HOST:PORT]
 *        (127.0.0.1:9999)
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "example.h"
#include "upper.h" /* upper_copy(): a-z to A-Z */

static const char *usage_text =
    "tcp_upper_server [--help] [--backlog N] [--idle-timeout SEC] "
    "[HOST:PORT]";

/* What we remember per client: its address, for the log lines. */
struct client {
    nk_addr peer;
};

static size_t clients;

static void on_open(nk_tcp_conn *conn, void *user)
{
    (void)user;
    struct client *cl = calloc(1, sizeof *cl);
    if (cl)
        (void)nk_tcp_conn_peer(conn, &cl->peer);
    nk_tcp_conn_set_user(conn, cl);
    clients++;
    fprintf(stderr, "connect %s (%zu connected)\n",
            cl ? ex_addr_str(&cl->peer) : "?", clients);
}

/* Raw framing: @data is whatever one read returned, up to the read size. */
static void on_data(nk_tcp_conn *conn, const void *data, size_t len,
                    void *user)
{
    (void)user;
    static uint8_t reply[65536];
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = len < sizeof reply ? len : sizeof reply;
        upper_copy(reply, p, n);
        /* send() copies what the socket cannot take now; past the high
         * watermark the library stops reading this client by itself. */
        if (nk_tcp_conn_send(conn, reply, n) < 0)
            return; /* the connection is closing; on_close says why */
        p += n;
        len -= n;
    }
}

static void on_close(nk_tcp_conn *conn, int reason, void *user)
{
    (void)conn;
    struct client *cl = user;
    clients--;
    const char *who = cl ? ex_addr_str(&cl->peer) : "?";
    if (reason == NK_EOF || reason == 0)
        fprintf(stderr, "disconnect %s (%zu connected)\n", who, clients);
    else if (reason == -ECONNRESET || reason == -EPIPE)
        fprintf(stderr, "reset %s (%zu connected)\n", who, clients);
    else if (reason == -ETIMEDOUT)
        fprintf(stderr, "idle %s closed (%zu connected)\n", who, clients);
    else
        fprintf(stderr, "closed %s: %s (%zu connected)\n", who,
                nk_strerror(reason), clients);
    free(cl);
}

int main(int argc, char **argv)
{
    ex_setup_output();
    /* The seed's listen(5): a queue, not a limit. Linux drops handshakes
     * that find it full and their clients retry a second later, so a
     * server expecting bursts asks for more; the kernel caps it at
     * net.core.somaxconn. */
    long backlog = 5;
    long idle_s = 300;
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"backlog", required_argument, NULL, 'b'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        bool ok = (opt == 'b' && ex_parse_number(optarg, 1, 65535, &backlog)) ||
                  (opt == 'i' && ex_parse_number(optarg, 0, 86400, &idle_s));
        if (!ok)
            ex_usage(usage_text, false);
    }
    nk_addr addr;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:9999", &addr))
        ex_usage(usage_text, false);

    nk_loop *loop;
    int rc = nk_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "tcp_upper_server: %s\n", nk_strerror(rc));
        return 1;
    }
    nk_tcp_server_opts opts = NK_TCP_SERVER_OPTS_INIT;
    opts.backlog = (int)backlog;
    opts.on_open = on_open;
    opts.conn.on_data = on_data;
    opts.conn.on_close = on_close;
    opts.conn.idle_timeout_ms = (uint64_t)idle_s * 1000;
    nk_tcp_server *srv;
    rc = nk_tcp_server_start(loop, &addr, &opts, &srv);
    if (rc < 0) {
        fprintf(stderr, "tcp_upper_server: cannot listen on %s: %s\n",
                ex_addr_str(&addr), nk_strerror(rc));
        nk_loop_free(loop);
        return 1;
    }
    nk_tcp_server_addr(srv, &addr); /* the real port if 0 was asked */
    rc = ex_stop_on_signals(loop);
    if (rc < 0) {
        fprintf(stderr, "tcp_upper_server: %s\n", nk_strerror(rc));
        return 1;
    }
    printf("listening on %s (backlog %ld)\n", ex_addr_str(&addr), backlog);

    rc = nk_loop_run(loop, NK_RUN_DEFAULT); /* until SIGINT or SIGTERM */

    /* Clean shutdown: no more signals to wait for, close every client,
     * let their close callbacks run, then free the loop. */
    ex_release_signals();
    nk_tcp_server_stats st;
    nk_tcp_server_get_stats(srv, &st);
    nk_tcp_server_free(srv);
    nk_loop_run(loop, NK_RUN_DEFAULT);
    nk_loop_free(loop);
    printf("stopped after %llu connections\n", (unsigned long long)st.accepted);
    return rc < 0 ? 1 : 0;
}
