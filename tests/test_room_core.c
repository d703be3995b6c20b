/* The room's pure core and member table, without sockets: the keyed hash
 * differs per room (D8) with bounded probes, the table agrees with a plain
 * reference under churn, expiry follows last activity, the cap refuses
 * newcomers without touching members, the room never adds itself (D6),
 * cookies and the amplification budget (D4), refusals evict (B15), and
 * the rate limiter refills with the clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nkt_main.h"

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/room.h"
#include "room_core.h"

static const uint8_t secret_a[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                     13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t secret_b[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23,
                                     22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                                     12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

static nk_addr addr_of(const char *text)
{
    nk_addr a;
    assert_int_equal(nk_addr_parse(text, &a), 0);
    return a;
}

static nk_addr nth_addr(unsigned i)
{
    char text[40];
    snprintf(text, sizeof text, "127.%u.%u.%u:%u", (i >> 16) & 255,
             (i >> 8) & 255, 1 + (i & 127), 1000 + (i % 50));
    return addr_of(text);
}

struct events {
    unsigned joins, leaves;
    nk_room_leave_reason reason;
    nk_addr last;
};

static void sink(void *ctx, const struct nk__room_event *ev)
{
    struct events *e = ctx;
    if (ev->kind == NK__ROOM_JOIN)
        e->joins++;
    else {
        e->leaves++;
        e->reason = ev->reason;
    }
    e->last = *ev->addr;
}

static struct nk__room_config base_config(void)
{
    struct nk__room_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.echo_sender = true;
    cfg.max_members = 8;
    cfg.member_ttl_ms = 100;
    cfg.max_datagram = 65507;
    cfg.amplification = 3;
    cfg.unreachable_limit = 3;
    cfg.self = addr_of("127.0.0.1:5000");
    return cfg;
}

static struct nk__room_action input(struct nk__room_core *c, const nk_addr *a,
                                    const char *text, uint64_t now)
{
    struct nk__room_action act;
    size_t n = strlen(text);
    nk__room_input(c, a, text, n, n, false, now, &act);
    return act;
}

/* D8: the same address hashes differently in two rooms, including two
 * rooms keyed from the system's random source. */
static void test_room_table_hash_keyed_per_room(void **state)
{
    (void)state;
    struct nk__room_table t1, t2, r1, r2;
    assert_int_equal(nk__room_table_init(&t1, 16, secret_a), 0);
    assert_int_equal(nk__room_table_init(&t2, 16, secret_b), 0);
    assert_int_equal(nk__room_table_init(&r1, 16, NULL), 0);
    assert_int_equal(nk__room_table_init(&r2, 16, NULL), 0);
    nk_addr a = addr_of("127.0.0.1:5000");
    assert_int_not_equal(nk__room_table_hash(&t1, &a), nk__room_table_hash(&t2, &a));
    assert_int_not_equal(nk__room_table_hash(&r1, &a), nk__room_table_hash(&r2, &a));
    /* Same key, same hash: the hash is a function of key and address. */
    assert_int_equal(nk__room_table_hash(&t1, &a), nk__room_table_hash(&t1, &a));
    /* Consistent with nk_addr_equal: the mapped form hashes the same. */
    nk_addr m = addr_of("[::ffff:127.0.0.1]:5000");
    assert_int_equal(nk__room_table_hash(&t1, &a), nk__room_table_hash(&t1, &m));
    nk__room_table_free(&t1);
    nk__room_table_free(&t2);
    nk__room_table_free(&r1);
    nk__room_table_free(&r2);
}

/* D8 through the room core, keyed as nk_udp_room_open() keys it (no
 * secret given): two rooms hash one address differently, so a sender
 * cannot aim at the probe chains of every room at once. */
