/* The room's input handling: what each datagram does to the member table
 * and what gets relayed, as a pure function of (source, bytes, clock).
 *
 * Members live in a dense array (fan-out walks it in order, cache-friendly)
 * with the hash table mapping address to index; removal moves the last
 * member into the hole. A doubly linked list through the array keeps
 * members in order of last activity, so expiry looks at the head only and
 * a datagram costs O(1), never a scan. */
#include "room_core.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "netkit/error.h"
#include "siphash.h"
#include "sock.h"

/* Control datagrams start with a NUL byte, which no text chat line has. */
static const uint8_t magic_hello[8] = {0, 'n', 'k', 'r', 'o', 'o', 'm', 'H'};
static const uint8_t magic_challenge[8] = {0, 'n', 'k', 'r',
                                           'o', 'o', 'm', 'C'};
static const uint8_t magic_answer[8] = {0, 'n', 'k', 'r', 'o', 'o', 'm', 'R'};

static const nk_addr *member_key(const void *ctx, uint32_t value)
{
    const struct nk__room_core *c = ctx;
    return &c->members[value].addr;
}

static void emit(struct nk__room_core *c, enum nk__room_event_kind kind,
                 const nk_addr *addr, nk_room_leave_reason reason,
                 bool validated)
{
    if (c->sink == NULL)
        return;
    struct nk__room_event ev = {.kind = kind,
                                .addr = addr,
                                .reason = reason,
                                .validated = validated,
                                .members = c->count};
    c->sink(c->sink_ctx, &ev);
}

int nk__room_core_init(struct nk__room_core *c,
                       const struct nk__room_config *cfg,
                       const uint8_t secret[32], nk__room_sink sink,
                       void *sink_ctx)
{
    if (c == NULL || cfg == NULL || cfg->max_members == 0 ||
        cfg->max_members > ((size_t)1 << 20) ||
        cfg->leave_len >= sizeof cfg->leave)
        return NK_EINVAL;
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    if (c->cfg.amplification == 0)
        c->cfg.amplification = 1;
    if (c->cfg.cookie_period_ms == 0)
        c->cfg.cookie_period_ms = 60000;
    if (c->cfg.rate_limit > 0 && c->cfg.rate_burst == 0)
        c->cfg.rate_burst = c->cfg.rate_limit;
    c->sink = sink;
    c->sink_ctx = sink_ctx;
    c->head = c->tail = NK__ROOM_NONE;

    int rc = nk__room_table_init(&c->table, cfg->max_members,
                                 secret != NULL ? secret : NULL);
    if (rc < 0)
        return rc;
    if (secret != NULL) {
        memcpy(c->cookie_key, secret + 16, sizeof c->cookie_key);
    } else {
        /* The cookie key is derived from the table's random key: one
         * getrandom() call serves both, and SipHash keeps them unrelated. */
        uint64_t k0 = nk__siphash24("cookie-0", 8, c->table.key);
        uint64_t k1 = nk__siphash24("cookie-1", 8, c->table.key);
        memcpy(c->cookie_key, &k0, 8);
        memcpy(c->cookie_key + 8, &k1, 8);
        uint64_t t0 = nk__siphash24("table-0", 7, c->table.key);
        uint64_t t1 = nk__siphash24("table-1", 7, c->table.key);
        memcpy(c->table.key, &t0, 8);
        memcpy(c->table.key + 8, &t1, 8);
    }
    c->members = nk__calloc(cfg->max_members, sizeof *c->members);
    c->targets = nk__calloc(cfg->max_members, sizeof *c->targets);
    if (c->members == NULL || c->targets == NULL) {
        nk__room_core_free(c);
        return -ENOMEM;
    }
    c->stats.memory =
        cfg->max_members * (sizeof *c->members + sizeof *c->targets) +
        nk__room_table_bytes(&c->table);
    return 0;
}

void nk__room_core_free(struct nk__room_core *c)
{
    if (c == NULL)
        return;
    nk__room_table_free(&c->table);
    nk__free(c->members);
    nk__free(c->targets);
    c->members = NULL;
    c->targets = NULL;
    c->count = 0;
}

/* ---- time-to-live order ---- */

static void lru_unlink(struct nk__room_core *c, uint32_t i)
{
    struct nk__room_member *m = &c->members[i];
    if (m->prev != NK__ROOM_NONE)
        c->members[m->prev].next = m->next;
    else
        c->head = m->next;
    if (m->next != NK__ROOM_NONE)
        c->members[m->next].prev = m->prev;
    else
        c->tail = m->prev;
    m->prev = m->next = NK__ROOM_NONE;
}

