/* Fuzz target for the room's input handling as a pure function
 * (lib/room_core.h): a sequence of (source, datagram, clock tick) steps
 * against one room core, with the member table and limits inside.
 *
 * Input: 6 configuration bytes (flags: validate, echo_sender, relay_empty,
 * a leave message, normalized sources, the room's own address; member cap
 * 1..8; time-to-live; max_datagram; rate limit and burst; amplification
 * and cookie period), then steps: an op byte (kind, and a source out of 8
 * addresses that include the room's own, an IPv4-mapped twin and two IPv6
 * scopes), a clock advance byte, and per kind: a datagram (length, flags,
 * bytes; possibly truncated), a hello, the answer to the last challenge
 * (intact or corrupted), an expiry pass, or a failed delivery. Relayed
 * messages are fanned out with nk__room_targets() as the room does.
 *
 * Invariants after every step: members <= max_members and equal to the
 * stats; the table finds every member at its index; no duplicates; no
 * member is the room's own address; the time-to-live list holds every
 * member once, oldest first; an expiry pass removes at most its bound,
 * and when under it leaves nobody overdue;
 * joins - leaves = members, and the join and leave events match them;
 * messages in = relayed + consumed + drops by reason; unvalidated count is
 * right; since it joined, a member passes the rate limiter at most burst +
 * rate x elapsed times; in validated mode the bytes sent to an address while unvalidated
 * (relays and challenges) stay <= amplification x the bytes received from
 * it; a correct answer validates, a corrupted one never does. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>

#include "fuzz.h"
#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/room.h"
#include "room_core.h"

#define POOL 8

static const char *const pool_text[POOL] = {
    "127.0.0.1:5000",        "[::ffff:127.0.0.1]:5000", "[::1]:5000",
    "10.0.0.1:1",            "[::ffff:10.0.0.1]:1",     "[fe80::1%1]:1",
    "[fe80::1%2]:1",         "192.168.1.1:5000",
};

static const char *const self_text[5] = {
    "127.0.0.1:5000", "0.0.0.0:5000", "[::]:5000", "[::1]:5000", "0.0.0.0:0",
};

struct harness {
    struct nk__room_core core;
    nk_addr pool[POOL];
    int cls[POOL];          /* first pool index of an equal address */
    uint64_t recv[POOL];    /* bytes received from the class */
    uint64_t sent_unval[POOL]; /* bytes sent to it while unvalidated */
    uint8_t challenge[POOL][NK_ROOM_COOKIE_MSG_LEN];
    bool have_challenge[POOL];
    uint64_t joined_at[POOL]; /* clock of the class's current membership */
    uint64_t passed[POOL];    /* its datagrams past the rate limiter since */
    uint64_t now;
    uint64_t consumed;
    uint64_t join_events, leave_events;
    bool normalized;
};

/* The pool class of a member address (every member comes from the pool). */
static int class_of(const struct harness *h, const nk_addr *a)
{
    for (int p = 0; p < POOL; p++)
        if (nk_addr_equal(&h->pool[p], a))
            return h->cls[p];
    nk_fuzz_fail(__FILE__, __LINE__, "a member that no source sent from");
}

static void sink(void *ctx, const struct nk__room_event *ev)
{
    struct harness *h = ctx;
    NK_FUZZ_CHECK(ev->addr != NULL);
    NK_FUZZ_CHECK(ev->members == h->core.count);
    if (ev->kind == NK__ROOM_JOIN) {
        h->join_events++;
        int k = class_of(h, ev->addr);
        h->joined_at[k] = h->now;
        h->passed[k] = 0;
    } else {
        NK_FUZZ_CHECK(ev->kind == NK__ROOM_LEAVE);
        NK_FUZZ_CHECK(ev->reason >= NK_ROOM_LEAVE_TTL &&
                      ev->reason <= NK_ROOM_LEAVE_REMOVED);
        h->leave_events++;
    }
}

static bool is_loopback(const nk_addr *a)
{
    nk_addr n = *a;
    nk_addr_normalize(&n);
    if (nk_addr_family(&n) == AF_INET)
        return (ntohl(n.u.v4.sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&n.u.v6.sin6_addr);
}

static bool is_wildcard(const nk_addr *a)
{
    if (nk_addr_family(a) == AF_INET)
        return a->u.v4.sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&a->u.v6.sin6_addr);
}

