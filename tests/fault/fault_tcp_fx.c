/* The TCP fault tests' fixture (see fault_tcp_fx.h). */
#include "fault_tcp_fx.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

#include "netkit/error.h"

#include "nkt_fault.h"
#include "nkt_loop.h"
#include "nkt_peer.h"
#include "nkt_stream.h"

struct fx fx;

static void on_open(nk_tcp_conn *c, void *user)
{
    struct fx *f = user;
    f->opens++;
    f->last = c;
    for (unsigned i = 0; i < f->produce; i++) {
        uint8_t rec[1024];
        nkt_stream_fill(42, (uint64_t)i * f->produce_size, rec,
                        f->produce_size);
        int rc = nk_tcp_conn_send(c, rec, f->produce_size);
        if (rc < 0) {
            f->send_errors++;
            break;
        }
    }
}

static void on_data(nk_tcp_conn *c, const void *data, size_t len, void *user)
{
    struct fx *f = user;
    if (!f->echo)
        return;
    int rc = nk_tcp_conn_send(c, data, len);
    if (rc < 0) {
        f->send_errors++;
        f->last_send_error = rc;
    }
    nk_tcp_conn_stats st;
    nk_tcp_conn_get_stats(c, &st);
    if (st.queued > f->peak_queued)
        f->peak_queued = st.queued;
}

static void on_close(nk_tcp_conn *c, int reason, void *user)
{
    struct fx *f = user;
    if (f->closes < MAX_CLOSES) {
        f->reasons[f->closes] = reason;
        nk_tcp_conn_get_stats(c, &f->at_close[f->closes]);
    }
    f->closes++;
    if (f->last == c)
        f->last = NULL;
}

int fx_start_server(struct fx *f, const nk_tcp_server_opts *o)
{
    nk_tcp_server_opts opts = NK_TCP_SERVER_OPTS_INIT;
    if (o)
        opts = *o;
    opts.on_open = on_open;
    opts.conn.on_data = on_data;
    opts.conn.on_close = on_close;
    opts.conn.user = f;
    nk_addr a;
    if (nk_addr_parse("127.0.0.1:0", &a) != 0)
        return -1;
    int rc = nk_tcp_server_start(f->loop, &a, &opts, &f->srv);
    if (rc != 0)
        return rc;
    return nk_tcp_server_addr(f->srv, &f->addr);
}

int fx_setup(void **state)
{
    memset(&fx, 0, sizeof fx);
    fx.echo = true;
    nkt_fault_reset();
    if (nk_loop_new(&fx.loop) != 0 || fx_start_server(&fx, NULL) != 0)
        return -1;
    *state = &fx;
    return 0;
}

int fx_teardown(void **state)
{
    struct fx *f = *state;
    nkt_fault_reset();
    nk_tcp_server_free(f->srv);
    /* Run the deferred closes; the loop must then be empty. */
    for (int i = 0; i < 10; i++) {
        if (nk_loop_free(f->loop) == 0)
            return 0;
        nk_loop_run(f->loop, NK_RUN_NOWAIT);
    }
    return -1;
}

nk_tcp_server_stats fx_stats(struct fx *f)
{
    nk_tcp_server_stats st;
    nk_tcp_server_get_stats(f->srv, &st);
    return st;
}

static bool closes_reached(void *arg)
{
    struct closes_wait *w = arg;
    return w->f->closes >= w->closes;
}

bool fx_opens_reached(void *arg)
{
    struct closes_wait *w = arg;
    return w->f->opens >= w->closes;
}

void fx_run_until_closes(struct fx *f, unsigned n)
{
    struct closes_wait w = {.f = f, .closes = n};
    assert_int_equal(nkt_run_until(f->loop, closes_reached, &w, 100000,
                                   WAIT_MS, NULL),
                     0);
}

void fx_run_until_opens(struct fx *f, unsigned n)
{
    struct closes_wait w = {.f = f, .closes = n};
    assert_int_equal(nkt_run_until(f->loop, fx_opens_reached, &w, 100000,
                                   WAIT_MS, NULL),
                     0);
}

bool fx_fd_readable(void *arg)
{
    struct pollfd p = {.fd = *(int *)arg, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Echo "hello" through the server on an open raw client. */
void fx_echo_hello(struct fx *f, int c)
{
    assert_int_equal(nkt_send_all(c, "hello", 5), 0);
    assert_int_equal(nkt_run_until(f->loop, fx_fd_readable, &c, 100000, WAIT_MS,
                                   NULL),
                     0);
    char buf[5];
    assert_int_equal(nkt_read_exact(c, buf, 5, WAIT_MS), 0);
    assert_memory_equal(buf, "hello", 5);
}

bool fx_timer_fired;
void fx_on_timer(nk_timer *t, void *user)
{
    (void)t;
    (void)user;
    fx_timer_fired = true;
}
bool fx_fired(void *arg)
{
    (void)arg;
    return fx_timer_fired;
}
