/* The buffered connection (tcp_conn), driven through a server: half-close,
 * EOF while writing, slow readers against the watermarks, the hard queue
 * cap, framing over real sockets (split writes, limits, mid-frame EOF),
 * graceful, lingering and callback-initiated closes, application read
 * pause, and its memory: per idle connection, per partial frame, and none
 * on the per-message path. */
#include "test_tcp_util.h"

#include <netinet/in.h>

#include "nkt_main.h"
#include "nkt_alloc.h"

/* Half-close: the server replies after the client's EOF. */
static void hc_eof(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    st->eofs++;
    char reply[32];
    int n = snprintf(reply, sizeof reply, "got %zu", st->bytes);
    assert_int_equal(nk_tcp_conn_send(c, reply, (size_t)n), 0);
    assert_int_equal(nk_tcp_conn_shutdown(c), 0);
    assert_int_equal(nk_tcp_conn_send(c, "x", 1), NK_ECLOSED);
}

static void test_half_close_server_replies_after_client_eof(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    st.echo = false;
    o.conn.on_eof = hc_eof;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    uint8_t buf[100000];
    nkt_stream_fill(7, 0, buf, sizeof buf);
    assert_int_equal(nkt_send_all(fd, buf, sizeof buf), 0);
    assert_int_equal(nkt_shutdown_wr(fd), 0);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.eofs, 1);
    assert_int_equal(st.bytes, sizeof buf);
    assert_int_equal(st.reasons[0], NK_EOF);
    char reply[32] = {0};
    const char *want = "got 100000";
    assert_int_equal(nkt_read_exact(fd, reply, strlen(want), 2000), 0);
    assert_string_equal(reply, want);
    assert_int_equal(nkt_expect_eof(fd, 2000), 0);
    close(fd);
    srv_finish(&st);
}

/* The default without on_eof: what is queued is still sent after the
 * peer's EOF, then the close reason is NK_EOF. */
static void test_peer_eof_while_writing_is_not_an_error(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    static uint8_t buf[2 << 20];
    nkt_stream_fill(9, 0, buf, sizeof buf);
    /* Small pieces so the echo queues while the client does not read. */
    size_t at = 0;
    while (at < sizeof buf) {
        assert_int_equal(nkt_send_all(fd, buf + at, 65536), 0);
        at += 65536;
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    assert_int_equal(nkt_shutdown_wr(fd), 0);
    static uint8_t back[2 << 20];
    size_t got = 0;
    while (got < sizeof back) {
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        int r = nkt_read_some(fd, back + got, sizeof back - got, 0);
        if (r == -ETIMEDOUT)
            continue;
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(back, buf, sizeof buf);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], NK_EOF);
    assert_int_equal(nkt_expect_eof(fd, 2000), 0);
    close(fd);
    srv_finish(&st);
}

/* A peer that never reads: the queue stops at high watermark + one read,
 * reading pauses, and everything arrives once the peer reads. */