static void check_core(struct harness *h)
{
    struct nk__room_core *c = &h->core;
    const nk_udp_room_stats *s = &c->stats;
    const nk_addr *self = &c->cfg.self;

    NK_FUZZ_CHECK(c->count <= c->cfg.max_members);
    NK_FUZZ_CHECK(s->members == c->count && s->members_peak >= c->count);
    NK_FUZZ_CHECK(s->joins - s->leaves == c->count);
    NK_FUZZ_CHECK(s->joins == h->join_events && s->leaves == h->leave_events);
    NK_FUZZ_CHECK(s->expirations + s->evictions <= s->leaves);
    NK_FUZZ_CHECK(s->drops[NK_ROOM_DROP_HOOK] == 0); /* hooks are not here */

    uint64_t drops = 0;
    for (int r = 0; r < NK_ROOM_DROP_COUNT; r++)
        drops += s->drops[r];
    NK_FUZZ_CHECK(s->messages_in == s->relayed + h->consumed + drops);

    size_t unvalidated = 0;
    for (uint32_t i = 0; i < c->count; i++) {
        const struct nk__room_member *m = &c->members[i];
        NK_FUZZ_CHECK(nk__room_find(c, &m->addr) == i);
        NK_FUZZ_CHECK(!nk_addr_equal(&m->addr, self));
        /* A room bound to a wildcard hears itself from loopback. */
        if (h->normalized && nk_addr_port(self) > 0 && is_wildcard(self))
            NK_FUZZ_CHECK(!(is_loopback(&m->addr) &&
                            nk_addr_port(&m->addr) == nk_addr_port(self)));
        for (uint32_t j = 0; j < i; j++)
            NK_FUZZ_CHECK(!nk_addr_equal(&m->addr, &c->members[j].addr));
        if (!m->validated)
            unvalidated++;
        NK_FUZZ_CHECK(m->bytes_in <= h->recv[class_of(h, &m->addr)]);
    }
    NK_FUZZ_CHECK(s->unvalidated == unvalidated);
    /* Only an echoed cookie validates: in an open room nobody does. */
    NK_FUZZ_CHECK(c->cfg.validate || unvalidated == c->count);

    /* Time-to-live order: every member once, oldest first. */
    size_t n = 0;
    uint32_t prev = NK__ROOM_NONE;
    for (uint32_t i = c->head; i != NK__ROOM_NONE; i = c->members[i].next) {
        NK_FUZZ_CHECK(i < c->count && n < c->count);
        NK_FUZZ_CHECK(c->members[i].prev == prev);
        if (prev != NK__ROOM_NONE)
            NK_FUZZ_CHECK(c->members[prev].last_seen <=
                          c->members[i].last_seen);
        prev = i;
        n++;
    }
    NK_FUZZ_CHECK(n == c->count && c->tail == prev);

    /* RFC 9000 section 8: never more than amplification x what came in
     * while the address is unproven. */
    if (c->cfg.validate)
        for (int p = 0; p < POOL; p++)
            NK_FUZZ_CHECK(h->sent_unval[p] <=
                          h->recv[p] * c->cfg.amplification);
}

static bool member_validated(struct harness *h, const nk_addr *a)
{
    uint32_t i = nk__room_find(&h->core, a);
    return i != NK__ROOM_NONE && h->core.members[i].validated;
}