static void lru_push_tail(struct nk__room_core *c, uint32_t i)
{
    struct nk__room_member *m = &c->members[i];
    m->prev = c->tail;
    m->next = NK__ROOM_NONE;
    if (c->tail != NK__ROOM_NONE)
        c->members[c->tail].next = i;
    else
        c->head = i;
    c->tail = i;
}

static void touch(struct nk__room_core *c, uint32_t i, uint64_t now)
{
    c->members[i].last_seen = now;
    if (c->tail != i) {
        lru_unlink(c, i);
        lru_push_tail(c, i);
    }
}

/* ---- members ---- */

uint32_t nk__room_find(struct nk__room_core *c, const nk_addr *a)
{
    return nk__room_table_find(&c->table, a, member_key, c);
}

static uint32_t add_member(struct nk__room_core *c, const nk_addr *a,
                           uint64_t now, bool validated)
{
    uint32_t i = (uint32_t)c->count++;
    struct nk__room_member *m = &c->members[i];
    memset(m, 0, sizeof *m);
    m->addr = *a;
    m->last_seen = now;
    m->tokens = (uint64_t)c->cfg.rate_burst * 1000;
    m->tokens_at = now;
    m->validated = validated;
    m->prev = m->next = NK__ROOM_NONE;
    lru_push_tail(c, i);
    nk__room_table_insert(&c->table, a, i);
    c->stats.members = c->count;
    if (c->count > c->stats.members_peak)
        c->stats.members_peak = c->count;
    if (!validated)
        c->stats.unvalidated++;
    c->stats.joins++;
    emit(c, NK__ROOM_JOIN, &m->addr, 0, validated);
    return i;
}

static void remove_index(struct nk__room_core *c, uint32_t i,
                         nk_room_leave_reason reason)
{
    struct nk__room_member gone = c->members[i];
    lru_unlink(c, i);
    nk__room_table_remove(&c->table, &gone.addr, member_key, c);
    uint32_t last = (uint32_t)(c->count - 1);
    if (i != last) {
        /* Move the last member into the hole; fix its neighbours and its
         * table entry (still findable: members[last] is intact). */
        c->members[i] = c->members[last];
        struct nk__room_member *m = &c->members[i];
        if (m->prev != NK__ROOM_NONE)
            c->members[m->prev].next = i;
        else
            c->head = i;
        if (m->next != NK__ROOM_NONE)
            c->members[m->next].prev = i;
        else
            c->tail = i;
        nk__room_table_set(&c->table, &m->addr, i, member_key, c);
    }
    c->count--;
    c->stats.members = c->count;
    c->stats.leaves++;
    if (!gone.validated)
        c->stats.unvalidated--;
    if (reason == NK_ROOM_LEAVE_TTL)
        c->stats.expirations++;
    else if (reason == NK_ROOM_LEAVE_UNREACHABLE)
        c->stats.evictions++;
    emit(c, NK__ROOM_LEAVE, &gone.addr, reason, gone.validated);
}

int nk__room_remove(struct nk__room_core *c, const nk_addr *a,
                    nk_room_leave_reason reason)
{
    uint32_t i = nk__room_find(c, a);
    if (i == NK__ROOM_NONE)
        return NK_EINVAL;
    remove_index(c, i, reason);
    return 0;
}

size_t nk__room_expire(struct nk__room_core *c, uint64_t now, size_t max)
{
    size_t n = 0;
    if (c->cfg.member_ttl_ms == 0)
        return 0;
    while (n < max && c->head != NK__ROOM_NONE &&
           c->members[c->head].last_seen + c->cfg.member_ttl_ms <= now) {
        remove_index(c, c->head, NK_ROOM_LEAVE_TTL);
        n++;
    }
    return n;
}

uint64_t nk__room_next_expiry(const struct nk__room_core *c)
{
    if (c->cfg.member_ttl_ms == 0 || c->head == NK__ROOM_NONE)
        return UINT64_MAX;
    return c->members[c->head].last_seen + c->cfg.member_ttl_ms;
}

/* ---- limits ---- */

/* Token bucket in thousandths of a datagram: rate_limit per second, up to
 * rate_burst saved. */