static void test_slow_reader_bounded_queue_then_resumes(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.high_watermark = 256 * 1024;
    o.conn.low_watermark = 64 * 1024;
    o.conn.on_drain = st_drain;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    int small = 64 * 1024; /* keep the kernel's share small and fixed */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *conn = st.last_conn;
    const size_t total = 16u << 20;
    static uint8_t buf[65536];
    size_t sent = 0, got = 0;
    size_t peak = 0;
    bool mismatch = false;
    /* Phase 1: write without reading until the server stops reading. */
    for (int i = 0; i < 100000 && sent < total; i++) {
        size_t n = total - sent < sizeof buf ? total - sent : sizeof buf;
        nkt_stream_fill(3, sent, buf, n);
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        nk_tcp_conn_stats cs;
        nk_tcp_conn_get_stats(conn, &cs);
        if (cs.queued > peak)
            peak = cs.queued;
        if (w < 0 && cs.reading_paused)
            break;
    }
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(conn, &cs);
    assert_true(cs.reading_paused);
    assert_true(peak <= o.conn.high_watermark + o.read_chunk);
    assert_true(cs.peak_queued <= o.conn.high_watermark + o.read_chunk);
    assert_true(srv_stats(&st).read_pauses >= 1);
    assert_true(sent < total);
    /* Phase 2: read everything, keep writing; it completes byte-exact. */
    for (int i = 0; i < 1000000 && got < total; i++) {
        if (sent < total) {
            size_t n = total - sent < sizeof buf ? total - sent : sizeof buf;
            nkt_stream_fill(3, sent, buf, n);
            ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            if (!nkt_stream_check(3, got, buf, (size_t)r))
                mismatch = true;
            got += (size_t)r;
        }
        nk_tcp_conn_get_stats(conn, &cs);
        if (cs.queued > peak)
            peak = cs.queued;
    }
    assert_int_equal(got, total);
    assert_false(mismatch);
    assert_true(st.drains >= 1);
    assert_true(peak <= o.conn.high_watermark + o.read_chunk);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], NK_EOF);
    srv_finish(&st);
}

static void test_hard_queue_cap_closes_with_queue_full(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.high_watermark = 1u << 20;
    o.conn.max_queue = 100000;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static uint8_t buf[65536];
    memset(buf, 'q', sizeof buf);
    for (int i = 0; i < 100000 && st.closes == 0; i++) {
        (void)send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], NK_EQUEUE_FULL);
    assert_int_equal(srv_stats(&st).closed_queue, 1);
    close(fd);
    srv_finish(&st);
}

/* Framing over a socket: messages cut by the decoder whatever the writes. */
struct msgs {
    char got[16][64];
    int n;
};

static void msg_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    struct msgs *m = (struct msgs *)st->last_conn;
    (void)c;
    st->datas++;
    if (m->n < 16 && n < 64) {
        memcpy(m->got[m->n], d, n);
        m->got[m->n][n] = 0;
    }
    m->n++;
}

static void framed(nk_frame_kind kind, const void *stream, size_t len,
                   int expect_msgs, int expect_reason, struct msgs *m)
{
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.on_open = NULL;
    o.conn.on_data = msg_data;
    o.conn.frame.kind = kind;
    o.conn.frame.max_line = 16;
    o.conn.frame.max_frame = 16;
    st.last_conn = (nk_tcp_conn *)m; /* smuggle the message log */
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    const uint8_t *p = stream;
    /* One byte per write for the first half, then the rest at once. */
    /* After a framing error the server closes: later writes may fail. */
    bool ok = expect_reason == NK_EOF;
    for (size_t i = 0; i < len / 2; i++) {
        int r = nkt_send_all(fd, p + i, 1);
        assert_true(r == 0 || (!ok && (r == -EPIPE || r == -ECONNRESET)));
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    int r = nkt_send_all(fd, p + len / 2, len - len / 2);
    assert_true(r == 0 || (!ok && (r == -EPIPE || r == -ECONNRESET)));
    r = nkt_shutdown_wr(fd);
    assert_true(r == 0 || (!ok && r == -ENOTCONN));
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(m->n, expect_msgs);
    assert_int_equal(st.reasons[0], expect_reason);
    close(fd);
    srv_finish(&st);
}

static void test_line_framing_over_socket(void **state)
{
    (void)state;
    struct msgs m = {0};
    const char s[] = "one\r\ntwo\n\nthree\n";
    framed(NK_FRAME_LINE, s, sizeof s - 1, 4, NK_EOF, &m);
    assert_string_equal(m.got[0], "one");
    assert_string_equal(m.got[1], "two");
    assert_string_equal(m.got[2], "");
    assert_string_equal(m.got[3], "three");
}

static void test_line_too_long_closes_with_reason(void **state)
{
    (void)state;
    struct msgs m = {0};
    const char s[] = "ok\n0123456789abcdefXYZ and no newline at all";
    framed(NK_FRAME_LINE, s, sizeof s - 1, 1, NK_ELINE_TOO_LONG, &m);
}

static void test_length32_framing_and_errors_over_socket(void **state)
{
    (void)state;
    uint8_t s[64];
    size_t n = 0;
    nk_frame_length32_prefix(3, s + n);
    memcpy(s + n + 4, "abc", 3);
    n += 7;
    nk_frame_length32_prefix(0, s + n); /* empty message */
    n += 4;
    struct msgs m = {0};
    framed(NK_FRAME_LENGTH32, s, n, 2, NK_EOF, &m);
    assert_string_equal(m.got[0], "abc");
    assert_string_equal(m.got[1], "");
    /* A huge prefix closes on the prefix alone. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'A', 'A'};
    struct msgs m2 = {0};
    framed(NK_FRAME_LENGTH32, huge, sizeof huge, 0, NK_EFRAME_TOO_LARGE, &m2);
    /* EOF in the middle of a frame is not a clean EOF. */
    static const uint8_t cut[] = {0, 0, 0, 10, 'a', 'b'};
    struct msgs m3 = {0};
    framed(NK_FRAME_LENGTH32, cut, sizeof cut, 0, NK_EMIDFRAME, &m3);
}

/* Graceful close with unread input: the peer still gets the reply. */
static void gc_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    (void)d;
    st->bytes += n;
    if (st->datas++ == 0) {
        assert_int_equal(nk_tcp_conn_send(c, "0123456789", 10), 0);
        nk_tcp_conn_close(c);
        assert_int_equal(nk_tcp_conn_send(c, "x", 1), NK_ECLOSED);
    }
}

