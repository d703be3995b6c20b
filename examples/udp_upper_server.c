/* udp_upper_server: the seed's section-2 UDP server, rebuilt on libnetkit.
 *
 * The seed's server loops on recvfrom(1024): a longer datagram is cut to
 * 1024 bytes without a word, and the program can only be stopped by
 * killing it. This one receives on an event loop, many datagrams per
 * system call, with a 64 KiB buffer so no datagram is cut; if one ever is,
 * it says so with the datagram's real size instead of passing the piece
 * on as the whole. It prints a line per datagram naming the sender
 * (--quiet: none, for runs under load; errors still go to stderr, and
 * replies dropped for a full buffer are only counted), replies with the
 * uppercased datagram, and exits 0 on SIGINT or SIGTERM.
 *
 * usage: udp_upper_server [--quiet] [HOST:PORT]   (127.0.0.1:8888)
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "example.h"
#include "upper.h" /* upper_copy(): a-z to A-Z */

static const char *usage_text =
    "udp_upper_server [--help] [--quiet] [HOST:PORT]";

static unsigned long long served;
static bool quiet; /* no line per datagram */

/* One call per datagram; ev->data is valid during the call only. */
static void on_datagram(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                        void *user)
{
    (void)user;
    if (ev->error != 0) {
        /* UDP reports some errors late (ICMP); the socket is still fine. */
        fprintf(stderr, "error from %s: %s\n",
                ev->from ? ex_addr_str(ev->from) : "?", nk_strerror(ev->error));
        return;
    }
    if (ev->truncated) {
        fprintf(stderr, "from %s: datagram of %zu bytes truncated to %zu, "
                "not answered\n", ex_addr_str(ev->from), ev->size, ev->len);
        return;
    }
    if (!quiet) {
        printf("received from %s said: ", ex_addr_str(ev->from));
        ex_put_text(stdout, ev->data, ev->len); /* one datagram, one line */
        putchar('\n');
    }
    static uint8_t reply[65536];
    upper_copy(reply, ev->data, ev->len);
    /* A send either hands the whole datagram to the system or fails: UDP
     * never sends part of one. A full buffer drops it, as the network may. */
    int rc = nk_udp_endpoint_send_to(ep, reply, ev->len, ev->from);
    bool dropped = rc == -EAGAIN || rc == -ENOBUFS; /* in the final count */
    if (rc < 0 && !(quiet && dropped))
        fprintf(stderr, "reply to %s: %s\n", ex_addr_str(ev->from),
                nk_strerror(rc));
    served++;
}

int main(int argc, char **argv)
{
    ex_setup_output();
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt != 'q')
            ex_usage(usage_text, opt == 'h');
        quiet = true;
    }
    nk_addr addr;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:8888", &addr))
        ex_usage(usage_text, false);

    nk_loop *loop;
    int rc = nk_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "udp_upper_server: %s\n", nk_strerror(rc));
        return 1;
    }
    nk_udp_endpoint *ep;
    rc = nk_udp_endpoint_bind(loop, &addr, NULL, on_datagram, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "udp_upper_server: cannot bind %s: %s\n",
                ex_addr_str(&addr), nk_strerror(rc));
        nk_loop_free(loop);
        return 1;
    }
    nk_udp_endpoint_local_addr(ep, &addr); /* the real port if 0 was asked */
    if ((rc = ex_stop_on_signals(loop)) < 0) {
        fprintf(stderr, "udp_upper_server: %s\n", nk_strerror(rc));
        return 1;
    }
    printf("listening on %s\n", ex_addr_str(&addr));

    rc = nk_loop_run(loop, NK_RUN_DEFAULT); /* until SIGINT or SIGTERM */

    ex_release_signals();
    nk_udp_endpoint_stats st;
    nk_udp_endpoint_get_stats(ep, &st);
    nk_udp_endpoint_close(ep);
    nk_loop_free(loop);
    printf("stopped after %llu datagrams (%llu truncated, %llu replies "
           "dropped)\n", served, (unsigned long long)st.truncated,
           (unsigned long long)st.send_drops);
    return rc < 0 ? 1 : 0;
}
