/* Load generator for the libnetkit benchmark: one mode per run, one result
 * line on stdout ("result mode=... key=value ..."), diagnostics on stderr,
 * exit 0 when every reply was right and 1 otherwise.
 *
 *   loadgen tcp  [-c CONNS] [-s SIZE] [-d DEPTH] [-t SECS | -n COUNT] HOST:PORT
 *   loadgen udp  [-c SOCKETS] [-d WINDOW] [-s SIZE] [-t SECS] HOST:PORT
 *   loadgen room [-r RECEIVERS] [--senders N] [-s SIZE] [-d WINDOW | --rate R]
 *                [-t SECS] HOST:PORT
 *   loadgen idle [-c CONNS] [--src-ips N] --pid PID HOST:PORT
 *
 * --pid PID adds the server's CPU time over the measured interval (and, in
 * idle mode, its memory per connection). */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lg.h"
#include "upper.h"

static void usage(void)
{
    fputs("usage: loadgen tcp|udp|room|idle [-c N] [-s SIZE] [-d DEPTH|WINDOW] "
          "[-t SECS] [-w WARMUP] [-n COUNT] [-r RECEIVERS] [--senders N] "
          "[--rate MSGS_PER_S] [--timeout-ms MS] [--pid PID] [--src-ips N] "
          "HOST:PORT\n",
          stderr);
    exit(2);
}

static void parse_addr(const char *text, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host)
        usage();
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        usage();
}

/* Text with lowercase, uppercase, digits, punctuation and bytes with the
 * high bit set (0xe1 is 'a' | 0x80: it must come back unchanged). */
static void init_pattern(void)
{
    static const char alphabet[] = "the quick brown fox jumps over the lazy dog "
                                   "THE LAZY DOG 0123456789 {}[]`@~\xe1\xfa\x80\xff";
    uint32_t x = 12345;
    for (int i = 0; i < LG_PATLEN; i++) {
        x = x * 1103515245u + 12345u;
        lg_pat[i] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
    }
    memcpy(lg_pat + LG_PATLEN, lg_pat, LG_PATLEN);
    memcpy(lg_upat, lg_pat, sizeof lg_upat);
    upper_buf(lg_upat, sizeof lg_upat);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"conns", 1, 0, 'c'},      {"size", 1, 0, 's'},    {"depth", 1, 0, 'd'},
        {"window", 1, 0, 'd'},     {"secs", 1, 0, 't'},    {"warmup", 1, 0, 'w'},
        {"count", 1, 0, 'n'},      {"receivers", 1, 0, 'r'}, {"senders", 1, 0, 'S'},
        {"rate", 1, 0, 'R'},       {"timeout-ms", 1, 0, 'T'}, {"pid", 1, 0, 'p'},
        {"src-ips", 1, 0, 'I'},    {0, 0, 0, 0}};
    struct lg_opts o = {.conns = 1, .size = 64, .depth = 1, .secs = 3, .warmup = 0.5,
                        .receivers = 64, .senders = 1, .timeout_ms = 200, .src_ips = 8};
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    if (!strcmp(mode, "tcp"))
        o.mode = LG_TCP;
    else if (!strcmp(mode, "udp"))
        o.mode = LG_UDP;
    else if (!strcmp(mode, "room"))
        o.mode = LG_ROOM;
    else if (!strcmp(mode, "idle"))
        o.mode = LG_IDLE;
    else
        usage();
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "c:s:d:t:w:n:r:p:", longs, NULL)) != -1) {
        switch (c) {
        case 'c': o.conns = atoi(optarg); break;
        case 's': o.size = atoi(optarg); break;
        case 'd': o.depth = atoi(optarg); break;
        case 't': o.secs = atof(optarg); break;
        case 'w': o.warmup = atof(optarg); break;
        case 'n': o.count = strtoull(optarg, NULL, 10); break;
        case 'r': o.receivers = atoi(optarg); break;
        case 'S': o.senders = atoi(optarg); break;
        case 'R': o.rate = atof(optarg); break;
        case 'T': o.timeout_ms = atoi(optarg); break;
        case 'p': o.pid = atoi(optarg); break;
        case 'I': o.src_ips = atoi(optarg); break;
        default: usage();
        }
    }
    if (optind != argc - 1 || o.conns < 1 || o.size < 1 || o.depth < 1 ||
        o.depth > 4096 || o.size > 65000 || o.receivers < 1 || o.senders < 1 ||
        o.src_ips < 1 || o.src_ips > 200)
        usage();
    parse_addr(argv[optind], &o.addr);
    init_pattern();
    raise_nofile();
    switch (o.mode) {
    case LG_TCP: return lg_run_tcp(&o);
    case LG_UDP: return lg_run_udp(&o);
    case LG_ROOM: return lg_run_room(&o);
    case LG_IDLE: return lg_run_idle(&o);
    }
    return 2;
}