static void test_graceful_close_with_unread_input_delivers_reply(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.on_data = gc_data;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static uint8_t big[1 << 20];
    size_t sent = 0;
    for (int i = 0; i < 100000 && sent < sizeof big; i++) {
        ssize_t w = send(fd, big + sent, sizeof big - sent, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    assert_int_equal(sent, sizeof big);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], 0);
    char reply[11] = {0};
    assert_int_equal(nkt_read_exact(fd, reply, 10, 2000), 0);
    assert_string_equal(reply, "0123456789");
    assert_int_equal(nkt_expect_eof(fd, 2000), 0);
    close(fd);
    srv_finish(&st);
}

/* Closing from callbacks: a connection closes itself and another one in
 * the same data callback; each on_close runs once. */
static nk_tcp_conn *victims[2];
static void cc_open(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    victims[st->opens++ % 2] = c;
}

static void cc_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    (void)d;
    (void)n;
    st->datas++;
    nk_tcp_conn *other = victims[0] == c ? victims[1] : victims[0];
    nk_tcp_conn_abort(other);
    nk_tcp_conn_close(c);
    nk_tcp_conn_close(c);
    nk_tcp_conn_abort(c);
    assert_int_equal(nk_tcp_conn_send(c, "x", 1), NK_ECLOSED);
    assert_int_equal(nk_tcp_conn_fd(c), NK_ECLOSED);
    /* on_close waits until this callback returns: both handles stay
     * valid for the calls above. */
    assert_int_equal(st->closes, 0);
}

static void test_close_own_and_other_from_callback(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.on_open = cc_open;
    o.conn.on_data = cc_data;
    srv_start(&st, &o);
    int a = nkt_tcp_connect(&st.addr);
    int b = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, 2, 5000);
    assert_int_equal(nkt_send_all(a, "hi", 2), 0);
    assert_int_equal(nkt_send_all(b, "hi", 2), 0);
    run_until_count(st.loop, &st.closes, 2, 5000);
    /* Let any stale event of the second one be dispatched, if it were. */
    for (int i = 0; i < 5; i++)
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    assert_int_equal(st.closes, 2);
    assert_int_equal(st.datas, 1);
    assert_int_equal(srv_stats(&st).closed_local, 2);
    close(a);
    close(b);
    srv_finish(&st);
}