/* One datagram through the core, then the fan-out if it is relayed. */
static void datagram(struct harness *h, int src, const uint8_t *data,
                     size_t len, size_t size, bool truncated, uint64_t now)
{
    struct nk__room_core *c = &h->core;
    const nk_addr *a = &h->pool[src];
    int k = h->cls[src];
    size_t before = c->count;
    h->recv[k] += size;

    bool was_member = nk__room_find(c, a) != NK__ROOM_NONE;
    uint64_t joins = c->stats.joins;
    struct nk__room_action act;
    h->now = now;
    nk__room_input(c, a, data, len, size, truncated, now, &act);

    uint32_t me = nk__room_find(c, a);
    /* Token bucket: since joining, a member gets at most its burst plus
     * rate_limit per second past the limiter. The leave message is not
     * held back by it (leaving sends nothing). */
    bool joined = c->stats.joins > joins;
    bool left = was_member && me == NK__ROOM_NONE;
    if (c->cfg.rate_limit > 0 && (was_member || joined) && !left &&
        !(act.verdict == NK__ROOM_DROP &&
          act.drop_reason == NK_ROOM_DROP_RATE)) {
        h->passed[k]++;
        NK_FUZZ_CHECK(h->passed[k] * 1000 <=
                      (uint64_t)c->cfg.rate_burst * 1000 +
                          (now - h->joined_at[k]) * c->cfg.rate_limit);
    }
    if (act.reply_len > 0) {
        NK_FUZZ_CHECK(act.reply_len == NK_ROOM_COOKIE_MSG_LEN);
        NK_FUZZ_CHECK(c->cfg.validate && me != NK__ROOM_NONE);
        NK_FUZZ_CHECK(!c->members[me].validated);
        uint8_t answer[NK_ROOM_COOKIE_MSG_LEN];
        NK_FUZZ_CHECK(nk_udp_room_client_handle(act.reply, act.reply_len,
                                                answer, sizeof answer) ==
                      NK_ROOM_COOKIE_MSG_LEN);
        memcpy(h->challenge[k], act.reply, act.reply_len);
        h->have_challenge[k] = true;
        h->sent_unval[k] += act.reply_len;
    }

    switch (act.verdict) {
    case NK__ROOM_CONSUMED:
        h->consumed++;
        break;
    case NK__ROOM_DROP:
        NK_FUZZ_CHECK(act.drop_reason < NK_ROOM_DROP_COUNT &&
                      act.drop_reason != NK_ROOM_DROP_HOOK);
        if (act.drop_reason == NK_ROOM_DROP_SELF ||
            act.drop_reason == NK_ROOM_DROP_FULL)
            NK_FUZZ_CHECK(c->count == before && me == NK__ROOM_NONE);
        if (act.drop_reason == NK_ROOM_DROP_FULL)
            NK_FUZZ_CHECK(before == c->cfg.max_members);
        break;
    case NK__ROOM_RELAY: {
        NK_FUZZ_CHECK(me != NK__ROOM_NONE);
        NK_FUZZ_CHECK(!truncated && size <= c->cfg.max_datagram);
        NK_FUZZ_CHECK(size > 0 || c->cfg.relay_empty);
        const uint32_t *t = NULL;
        size_t n = nk__room_targets(c, a, len, &t);
        NK_FUZZ_CHECK(n <= c->count);
        for (size_t x = 0; x < n; x++) {
            NK_FUZZ_CHECK(t[x] < c->count);
            NK_FUZZ_CHECK(c->cfg.echo_sender || t[x] != me);
            for (size_t y = 0; y < x; y++)
                NK_FUZZ_CHECK(t[x] != t[y]);
            const struct nk__room_member *m = &c->members[t[x]];
            if (!m->validated)
                h->sent_unval[class_of(h, &m->addr)] += len;
        }
        break;
    }
    default:
        nk_fuzz_fail(__FILE__, __LINE__, "unknown verdict");
    }
    check_core(h);
}

static void configure(struct harness *h, struct nk_fuzz_in *in)
{
    unsigned flags = nk_fuzz_u8(in);
    unsigned cap = nk_fuzz_u8(in);
    unsigned ttl = nk_fuzz_u8(in);
    unsigned maxd = nk_fuzz_u8(in);
    unsigned rate = nk_fuzz_u8(in);
    unsigned amp = nk_fuzz_u8(in);

    struct nk__room_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.validate = flags & 1u;
    cfg.echo_sender = flags & 2u;
    cfg.relay_empty = flags & 4u;
    if (flags & 8u) {
        memcpy(cfg.leave, "leave", 5);
        cfg.leave_len = 5;
    }
    h->normalized = flags & 16u;
    NK_FUZZ_CHECK(nk_addr_parse(self_text[(flags >> 5) % 5], &cfg.self) == 0);
    cfg.max_members = 1 + cap % 8;
    cfg.member_ttl_ms = (uint64_t)ttl * 100;
    cfg.max_datagram = maxd == 0 ? 65507 : maxd;
    cfg.rate_limit = rate >> 2;
    cfg.rate_burst = rate & 3u;
    cfg.amplification = amp % 5;
    cfg.cookie_period_ms = 1000u * (1 + (amp >> 3));
    cfg.unreachable_limit = 3;

    for (int p = 0; p < POOL; p++) {
        NK_FUZZ_CHECK(nk_addr_parse(pool_text[p], &h->pool[p]) == 0);
        if (h->normalized)
            nk_addr_normalize(&h->pool[p]);
        h->cls[p] = p;
        for (int q = 0; q < p; q++)
            if (nk_addr_equal(&h->pool[q], &h->pool[p])) {
                h->cls[p] = h->cls[q];
                break;
            }
    }

    static const uint8_t secret[32] = {
        0x6e, 0x6b, 0x72, 0x6f, 0x6f, 0x6d, 0x01, 0x02, 0x03, 0x04, 0x05,
        0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a};
    NK_FUZZ_CHECK(nk__room_core_init(&h->core, &cfg, secret, sink, h) == 0);
    NK_FUZZ_CHECK(h->core.cfg.amplification >= 1);
}

