/* udp_chat_client: the seed's section-3 chat client, rebuilt on libnetkit.
 *
 * The seed's client reads a line, sends it, then waits for exactly one
 * datagram: it sees one message per line typed, so what others say piles
 * up unseen, and one lost datagram blocks it for ever. This one watches
 * the keyboard and the room together on one event loop and prints every
 * message the moment it arrives, while you are still typing. It joins the
 * room with a datagram the room does not relay, keeps its membership alive
 * with empty datagrams (which rooms do not relay either), answers a
 * validating room's challenge without showing it, and at the end of input
 * waits --linger milliseconds for late messages before it exits: 0, or 1
 * if the room could not be reached.
 *
 * usage: udp_chat_client [--linger MS] [HOST:PORT]   (127.0.0.1:8848)
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "example.h"

static const char *usage_text =
    "udp_chat_client [--help] [--linger MS] [HOST:PORT]";

#define KEEPALIVE_MS 15000 /* inside any TTL of 15 s or more */

struct chat {
    nk_loop *loop;
    nk_udp_endpoint *ep;
    nk_io *input;
    nk_timer *linger, *keepalive;
    long linger_ms;
    bool warned;
    size_t have;
    char line[NK_UDP_MAX_IPV4]; /* one datagram at most */
};

/* Every datagram from the room: a challenge is answered, the rest shown. */
static void on_room(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    struct chat *c = user;
    if (ev->error != 0) {
        if (!c->warned)
            fprintf(stderr, "room not reachable: %s\n", nk_strerror(ev->error));
        c->warned = true;
        return;
    }
    char answer[NK_ROOM_COOKIE_MSG_LEN];
    int n = nk_udp_room_client_handle(ev->data, ev->len, answer, sizeof answer);
    if (n > 0) {
        nk_udp_endpoint_send_to(ep, answer, (size_t)n, NULL);
        return;
    }
    if (ex_room_noise(ev->data, ev->len) && !ev->truncated)
        return; /* another client's join or keepalive, relayed */
    ex_put_text(stdout, ev->data, ev->len); /* one message, one line */
    putchar('\n');
}

static void send_line(struct chat *c, const char *text, size_t len)
{
    if (len == 0)
        return; /* nothing typed, nothing sent */
    int rc = nk_udp_endpoint_send_to(c->ep, text, len, NULL);
    if (rc < 0)
        fprintf(stderr, "send: %s\n", nk_strerror(rc));
}

static void on_linger_done(nk_timer *t, void *user)
{
    (void)t;
    nk_loop_stop(((struct chat *)user)->loop);
}

static void end_of_input(struct chat *c)
{
    send_line(c, c->line, c->have); /* a last line without its newline */
    c->have = 0;
    nk_timer_start(c->loop, (uint64_t)c->linger_ms, 0, on_linger_done, c,
                   &c->linger);
}

/* Send each complete line in the buffer; keep the rest for later. */
static void take_lines(struct chat *c)
{
    char *start = c->line, *nl;
    while ((nl = memchr(start, '\n', c->have - (size_t)(start - c->line)))) {
        send_line(c, start, (size_t)(nl - start));
        start = nl + 1;
    }
    c->have -= (size_t)(start - c->line);
    memmove(c->line, start, c->have);
    if (c->have == sizeof c->line) { /* a line longer than a datagram */
        send_line(c, c->line, c->have);
        c->have = 0;
    }
}

/* The keyboard is ready: one read() cannot block now. */
static void on_input(nk_io *io, unsigned events, void *user)
{
    (void)events;
    struct chat *c = user;
    ssize_t r = read(nk_io_fd(io), c->line + c->have, sizeof c->line - c->have);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        nk_io_stop(io);
        c->input = NULL;
        end_of_input(c);
        return;
    }
    c->have += (size_t)r;
    take_lines(c);
}

static void on_keepalive(nk_timer *t, void *user)
{
    (void)t;
    nk_udp_endpoint_send_to(((struct chat *)user)->ep, "", 0, NULL);
}

int main(int argc, char **argv)
{
    ex_setup_output();
    static struct chat c = {.linger_ms = 500};
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"linger", required_argument, NULL, 'l'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        if (opt != 'l' || !ex_parse_number(optarg, 0, 3600000, &c.linger_ms))
            ex_usage(usage_text, false);
    }
    nk_addr room;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:8848", &room))
        ex_usage(usage_text, false);

    int rc = nk_loop_new(&c.loop);
    if (rc == 0)
        rc = nk_udp_endpoint_connect(c.loop, &room, NULL, on_room, &c, &c.ep);
    if (rc == 0)
        rc = ex_stop_on_signals(c.loop);
    if (rc == 0)
        rc = nk_timer_start(c.loop, KEEPALIVE_MS, KEEPALIVE_MS, on_keepalive,
                            &c, &c.keepalive);
    if (rc < 0) {
        fprintf(stderr, "udp_chat_client: %s: %s\n", ex_addr_str(&room),
                nk_strerror(rc));
        return 1;
    }
    char hello[NK_ROOM_HELLO_LEN];
    nk_udp_room_client_hello(hello, sizeof hello);
    nk_udp_endpoint_send_to(c.ep, hello, sizeof hello, NULL); /* join */

    rc = nk_io_start(c.loop, STDIN_FILENO, NK_READ, on_input, &c, &c.input);
    if (rc == -EPERM) { /* a regular file: epoll cannot watch it; read it now */
        c.input = NULL;
        ssize_t r;
        while ((r = read(STDIN_FILENO, c.line + c.have,
                         sizeof c.line - c.have)) > 0) {
            c.have += (size_t)r;
            take_lines(&c);
        }
        end_of_input(&c);
    } else if (rc < 0) {
        fprintf(stderr, "udp_chat_client: stdin: %s\n", nk_strerror(rc));
        return 1;
    }

    /* Until the linger time after the end of input, or a signal. */
    rc = nk_loop_run(c.loop, NK_RUN_DEFAULT);

    nk_io_stop(c.input);
    nk_timer_stop(c.linger);
    nk_timer_stop(c.keepalive);
    ex_release_signals();
    nk_udp_endpoint_close(c.ep);
    nk_loop_free(c.loop);
    return rc < 0 || c.warned ? 1 : 0; /* 1: the room was not reachable */
}
