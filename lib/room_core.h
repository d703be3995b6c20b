/* The room's decisions as pure functions of (source address, bytes, clock):
 * the member table, the time-to-live order, the rate limiter, the
 * validation budget and cookies. No I/O, no clock reads, no allocation
 * after nk__room_core_init(), so it can be tested and fuzzed without
 * sockets. lib/udp_room.c wires it to an endpoint and a timer. */
#ifndef NK_LIB_ROOM_CORE_H
#define NK_LIB_ROOM_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/addr.h"
#include "netkit/room.h"

#define NK__ROOM_NONE UINT32_MAX

/* ---- member table: open addressing, linear probing, keyed hash ---- */

struct nk__room_slot {
    uint32_t value; /* NK__ROOM_NONE when empty */
    uint32_t hash;  /* low bits of the keyed hash, for home slot and a
                       cheap compare before the address */
};

/* The key stored under @value (the table holds indexes only). */
typedef const nk_addr *(*nk__room_key_fn)(const void *ctx, uint32_t value);

struct nk__room_table {
    struct nk__room_slot *slots;
    size_t mask; /* capacity - 1; capacity >= 2 * max entries */
    uint8_t key[16];
    uint64_t probes;    /* slots examined, for stats */
    uint32_t max_probe; /* longest sequence seen */
};

/* Table for up to @max_entries under @key (NULL: a fresh random key from
 * getrandom()). 0, NK_EINVAL, -ENOMEM, or -errno from getrandom(). */
int nk__room_table_init(struct nk__room_table *t, size_t max_entries,
                        const uint8_t key[16]);
void nk__room_table_free(struct nk__room_table *t);
/* The keyed hash the table uses for @a (white box: two tables with
 * different keys hash one address differently). */
uint64_t nk__room_table_hash(const struct nk__room_table *t, const nk_addr *a);
/* The value stored for @a, or NK__ROOM_NONE. */
uint32_t nk__room_table_find(struct nk__room_table *t, const nk_addr *a,
                             nk__room_key_fn key, const void *ctx);
/* Insert @a (known absent; the caller keeps within max_entries). */
void nk__room_table_insert(struct nk__room_table *t, const nk_addr *a,
                           uint32_t value);
/* Remove @a (present). */
void nk__room_table_remove(struct nk__room_table *t, const nk_addr *a,
                           nk__room_key_fn key, const void *ctx);
/* The entry for @a now holds @value (after a member moved in the array). */
void nk__room_table_set(struct nk__room_table *t, const nk_addr *a,
                        uint32_t value, nk__room_key_fn key, const void *ctx);
size_t nk__room_table_bytes(const struct nk__room_table *t);

/* ---- the room core ---- */

struct nk__room_member {
    nk_addr addr;
    uint64_t last_seen; /* ms */
    uint64_t bytes_in;  /* real sizes received from it */
    uint64_t bytes_out; /* sent to it (relays and challenges) */
    uint64_t tokens;    /* rate limiter, in thousandths of a datagram */
    uint64_t tokens_at; /* ms of the last refill */
    uint32_t prev, next; /* time-to-live order: head is the oldest */
    uint32_t refused;   /* unreachable reports since it last sent */
    bool validated;
};

struct nk__room_config {
    bool echo_sender;
    bool relay_empty;
    bool validate;
    size_t max_members;
    uint64_t member_ttl_ms; /* 0: never */
    size_t max_datagram;
    uint32_t rate_limit; /* per second, 0: off */
    uint32_t rate_burst;
    unsigned amplification;
    unsigned unreachable_limit;
    uint64_t cookie_period_ms; /* a cookie is valid this long or twice it */
    char leave[64];
    size_t leave_len; /* 0: no leave message */
    nk_addr self;     /* the room's own address (port 0: unknown) */
};

enum nk__room_event_kind { NK__ROOM_JOIN = 1, NK__ROOM_LEAVE };

struct nk__room_event {
    enum nk__room_event_kind kind;
    const nk_addr *addr;
    nk_room_leave_reason reason;
    bool validated;
    size_t members; /* after the change */
};

/* Join and leave events as they happen (the sink must not call back into
 * the core). */
typedef void (*nk__room_sink)(void *ctx, const struct nk__room_event *ev);

enum nk__room_verdict {
    NK__ROOM_RELAY = 0, /* relay the datagram from `sender` */
    NK__ROOM_DROP,      /* not relayed: drop_reason says why */
    NK__ROOM_CONSUMED,  /* a control datagram, handled */
};