static bool rate_ok(struct nk__room_core *c, struct nk__room_member *m,
                    uint64_t now)
{
    if (c->cfg.rate_limit == 0)
        return true;
    uint64_t cap = (uint64_t)c->cfg.rate_burst * 1000;
    if (now > m->tokens_at) {
        /* After a long silence the product may not fit in 64 bits: the
         * bucket is full then. */
        uint64_t add;
        if (__builtin_mul_overflow(now - m->tokens_at,
                                   (uint64_t)c->cfg.rate_limit, &add) ||
            add >= cap - m->tokens)
            m->tokens = cap;
        else
            m->tokens += add;
        m->tokens_at = now;
    }
    if (m->tokens < 1000)
        return false;
    m->tokens -= 1000;
    return true;
}

/* Same IP, whatever the ports (both normalized). */
static bool same_host(const nk_addr *a, const nk_addr *b)
{
    if (nk_addr_family(a) != nk_addr_family(b))
        return false;
    if (nk_addr_family(a) == AF_INET)
        return a->u.v4.sin_addr.s_addr == b->u.v4.sin_addr.s_addr;
    return memcmp(&a->u.v6.sin6_addr, &b->u.v6.sin6_addr,
                  sizeof a->u.v6.sin6_addr) == 0;
}

static bool is_self(const struct nk__room_core *c, const nk_addr *in)
{
    /* ::ffff:127.0.0.1 is 127.0.0.1: the loopback test below needs the
     * plain form, or the mapped twin of our own address would join. */
    nk_addr norm = *in;
    nk_addr_normalize(&norm);
    const nk_addr *src = &norm;
    const nk_addr *self = &c->cfg.self;
    int port = nk_addr_port(self);
    if (port <= 0 || nk_addr_port(src) != port)
        return false;
    if (nk_addr_equal(self, src))
        return true;
    /* Bound to a wildcard: our own datagrams come from a local address;
     * loopback is the one we can recognise without asking the system. */
    bool wild;
    if (nk_addr_family(self) == AF_INET)
        wild = self->u.v4.sin_addr.s_addr == htonl(INADDR_ANY);
    else
        wild = IN6_IS_ADDR_UNSPECIFIED(&self->u.v6.sin6_addr);
    if (!wild)
        return false;
    if (nk_addr_family(src) == AF_INET
            ? (ntohl(src->u.v4.sin_addr.s_addr) >> 24) == 127
            : IN6_IS_ADDR_LOOPBACK(&src->u.v6.sin6_addr))
        return true;
    for (size_t i = 0; i < c->local_ip_count; i++)
        if (same_host(&c->local_ips[i], src))
            return true;
    return false;
}

static bool is_leave(const struct nk__room_core *c, const uint8_t *d,
                     size_t len)
{
    size_t n = c->cfg.leave_len;
    if (n == 0)
        return false;
    if (len > n && d[len - 1] == '\n')
        len--;
    if (len > n && d[len - 1] == '\r')
        len--;
    return len == n && memcmp(d, c->cfg.leave, n) == 0;
}

/* ---- cookies ---- */

/* The cookie for @a in time slot @slot. */
static void cookie_for(const struct nk__room_core *c, const nk_addr *a,
                       uint64_t slot, uint8_t out[16])
{
    uint64_t in[3];
    in[0] = nk_addr_hash(a, c->cookie_key);
    in[1] = slot;
    in[2] = 0;
    uint64_t h0 = nk__siphash24(in, sizeof in, c->cookie_key);
    in[2] = 1;
    uint64_t h1 = nk__siphash24(in, sizeof in, c->cookie_key);
    memcpy(out, &h0, 8);
    memcpy(out + 8, &h1, 8);
}

static bool cookie_ok(const struct nk__room_core *c, const nk_addr *a,
                      const uint8_t *cookie, uint64_t now)
{
    uint64_t slot = now / c->cfg.cookie_period_ms;
    for (int back = 0; back < 2 && (uint64_t)back <= slot; back++) {
        uint8_t want[16];
        cookie_for(c, a, slot - (uint64_t)back, want);
        /* Constant time: the comparison must not reveal a prefix. */
        uint8_t diff = 0;
        for (size_t i = 0; i < sizeof want; i++)
            diff |= (uint8_t)(want[i] ^ cookie[i]);
        if (diff == 0)
            return true;
    }
    return false;
}