static void test_room_hash_key_differs_per_room(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    struct nk__room_core c1, c2;
    assert_int_equal(nk__room_core_init(&c1, &cfg, NULL, NULL, NULL), 0);
    assert_int_equal(nk__room_core_init(&c2, &cfg, NULL, NULL, NULL), 0);
    static const uint8_t zero[sizeof c1.table.key];
    assert_memory_not_equal(c1.table.key, zero, sizeof zero);
    assert_memory_not_equal(c1.table.key, c2.table.key, sizeof zero);
    nk_addr a = addr_of("127.0.0.1:6000");
    assert_int_not_equal(nk__room_table_hash(&c1.table, &a),
                         nk__room_table_hash(&c2.table, &a));
    /* Each room still finds its own member under its own key. */
    struct nk__room_action act = input(&c1, &a, "hi", 0);
    assert_int_equal(act.verdict, NK__ROOM_RELAY);
    assert_int_not_equal(nk__room_find(&c1, &a), NK__ROOM_NONE);
    assert_int_equal(nk__room_find(&c2, &a), NK__ROOM_NONE);
    nk__room_core_free(&c1);
    nk__room_core_free(&c2);
}

/* A table of plain addresses for the reference run. */
struct ref {
    nk_addr keys[512];
    bool used[512];
};

static const nk_addr *ref_key(const void *ctx, uint32_t v)
{
    const struct ref *r = ctx;
    return &r->keys[v];
}

/* Random inserts and removes agree with a plain array; the backward-shift
 * deletion never loses an entry; probe lengths stay short. */
static void test_room_table_agrees_with_reference_under_churn(void **state)
{
    (void)state;
    static struct ref r;
    memset(&r, 0, sizeof r);
    struct nk__room_table t;
    assert_int_equal(nk__room_table_init(&t, 512, secret_a), 0);
    uint32_t rng = 12345;
    size_t live = 0;
    for (unsigned step = 0; step < 20000; step++) {
        rng = rng * 1103515245u + 12345u;
        uint32_t v = (rng >> 8) % 512;
        r.keys[v] = nth_addr(v);
        uint32_t found = nk__room_table_find(&t, &r.keys[v], ref_key, &r);
        if (r.used[v]) {
            assert_int_equal(found, v);
            if ((rng >> 4) & 1) {
                nk__room_table_remove(&t, &r.keys[v], ref_key, &r);
                r.used[v] = false;
                live--;
            }
        } else {
            assert_int_equal(found, NK__ROOM_NONE);
            nk__room_table_insert(&t, &r.keys[v], v);
            r.used[v] = true;
            live++;
        }
    }
    for (uint32_t v = 0; v < 512; v++) {
        if (!r.used[v])
            continue;
        assert_int_equal(nk__room_table_find(&t, &r.keys[v], ref_key, &r), v);
    }
    assert_true(live > 0);
    assert_true(t.max_probe <= 40);
    nk__room_table_free(&t);
}

/* Many members, probe counts bounded (the debug counter of D8). */
static void test_room_table_probes_stay_bounded(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    cfg.max_members = 4096;
    cfg.member_ttl_ms = 0;
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
    for (unsigned i = 0; i < 4096; i++) {
        nk_addr a = nth_addr(i * 7919u);
        struct nk__room_action act;
        nk__room_input(&c, &a, "", 0, 0, false, 1, &act);
    }
    assert_true(c.count > 4000);
    uint64_t lookups = c.stats.messages_in * 2;
    assert_true(c.table.max_probe <= 32);
    assert_true(c.table.probes <= lookups * 3);
    nk__room_core_free(&c);
}

