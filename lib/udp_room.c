/* udp_room: the relay's I/O. The decisions are room_core's; this file
 * feeds it the datagrams of one udp_endpoint (through the endpoint's public
 * API, as any application could), sends what it decides, runs the
 * time-to-live timer and calls the application's hooks.
 *
 * Hooks run only between core calls, from an event queue, so a hook may
 * remove members or close the room without pulling the table out from
 * under the core. This file uses the core through its functions only. */
#include "netkit/room.h"

#include <assert.h>
#include <errno.h>
#include <ifaddrs.h>
#include <string.h>

#include "alloc.h"
#include "loop_internal.h"
#include "netkit/error.h"
#include "netkit/udp.h"
#include "room_core.h"
#include "sock.h"

#define EXPIRE_STEP 8 /* members expired between hook flushes */

struct room_ev {
    enum nk__room_event_kind kind;
    nk_addr addr;
    nk_room_leave_reason reason;
    bool validated;
    size_t members;
};

struct nk_udp_room {
    nk_loop *loop;
    nk_udp_endpoint *ep;
    struct nk__room_core core;
    bool core_ready;
    nk_udp_room_opts opts;
    nk_udp_room_hooks hooks;
    void *user;
    nk_timer timer;
    bool timer_ready;
    unsigned depth; /* nesting of our own dispatch: free when it ends */
    bool closing;
    /* Fan-out set, built once: one message and one address copy per
     * member, so a hook that removes members cannot change a destination
     * while its batch is out. */
    nk_udp_msg *msgs;
    nk_addr *dst;
    /* Join and leave events not yet given to the hooks, emptied before each
     * dispatch returns. One dispatch handles one datagram (at most one
     * join) or none, and each member leaves at most once, so it never holds
     * more than max_members + 1: sized so at open, it never drops one. */
    struct room_ev *evq;
    size_t evn, evcap;
    /* Bound to a wildcard: the host's addresses (see is_self() in
     * room_core.c), read at open and again, at most once a second, when a
     * datagram comes from the room's own port, so address changes are seen
     * without any per-datagram cost. */
    bool wildcard;
    int port;
    nk_addr *local_ips;
    uint64_t local_ips_at;
};

static void free_room(nk_udp_room *r)
{
    nk__free(r->local_ips);
    if (r->core_ready)
        nk__room_core_free(&r->core);
    nk__free(r->msgs);
    nk__free(r->dst);
    nk__free(r->evq);
    nk__free(r);
}

static void sink(void *ctx, const struct nk__room_event *ev)
{
    nk_udp_room *r = ctx;
    /* Never full (see evq): should that bound ever break, fail loudly in
     * debug builds and never write past the queue in any. */
    assert(r->evn < r->evcap);
    if (r->evn >= r->evcap)
        return;
    struct room_ev *q = &r->evq[r->evn++];
    q->kind = ev->kind;
    q->addr = *ev->addr;
    q->reason = ev->reason;
    q->validated = ev->validated;
    q->members = ev->members;
}

/* Give the queued events to the hooks, in order, those the hooks cause
 * included; after a close, none. */
static void flush_events(nk_udp_room *r)
{
    for (size_t i = 0; i < r->evn && !r->closing; i++) {
        struct room_ev e = r->evq[i];
        nk_udp_room_member_event ev = {.addr = &e.addr,
                                       .reason = e.reason,
                                       .validated = e.validated,
                                       .members = e.members};
        nk_udp_room_member_cb cb =
            e.kind == NK__ROOM_JOIN ? r->hooks.on_join : r->hooks.on_leave;
        if (cb != NULL)
            cb(r, &ev, r->user);
    }
    r->evn = 0;
}

static void arm_timer(nk_udp_room *r)
{
    if (r->closing || nk__timer_active(&r->timer))
        return;
    uint64_t next = nk__room_next_expiry(&r->core);
    if (next == UINT64_MAX)
        return;
    uint64_t now = nk_loop_now(r->loop);
    /* Members only ever move later, so a timer set for the oldest one can
     * only fire early, never late: it then re-arms for the new oldest. */
    nk__timer_start(&r->timer, next > now ? next - now : 0, 0);
}

