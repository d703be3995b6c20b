/* A10 of the reliability matrix, across the whole public API: every
 * function called with NULL handles (and NULL outputs where a handle is not
 * needed) returns its documented code or does nothing; none aborts, prints
 * or crashes. The address parser's own bad inputs are in test_addr.c.
 * F6: absurd sizes and options (lengths near SIZE_MAX, zero and huge
 * buffers, negative and huge timeouts) get an error code at the call, with
 * no overflow and no allocation of the bad size. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "nkt_alloc.h"
#include "nkt_loop.h"
#include "nkt_main.h"
#include "nkt_peer.h"

#include "netkit.h"

static void test_a10_addr_and_frame_functions_reject_null(void **state)
{
    (void)state;
    nk_addr a;
    char buf[64];
    nk_frame_msg m;
    assert_true(nk_addr_equal(NULL, NULL));
    assert_false(nk_addr_equal(&a, NULL));
    assert_int_equal(nk_addr_family(NULL), 0);
    assert_int_equal(nk_addr_port(NULL), -1);
    assert_int_equal(nk_addr_format(NULL, buf, sizeof buf), NK_EINVAL);
    assert_int_equal(nk_addr_parse("1.2.3.4:5", &a), 0);
    assert_int_equal(nk_addr_format(&a, NULL, 64), NK_EINVAL);
    assert_int_equal(nk_addr_from_sockaddr(NULL, NULL, 0), NK_EINVAL);
    assert_int_equal(nk_addr_parse(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_addr_parse("1.2.3.4:5", NULL), NK_EINVAL);
    assert_int_equal(nk_addr_resolve(NULL, AF_UNSPEC, &a), NK_EINVAL);
    assert_int_equal(nk_addr_resolve("127.0.0.1:1", AF_UNSPEC, NULL),
                     NK_EINVAL);
    assert_int_equal(nk_addr_set_port(NULL, 1), NK_EINVAL);
    nk_addr_normalize(NULL);
    (void)nk_addr_hash(NULL, NULL); /* documented: hashes as an empty key */
    assert_int_equal(nk_frame_decode(NULL, "x", 1, NULL), NK_EINVAL);
    assert_int_equal(nk_frame_decode(NULL, NULL, 5, &m), NK_EINVAL);
    assert_int_equal(nk_frame_decode(NULL, NULL, 0, &m), 0);
    assert_int_equal(nk_frame_length32_prefix(1, NULL), NK_EINVAL);
    assert_non_null(nk_strerror(0));
    assert_non_null(nk_err_name(NK_EINVAL));
}