/* Expiry follows last activity: a refreshed member outlives a later one. */
static void test_room_core_expiry_in_activity_order(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    struct events e = {0};
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, sink, &e), 0);
    nk_addr a = addr_of("10.0.0.1:1"), b = addr_of("10.0.0.2:1"),
            d = addr_of("10.0.0.3:1");
    input(&c, &a, "a", 0);
    input(&c, &b, "b", 10);
    input(&c, &d, "d", 20);
    input(&c, &a, "", 30); /* refresh */
    assert_int_equal(nk__room_next_expiry(&c), 110);
    assert_int_equal(nk__room_expire(&c, 109, SIZE_MAX), 0);
    assert_int_equal(nk__room_expire(&c, 110, SIZE_MAX), 1);
    assert_true(nk_addr_equal(&e.last, &b));
    assert_int_equal(e.reason, NK_ROOM_LEAVE_TTL);
    assert_int_equal(nk__room_next_expiry(&c), 120);
    assert_int_equal(nk__room_expire(&c, 1000, 1), 1); /* bounded pass */
    assert_true(nk_addr_equal(&e.last, &d));
    assert_int_equal(nk__room_expire(&c, 1000, SIZE_MAX), 1);
    assert_int_equal(nk__room_next_expiry(&c), UINT64_MAX);
    assert_int_equal(c.stats.expirations, 3);
    nk__room_core_free(&c);
}

/* A full room refuses newcomers and keeps its members. */
static void test_room_core_cap_refuses_newcomers(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    cfg.max_members = 2;
    struct events e = {0};
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, sink, &e), 0);
    nk_addr a = addr_of("10.0.0.1:1"), b = addr_of("10.0.0.2:1"),
            x = addr_of("10.0.0.9:1");
    assert_int_equal(input(&c, &a, "a", 0).verdict, NK__ROOM_RELAY);
    assert_int_equal(input(&c, &b, "b", 0).verdict, NK__ROOM_RELAY);
    struct nk__room_action act = input(&c, &x, "x", 0);
    assert_int_equal(act.verdict, NK__ROOM_DROP);
    assert_int_equal(act.drop_reason, NK_ROOM_DROP_FULL);
    assert_int_equal(c.stats.rejected, 1);
    assert_int_equal(c.count, 2);
    assert_int_not_equal(nk__room_find(&c, &a), NK__ROOM_NONE);
    assert_int_equal(nk__room_find(&c, &x), NK__ROOM_NONE);
    assert_int_equal(e.joins, 2);
    nk__room_core_free(&c);
}