/* Library memory per idle connection, counted by the test allocator. */
static void test_idle_connection_costs_at_most_256_bytes(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    srv_start(&st, &o);
    enum { N = 50 };
    size_t before = nkt_alloc_live_bytes();
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, N, 5000);
    /* Some traffic first: buffers used on the way must be gone after. */
    assert_int_equal(nkt_send_all(fds[0], "abc", 3), 0);
    char b[3];
    while (nkt_read_some(fds[0], b, 3, 0) == -ETIMEDOUT)
        nk_loop_run(st.loop, NK_RUN_ONCE);
    size_t after = nkt_alloc_live_bytes();
    size_t per = (after - before) / N;
    print_message("library memory per idle connection: %zu bytes\n", per);
    assert_true(per <= 256);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    run_until_count(st.loop, &st.closes, N, 5000);
    srv_finish(&st);
}

/* Graceful close when the peer never closes its side: linger_ms bounds
 * the wait; the reply was still delivered. */
static void lg_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    (void)d;
    (void)n;
    st->datas++;
    assert_int_equal(nk_tcp_conn_send(c, "bye", 3), 0);
    nk_tcp_conn_close(c);
}

static void test_graceful_close_linger_bounds_a_silent_peer(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.on_data = lg_data;
    o.conn.linger_ms = 100;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_int_equal(nkt_send_all(fd, "x", 1), 0);
    uint64_t t0 = nkt_now_ms();
    run_until_count(st.loop, &st.datas, 1, 5000);
    char b[3];
    assert_int_equal(nkt_read_exact(fd, b, 3, 2000), 0);
    assert_memory_equal(b, "bye", 3);
    assert_int_equal(nkt_expect_eof(fd, 2000), 0); /* our FIN came at once */
    assert_int_equal(st.closes, 0); /* still draining the peer's side */
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_true(nkt_now_ms() - t0 >= 100);
    assert_int_equal(st.reasons[0], 0);
    close(fd);
    srv_finish(&st);
}

/* Application flow control: no data while reading is off. */
static void test_set_reading_pauses_and_resumes_delivery(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *c = st.last_conn;
    assert_int_equal(nk_tcp_conn_set_reading(c, false), 0);
    assert_int_equal(nkt_send_all(fd, "wait", 4), 0);
    for (int i = 0; i < 20; i++)
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    assert_int_equal(st.datas, 0);
    assert_int_equal(nk_tcp_conn_set_reading(c, true), 0);
    run_until_count(st.loop, &st.datas, 1, 5000);
    assert_int_equal(st.bytes, 4);
    assert_int_equal(nk_tcp_conn_set_reading(NULL, true), NK_EINVAL);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    srv_finish(&st);
}

/* F3: reading paused from inside on_data, with several messages in one
 * read. Each message pauses; while paused nothing is delivered; each resume
 * delivers the next message, held or not, in order, then the peer's EOF.
 * Resumed from outside the loop, the held messages come from the loop's
 * timer phase; resumed from a timer, the socket is read first (more bytes,
 * then the EOF, arrive while messages are held). */
struct pz {
    struct srv_state st;
    bool from_timer;
    nk_tcp_conn *conn;
    uint8_t got[256];
    size_t got_len;
    int msgs;
    int while_paused; /* deliveries while paused: must stay 0 */
    bool paused;
};

static void pz_open(nk_tcp_conn *c, void *user)
{
    struct pz *z = user;
    z->conn = c;
    z->st.opens++;
}

static void pz_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct pz *z = user;
    if (z->paused)
        z->while_paused++;
    assert_true(z->got_len + n + 1 <= sizeof z->got);
    memcpy(z->got + z->got_len, d, n);
    z->got_len += n;
    z->got[z->got_len++] = '|'; /* message boundary */
    z->msgs++;
    assert_int_equal(nk_tcp_conn_set_reading(c, false), 0);
    z->paused = true;
}