/* Budget left for sending to an unvalidated member (RFC 9000 section 8). */
static bool within_budget(const struct nk__room_core *c,
                          const struct nk__room_member *m, size_t len)
{
    /* An open room sends to unproven members too: its exposure is bounded
     * by the time-to-live, the cap and the rate limit instead. */
    if (m->validated || !c->cfg.validate)
        return true;
    uint64_t budget;
    if (__builtin_mul_overflow(m->bytes_in, (uint64_t)c->cfg.amplification,
                               &budget))
        return true; /* beyond 2^64 bytes: no limit left to enforce */
    return m->bytes_out <= budget && len <= budget - m->bytes_out;
}

static void maybe_challenge(struct nk__room_core *c, struct nk__room_member *m,
                            uint64_t now, struct nk__room_action *out)
{
    if (!c->cfg.validate || m->validated ||
        !within_budget(c, m, NK_ROOM_COOKIE_MSG_LEN))
        return;
    memcpy(c->reply, magic_challenge, 8);
    cookie_for(c, &m->addr, now / c->cfg.cookie_period_ms, c->reply + 8);
    m->bytes_out += NK_ROOM_COOKIE_MSG_LEN;
    c->stats.challenges++;
    out->reply = c->reply;
    out->reply_len = NK_ROOM_COOKIE_MSG_LEN;
}

static void drop(struct nk__room_core *c, struct nk__room_action *out,
                 nk_room_drop_reason why)
{
    out->verdict = NK__ROOM_DROP;
    out->drop_reason = why;
    c->stats.drops[why]++;
}

/* ---- input ---- */

void nk__room_input(struct nk__room_core *c, const nk_addr *src,
                    const void *data, size_t len, size_t size, bool truncated,
                    uint64_t now, struct nk__room_action *out)
{
    const uint8_t *d = data;
    memset(out, 0, sizeof *out);
    out->verdict = NK__ROOM_RELAY;
    c->stats.messages_in++;
    c->stats.bytes_in += size;
    if (truncated)
        c->stats.truncations++;
    if (len > size)
        len = size; /* the real size bounds what can have been stored */

    if (is_self(c, src)) {
        drop(c, out, NK_ROOM_DROP_SELF);
        return;
    }
    bool oversize = truncated || size > c->cfg.max_datagram;
    bool answer = len == NK_ROOM_COOKIE_MSG_LEN && !truncated &&
                  memcmp(d, magic_answer, 8) == 0;
    bool hello = len == NK_ROOM_HELLO_LEN && !truncated &&
                 memcmp(d, magic_hello, 8) == 0;

    uint32_t i = nk__room_find(c, src);
    if (i == NK__ROOM_NONE) {
        if (oversize) {
            drop(c, out, NK_ROOM_DROP_OVERSIZE);
            return;
        }
        bool valid = false;
        if (answer) {
            /* An answer from a stranger (its membership expired, say):
             * it proves the address, so it may join validated. */
            if (!c->cfg.validate || !cookie_ok(c, src, d + 8, now)) {
                drop(c, out, NK_ROOM_DROP_COOKIE);
                return;
            }
            valid = true;
        }
        if (c->count >= c->cfg.max_members) {
            c->stats.rejected++;
            drop(c, out, NK_ROOM_DROP_FULL);
            return;
        }
        i = add_member(c, src, now, valid);
        if (valid)
            c->stats.validations++;
    }
    struct nk__room_member *m = &c->members[i];
    touch(c, i, now);
    m->bytes_in += size;
    m->refused = 0;

    /* Leaving sends nothing, so the rate limit does not hold it back. */
    if (!oversize && is_leave(c, d, len)) {
        remove_index(c, i, NK_ROOM_LEAVE_MESSAGE);
        out->verdict = NK__ROOM_CONSUMED;
        return;
    }
    if (!rate_ok(c, m, now)) {
        drop(c, out, NK_ROOM_DROP_RATE);
        return;
    }
    if (answer) {
        if (!m->validated) {
            if (!c->cfg.validate || !cookie_ok(c, src, d + 8, now)) {
                drop(c, out, NK_ROOM_DROP_COOKIE);
                return;
            }
            m->validated = true;
            c->stats.unvalidated--;
            c->stats.validations++;
        }
        out->verdict = NK__ROOM_CONSUMED;
        return;
    }
    if (hello) {
        maybe_challenge(c, m, now, out);
        out->verdict = NK__ROOM_CONSUMED;
        return;
    }
    if (oversize) {
        drop(c, out, NK_ROOM_DROP_OVERSIZE);
        return;
    }
    if (size == 0 && !c->cfg.relay_empty) {
        maybe_challenge(c, m, now, out);
        drop(c, out, NK_ROOM_DROP_EMPTY);
        return;
    }
    maybe_challenge(c, m, now, out);
}