/* D6: the room's own address never becomes a member. */
static void test_room_core_never_adds_itself(void **state)
{
    (void)state;
    static const struct {
        const char *self, *src;
        bool dropped;
    } cases[] = {
        {"127.0.0.1:5000", "127.0.0.1:5000", true},
        {"127.0.0.1:5000", "[::ffff:127.0.0.1]:5000", true},
        {"0.0.0.0:5000", "127.0.0.7:5000", true},
        {"[::]:5000", "[::1]:5000", true},
        {"0.0.0.0:5000", "10.0.0.1:5000", false},
        {"127.0.0.1:5000", "127.0.0.1:5001", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct nk__room_config cfg = base_config();
        cfg.self = addr_of(cases[i].self);
        struct nk__room_core c;
        assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
        nk_addr src = addr_of(cases[i].src);
        nk_addr_normalize(&src);
        struct nk__room_action act = input(&c, &src, "hi", 0);
        if (cases[i].dropped) {
            assert_int_equal(act.drop_reason, NK_ROOM_DROP_SELF);
            assert_int_equal(c.count, 0);
        } else {
            assert_int_equal(act.verdict, NK__ROOM_RELAY);
            assert_int_equal(c.count, 1);
        }
        nk__room_core_free(&c);
    }
}

/* D4: a silent 1-byte joiner gets at most 3 bytes; a client that answers
 * the challenge is validated; an old cookie no longer works. */
static void test_room_core_cookie_and_budget(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    cfg.validate = true;
    cfg.member_ttl_ms = 0;
    cfg.cookie_period_ms = 1000;
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
    nk_addr attacker = addr_of("10.0.0.66:9"), cl = addr_of("10.0.0.1:1");

    struct nk__room_action act = input(&c, &attacker, "j", 0);
    assert_int_equal(act.reply_len, 0); /* 24 bytes > 3 x 1 */
    char hello[NK_ROOM_HELLO_LEN];
    nk_udp_room_client_hello(hello, sizeof hello);
    nk__room_input(&c, &cl, hello, sizeof hello, sizeof hello, false, 0, &act);
    assert_int_equal(act.verdict, NK__ROOM_CONSUMED);
    assert_int_equal(act.reply_len, NK_ROOM_COOKIE_MSG_LEN);
    uint8_t answer[NK_ROOM_COOKIE_MSG_LEN];
    assert_int_equal(nk_udp_room_client_handle(act.reply, act.reply_len, answer,
                                               sizeof answer),
                     NK_ROOM_COOKIE_MSG_LEN);
    /* The answer from another address does not verify. */
    nk_addr thief = addr_of("10.0.0.67:9");
    nk__room_input(&c, &thief, answer, sizeof answer, sizeof answer, false,
                   10, &act);
    assert_int_equal(act.drop_reason, NK_ROOM_DROP_COOKIE);
    nk__room_input(&c, &cl, answer, sizeof answer, sizeof answer, false, 1500,
                   &act);
    assert_int_equal(act.verdict, NK__ROOM_CONSUMED);
    assert_true(c.members[nk__room_find(&c, &cl)].validated);
    assert_int_equal(c.stats.validations, 1);

    /* Relays: the validated client gets all, the attacker nothing more. */
    const uint32_t *t;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(input(&c, &cl, "0123456789", 2000).verdict, NK__ROOM_RELAY);
        size_t n = nk__room_targets(&c, &cl, 10, &t);
        assert_int_equal(n, 1);
        assert_int_equal(t[0], nk__room_find(&c, &cl));
    }
    assert_int_equal(nk__room_find(&c, &thief), NK__ROOM_NONE);
    const struct nk__room_member *m = &c.members[nk__room_find(&c, &attacker)];
    assert_true(m->bytes_out <= 3 * m->bytes_in);
    assert_int_equal(c.stats.budget_skips, 10);

    /* A cookie two periods old is refused. */
    nk__room_remove(&c, &cl, NK_ROOM_LEAVE_REMOVED);
    nk__room_input(&c, &cl, answer, sizeof answer, sizeof answer, false, 5000,
                   &act);
    assert_int_equal(act.drop_reason, NK_ROOM_DROP_COOKIE);
    assert_int_equal(nk__room_find(&c, &cl), NK__ROOM_NONE);
    nk__room_core_free(&c);
}

/* B15: refusals evict after the limit; datagrams from the member reset it;
 * buffer drops are counted without blame. */
static void test_room_core_refusals_evict(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    struct events e = {0};
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, sink, &e), 0);
    nk_addr a = addr_of("10.0.0.1:1");
    input(&c, &a, "x", 0);
    nk__room_delivery_failed(&c, &a, -ECONNREFUSED);
    nk__room_delivery_failed(&c, &a, -ECONNREFUSED);
    input(&c, &a, "alive", 1);
    nk__room_delivery_failed(&c, &a, -ECONNREFUSED);
    nk__room_delivery_failed(&c, &a, -ENOBUFS);
    nk__room_delivery_failed(&c, &a, -EAGAIN);
    nk__room_delivery_failed(&c, &a, -ECONNREFUSED);
    assert_int_equal(c.count, 1);
    nk__room_delivery_failed(&c, &a, -ECONNREFUSED);
    assert_int_equal(c.count, 0);
    assert_int_equal(e.reason, NK_ROOM_LEAVE_UNREACHABLE);
    assert_int_equal(c.stats.evictions, 1);
    assert_int_equal(c.stats.unreachable, 5);
    assert_int_equal(c.stats.delivery_drops, 2);
    nk__room_core_free(&c);
}

