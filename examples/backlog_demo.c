/* backlog_demo: the lesson of the seed's listen(5), made visible.
 *
 * The seed's comment says "5 is not the maximum number of connections",
 * and its single-threaded server shows why only by making a second client
 * wait. Here a server listens with a small backlog but does not accept;
 * M clients connect at once. The kernel completes the handshake for about
 * backlog + 1 of them and queues them; the others' connection requests are
 * dropped (they retry and, here, time out). Then the server accepts the
 * queued ones one by one. Nothing here is a connection limit: an accepting
 * server takes as many clients as it has descriptors.
 *
 * usage: backlog_demo [--backlog N] [--clients M]   (5 and 10)
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "example.h"

static const char *usage_text =
    "backlog_demo [--help] [--backlog N] [--clients M]";

enum { CONNECT_MS = 500, MAX_CLIENTS = 200 };

static int finished, handshaken, timed_out, failed, accepted;
static nk_tcp_conn *clients[MAX_CLIENTS];

/* Client side: each connect either completes (queued in the backlog) or
 * times out (its SYN was dropped because the queue was full). */
static void on_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                       void *user)
{
    (void)cl;
    long id = (long)(intptr_t)user;
    finished++;
    if (status == 0) {
        handshaken++;
        clients[id] = conn;
        printf("client %2ld: handshake complete, waiting in the accept queue\n",
               id);
    } else if (status == -ETIMEDOUT) {
        timed_out++;
        printf("client %2ld: no answer within %d ms "
               "(queue full: SYN dropped)\n", id, CONNECT_MS);
    } else {
        failed++;
        printf("client %2ld: %s\n", id, nk_strerror(status));
    }
}

/* A client connection is freed after its on_close: forget it there. */
static void on_client_close(nk_tcp_conn *conn, int reason, void *user)
{
    (void)conn;
    (void)reason;
    clients[(intptr_t)user] = NULL;
}

/* Server side, after resuming: one accept per loop iteration. */
static void on_open(nk_tcp_conn *conn, void *user)
{
    (void)user;
    nk_addr peer;
    nk_tcp_conn_peer(conn, &peer);
    accepted++;
    printf("accepted #%d from %s\n", accepted, ex_addr_str(&peer));
    nk_tcp_conn_close(conn);
}

static void run_until(nk_loop *loop, const int *counter, int want)
{
    for (int i = 0; i < 100000 && *counter < want; i++)
        nk_loop_run(loop, NK_RUN_ONCE);
}

int main(int argc, char **argv)
{
    ex_setup_output();
    long backlog = 5, nclients = 10;
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"backlog", required_argument, NULL, 'b'},
        {"clients", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        /* From 1: the library takes a backlog of 0 as "the system's
         * maximum", which would show nothing here. */
        bool ok = (opt == 'b' && ex_parse_number(optarg, 1, 128, &backlog)) ||
                  (opt == 'c' &&
                   ex_parse_number(optarg, 1, MAX_CLIENTS, &nclients));
        if (!ok)
            ex_usage(usage_text, false);
    }
    if (optind < argc)
        ex_usage(usage_text, false);

    nk_loop *loop;
    if (nk_loop_new(&loop) < 0)
        return 1;
    nk_addr addr;
    nk_addr_parse("127.0.0.1:0", &addr);
    nk_tcp_server_opts so = NK_TCP_SERVER_OPTS_INIT;
    so.backlog = (int)backlog;
    so.start_paused = true; /* listen(), but no accept() yet */
    so.accept_batch = 1;    /* later: one accept per iteration */
    so.on_open = on_open;
    nk_tcp_server *srv;
    int rc = nk_tcp_server_start(loop, &addr, &so, &srv);
    if (rc < 0) {
        fprintf(stderr, "backlog_demo: %s\n", nk_strerror(rc));
        return 1;
    }
    nk_tcp_server_addr(srv, &addr);
    printf("listening on %s with backlog %ld, not accepting yet\n",
           ex_addr_str(&addr), backlog);

    printf("%ld clients connect at once...\n", nclients);
    nk_tcp_client_opts co = NK_TCP_CLIENT_OPTS_INIT;
    co.connect_timeout_ms = CONNECT_MS;
    co.on_connect = on_connect;
    co.conn.on_close = on_client_close;
    for (long i = 0; i < nclients; i++) {
        co.conn.user = (void *)(intptr_t)i;
        rc = nk_tcp_client_connect(loop, &addr, &co, NULL);
        if (rc < 0) {
            printf("client %2ld: %s\n", i, nk_strerror(rc));
            finished++;
            failed++;
        }
    }
    run_until(loop, &finished, (int)nclients);
    printf("%d of %ld completed the handshake and wait in the queue; "
           "%d got no answer\n", handshaken, nclients, timed_out);

    printf("now accepting, one per loop iteration:\n");
    nk_tcp_server_resume(srv);
    run_until(loop, &accepted, handshaken);

    printf("the backlog (%ld) is the length of the queue of connections the "
           "kernel has completed and the program has not accepted yet "
           "(Linux lets backlog + 1 wait).\n", backlog);
    printf("it is not a limit on connections: a server that keeps accepting "
           "serves as many clients as it has file descriptors.\n");

    for (long i = 0; i < nclients; i++)
        nk_tcp_conn_close(clients[i]); /* NULL for those already gone */
    nk_tcp_server_free(srv);
    nk_loop_run(loop, NK_RUN_DEFAULT);
    nk_loop_free(loop);
    return 0;
}
