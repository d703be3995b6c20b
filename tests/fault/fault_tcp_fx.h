/* The TCP fault tests' fixture: a loop and an echo server whose
 * callbacks record opens, closes with their reasons and stats, and send
 * failures; bounded waits on them; a raw-client echo check. */
#ifndef FAULT_TCP_FX_H
#define FAULT_TCP_FX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/addr.h"
#include "netkit/loop.h"
#include "netkit/tcp.h"

#define WAIT_MS 10000
#define MAX_CLOSES 64

struct fx {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    bool echo;
    unsigned produce;    /* records of produce_size queued on open */
    size_t produce_size;
    unsigned opens;
    unsigned closes;
    int reasons[MAX_CLOSES];
    nk_tcp_conn_stats at_close[MAX_CLOSES];
    nk_tcp_conn *last;   /* most recently opened, until it closes */
    size_t peak_queued;
    int send_errors;
    int last_send_error;
};

struct closes_wait {
    struct fx *f;
    unsigned closes;
};

/* The fixture of the running test (cmocka runs one test at a time). */
extern struct fx fx;

/* cmocka setup/teardown: fault scripts reset, a loop, an echo server on
 * 127.0.0.1 port 0; teardown frees both and checks the loop is empty. */
int fx_setup(void **state);
int fx_teardown(void **state);

/* Start f->srv on 127.0.0.1:0 with @o (NULL: defaults) and the fixture's
 * callbacks: 0 or the code. */
int fx_start_server(struct fx *f, const nk_tcp_server_opts *o);
nk_tcp_server_stats fx_stats(struct fx *f);

/* Run the loop until f->opens / f->closes reach @n (asserted, bounded). */
void fx_run_until_opens(struct fx *f, unsigned n);
void fx_run_until_closes(struct fx *f, unsigned n);
/* nkt_run_until() predicate on a struct closes_wait: opens >= closes. */
bool fx_opens_reached(void *arg);

/* nkt_run_until() predicate: the fd *(int *)arg is readable now. */
bool fx_fd_readable(void *arg);

/* Echo "hello" through the server on the open raw client @c. */
void fx_echo_hello(struct fx *f, int c);

/* A one-shot timer callback that sets fx_timer_fired, and its predicate. */
extern bool fx_timer_fired;
void fx_on_timer(nk_timer *t, void *user);
bool fx_fired(void *arg);

#endif
