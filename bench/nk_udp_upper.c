/* UDP uppercase echo on libnetkit without the example's per-datagram
 * printing: replies to the datagrams of one wakeup are gathered and sent
 * with one nk_udp_endpoint_send_batch() at the start of the next loop
 * iteration (nk_loop_defer), as a user after throughput would write it.
 * Truncated datagrams are dropped, not echoed in part. Receive batches of
 * 64 datagrams of up to 2048 bytes, as the recvmmsg/sendmmsg peer uses
 * (the defaults, 32 of 64 KiB, cost a second recvmmsg per busy wakeup). */
#include <string.h>

#include "nk_common.h"
#include "upper.h"

#define PENDING 64
#define DGRAM 2048

struct echo {
    nk_loop *loop;
    nk_udp_endpoint *ep;
    bool flush_queued;
    size_t n;
    nk_udp_msg msgs[PENDING];
    nk_addr to[PENDING];
    unsigned char buf[PENDING][DGRAM];
};

static void flush(nk_loop *loop, void *user)
{
    (void)loop;
    struct echo *e = user;
    e->flush_queued = false;
    if (e->n > 0)
        nk_udp_endpoint_send_batch(e->ep, e->msgs, e->n); /* drops are counted */
    e->n = 0;
}

static void on_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev, void *user)
{
    struct echo *e = user;
    static unsigned char big[65536];
    if (ev->error < 0 || ev->truncated)
        return;
    if (ev->len > DGRAM) {
        upper_copy(big, ev->data, ev->len);
        nk_udp_endpoint_send_to(ep, big, ev->len, ev->from);
        return;
    }
    if (e->n == PENDING)
        flush(e->loop, e);
    size_t i = e->n++;
    upper_copy(e->buf[i], ev->data, ev->len);
    e->to[i] = *ev->from;
    e->msgs[i] = (nk_udp_msg){.data = e->buf[i], .len = ev->len, .to = &e->to[i]};
    if (!e->flush_queued && nk_loop_defer(e->loop, flush, e) == 0)
        e->flush_queued = true;
    else if (!e->flush_queued)
        flush(e->loop, e);
}

int main(int argc, char **argv)
{
    static struct echo e;
    nk_addr addr;
    e.loop = nk_bench_setup(argc, argv, "127.0.0.1:8888", &addr);
    nk_udp_endpoint_opts opts = NK_UDP_ENDPOINT_OPTS_INIT;
    opts.recv_batch = PENDING;
    opts.max_datagram = DGRAM;
    nk_bench_check(nk_udp_endpoint_bind(e.loop, &addr, &opts, on_recv, &e, &e.ep), "bind");
    nk_bench_check(nk_loop_run(e.loop, NK_RUN_DEFAULT), "loop");
    return 0;
}