static void pz_close(nk_tcp_conn *c, int reason, void *user)
{
    struct pz *z = user;
    st_close(c, reason, &z->st);
}

struct pz_goal {
    const struct pz *z;
    int had;
};

static bool pz_next_or_closed(void *arg)
{
    const struct pz_goal *g = arg;
    return g->z->msgs > g->had || g->z->st.closes > 0;
}

static void pz_timer_resume(nk_timer *t, void *user)
{
    struct pz *z = user;
    assert_int_equal(nk_tcp_conn_set_reading(z->conn, true), 0);
    nk_timer_stop(t);
}

/* Run a few iterations: nothing may come while paused; then resume and
 * wait for the next message (or the close after the last one). */
static void pz_resume_next(struct pz *z)
{
    struct pz_goal g = {z, z->msgs};
    for (int i = 0; i < 10; i++)
        nk_loop_run(z->st.loop, NK_RUN_NOWAIT);
    assert_int_equal(z->msgs, g.had);
    assert_int_equal(z->st.closes, 0);
    z->paused = false;
    if (z->from_timer) {
        nk_timer *t;
        assert_int_equal(nk_timer_start(z->st.loop, 0, 0, pz_timer_resume, z,
                                        &t), 0);
    } else {
        assert_int_equal(nk_tcp_conn_set_reading(z->conn, true), 0);
    }
    assert_int_equal(nkt_run_until(z->st.loop, pz_next_or_closed, &g, 100000,
                                   5000, NULL), 0);
}

static size_t pz_encode(nk_frame_kind kind, const char *const *msgs,
                        int count, uint8_t *out)
{
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        size_t n = strlen(msgs[i]);
        if (kind == NK_FRAME_LENGTH32) {
            nk_frame_length32_prefix(n, out + at);
            at += 4;
        }
        memcpy(out + at, msgs[i], n);
        at += n;
        if (kind == NK_FRAME_LINE)
            out[at++] = '\n';
    }
    return at;
}

static void pause_inside_on_data(nk_frame_kind kind, bool from_timer)
{
    static const char *const first[] = {"m0", "m1", "m2", "m3", "m4"};
    static const char *const second[] = {"m5", "m6"};
    struct pz z;
    memset(&z, 0, sizeof z);
    z.from_timer = from_timer;
    nk_tcp_server_opts o = echo_opts(&z.st);
    o.on_open = pz_open;
    o.conn.on_data = pz_data;
    o.conn.on_close = pz_close;
    o.conn.user = &z;
    o.conn.frame.kind = kind;
    if (kind == NK_FRAME_RAW)
        o.read_chunk = 4; /* raw: a "message" is a read */
    srv_start(&z.st, &o);
    int fd = nkt_tcp_connect(&z.st.addr);
    assert_true(fd >= 0);
    run_until_count(z.st.loop, &z.st.opens, 1, 5000);
    uint8_t out[128];
    size_t n1 = pz_encode(kind, first, 5, out);
    size_t n2 = pz_encode(kind, second, 2, out + n1);
    /* Some messages and the start of one more, in one write. */
    assert_int_equal(nkt_send_all(fd, out, n1 + 1), 0);
    run_until_count(z.st.loop, &z.msgs, 1, 5000);
    /* Paused after the first message: the rest and the EOF arrive while
     * the others are held; each message still waits for its resume. */
    assert_int_equal(nkt_send_all(fd, out + n1 + 1, n2 - 1), 0);
    assert_int_equal(nkt_shutdown_wr(fd), 0);
    while (z.st.closes == 0 && z.msgs < 40)
        pz_resume_next(&z);
    assert_int_equal(z.while_paused, 0);
    assert_int_equal(z.st.closes, 1);
    assert_int_equal(z.st.reasons[0], NK_EOF);
    /* Everything, in order: with framing each message alone. */
    char want[128];
    if (kind == NK_FRAME_RAW) {
        assert_int_equal(z.got_len - (size_t)z.msgs, n1 + n2);
        size_t at = 0;
        for (size_t i = 0; i < z.got_len; i++)
            if (z.got[i] != '|')
                want[at++] = (char)z.got[i];
        assert_memory_equal(want, out, n1 + n2);
    } else {
        assert_int_equal(z.msgs, 7);
        assert_int_equal(z.got_len, strlen("m0|m1|m2|m3|m4|m5|m6|"));
        assert_memory_equal(z.got, "m0|m1|m2|m3|m4|m5|m6|", z.got_len);
    }
    print_message("%s, resumed %s: %d messages, one per resume, none while "
                  "paused\n", kind == NK_FRAME_RAW ? "raw"
                               : kind == NK_FRAME_LINE ? "line" : "length32",
                  from_timer ? "from a timer" : "outside the loop", z.msgs);
    close(fd);
    srv_finish(&z.st);
}