/* The bucket refills with the clock: 10 per second, burst 1. */
static void test_room_core_rate_refills_with_clock(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    cfg.rate_limit = 10;
    cfg.rate_burst = 1;
    cfg.member_ttl_ms = 0;
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
    nk_addr a = addr_of("10.0.0.1:1");
    assert_int_equal(input(&c, &a, "1", 0).verdict, NK__ROOM_RELAY);
    assert_int_equal(input(&c, &a, "2", 50).drop_reason, NK_ROOM_DROP_RATE);
    assert_int_equal(input(&c, &a, "3", 100).verdict, NK__ROOM_RELAY);
    assert_int_equal(input(&c, &a, "4", 100).drop_reason, NK_ROOM_DROP_RATE);
    /* Long silence fills only up to the burst. */
    assert_int_equal(input(&c, &a, "5", 100000).verdict, NK__ROOM_RELAY);
    assert_int_equal(input(&c, &a, "6", 100000).drop_reason, NK_ROOM_DROP_RATE);
    assert_int_equal(c.stats.drops[NK_ROOM_DROP_RATE], 3);
    nk__room_core_free(&c);
}

/* F6: the largest rates and multiples do not overflow. A member silent for
 * 2^33 ms at 2^31 datagrams per second refills a full bucket (the product
 * is 2^64); an unvalidated member that sent 2^33 bytes under an
 * amplification of 2^31 has an unbounded budget, not none. */
static void test_room_core_limits_do_not_overflow(void **state)
{
    (void)state;
    struct nk__room_config cfg = base_config();
    cfg.rate_limit = 1u << 31;
    cfg.rate_burst = 1;
    cfg.member_ttl_ms = 0;
    struct nk__room_core c;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
    nk_addr a = addr_of("10.0.0.1:1");
    assert_int_equal(input(&c, &a, "1", 0).verdict, NK__ROOM_RELAY);
    assert_int_equal(input(&c, &a, "2", (uint64_t)1 << 33).verdict,
                     NK__ROOM_RELAY);
    nk__room_core_free(&c);

    cfg = base_config();
    cfg.validate = true;
    cfg.amplification = 1u << 31;
    cfg.member_ttl_ms = 0;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), 0);
    assert_int_equal(input(&c, &a, "x", 0).verdict, NK__ROOM_RELAY);
    /* 2^33 bytes received in all: the rest as one truncated datagram's
     * real size. */
    struct nk__room_action act;
    nk__room_input(&c, &a, "x", 1, ((size_t)1 << 33) - 1, true, 0, &act);
    assert_int_equal(act.drop_reason, NK_ROOM_DROP_OVERSIZE);
    const uint32_t *t;
    assert_int_equal(nk__room_targets(&c, NULL, 100, &t), 1);
    assert_int_equal(c.stats.budget_skips, 0);
    nk__room_core_free(&c);
}

static void test_room_core_rejects_bad_config(void **state)
{
    (void)state;
    struct nk__room_core c;
    struct nk__room_config cfg = base_config();
    cfg.max_members = 0;
    assert_int_equal(nk__room_core_init(&c, &cfg, secret_a, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk__room_core_init(NULL, &cfg, secret_a, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk__room_core_init(&c, NULL, secret_a, NULL, NULL), NK_EINVAL);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_table_hash_keyed_per_room),
        cmocka_unit_test(test_room_hash_key_differs_per_room),
        cmocka_unit_test(test_room_table_agrees_with_reference_under_churn),
        cmocka_unit_test(test_room_table_probes_stay_bounded),
        cmocka_unit_test(test_room_core_expiry_in_activity_order),
        cmocka_unit_test(test_room_core_cap_refuses_newcomers),
        cmocka_unit_test(test_room_core_never_adds_itself),
        cmocka_unit_test(test_room_core_cookie_and_budget),
        cmocka_unit_test(test_room_core_refusals_evict),
        cmocka_unit_test(test_room_core_rate_refills_with_clock),
        cmocka_unit_test(test_room_core_limits_do_not_overflow),
        cmocka_unit_test(test_room_core_rejects_bad_config),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