struct nk__room_action {
    enum nk__room_verdict verdict;
    nk_room_drop_reason drop_reason;
    /* A datagram to send back to the source (the challenge), or len 0. */
    const uint8_t *reply;
    size_t reply_len;
};

struct nk__room_core {
    struct nk__room_config cfg;
    struct nk__room_member *members; /* dense: [0, count) */
    size_t count;
    uint32_t head, tail; /* time-to-live order */
    struct nk__room_table table;
    uint8_t cookie_key[16];
    uint8_t reply[NK_ROOM_COOKIE_MSG_LEN];
    uint32_t *targets; /* scratch for nk__room_targets() */
    nk_udp_room_stats stats;
    nk__room_sink sink;
    void *sink_ctx;
    /* The host's own addresses, for a room bound to a wildcard: a datagram
     * from one of them with the room's port is the room's own (forged, or
     * relayed to itself). Set by the owner (udp_room.c asks the system);
     * loopback is recognised without them. */
    const nk_addr *local_ips;
    size_t local_ip_count;
};

/* @secret: 32 bytes (table key, cookie key), or NULL for random ones.
 * 0, NK_EINVAL, -ENOMEM, -errno. */
int nk__room_core_init(struct nk__room_core *c,
                       const struct nk__room_config *cfg,
                       const uint8_t secret[32], nk__room_sink sink,
                       void *sink_ctx);
void nk__room_core_free(struct nk__room_core *c);

/* One datagram from @src at @now: what to do with it. @len bytes are in
 * @data, @size is the real size (> len when @truncated). */
void nk__room_input(struct nk__room_core *c, const nk_addr *src,
                    const void *data, size_t len, size_t size, bool truncated,
                    uint64_t now, struct nk__room_action *out);

/* The members a message of @len bytes from @sender goes to, charged to
 * their byte counters (validated mode withholds it from unvalidated members
 * over budget). Returns the count; *out points to member indexes valid
 * until the next call that changes the table. */
size_t nk__room_targets(struct nk__room_core *c, const nk_addr *sender,
                        size_t len, const uint32_t **out);

/* The address of member @idx (an index from nk__room_targets()). Inline:
 * the fan-out asks once per delivery. */
static inline const nk_addr *nk__room_member_addr(
    const struct nk__room_core *c, uint32_t idx)
{
    return &c->members[idx].addr;
}

/* @n deliveries of @len bytes each were sent. */
void nk__room_delivered(struct nk__room_core *c, size_t n, size_t len);

/* A delivery to @dst failed with @err (negative): count it; a refusal
 * (-ECONNREFUSED and friends, or an ICMP report) counts toward removal.
 * @dst NULL: the failure names no member (a refusal a send returned, left
 * over from an earlier datagram to someone else); counted, nobody blamed. */
void nk__room_delivery_failed(struct nk__room_core *c, const nk_addr *dst,
                              int err);

/* A datagram the core let through was not relayed after all, for @why (a
 * hook's verdict, the sender removed by a hook). */
void nk__room_count_drop(struct nk__room_core *c, nk_room_drop_reason why);

/* Members removed so far, all reasons: a change tells the owner that a
 * hook removed someone. Inline: read once per relayed datagram. */
static inline uint64_t nk__room_leaves(const struct nk__room_core *c)
{
    return c->stats.leaves;
}

/* The host's own addresses, for a room bound to a wildcard (see
 * local_ips); the array stays the caller's and must outlive its use. */
void nk__room_set_local_ips(struct nk__room_core *c, const nk_addr *ips,
                            size_t n);

/* The counters, table probes included. */
void nk__room_get_stats(const struct nk__room_core *c, nk_udp_room_stats *out);

/* What the room knows of member @a at @now: 0, or NK_EINVAL if @a is not a
 * member. */
int nk__room_member_info(struct nk__room_core *c, const nk_addr *a,
                         uint64_t now, nk_udp_room_member_info *out);

/* Remove up to @max members silent for member_ttl_ms at @now: the number
 * removed. */
size_t nk__room_expire(struct nk__room_core *c, uint64_t now, size_t max);

/* When the oldest member expires (ms), or UINT64_MAX. */
uint64_t nk__room_next_expiry(const struct nk__room_core *c);

/* Remove @a with @reason: 0, or NK_EINVAL if not a member. */
int nk__room_remove(struct nk__room_core *c, const nk_addr *a,
                    nk_room_leave_reason reason);

/* Member lookup (NK__ROOM_NONE if absent). */
uint32_t nk__room_find(struct nk__room_core *c, const nk_addr *a);

#endif