static void leave_dispatch(nk_udp_room *r)
{
    r->depth--;
    if (r->closing && r->depth == 0)
        free_room(r);
}

static void on_timer(nk_timer *t, void *user)
{
    (void)t;
    nk_udp_room *r = user;
    r->depth++;
    uint64_t now = nk_loop_now(r->loop);
    while (!r->closing) {
        bool more = nk__room_expire(&r->core, now, EXPIRE_STEP) == EXPIRE_STEP;
        flush_events(r);
        if (!more)
            break;
    }
    arm_timer(r);
    leave_dispatch(r);
}

static void fan_out(nk_udp_room *r, const nk_addr *from, const void *data,
                    size_t len)
{
    const uint32_t *idx;
    size_t n = nk__room_targets(&r->core, from, len, &idx);
    /* Each message points at its member's own address: nothing in the
     * send can change the member table, so no copy per delivery. */
    for (size_t k = 0; k < n; k++)
        r->msgs[k] = (nk_udp_msg){.data = data, .len = len,
                                  .to = nk__room_member_addr(&r->core, idx[k])};
    int sent = nk_udp_endpoint_send_batch(r->ep, r->msgs, n);
    if (sent < 0)
        return;
    nk__room_delivered(&r->core, (size_t)sent, len);
    if ((size_t)sent == n)
        return;
    /* Failures may remove members, which moves others in the table:
     * copy every destination before acting on any result. */
    for (size_t k = 0; k < n; k++)
        r->dst[k] = *r->msgs[k].to;
    for (size_t k = 0; k < n; k++) {
        int res = r->msgs[k].result;
        if (res >= 0)
            continue;
        /* A refusal returned by a send is left over from an earlier
         * datagram to some other member (the error queue names which):
         * count the lost delivery, blame nobody. */
        nk__room_delivery_failed(&r->core,
                                 nk__is_icmp_error(-res) ? NULL : &r->dst[k],
                                 res);
    }
}

enum { LOCAL_IPS_MAX = 64, LOCAL_IPS_REFRESH_MS = 1000 };

/* Read the host's IPv4 and IPv6 addresses into the core's self-check. On
 * failure the previous list stays (loopback is always recognised). */
static void refresh_local_ips(nk_udp_room *r)
{
    r->local_ips_at = nk__loop_now(r->loop);
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return;
    if (r->local_ips == NULL)
        r->local_ips = nk__calloc(LOCAL_IPS_MAX, sizeof *r->local_ips);
    size_t n = 0;
    for (struct ifaddrs *i = list; i && r->local_ips && n < LOCAL_IPS_MAX;
         i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        socklen_t len = i->ifa_addr->sa_family == AF_INET
                            ? sizeof(struct sockaddr_in)
                            : sizeof(struct sockaddr_in6);
        if (nk_addr_from_sockaddr(&r->local_ips[n], i->ifa_addr, len) == 0) {
            nk_addr_normalize(&r->local_ips[n]);
            n++;
        }
    }
    freeifaddrs(list);
    nk__room_set_local_ips(&r->core, r->local_ips, n);
}

/* A hook removed the sender (the leave count moved past @leaves and it is
 * no member now): its datagram is not relayed, and counted. */
static bool sender_gone(nk_udp_room *r, const nk_addr *from, uint64_t leaves)
{
    if (nk__room_leaves(&r->core) == leaves ||
        nk__room_find(&r->core, from) != NK__ROOM_NONE)
        return false;
    nk__room_count_drop(&r->core, NK_ROOM_DROP_HOOK);
    return true;
}

/* on_message, then the fan-out, for a datagram the core let through. */
static void relay(nk_udp_room *r, const nk_addr *from, const void *data,
                  size_t len, uint64_t leaves)
{
    if (sender_gone(r, from, leaves))
        return;
    nk_udp_room_message msg = {.from = from, .data = data, .len = len};
    if (r->hooks.on_message != NULL) {
        if (r->hooks.on_message(r, &msg, r->user) != NK_ROOM_RELAY) {
            if (!r->closing)
                nk__room_count_drop(&r->core, NK_ROOM_DROP_HOOK);
            return;
        }
        if (r->closing || (msg.data == NULL && msg.len > 0) ||
            sender_gone(r, from, leaves))
            return;
    }
    fan_out(r, from, msg.data, msg.len);
}

