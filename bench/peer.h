/* What the peer servers share: the HOST:PORT operand, sockets, and a clean
 * exit on SIGINT/SIGTERM (so valgrind and perf see a normal end). The peers
 * use no part of libnetkit: they are what it is compared with. */
#ifndef BENCH_PEER_H
#define BENCH_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t peer_stop;

static void peer_on_signal(int sig)
{
    (void)sig;
    peer_stop = 1;
}

/* No SA_RESTART: a blocked recv or epoll_wait returns EINTR and the loop
 * sees peer_stop. */
static inline void peer_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = peer_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static inline void peer_die(const char *what)
{
    perror(what);
    exit(1);
}

/* argv[1] is "HOST:PORT" (IPv4), default 127.0.0.1:@defport. */
static inline struct sockaddr_in peer_addr(int argc, char **argv, int defport)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)defport);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (argc > 1) {
        char host[64];
        const char *colon = strrchr(argv[1], ':');
        size_t hl = colon ? (size_t)(colon - argv[1]) : 0;
        if (!colon || hl >= sizeof host) {
            fprintf(stderr, "usage: %s [HOST:PORT]\n", argv[0]);
            exit(2);
        }
        memcpy(host, argv[1], hl);
        host[hl] = 0;
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            fprintf(stderr, "%s: bad address %s\n", argv[0], argv[1]);
            exit(2);
        }
        sa.sin_port = htons((uint16_t)atoi(colon + 1));
    }
    return sa;
}

static inline int peer_socket(int type, const struct sockaddr_in *sa, int nonblock)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    int one = 1;
    if (fd < 0)
        peer_die("socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0)
        peer_die("bind");
    if (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)
        peer_die("listen");
    return fd;
}

#endif