static void test_pause_inside_on_data_keeps_rest_until_resume(void **state)
{
    (void)state;
    for (int from_timer = 0; from_timer < 2; from_timer++) {
        pause_inside_on_data(NK_FRAME_LINE, from_timer);
        pause_inside_on_data(NK_FRAME_LENGTH32, from_timer);
        pause_inside_on_data(NK_FRAME_RAW, from_timer);
    }
}

/* A8 over a real socket: 300 messages of 0..2999 bytes, written in random
 * pieces and read 1000 bytes at a time, come out whole and in order. */
struct seq {
    nk_frame_kind kind;
    int next, bad;
};

static size_t seq_len(int i)
{
    return (size_t)((i * 977) % 3000);
}

static uint8_t seq_byte(int i, size_t k)
{
    return (uint8_t)('a' + (size_t)(i * 7 + (int)k) % 26);
}

static size_t seq_encode(nk_frame_kind kind, int i, uint8_t *out)
{
    size_t n = seq_len(i), at = 0;
    if (kind == NK_FRAME_LENGTH32) {
        nk_frame_length32_prefix(n, out);
        at = 4;
    }
    for (size_t k = 0; k < n; k++)
        out[at++] = seq_byte(i, k);
    if (kind == NK_FRAME_LINE) {
        if (i % 3 == 0)
            out[at++] = '\r';
        out[at++] = '\n';
    }
    return at;
}

static void seq_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    (void)c;
    struct srv_state *st = user;
    struct seq *q = (struct seq *)st->last_conn;
    const uint8_t *p = d;
    if (n != seq_len(q->next))
        q->bad++;
    else
        for (size_t k = 0; k < n; k++)
            if (p[k] != seq_byte(q->next, k)) {
                q->bad++;
                break;
            }
    q->next++;
}

static void framed_random_splits(nk_frame_kind kind)
{
    enum { N = 300 };
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.on_open = NULL;
    o.read_chunk = 1000;
    o.conn.on_data = seq_data;
    o.conn.frame.kind = kind;
    o.conn.frame.max_line = 3000;
    o.conn.frame.max_frame = 3000;
    struct seq q = {.kind = kind};
    st.last_conn = (nk_tcp_conn *)&q;
    srv_start(&st, &o);
    static uint8_t stream[N * 3006];
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += seq_encode(kind, i, stream + len);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    uint64_t x = 12345;
    for (size_t at = 0; at < len;) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        size_t n = 1 + (size_t)(x >> 33) % 5000;
        if (n > len - at)
            n = len - at;
        assert_int_equal(nkt_send_all(fd, stream + at, n), 0);
        at += n;
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(q.next, N);
    assert_int_equal(q.bad, 0);
    assert_int_equal(st.reasons[0], NK_EOF);
    srv_finish(&st);
}

