/* udp_sender: the seed's section-4 sender, rebuilt on libnetkit.
 *
 * Each line read becomes one datagram to the room; the sender never shows
 * what the room relays. Like the seed's, it needs no event loop: blocking
 * calls are enough when a program does one thing at a time. What it adds:
 * an oversized line is refused with a clear error instead of vanishing,
 * a room that is not running is reported (ICMP comes back as
 * -ECONNREFUSED on a connected endpoint), and a validating room's
 * challenge is answered so the sender stays a full member. It exits at
 * the end of input: 0, or 1 if the room could not be reached.
 *
 * usage: udp_sender [HOST:PORT]   (127.0.0.1:8848)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "example.h"

static const char *usage_text = "udp_sender [--help] [HOST:PORT]";

/* Read what the room sent us without waiting: answer a challenge, drop the
 * rest (the sender does not display the chat). */
static void drain(nk_udp_endpoint *ep, const nk_addr *room, bool *warned)
{
    static char in[65536];
    for (;;) {
        int n = nk_udp_endpoint_recv(ep, in, sizeof in, 0, NULL, NULL);
        if (n == -ETIMEDOUT)
            return;
        if (n == -ECONNREFUSED) {
            if (!*warned)
                fprintf(stderr, "no room at %s\n", ex_addr_str(room));
            *warned = true;
            continue;
        }
        if (n < 0 && n != NK_ETRUNC)
            return;
        char answer[NK_ROOM_COOKIE_MSG_LEN];
        int a = nk_udp_room_client_handle(in, n > 0 ? (size_t)n : 0, answer,
                                          sizeof answer);
        if (a > 0)
            nk_udp_endpoint_send_to(ep, answer, (size_t)a, NULL);
    }
}

int main(int argc, char **argv)
{
    ex_setup_output();
    nk_addr room;
    ex_parse_help_and_address(argc, argv, usage_text, "127.0.0.1:8848", &room);

    nk_udp_endpoint *ep;
    int rc = nk_udp_endpoint_connect(NULL, &room, NULL, NULL, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "udp_sender: %s: %s\n", ex_addr_str(&room),
                nk_strerror(rc));
        return 1;
    }
    /* No join datagram first: a sender needs no membership to be heard,
     * and the seed's room would relay it to everyone. A validating room
     * answers the first line with its challenge, which drain() handles. */
    bool warned = false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        drain(ep, &room, &warned);
        if (n == 0)
            continue;
        rc = nk_udp_endpoint_send_to(ep, line, (size_t)n, NULL);
        if (rc == -ECONNREFUSED) /* an earlier datagram found no room */
            rc = nk_udp_endpoint_send_to(ep, line, (size_t)n, NULL);
        if (rc < 0) {
            fprintf(stderr, "send: %s\n", nk_strerror(rc));
            warned = true;
        }
    }
    drain(ep, &room, &warned);
    free(line);
    nk_udp_endpoint_close(ep);
    return warned ? 1 : 0; /* 1: the room was not reachable */
}