int nk_fuzz_room_input(const uint8_t *data, size_t size)
{
    static const int errs[6] = {-ECONNREFUSED, -EAGAIN,     -ENOBUFS,
                                -EPIPE,        -EHOSTUNREACH, -EMSGSIZE};
    struct harness h;
    memset(&h, 0, sizeof h);
    struct nk_fuzz_in in = {data, size};
    configure(&h, &in);
    struct nk__room_core *c = &h.core;
    uint64_t now = 1000000;
    check_core(&h);

    for (unsigned steps = 0; in.left > 0 && steps < 4096; steps++) {
        unsigned op = nk_fuzz_u8(&in);
        int src = (int)(op >> 3) % POOL;
        int k = h.cls[src];
        unsigned dt = nk_fuzz_u8(&in);
        /* Mostly small ticks; a few jumps past the time-to-live and the
         * cookie period. */
        now += dt < 250 ? dt : (uint64_t)(dt - 249) * 60000;

        switch (op & 7u) {
        case 0:
        case 1:
        case 2: {
            size_t len = nk_fuzz_u8(&in) % 80;
            unsigned fl = nk_fuzz_u8(&in);
            if (len > in.left)
                len = in.left;
            const uint8_t *bytes = nk_fuzz_guarded(in.p, len);
            in.p += len;
            in.left -= len;
            bool trunc = fl & 1u;
            size_t real = trunc ? len + 1 + (fl >> 1) * 256 : len;
            datagram(&h, src, bytes, len, real, trunc, now);
            break;
        }
        case 3: {
            uint8_t hello[NK_ROOM_HELLO_LEN];
            NK_FUZZ_CHECK(nk_udp_room_client_hello(hello, sizeof hello) ==
                          NK_ROOM_HELLO_LEN);
            datagram(&h, src, hello, sizeof hello, sizeof hello, false, now);
            break;
        }
        case 4:
        case 5: {
            if (!h.have_challenge[k])
                break;
            uint8_t answer[NK_ROOM_COOKIE_MSG_LEN];
            NK_FUZZ_CHECK(nk_udp_room_client_handle(h.challenge[k],
                                                    sizeof h.challenge[k],
                                                    answer, sizeof answer) ==
                          NK_ROOM_COOKIE_MSG_LEN);
            bool corrupt = (op & 7u) == 5;
            if (corrupt)
                answer[8 + dt % 16] ^= (uint8_t)(1u << (op & 7u));
            bool was = member_validated(&h, &h.pool[src]);
            datagram(&h, src, answer, sizeof answer, sizeof answer, false,
                     now);
            if (corrupt)
                NK_FUZZ_CHECK(member_validated(&h, &h.pool[src]) == was);
            break;
        }
        case 6: {
            /* A bounded pass (as the room's timer runs it) or a full one. */
            size_t max = dt & 1u ? SIZE_MAX : 1 + dt % 4;
            size_t before = c->count;
            size_t gone = nk__room_expire(c, now, max);
            NK_FUZZ_CHECK(gone <= max && gone == before - c->count);
            check_core(&h);
            if (gone < max && c->cfg.member_ttl_ms > 0) {
                for (uint32_t i = 0; i < c->count; i++)
                    NK_FUZZ_CHECK(c->members[i].last_seen +
                                      c->cfg.member_ttl_ms > now);
                NK_FUZZ_CHECK(c->count == 0 ||
                              nk__room_next_expiry(c) > now);
            }
            break;
        }
        default:
            nk__room_delivery_failed(c, &h.pool[src], errs[dt % 6]);
            check_core(&h);
            break;
        }
    }
    nk__room_core_free(c);
    return 0;
}

#ifdef NK_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return nk_fuzz_room_input(data, size);
}
#endif