size_t nk__room_targets(struct nk__room_core *c, const nk_addr *sender,
                        size_t len, const uint32_t **out)
{
    uint32_t skip = NK__ROOM_NONE;
    if (!c->cfg.echo_sender && sender != NULL)
        skip = nk__room_find(c, sender);
    size_t n = 0;
    /* Once per delivery: the table and the setting in locals, since the
     * stores to the members would otherwise make the compiler reload them
     * on every turn. */
    struct nk__room_member *members = c->members;
    uint32_t *targets = c->targets;
    uint32_t count = (uint32_t)c->count;
    bool validate = c->cfg.validate;
    for (uint32_t i = 0; i < count; i++) {
        if (i == skip)
            continue;
        struct nk__room_member *m = &members[i];
        if (validate && !within_budget(c, m, len)) {
            c->stats.budget_skips++;
            continue;
        }
        m->bytes_out += len;
        targets[n++] = i;
    }
    c->stats.relayed++;
    *out = c->targets;
    return n;
}

void nk__room_delivered(struct nk__room_core *c, size_t n, size_t len)
{
    c->stats.deliveries_out += n;
    c->stats.bytes_out += (uint64_t)n * len;
}

void nk__room_delivery_failed(struct nk__room_core *c, const nk_addr *dst,
                              int err)
{
    if (err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS) {
        c->stats.delivery_drops++;
        return;
    }
    if (!nk__is_icmp_error(-err) || dst == NULL) {
        c->stats.send_errors++;
        return;
    }
    c->stats.unreachable++;
    uint32_t i = nk__room_find(c, dst);
    if (i == NK__ROOM_NONE)
        return;
    struct nk__room_member *m = &c->members[i];
    m->refused++;
    if (c->cfg.unreachable_limit > 0 && m->refused >= c->cfg.unreachable_limit)
        remove_index(c, i, NK_ROOM_LEAVE_UNREACHABLE);
}

void nk__room_count_drop(struct nk__room_core *c, nk_room_drop_reason why)
{
    c->stats.drops[why]++;
}

void nk__room_set_local_ips(struct nk__room_core *c, const nk_addr *ips,
                            size_t n)
{
    c->local_ips = ips;
    c->local_ip_count = ips != NULL ? n : 0;
}

void nk__room_get_stats(const struct nk__room_core *c, nk_udp_room_stats *out)
{
    *out = c->stats;
    out->table_probes = c->table.probes;
    out->table_max_probe = c->table.max_probe;
}

int nk__room_member_info(struct nk__room_core *c, const nk_addr *a,
                         uint64_t now, nk_udp_room_member_info *out)
{
    uint32_t i = nk__room_find(c, a);
    if (i == NK__ROOM_NONE)
        return NK_EINVAL;
    const struct nk__room_member *m = &c->members[i];
    out->bytes_in = m->bytes_in;
    out->bytes_out = m->bytes_out;
    out->idle_ms = now > m->last_seen ? now - m->last_seen : 0;
    out->validated = m->validated;
    return 0;
}

int nk_udp_room_client_hello(void *buf, size_t size)
{
    if (buf == NULL)
        return NK_EINVAL;
    if (size < NK_ROOM_HELLO_LEN)
        return NK_ENOSPACE;
    memset(buf, 0, NK_ROOM_HELLO_LEN);
    memcpy(buf, magic_hello, sizeof magic_hello);
    return NK_ROOM_HELLO_LEN;
}

int nk_udp_room_client_handle(const void *data, size_t len, void *reply,
                              size_t reply_size)
{
    if (data == NULL && len > 0)
        return NK_EINVAL;
    if (len != NK_ROOM_COOKIE_MSG_LEN ||
        memcmp(data, magic_challenge, sizeof magic_challenge) != 0)
        return 0;
    if (reply == NULL)
        return NK_EINVAL;
    if (reply_size < NK_ROOM_COOKIE_MSG_LEN)
        return NK_ENOSPACE;
    memcpy(reply, magic_answer, sizeof magic_answer);
    memcpy((uint8_t *)reply + 8, (const uint8_t *)data + 8, 16);
    return NK_ROOM_COOKIE_MSG_LEN;
}
