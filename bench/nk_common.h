/* What the libnetkit bench servers share: the HOST:PORT operand and a
 * clean stop on SIGINT/SIGTERM, through the public API only. */
#ifndef BENCH_NK_COMMON_H
#define BENCH_NK_COMMON_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "netkit.h"

static inline void nk_bench_check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", what, nk_strerror(rc));
        exit(1);
    }
}

static void nk_bench_on_signal(nk_signal *sig, int signum, void *user)
{
    (void)sig;
    (void)signum;
    nk_loop_stop(user);
}

/* Make a loop that stops on SIGINT/SIGTERM; parse argv[1] (or @def). */
static inline nk_loop *nk_bench_setup(int argc, char **argv, const char *def, nk_addr *addr)
{
    nk_loop *loop;
    nk_signal *s1, *s2;
    nk_bench_check(nk_addr_parse(argc > 1 ? argv[1] : def, addr), "address");
    nk_bench_check(nk_loop_new(&loop), "loop");
    nk_bench_check(nk_signal_start(loop, SIGINT, nk_bench_on_signal, loop, &s1), "signal");
    nk_bench_check(nk_signal_start(loop, SIGTERM, nk_bench_on_signal, loop, &s2), "signal");
    return loop;
}

#endif