static void test_a10_loop_functions_reject_null(void **state)
{
    (void)state;
    nk_loop_stats ls;
    assert_int_equal(nk_loop_new(NULL), NK_EINVAL);
    assert_int_equal(nk_loop_free(NULL), NK_EINVAL);
    assert_int_equal(nk_loop_run(NULL, NK_RUN_NOWAIT), NK_EINVAL);
    assert_int_equal(nk_loop_post(NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_loop_defer(NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_io_start(NULL, 0, NK_READ, NULL, NULL, NULL),
                     NK_EINVAL);
    assert_int_equal(nk_io_set(NULL, NK_READ), NK_EINVAL);
    assert_int_equal(nk_timer_start(NULL, 1, 1, NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_timer_restart(NULL, 1, 1), NK_EINVAL);
    assert_int_equal(nk_signal_start(NULL, 2, NULL, NULL, NULL), NK_EINVAL);
    /* Stops and frees ignore NULL; the rest must not crash. */
    nk_loop_stop(NULL);
    nk_io_stop(NULL);
    nk_timer_stop(NULL);
    nk_signal_stop(NULL);
    nk_loop_update_time(NULL);
    nk_loop_get_stats(NULL, &ls);
    (void)nk_loop_now(NULL);
    (void)nk_loop_timeout(NULL);
    (void)nk_loop_fd(NULL);
    (void)nk_io_events(NULL);
    (void)nk_io_fd(NULL);
    (void)nk_loop_backend(NULL);
}

static void test_a10_tcp_functions_reject_null(void **state)
{
    (void)state;
    nk_addr a;
    char buf[8];
    nk_tcp_conn_stats cs;
    nk_tcp_server_stats ss;
    assert_int_equal(nk_tcp_server_start(NULL, NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_server_port(NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_server_addr(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_tcp_server_pause(NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_server_resume(NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_client_connect(NULL, NULL, NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_conn_send(NULL, "x", 1), NK_EINVAL);
    assert_int_equal(nk_tcp_conn_shutdown(NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_conn_set_reading(NULL, true), NK_EINVAL);
    assert_int_equal(nk_tcp_conn_peer(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_tcp_conn_local(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_connect(NULL, 1, NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_send_all(NULL, "x", 1, 0), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_recv(NULL, buf, 1, 0), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_recv_exact(NULL, buf, 1, 0), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_recv_line(NULL, buf, sizeof buf, 0),
                     NK_EINVAL);
    assert_int_equal(nk_tcp_sync_shutdown(NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_fd(NULL), NK_EINVAL);
    nk_tcp_server_free(NULL);
    nk_tcp_client_cancel(NULL);
    nk_tcp_conn_close(NULL);
    nk_tcp_conn_abort(NULL);
    nk_tcp_sync_close(NULL);
    nk_tcp_conn_set_user(NULL, NULL);
    nk_tcp_conn_get_stats(NULL, &cs);
    nk_tcp_server_get_stats(NULL, &ss);
    assert_null(nk_tcp_conn_user(NULL));
    assert_null(nk_tcp_conn_loop(NULL));
    assert_true(nk_tcp_conn_fd(NULL) < 0);
}

static void test_a10_udp_and_room_functions_reject_null(void **state)
{
    (void)state;
    nk_addr a;
    char buf[64];
    nk_udp_endpoint_stats es;
    nk_udp_room_stats rs;
    nk_udp_room_member_info mi;
    assert_int_equal(nk_udp_endpoint_bind(NULL, NULL, NULL, NULL, NULL, NULL),
                     NK_EINVAL);
    assert_int_equal(
        nk_udp_endpoint_connect(NULL, NULL, NULL, NULL, NULL, NULL),
        NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_send_to(NULL, "x", 1, NULL), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_send_batch(NULL, NULL, 0), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_recv(NULL, buf, 1, 0, NULL, NULL),
                     NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_set_receiving(NULL, true), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_local_addr(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_peer_addr(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_udp_endpoint_multicast(NULL, NULL, 0, true),
                     NK_EINVAL);
    assert_int_equal(nk_udp_room_open(NULL, NULL, NULL, NULL, NULL, NULL),
                     NK_EINVAL);
    assert_int_equal(nk_udp_room_local_addr(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_udp_room_member(NULL, NULL, &mi), NK_EINVAL);
    assert_int_equal(nk_udp_room_remove(NULL, NULL), NK_EINVAL);
    assert_int_equal(nk_udp_room_client_hello(NULL, 0), NK_EINVAL);
    assert_int_equal(nk_udp_room_client_handle(NULL, 5, buf, sizeof buf),
                     NK_EINVAL);
    nk_udp_endpoint_close(NULL);
    nk_udp_room_close(NULL);
    nk_udp_endpoint_get_stats(NULL, &es);
    nk_udp_room_get_stats(NULL, &rs);
    assert_null(nk_udp_endpoint_loop(NULL));
    assert_true(nk_udp_endpoint_fd(NULL) < 0);
}

/* ---- F6: TCP sizes and options ---- */

/* One option set to one value: the field is named by its offset and size,
 * so one table covers fields of every integer type. */
struct opt_case {
    const char *name;
    size_t off, size;
    int64_t value; /* stored in the field's own type (bool, int, size_t...) */
    int code;      /* expected from the call */
};

static void set_field(void *opts, const struct opt_case *k)
{
    uint8_t *f = (uint8_t *)opts + k->off;
    switch (k->size) {
    case 1: { bool v = k->value != 0; memcpy(f, &v, 1); break; }
    case 4: { int32_t v = (int32_t)k->value; memcpy(f, &v, 4); break; }
    case 8: { uint64_t v = (uint64_t)k->value; memcpy(f, &v, 8); break; }
    default: fail_msg("%s: field of %zu bytes", k->name, k->size);
    }
}

#define FIELD(type, f) offsetof(type, f), sizeof(((type *)0)->f)
#define SRV(f, v, code)                                                       \
    {"server ." #f " = " #v, FIELD(nk_tcp_server_opts, f), (int64_t)(v), code}
#define CLI(f, v, code)                                                       \
    {"client ." #f " = " #v, FIELD(nk_tcp_client_opts, f), (int64_t)(v), code}

static const struct opt_case server_cases[] = {
    SRV(read_chunk, 0, NK_EINVAL),
    SRV(read_chunk, SIZE_MAX, NK_EINVAL),
    SRV(read_chunk, (1u << 30) + 1, NK_EINVAL),
    SRV(read_chunk, 1, 0),
    SRV(accept_batch, 0, NK_EINVAL),
    SRV(accept_batch, UINT_MAX, 0),
    SRV(backlog, -1, NK_EINVAL),
    SRV(backlog, INT_MIN, NK_EINVAL),
    SRV(backlog, INT_MAX, 0),
    SRV(accept_retry_ms, 0, NK_EINVAL),
    SRV(accept_retry_ms, UINT64_MAX, 0),
    SRV(v6only, 2, NK_EINVAL),
    SRV(v6only, -2, NK_EINVAL),
    SRV(max_connections, SIZE_MAX, 0),
    SRV(conn.low_watermark, SIZE_MAX, NK_EINVAL),
    SRV(conn.high_watermark, 0, NK_EINVAL), /* under the low one */
    SRV(conn.high_watermark, SIZE_MAX, 0),
    SRV(conn.max_queue, SIZE_MAX, 0),
    SRV(conn.frame.kind, 3, NK_EINVAL),
    SRV(conn.frame.kind, -1, NK_EINVAL),
    SRV(conn.frame.max_line, SIZE_MAX, 0),
    SRV(conn.frame.max_line, 0, 0),
    SRV(conn.frame.max_frame, SIZE_MAX, 0),
    SRV(conn.idle_timeout_ms, UINT64_MAX, 0),
    SRV(conn.linger_ms, UINT64_MAX, 0),
};

static const struct opt_case client_cases[] = {
    CLI(read_chunk, 0, NK_EINVAL),
    CLI(read_chunk, SIZE_MAX, NK_EINVAL),
    CLI(read_chunk, SIZE_MAX - 8, NK_EINVAL),
    CLI(read_chunk, (1u << 30) + 1, NK_EINVAL),
    CLI(read_chunk, 1, 0),
    CLI(connect_timeout_ms, UINT64_MAX, 0),
    CLI(conn.low_watermark, SIZE_MAX, NK_EINVAL),
    CLI(conn.frame.kind, 3, NK_EINVAL),
    CLI(conn.frame.max_frame, SIZE_MAX, 0),
    CLI(conn.linger_ms, UINT64_MAX, 0),
};

static void no_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                       void *user)
{
    (void)cl;
    (void)conn;
    (void)status;
    (void)user;
    fail_msg("on_connect after a cancel");
}

/* A rejected call allocates nothing at all; an accepted one never the
 * absurd size (live bytes stay small). */
static void check_alloc(const struct opt_case *k, int r, size_t live_before)
{
    if (r != k->code)
        fail_msg("%s: %s, expected %s", k->name, nk_err_name(r),
                 nk_err_name(k->code));
    if (r != 0 && nkt_alloc_count() != 0)
        fail_msg("%s: rejected after %ld allocations", k->name,
                 nkt_alloc_count());
    if (nkt_alloc_live_bytes() > live_before + (2u << 20))
        fail_msg("%s: %zu bytes allocated", k->name,
                 nkt_alloc_live_bytes() - live_before);
}

static void test_f6_tcp_server_and_client_options_checked(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_addr any, to;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &any), 0);
    nk_tcp_server *srv;
    assert_int_equal(nk_tcp_server_start(loop, &any, NULL, &srv), 0);
    assert_int_equal(nk_tcp_server_addr(srv, &to), 0);
    for (size_t i = 0; i < sizeof server_cases / sizeof server_cases[0]; i++) {
        const struct opt_case *k = &server_cases[i];
        nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
        set_field(&o, k);
        nk_tcp_server *s = NULL;
        size_t live = nkt_alloc_live_bytes();
        nkt_alloc_reset();
        int r = nk_tcp_server_start(loop, &any, &o, &s);
        check_alloc(k, r, live);
        nk_tcp_server_free(s);
    }
    for (size_t i = 0; i < sizeof client_cases / sizeof client_cases[0]; i++) {
        const struct opt_case *k = &client_cases[i];
        nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
        o.on_connect = no_connect;
        set_field(&o, k);
        nk_tcp_client *cl = NULL;
        size_t live = nkt_alloc_live_bytes();
        nkt_alloc_reset();
        int r = nk_tcp_client_connect(loop, &to, &o, &cl);
        check_alloc(k, r, live);
        nk_tcp_client_cancel(r == 0 ? cl : NULL);
    }
    nk_tcp_server_free(srv);
    for (int i = 0; i < 100 && nk_loop_run(loop, NK_RUN_NOWAIT) != 0; i++)
        ;
    nkt_loop_free_empty(loop);
}

/* A zero limit for the framing in use is refused at the call: it is what a
 * struct zeroed instead of started from NK_FRAME_OPTS_INIT holds, and it
 * would refuse every non-empty message. The other kind's limit is unused. */
struct frame_case {
    struct opt_case c; /* name and expected code (no field: see frame) */
    nk_frame_opts frame;
};

#define FRAME(k, line, max, code)                                             \
    {{"frame " #k " max_line " #line " max_frame " #max, 0, 0, 0, code},      \
     {.kind = k, .max_line = line, .max_frame = max}}

static const struct frame_case frame_cases[] = {
    FRAME(NK_FRAME_LINE, 0, 1048576, NK_EINVAL),
    FRAME(NK_FRAME_LINE, 0, 0, NK_EINVAL),
    FRAME(NK_FRAME_LINE, 1, 0, 0),
    FRAME(NK_FRAME_LENGTH32, 8192, 0, NK_EINVAL),
    FRAME(NK_FRAME_LENGTH32, 0, 1, 0),
    FRAME(NK_FRAME_RAW, 0, 0, 0),
};

static void test_f6_tcp_zero_frame_limit_refused_at_start(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_addr any, to;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &any), 0);
    nk_tcp_server *srv;
    assert_int_equal(nk_tcp_server_start(loop, &any, NULL, &srv), 0);
    assert_int_equal(nk_tcp_server_addr(srv, &to), 0);
    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        const struct frame_case *k = &frame_cases[i];
        nk_tcp_server_opts so = NK_TCP_SERVER_OPTS_INIT;
        so.conn.frame = k->frame;
        nk_tcp_server *s = NULL;
        size_t live = nkt_alloc_live_bytes();
        nkt_alloc_reset();
        check_alloc(&k->c, nk_tcp_server_start(loop, &any, &so, &s), live);
        nk_tcp_server_free(s);

        nk_tcp_client_opts co = NK_TCP_CLIENT_OPTS_INIT;
        co.on_connect = no_connect;
        co.conn.frame = k->frame;
        nk_tcp_client *cl = NULL;
        live = nkt_alloc_live_bytes();
        nkt_alloc_reset();
        int r = nk_tcp_client_connect(loop, &to, &co, &cl);
        check_alloc(&k->c, r, live);
        nk_tcp_client_cancel(r == 0 ? cl : NULL);
    }
    nk_tcp_server_free(srv);
    for (int i = 0; i < 100 && nk_loop_run(loop, NK_RUN_NOWAIT) != 0; i++)
        ;
    nkt_loop_free_empty(loop);
}

/* nk_tcp_conn_send() with absurd lengths, with the queue empty and with
 * megabytes queued (where the length is added to the queue's size). */
static nk_tcp_conn *accepted;

static void keep_conn(nk_tcp_conn *c, void *user)
{
    (void)user;
    accepted = c;
}

static bool have_conn(void *arg)
{
    (void)arg;
    return accepted != NULL;
}

static void test_f6_tcp_conn_send_absurd_lengths(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.on_open = keep_conn;
    o.conn.high_watermark = 64u << 20;
    nk_tcp_server *srv;
    accepted = NULL;
    assert_int_equal(nk_tcp_server_start(loop, &a, &o, &srv), 0);
    assert_int_equal(nk_tcp_server_addr(srv, &a), 0);
    int peer = nkt_tcp_connect(&a); /* never reads */
    assert_true(peer >= 0);
    assert_int_equal(nkt_run_until(loop, have_conn, NULL, 100000, 5000, NULL),
                     0);
    static const size_t lens[] = {SIZE_MAX, SIZE_MAX - 4096,
                                  (size_t)PTRDIFF_MAX + 1};
    static uint8_t chunk[1 << 20];
    for (int queued = 0; queued < 2; queued++) {
        if (queued) /* fill the socket, then the queue */
            for (int i = 0; i < 8; i++)
                assert_true(nk_tcp_conn_send(accepted, chunk,
                                             sizeof chunk) >= 0);
        nk_tcp_conn_stats before, after;
        nk_tcp_conn_get_stats(accepted, &before);
        assert_true(!queued || before.queued > 0);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            nkt_alloc_reset();
            assert_int_equal(nk_tcp_conn_send(accepted, chunk, lens[i]),
                             NK_EINVAL);
            assert_int_equal(nkt_alloc_count(), 0);
        }
        nk_tcp_conn_get_stats(accepted, &after);
        assert_int_equal(after.queued, before.queued);
        assert_int_equal(after.bytes_out, before.bytes_out);
        /* Still usable. */
        int r = nk_tcp_conn_send(accepted, "ok", 2);
        assert_true(r == 0 || r == 1);
    }
    close(peer);
    nk_tcp_server_free(srv);
    for (int i = 0; i < 100 && nk_loop_run(loop, NK_RUN_NOWAIT) != 0; i++)
        ;
    nkt_loop_free_empty(loop);
}

/* The blocking calls under one signature, for the table below. */
static int sync_send_all(nk_tcp_sync *s, char *buf, size_t len, int ms)
{
    return nk_tcp_sync_send_all(s, buf, len, ms);
}

static int sync_recv_exact(nk_tcp_sync *s, char *buf, size_t len, int ms)
{
    return nk_tcp_sync_recv_exact(s, buf, len, ms);
}

static int sync_recv(nk_tcp_sync *s, char *buf, size_t len, int ms)
{
    return nk_tcp_sync_recv(s, buf, len, ms);
}

/* The blocking client: lengths over PTRDIFF_MAX are refused, a line
 * buffer size past INT_MAX is clamped (a timeout, not an overflow), zero
 * sizes are refused, and timeouts at the ends of int behave. */
static void test_f6_tcp_sync_absurd_sizes_and_timeouts(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(bind(l, &a.u.sa, a.len), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(nkt_sock_name(l, &a), 0);
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&a, INT_MIN, &s), 0); /* no limit */
    char buf[16] = {0};
    nkt_alloc_reset();
    static const struct {
        const char *name;
        int code;
        int (*call)(nk_tcp_sync *, char *, size_t, int);
        size_t len;
        int timeout_ms;
    } cases[] = {
        {"send_all SIZE_MAX", NK_EINVAL, sync_send_all, SIZE_MAX, 100},
        {"send_all PTRDIFF_MAX + 1", NK_EINVAL, sync_send_all,
         (size_t)PTRDIFF_MAX + 1, 100},
        {"recv_exact SIZE_MAX", NK_EINVAL, sync_recv_exact, SIZE_MAX, 100},
        {"recv 0", NK_EINVAL, sync_recv, 0, 0},
        {"recv_line 0", NK_EINVAL, nk_tcp_sync_recv_line, 0, 0},
        {"recv_line SIZE_MAX", -ETIMEDOUT, nk_tcp_sync_recv_line, SIZE_MAX,
         0},
        {"send_all INT_MAX ms", 0, sync_send_all, 2, INT_MAX},
        {"recv_exact 0 bytes", 0, sync_recv_exact, 0, INT_MIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = cases[i].call(s, buf, cases[i].len, cases[i].timeout_ms);
        if (r != cases[i].code)
            fail_msg("%s: %s, expected %s", cases[i].name, nk_err_name(r),
                     nk_err_name(cases[i].code));
    }
    /* Only recv_line's read-ahead buffer may be allocated, at its size. */
    assert_true(nkt_alloc_live_bytes() < (64u << 10));
    nk_tcp_sync_close(s);
    close(l);
}

/* ---- F6: absurd sizes and options, UDP endpoints and rooms ----
 * Each bad value is refused at the call with its code, before anything is
 * allocated (the counting allocator sees no allocation at all). */

struct udp_opt_case {
    const char *what;
    void (*set)(nk_udp_endpoint_opts *o);
};

#define UDP_OPT_CASE(name, stmt)                                              \
    static void udp_##name(nk_udp_endpoint_opts *o) { stmt; }
UDP_OPT_CASE(dgram_zero, o->max_datagram = 0)
UDP_OPT_CASE(dgram_over, o->max_datagram = 65537)
UDP_OPT_CASE(dgram_max, o->max_datagram = SIZE_MAX)
UDP_OPT_CASE(rbatch_zero, o->recv_batch = 0)
UDP_OPT_CASE(rbatch_over, o->recv_batch = 1025)
UDP_OPT_CASE(rbatch_max, o->recv_batch = UINT_MAX)
UDP_OPT_CASE(sbatch_zero, o->send_batch = 0)
UDP_OPT_CASE(sbatch_over, o->send_batch = 1025)
UDP_OPT_CASE(sbatch_max, o->send_batch = UINT_MAX)
UDP_OPT_CASE(wakeup_zero, o->max_per_wakeup = 0)
UDP_OPT_CASE(v6only_low, o->v6only = -2)
UDP_OPT_CASE(v6only_high, o->v6only = 2)
UDP_OPT_CASE(sndbuf_neg, o->sndbuf = -1)
UDP_OPT_CASE(sndbuf_min, o->sndbuf = INT_MIN)
UDP_OPT_CASE(rcvbuf_neg, o->rcvbuf = -1)

static const struct udp_opt_case udp_opt_cases[] = {
    {"max_datagram 0", udp_dgram_zero},
    {"max_datagram 65537", udp_dgram_over},
    {"max_datagram SIZE_MAX", udp_dgram_max},
    {"recv_batch 0", udp_rbatch_zero},
    {"recv_batch 1025", udp_rbatch_over},
    {"recv_batch UINT_MAX", udp_rbatch_max},
    {"send_batch 0", udp_sbatch_zero},
    {"send_batch 1025", udp_sbatch_over},
    {"send_batch UINT_MAX", udp_sbatch_max},
    {"max_per_wakeup 0", udp_wakeup_zero},
    {"v6only -2", udp_v6only_low},
    {"v6only 2", udp_v6only_high},
    {"sndbuf -1", udp_sndbuf_neg},
    {"sndbuf INT_MIN", udp_sndbuf_min},
    {"rcvbuf -1", udp_rcvbuf_neg},
};

static void test_f6_udp_endpoint_options_out_of_range(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    for (size_t i = 0; i < sizeof udp_opt_cases / sizeof udp_opt_cases[0];
         i++) {
        const struct udp_opt_case *c = &udp_opt_cases[i];
        nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
        c->set(&o);
        nk_udp_endpoint *ep = NULL;
        nkt_alloc_reset();
        print_message("endpoint option %s\n", c->what);
        assert_int_equal(nk_udp_endpoint_bind(loop, &a, &o, NULL, NULL, &ep),
                         NK_EINVAL);
        assert_int_equal(nk_udp_endpoint_connect(loop, &a, &o, NULL, NULL,
                                                 &ep),
                         NK_EINVAL);
        assert_null(ep);
        assert_int_equal(nkt_alloc_count(), 0);
    }
    nkt_loop_free_empty(loop);
}

/* Lengths, counts and timeouts at the calls of a live endpoint. */
static void test_f6_udp_endpoint_call_sizes(void **state)
{
    (void)state;
    nk_addr a, local;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(NULL, &a, NULL, NULL, NULL, &ep), 0);
    assert_int_equal(nk_udp_endpoint_local_addr(ep, &local), 0);
    char buf[16];
    nk_udp_msg one = {.data = "x", .len = 1, .to = &local};
    nk_udp_msg huge = {.data = buf, .len = SIZE_MAX, .to = &local};
    nk_addr group;
    assert_int_equal(nk_addr_parse("239.1.2.3:0", &group), 0);
    struct {
        const char *what;
        int got, want;
    } rows[] = {
        {"send_batch count SIZE_MAX",
         nk_udp_endpoint_send_batch(ep, &one, SIZE_MAX), NK_EINVAL},
        {"send_batch count INT_MAX + 1",
         nk_udp_endpoint_send_batch(ep, &one, (size_t)INT_MAX + 1), NK_EINVAL},
        {"send_batch len SIZE_MAX", nk_udp_endpoint_send_batch(ep, &huge, 1),
         0},
        {"... its result", huge.result, -EMSGSIZE},
        {"send_to len SIZE_MAX",
         nk_udp_endpoint_send_to(ep, buf, SIZE_MAX, &local), -EMSGSIZE},
        {"send_to len INT_MAX + 1",
         nk_udp_endpoint_send_to(ep, buf, (size_t)INT_MAX + 1, &local),
         -EMSGSIZE},
        {"recv len SIZE_MAX",
         nk_udp_endpoint_recv(ep, buf, SIZE_MAX, 0, NULL, NULL), NK_EINVAL},
        {"recv len INT_MAX + 1",
         nk_udp_endpoint_recv(ep, buf, (size_t)INT_MAX + 1, 0, NULL, NULL),
         NK_EINVAL},
        {"recv timeout -2", nk_udp_endpoint_recv(ep, buf, 1, -2, NULL, NULL),
         NK_EINVAL},
        {"recv timeout INT_MIN",
         nk_udp_endpoint_recv(ep, buf, 1, INT_MIN, NULL, NULL), NK_EINVAL},
        {"recv len 0, nothing waiting",
         nk_udp_endpoint_recv(ep, buf, 0, 0, NULL, NULL), -ETIMEDOUT},
        {"multicast ifindex UINT_MAX",
         nk_udp_endpoint_multicast(ep, &group, UINT_MAX, true), NK_EINVAL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        print_message("%s\n", rows[i].what);
        assert_int_equal(rows[i].got, rows[i].want);
    }
    /* Still usable. */
    assert_int_equal(nk_udp_endpoint_send_to(ep, "ok", 2, &local), 2);
    assert_int_equal(nk_udp_endpoint_recv(ep, buf, sizeof buf, 5000, NULL,
                                          NULL),
                     2);
    nk_udp_endpoint_close(ep);
}

struct room_opt_case {
    const char *what;
    void (*set)(nk_udp_room_opts *o);
    int want;
};

#define ROOM_OPT_CASE(name, stmt)                                             \
    static void room_##name(nk_udp_room_opts *o) { stmt; }
ROOM_OPT_CASE(members_zero, o->max_members = 0)
ROOM_OPT_CASE(members_over, o->max_members = ((size_t)1 << 20) + 1)
ROOM_OPT_CASE(members_max, o->max_members = SIZE_MAX)
ROOM_OPT_CASE(dgram_zero, o->max_datagram = 0)
ROOM_OPT_CASE(dgram_over, o->max_datagram = 65508)
ROOM_OPT_CASE(dgram_max, o->max_datagram = SIZE_MAX)
ROOM_OPT_CASE(fanout_zero, o->fanout_batch = 0)
ROOM_OPT_CASE(fanout_over, o->fanout_batch = 1025)
ROOM_OPT_CASE(fanout_max, o->fanout_batch = UINT_MAX)
ROOM_OPT_CASE(leave_empty, o->leave_message = "")
ROOM_OPT_CASE(leave_long,
              o->leave_message = "0123456789012345678901234567890123456789"
                                 "012345678901234567890123")
ROOM_OPT_CASE(amplification_zero, o->amplification = 0)
ROOM_OPT_CASE(rcvbuf_neg, o->rcvbuf = -1)
ROOM_OPT_CASE(sndbuf_min, o->sndbuf = INT_MIN)
/* The largest values that mean something are accepted and work. */
ROOM_OPT_CASE(leave_63, o->leave_message = "012345678901234567890123456789"
                                           "012345678901234567890123456789"
                                           "012")
ROOM_OPT_CASE(rate_max, o->rate_limit = UINT32_MAX)
ROOM_OPT_CASE(burst_max, o->rate_burst = UINT32_MAX)
ROOM_OPT_CASE(ttl_max, o->member_ttl_ms = UINT32_MAX)
ROOM_OPT_CASE(amplification_max, o->amplification = UINT_MAX;
              o->validate = true)
ROOM_OPT_CASE(unreachable_max, o->unreachable_limit = UINT_MAX)

static const struct room_opt_case room_opt_cases[] = {
    {"max_members 0", room_members_zero, NK_EINVAL},
    {"max_members 2^20 + 1", room_members_over, NK_EINVAL},
    {"max_members SIZE_MAX", room_members_max, NK_EINVAL},
    {"max_datagram 0", room_dgram_zero, NK_EINVAL},
    {"max_datagram 65508", room_dgram_over, NK_EINVAL},
    {"max_datagram SIZE_MAX", room_dgram_max, NK_EINVAL},
    {"fanout_batch 0", room_fanout_zero, NK_EINVAL},
    {"fanout_batch 1025", room_fanout_over, NK_EINVAL},
    {"fanout_batch UINT_MAX", room_fanout_max, NK_EINVAL},
    {"leave_message empty", room_leave_empty, NK_EINVAL},
    {"leave_message 64 bytes", room_leave_long, NK_EINVAL},
    {"amplification 0", room_amplification_zero, NK_EINVAL},
    {"rcvbuf -1", room_rcvbuf_neg, NK_EINVAL},
    {"sndbuf INT_MIN", room_sndbuf_min, NK_EINVAL},
    {"leave_message 63 bytes", room_leave_63, 0},
    {"rate_limit UINT32_MAX", room_rate_max, 0},
    {"rate_burst UINT32_MAX", room_burst_max, 0},
    {"member_ttl_ms UINT32_MAX", room_ttl_max, 0},
    {"amplification UINT_MAX", room_amplification_max, 0},
    {"unreachable_limit UINT_MAX", room_unreachable_max, 0},
};

static void test_f6_room_options_out_of_range(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    for (size_t i = 0; i < sizeof room_opt_cases / sizeof room_opt_cases[0];
         i++) {
        const struct room_opt_case *c = &room_opt_cases[i];
        nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
        c->set(&o);
        nk_udp_room *room = NULL;
        nkt_alloc_reset();
        print_message("room option %s\n", c->what);
        assert_int_equal(nk_udp_room_open(loop, &a, &o, NULL, NULL, &room),
                         c->want);
        if (c->want < 0) {
            assert_null(room);
            assert_int_equal(nkt_alloc_count(), 0);
        } else {
            nk_udp_room_close(room);
        }
    }
    nkt_loop_free_empty(loop);
}

/* The client helpers with sizes too small or absurd. */
static void test_f6_room_client_sizes(void **state)
{
    (void)state;
    uint8_t hello[NK_ROOM_HELLO_LEN], reply[NK_ROOM_COOKIE_MSG_LEN];
    uint8_t challenge[NK_ROOM_COOKIE_MSG_LEN] = {0, 'n', 'k', 'r',
                                                 'o', 'o', 'm', 'C'};
    struct {
        const char *what;
        int got, want;
    } rows[] = {
        {"hello size 0", nk_udp_room_client_hello(hello, 0), NK_ENOSPACE},
        {"hello size 31",
         nk_udp_room_client_hello(hello, NK_ROOM_HELLO_LEN - 1), NK_ENOSPACE},
        {"hello size SIZE_MAX", nk_udp_room_client_hello(hello, SIZE_MAX),
         NK_ROOM_HELLO_LEN},
        {"handle len SIZE_MAX",
         nk_udp_room_client_handle(challenge, SIZE_MAX, reply, sizeof reply),
         0},
        {"handle reply size 23",
         nk_udp_room_client_handle(challenge, sizeof challenge, reply,
                                   sizeof reply - 1),
         NK_ENOSPACE},
        {"handle reply size SIZE_MAX",
         nk_udp_room_client_handle(challenge, sizeof challenge, reply,
                                   SIZE_MAX),
         NK_ROOM_COOKIE_MSG_LEN},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        print_message("%s\n", rows[i].what);
        assert_int_equal(rows[i].got, rows[i].want);
    }
}

int main(int argc, char **argv)
{
    /* Before any allocation: blocks from the system allocator must never
     * reach the counting one. */
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a10_addr_and_frame_functions_reject_null),
        cmocka_unit_test(test_a10_loop_functions_reject_null),
        cmocka_unit_test(test_a10_tcp_functions_reject_null),
        cmocka_unit_test(test_a10_udp_and_room_functions_reject_null),
        cmocka_unit_test(test_f6_tcp_server_and_client_options_checked),
        cmocka_unit_test(test_f6_tcp_zero_frame_limit_refused_at_start),
        cmocka_unit_test(test_f6_tcp_conn_send_absurd_lengths),
        cmocka_unit_test(test_f6_tcp_sync_absurd_sizes_and_timeouts),
        cmocka_unit_test(test_f6_udp_endpoint_options_out_of_range),
        cmocka_unit_test(test_f6_udp_endpoint_call_sizes),
        cmocka_unit_test(test_f6_room_options_out_of_range),
        cmocka_unit_test(test_f6_room_client_sizes),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