static void test_length32_random_splits_over_socket(void **state)
{
    (void)state;
    framed_random_splits(NK_FRAME_LENGTH32);
}

static void test_lines_random_splits_over_socket(void **state)
{
    (void)state;
    framed_random_splits(NK_FRAME_LINE);
}

/* A4: a valid but large announced frame costs only what has arrived. */
static void test_partial_large_frame_allocates_only_what_arrived(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.frame.kind = NK_FRAME_LENGTH32;
    o.conn.frame.max_frame = 64u << 20;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, 1, 5000);
    size_t before = nkt_alloc_live_bytes();
    uint8_t msg[14];
    nk_frame_length32_prefix(60u << 20, msg); /* announces 60 MiB */
    memset(msg + 4, 'p', 10);
    assert_int_equal(nkt_send_all(fd, msg, sizeof msg), 0);
    nk_tcp_conn_stats cs = {0};
    for (int i = 0; i < 1000 && cs.buffered < sizeof msg; i++) {
        nk_loop_run(st.loop, NK_RUN_ONCE);
        nk_tcp_conn_get_stats(st.last_conn, &cs);
    }
    assert_int_equal(cs.buffered, sizeof msg);
    assert_true(nkt_alloc_live_bytes() - before <= 1024);
    assert_int_equal(st.datas, 0);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], NK_EMIDFRAME);
    srv_finish(&st);
}

/* The per-message path allocates nothing: 1000 ping-pongs, no allocation
 * counted (raw and length-prefixed framing). */
static void hot_path(nk_frame_kind kind)
{
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.frame.kind = kind;
    o.conn.idle_timeout_ms = 60000; /* lazily re-armed: no heap work */
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, 1, 5000);
    uint8_t msg[4 + 32], back[32];
    nk_frame_length32_prefix(32, msg);
    memset(msg + 4, 'm', 32);
    const uint8_t *out = kind == NK_FRAME_RAW ? msg + 4 : msg;
    size_t out_len = kind == NK_FRAME_RAW ? 32 : sizeof msg;
    nkt_alloc_reset();
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(nkt_send_all(fd, out, out_len), 0);
        size_t got = 0;
        while (got < 32) {
            nk_loop_run(st.loop, NK_RUN_ONCE);
            int r = nkt_read_some(fd, back + got, 32 - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
    }
    assert_int_equal(nkt_alloc_count(), 0);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    srv_finish(&st);
}

static void test_echo_hot_path_allocates_nothing(void **state)
{
    (void)state;
    hot_path(NK_FRAME_RAW);
    hot_path(NK_FRAME_LENGTH32);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_hot_path_allocates_nothing),
        cmocka_unit_test(test_half_close_server_replies_after_client_eof),
        cmocka_unit_test(test_peer_eof_while_writing_is_not_an_error),
        cmocka_unit_test(test_slow_reader_bounded_queue_then_resumes),
        cmocka_unit_test(test_hard_queue_cap_closes_with_queue_full),
        cmocka_unit_test(test_line_framing_over_socket),
        cmocka_unit_test(test_line_too_long_closes_with_reason),
        cmocka_unit_test(test_length32_framing_and_errors_over_socket),
        cmocka_unit_test(test_length32_random_splits_over_socket),
        cmocka_unit_test(test_partial_large_frame_allocates_only_what_arrived),
        cmocka_unit_test(test_lines_random_splits_over_socket),
        cmocka_unit_test(test_graceful_close_with_unread_input_delivers_reply),
        cmocka_unit_test(test_close_own_and_other_from_callback),
        cmocka_unit_test(test_idle_connection_costs_at_most_256_bytes),
        cmocka_unit_test(test_graceful_close_linger_bounds_a_silent_peer),
        cmocka_unit_test(test_set_reading_pauses_and_resumes_delivery),
        cmocka_unit_test(test_pause_inside_on_data_keeps_rest_until_resume),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
