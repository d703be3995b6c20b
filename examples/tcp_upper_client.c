/* tcp_upper_client: the seed's section-1 TCP client, rebuilt on libnetkit.
 *
 * The seed's client sends a line and prints what a single recv(1024)
 * returns, as if one read were one reply: TCP is a byte stream, so a reply
 * can arrive in pieces (or glued to the next one). This one knows the
 * reply is as long as the request, reads exactly that many bytes with a
 * timeout, says clearly when the server cannot be reached or goes away,
 * and exits 0 at the end of its input.
 *
 * usage: tcp_upper_client [HOST:PORT]   (127.0.0.1:9999)
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

static const char *usage_text = "tcp_upper_client [--help] [HOST:PORT]";

enum { CONNECT_MS = 5000, REPLY_MS = 10000 };

int main(int argc, char **argv)
{
    ex_setup_output();
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        ex_usage(usage_text, opt == 'h');
    nk_addr addr;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:9999", &addr))
        ex_usage(usage_text, false);

    /* Blocking calls with deadlines: this program needs no event loop. */
    nk_tcp_sync *conn;
    int rc = nk_tcp_sync_connect(&addr, CONNECT_MS, &conn);
    if (rc < 0) {
        fprintf(stderr, "tcp_upper_client: cannot connect to %s: %s\n",
                ex_addr_str(&addr), nk_strerror(rc));
        return 1;
    }
    bool prompt = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    char *reply = NULL;
    int status = 0;
    for (;;) {
        if (prompt)
            fputs(">>>: ", stderr);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break; /* end of input: done */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue; /* as the seed: empty input is not sent */

        /* Send the whole line (no newline), however many writes it takes. */
        rc = nk_tcp_sync_send_all(conn, line, (size_t)n, REPLY_MS);
        /* The reply has exactly as many bytes: read all of them, not
         * "whatever one read returns". */
        char *grown = rc == 0 ? realloc(reply, (size_t)n + 1) : reply;
        if (rc == 0 && !grown)
            rc = -ENOMEM;
        reply = grown;
        if (rc == 0)
            rc = nk_tcp_sync_recv_exact(conn, reply, (size_t)n, REPLY_MS);
        if (rc < 0) {
            fprintf(stderr, "tcp_upper_client: server %s went away: %s\n",
                    ex_addr_str(&addr), nk_strerror(rc));
            status = 1;
            break;
        }
        reply[n] = '\0';
        printf("%s\n", reply);
    }
    free(line);
    free(reply);
    nk_tcp_sync_close(conn);
    return status;
}