static void on_datagram(nk_udp_room *r, const nk_udp_recv_event *ev)
{
    struct nk__room_action act;
    nk_addr from = *ev->from;
    if (r->wildcard && nk_addr_port(&from) == r->port &&
        nk__loop_now(r->loop) - r->local_ips_at >= LOCAL_IPS_REFRESH_MS)
        refresh_local_ips(r);
    nk__room_input(&r->core, &from, ev->data, ev->len, ev->size, ev->truncated,
                   nk__loop_now(r->loop), &act);
    if (act.reply_len > 0) {
        int rc =
            nk_udp_endpoint_send_to(r->ep, act.reply, act.reply_len, &from);
        if (rc < 0)
            nk__room_delivery_failed(&r->core, &from, rc);
    }
    uint64_t leaves = nk__room_leaves(&r->core);
    flush_events(r);
    if (act.verdict == NK__ROOM_RELAY && !r->closing)
        relay(r, &from, ev->data, ev->len, leaves);
    flush_events(r);
}

static void on_recv(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                    void *user)
{
    (void)ep;
    nk_udp_room *r = user;
    if (r->closing)
        return;
    r->depth++;
    if (ev->error == 0) {
        on_datagram(r, ev);
    } else if (ev->from != NULL) {
        /* An ICMP error for a delivery: the room's socket is fine; the
         * member it names may be gone. */
        nk__room_delivery_failed(&r->core, ev->from, ev->error);
        flush_events(r);
    }
    arm_timer(r);
    leave_dispatch(r);
}

static int check_opts(const nk_udp_room_opts *o)
{
    if (o->max_members < 1 || o->max_members > ((size_t)1 << 20))
        return NK_EINVAL;
    if (o->max_datagram < 1 || o->max_datagram > 65507)
        return NK_EINVAL;
    if (o->fanout_batch < 1 || o->fanout_batch > 1024)
        return NK_EINVAL;
    if (o->leave_message != NULL &&
        (o->leave_message[0] == '\0' || strlen(o->leave_message) > 63))
        return NK_EINVAL;
    if (o->amplification < 1 || o->rcvbuf < 0 || o->sndbuf < 0)
        return NK_EINVAL;
    return 0;
}

