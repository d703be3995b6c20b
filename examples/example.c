#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example.h"

void ex_usage(const char *usage, bool asked)
{
    fprintf(asked ? stdout : stderr, "usage: %s\n", usage);
    exit(asked ? 0 : EX_USAGE_STATUS);
}

void ex_setup_output(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IOLBF, 0);
}

bool ex_parse_number(const char *text, long min, long max, long *out)
{
    if (!text || !*text)
        return false;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool ex_parse_address(int argc, char **argv, int optind, const char *def_text,
                      nk_addr *out)
{
    /* The program's name as its other messages give it, without a path. */
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1
                                             : argv[0];
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one HOST:PORT at most\n", name);
        return false;
    }
    const char *text = optind < argc ? argv[optind] : def_text;
    int rc = nk_addr_resolve(text, AF_UNSPEC, out);
    if (rc < 0) {
        fprintf(stderr, "%s: %s: %s\n", name, text, nk_strerror(rc));
        return false;
    }
    return true;
}

void ex_parse_help_and_address(int argc, char **argv, const char *usage,
                               const char *def_text, nk_addr *out)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1)
        ex_usage(usage, opt == 'h');
    if (!def_text) {
        if (optind < argc)
            ex_usage(usage, false);
        return;
    }
    if (!ex_parse_address(argc, argv, optind, def_text, out))
        ex_usage(usage, false);
}

static void on_stop_signal(nk_signal *sig, int signum, void *user)
{
    (void)sig;
    (void)signum;
    nk_loop_stop(user);
}

static nk_signal *stop_signals[2];

int ex_stop_on_signals(nk_loop *loop)
{
    static const int signals[] = {SIGINT, SIGTERM};
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++) {
        int rc = nk_signal_start(loop, signals[i], on_stop_signal, loop,
                                 &stop_signals[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void ex_release_signals(void)
{
    for (size_t i = 0; i < sizeof stop_signals / sizeof *stop_signals; i++) {
        nk_signal_stop(stop_signals[i]);
        stop_signals[i] = NULL;
    }
}

void ex_put_text(FILE *f, const void *data, size_t len)
{
    const unsigned char *p = data;
    if (len > 0 && p[len - 1] == '\n')
        len -= len > 1 && p[len - 2] == '\r' ? 2 : 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != 0x7f)
            putc(c, f);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

bool ex_room_noise(const void *data, size_t len)
{
    char hello[NK_ROOM_HELLO_LEN];
    if (len == 0)
        return true;
    return len == sizeof hello &&
           nk_udp_room_client_hello(hello, sizeof hello) == (int)sizeof hello &&
           memcmp(data, hello, sizeof hello) == 0;
}

const char *ex_addr_str(const nk_addr *addr)
{
    static char buf[NK_ADDR_STRLEN];
    if (nk_addr_format(addr, buf, sizeof buf) < 0)
        return "?";
    return buf;
}
