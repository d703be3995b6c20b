/* udp_upper_client: the client the seed's section 2 meant to show (the
 * article pastes its server twice), rebuilt on libnetkit.
 *
 * Each line typed becomes one datagram; the reply is printed as a line.
 * UDP may lose a datagram or its reply, and a client that waits for ever,
 * as the seed's would, then hangs: this one waits --timeout milliseconds,
 * says so on stderr and goes on with the next line. Because the endpoint
 * is connected, "nobody listens on that port" (an ICMP error) comes back
 * as a clear error instead of silence. It exits 0 when every line got its
 * reply, 1 when some did not (no server, or no reply in time).
 *
 * usage: udp_upper_client [--timeout MS] [HOST:PORT]   (127.0.0.1:8888)
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"

static const char *usage_text =
    "udp_upper_client [--help] [--timeout MS] [HOST:PORT]";

int main(int argc, char **argv)
{
    ex_setup_output();
    long timeout_ms = 1000;
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        if (opt != 't' || !ex_parse_number(optarg, 0, 3600000, &timeout_ms))
            ex_usage(usage_text, false);
    }
    nk_addr server;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:8888", &server))
        ex_usage(usage_text, false);

    /* No loop: this client does one thing at a time, with blocking calls
     * that each have a deadline. */
    nk_udp_endpoint *ep;
    int rc = nk_udp_endpoint_connect(NULL, &server, NULL, NULL, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "udp_upper_client: %s: %s\n", ex_addr_str(&server),
                nk_strerror(rc));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    static char reply[65536];
    int status = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0)
            continue; /* as the seed does: nothing typed, nothing sent */
        /* A reply that came after we gave up on it must not pass for the
         * answer to this line: take it out first. */
        int late;
        while ((late = nk_udp_endpoint_recv(ep, reply, sizeof reply, 0, NULL,
                                            NULL)) >= 0)
            fprintf(stderr, "late reply ignored: %.*s\n", late, reply);
        rc = nk_udp_endpoint_send_to(ep, line, (size_t)n, NULL);
        if (rc < 0) {
            fprintf(stderr, "send: %s\n", nk_strerror(rc));
            status = 1;
            continue;
        }
        nk_udp_recv_info info;
        rc = nk_udp_endpoint_recv(ep, reply, sizeof reply, (int)timeout_ms,
                                  NULL, &info);
        if (rc < 0)
            status = 1;
        if (rc == -ETIMEDOUT)
            fprintf(stderr, "no reply within %ld ms\n", timeout_ms);
        else if (rc == -ECONNREFUSED)
            fprintf(stderr, "no server at %s\n", ex_addr_str(&server));
        else if (rc == NK_ETRUNC)
            fprintf(stderr, "reply of %zu bytes truncated\n", info.size);
        else if (rc < 0)
            fprintf(stderr, "receive: %s\n", nk_strerror(rc));
        else {
            ex_put_text(stdout, reply, (size_t)rc); /* one reply, one line */
            putchar('\n');
        }
    }
    free(line);
    nk_udp_endpoint_close(ep);
    return status;
}