int nk_udp_room_open(nk_loop *loop, const nk_addr *bind_addr,
                     const nk_udp_room_opts *opts,
                     const nk_udp_room_hooks *hooks, void *user,
                     nk_udp_room **out)
{
    static const nk_udp_room_opts defaults = NK_UDP_ROOM_OPTS_INIT;
    if (loop == NULL || bind_addr == NULL || out == NULL)
        return NK_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    int rc = check_opts(opts);
    if (rc < 0)
        return rc;
    nk_udp_room *r = nk__calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->loop = loop;
    r->opts = *opts;
    r->opts.leave_message = NULL; /* copied into the core's config */
    if (hooks != NULL)
        r->hooks = *hooks;
    r->user = user;
    r->msgs = nk__calloc(opts->max_members, sizeof *r->msgs);
    r->dst = nk__calloc(opts->max_members, sizeof *r->dst);
    r->evcap = opts->max_members + 1;
    r->evq = nk__calloc(r->evcap, sizeof *r->evq);
    if (r->msgs == NULL || r->dst == NULL || r->evq == NULL) {
        free_room(r);
        return -ENOMEM;
    }

    nk_udp_endpoint_opts eo = NK_UDP_ENDPOINT_OPTS_INIT;
    /* A datagram over max_datagram arrives truncated: dropped, counted. */
    eo.max_datagram = opts->max_datagram;
    eo.recv_batch = 32;
    eo.max_per_wakeup = 128;
    eo.send_batch = opts->fanout_batch;
    eo.recv_errors = true; /* ICMP errors name the member that is gone */
    eo.rcvbuf = opts->rcvbuf;
    eo.sndbuf = opts->sndbuf;
    rc = nk_udp_endpoint_bind(loop, bind_addr, &eo, on_recv, r, &r->ep);
    if (rc < 0) {
        free_room(r);
        return rc;
    }

    struct nk__room_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.echo_sender = opts->echo_sender;
    cfg.relay_empty = opts->relay_empty;
    cfg.validate = opts->validate;
    cfg.max_members = opts->max_members;
    cfg.member_ttl_ms = opts->member_ttl_ms;
    cfg.max_datagram = opts->max_datagram;
    cfg.rate_limit = opts->rate_limit;
    cfg.rate_burst = opts->rate_burst;
    cfg.amplification = opts->amplification;
    cfg.unreachable_limit = opts->unreachable_limit;
    if (opts->leave_message != NULL) {
        cfg.leave_len = strlen(opts->leave_message);
        memcpy(cfg.leave, opts->leave_message, cfg.leave_len);
    }
    if ((rc = nk_udp_endpoint_local_addr(r->ep, &cfg.self)) < 0 ||
        (rc = nk__room_core_init(&r->core, &cfg, NULL, sink, r)) < 0) {
        nk_udp_endpoint_close(r->ep);
        free_room(r);
        return rc;
    }
    r->core_ready = true;
    r->port = nk_addr_port(&cfg.self);
    r->wildcard = nk_addr_family(&cfg.self) == AF_INET
                      ? cfg.self.u.v4.sin_addr.s_addr == htonl(INADDR_ANY)
                      : IN6_IS_ADDR_UNSPECIFIED(&cfg.self.u.v6.sin6_addr);
    if (r->wildcard)
        refresh_local_ips(r);
    nk__timer_init(&r->timer, loop, on_timer, r);
    r->timer_ready = true;
    *out = r;
    return 0;
}

void nk_udp_room_close(nk_udp_room *room)
{
    if (room == NULL || room->closing)
        return;
    room->closing = true;
    nk_udp_endpoint_close(room->ep);
    room->ep = NULL;
    if (room->timer_ready)
        nk__timer_stop(&room->timer);
    if (room->depth == 0)
        free_room(room);
}

int nk_udp_room_local_addr(const nk_udp_room *room, nk_addr *out)
{
    if (room == NULL || out == NULL)
        return NK_EINVAL;
    if (room->closing)
        return NK_ECLOSED;
    return nk_udp_endpoint_local_addr(room->ep, out);
}

void nk_udp_room_get_stats(const nk_udp_room *room, nk_udp_room_stats *out)
{
    if (out == NULL)
        return;
    if (room == NULL) {
        memset(out, 0, sizeof *out);
        return;
    }
    nk__room_get_stats(&room->core, out);
    /* The fan-out set and the event queue are sized by the cap too, built
     * once at open. */
    out->memory += room->opts.max_members *
                       (sizeof *room->msgs + sizeof *room->dst) +
                   room->evcap * sizeof *room->evq;
}

int nk_udp_room_member(const nk_udp_room *room, const nk_addr *member,
                       nk_udp_room_member_info *out)
{
    if (room == NULL || member == NULL || out == NULL)
        return NK_EINVAL;
    if (room->closing)
        return NK_ECLOSED;
    nk_addr a = *member;
    nk_addr_normalize(&a);
    /* The lookup counts its probes: a statistic, not the room's state. */
    struct nk__room_core *c = (struct nk__room_core *)&room->core;
    return nk__room_member_info(c, &a, nk_loop_now(room->loop), out);
}

int nk_udp_room_remove(nk_udp_room *room, const nk_addr *member)
{
    if (room == NULL || member == NULL)
        return NK_EINVAL;
    if (room->closing)
        return NK_ECLOSED;
    nk_addr a = *member;
    nk_addr_normalize(&a);
    int rc = nk__room_remove(&room->core, &a, NK_ROOM_LEAVE_REMOVED);
    if (rc < 0)
        return rc;
    /* From a hook, the dispatch in progress flushes the event; otherwise
     * flush it now. */
    if (room->depth == 0) {
        room->depth++;
        flush_events(room);
        leave_dispatch(room);
    }
    return 0;
}
