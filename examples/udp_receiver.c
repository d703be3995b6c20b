/* udp_receiver: the seed's section-4 receiver, rebuilt on libnetkit.
 *
 * As in the seed, it first sends `register` so the room learns its address
 * (the room relays that word to everyone, itself included), then prints
 * every datagram it receives as one line. Unlike the seed's, it stays a
 * member while it only listens, by sending an empty datagram now and then
 * (a room refreshes the sender and relays nothing), answers a validating
 * room's challenge, reports a room that is not there instead of waiting in
 * silence, stops after --count lines if asked, and exits 0 on SIGINT or
 * SIGTERM.
 *
 * usage: udp_receiver [--count N] [HOST:PORT]   (127.0.0.1:8848)
 */
#include <getopt.h>
#include <stdio.h>

#include "example.h"

static const char *usage_text =
    "udp_receiver [--help] [--count N] [HOST:PORT]";

#define KEEPALIVE_MS 15000 /* inside any TTL of 15 s or more */

static long count;         /* 0: no limit */
static unsigned long printed;
static bool warned;

static void on_room(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    nk_loop *loop = user;
    if (ev->error != 0) {
        if (!warned) /* e.g. -ECONNREFUSED: nothing listens there (yet) */
            fprintf(stderr, "room not reachable: %s\n", nk_strerror(ev->error));
        warned = true;
        return;
    }
    char answer[NK_ROOM_COOKIE_MSG_LEN];
    int n = nk_udp_room_client_handle(ev->data, ev->len, answer, sizeof answer);
    if (n > 0) { /* the room asks us to prove our address */
        nk_udp_endpoint_send_to(ep, answer, (size_t)n, NULL);
        return;
    }
    if (ex_room_noise(ev->data, ev->len) && !ev->truncated)
        return; /* another client's join or keepalive, relayed */
    if (ev->truncated)
        fprintf(stderr, "datagram of %zu bytes truncated\n", ev->size);
    ex_put_text(stdout, ev->data, ev->len); /* one datagram, one line */
    putchar('\n');
    if (count > 0 && ++printed >= (unsigned long)count)
        nk_loop_stop(loop);
}

static void on_keepalive(nk_timer *t, void *user)
{
    (void)t;
    nk_udp_endpoint_send_to(user, "", 0, NULL);
}

int main(int argc, char **argv)
{
    ex_setup_output();
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"count", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        if (opt != 'c' || !ex_parse_number(optarg, 1, 1000000000, &count))
            ex_usage(usage_text, false);
    }
    nk_addr room;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:8848", &room))
        ex_usage(usage_text, false);

    nk_loop *loop = NULL;
    nk_udp_endpoint *ep = NULL;
    nk_timer *keepalive = NULL;
    int rc = nk_loop_new(&loop);
    if (rc == 0)
        rc = nk_udp_endpoint_connect(loop, &room, NULL, on_room, loop, &ep);
    if (rc == 0)
        rc = ex_stop_on_signals(loop);
    if (rc == 0)
        rc = nk_timer_start(loop, KEEPALIVE_MS, KEEPALIVE_MS, on_keepalive, ep,
                            &keepalive);
    if (rc == 0)
        rc = nk_udp_endpoint_send_to(ep, "register", 8, NULL);
    if (rc < 0) {
        fprintf(stderr, "udp_receiver: %s: %s\n", ex_addr_str(&room),
                nk_strerror(rc));
        return 1;
    }

    rc = nk_loop_run(loop, NK_RUN_DEFAULT); /* until --count, or a signal */

    nk_timer_stop(keepalive);
    ex_release_signals();
    nk_udp_endpoint_close(ep);
    nk_loop_free(loop);
    return rc < 0 ? 1 : 0;
}
