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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "example.h"

static const char *usage_text = "tcp_upper_client [--help] [HOST:PORT]";

enum { CONNECT_MS = 5000, REPLY_MS = 10000 };

/* Send @len bytes and read the @len bytes of the reply at the same time.
 * The server answers while it reads, so a client that sent everything
 * before reading anything would, for a line larger than the two socket
 * buffers, wait for the server while the server waits for it. Gives up
 * after REPLY_MS without progress. Returns 0 or a negative code. */
static int exchange(nk_tcp_sync *conn, const char *line, char *reply,
                    size_t len)
{
    int fd = nk_tcp_sync_fd(conn);
    size_t sent = 0, got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (sent < len)
            p.events |= POLLOUT;
        int ready = poll(&p, 1, REPLY_MS);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0)
            return -errno;
        if (ready == 0)
            return -ETIMEDOUT;
        if (sent < len && (p.revents & (POLLOUT | POLLERR))) {
            ssize_t w = send(fd, line + sent, len - sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            int r = nk_tcp_sync_recv(conn, reply + got, len - got, 0);
            if (r < 0 && r != -ETIMEDOUT)
                return r;
            if (r > 0)
                got += (size_t)r;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    ex_setup_output();
    nk_addr addr;
    ex_parse_help_and_address(argc, argv, usage_text, "127.0.0.1:9999", &addr);

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
        if (prompt) {
            fputs(">>>: ", stderr);
            fflush(stderr); /* line-buffered, and a prompt has no newline */
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break; /* end of input: done */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue; /* as the seed: empty input is not sent */

        /* Send the whole line (no newline), however many writes it takes.
         * The reply has exactly as many bytes: read all of them, not
         * "whatever one read returns". */
        char *grown = realloc(reply, (size_t)n + 1);
        rc = grown ? exchange(conn, line, grown, (size_t)n) : -ENOMEM;
        if (grown)
            reply = grown;
        if (rc == -ETIMEDOUT) {
            fprintf(stderr, "tcp_upper_client: no reply from %s within %d s\n",
                    ex_addr_str(&addr), REPLY_MS / 1000);
            status = 1;
            break;
        }
        if (rc < 0) {
            fprintf(stderr, "tcp_upper_client: server %s went away: %s\n",
                    ex_addr_str(&addr), nk_strerror(rc));
            status = 1;
            break;
        }
        /* All of it, NUL bytes included. */
        fwrite(reply, 1, (size_t)n, stdout);
        putchar('\n');
    }
    free(line);
    free(reply);
    nk_tcp_sync_close(conn);
    return status;
}
