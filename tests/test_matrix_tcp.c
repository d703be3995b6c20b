/* TCP rows of the reliability matrix that need more than the module
 * suites show: B1 a reset in the middle of a 16 MiB write (SIGPIPE at its
 * default disposition), A4 huge length prefixes, A6 an over-long line with
 * bounded buffering, D1 a client that never reads while others are served,
 * with and without the hard queue cap, B9 64 MiB through the blocking
 * client and a loop under a 50 us signal storm, F2 a graceful close to a
 * peer that never reads, bounded by linger_ms. Raw POSIX peers, loopback
 * only. */
#include "test_tcp_util.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_proc.h"

/* Environment override of a default size; under valgrind the default is
 * @slow instead. */
static size_t env_size(const char *name, size_t dflt, size_t slow)
{
    const char *v = getenv(name);
    if (nkt_under_valgrind())
        dflt = slow;
    if (!v || !*v)
        return dflt;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == 0 && n > 0 ? (size_t)n : dflt;
}

/* Run the loop without waiting until @fd has something to read (or EOF)
 * or @max_ms passed: true if readable. */
static bool pump_until_readable(nk_loop *loop, int fd, uint64_t max_ms)
{
    uint64_t end = nkt_now_ms() + max_ms;
    while (nkt_now_ms() < end) {
        nk_loop_run(loop, NK_RUN_NOWAIT);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 1) == 1)
            return true;
    }
    return false;
}

/* Echo one short message through @fd (a client of the echo server on
 * @loop), running the loop meanwhile. */
static void echo_roundtrip(nk_loop *loop, int fd, const void *msg, size_t len,
                           const void *want, size_t want_len)
{
    assert_int_equal(nkt_send_all(fd, msg, len), 0);
    char back[64];
    size_t got = 0;
    while (got < want_len) {
        assert_true(pump_until_readable(loop, fd, 5000));
        int r = nkt_read_some(fd, back + got, want_len - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(back, want, want_len);
}

/* ---- B1: peer RST while 16 MiB are queued ---- */

struct b1 {
    struct srv_state st;
    size_t queued_at_close; /* the reset connection's queue at on_close */
    size_t peak;            /* its queue right after the 16 MiB were sent */
};

static struct b1 b1;

static void b1_open(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    st->last_conn = c;
    if (st->opens++ != 0)
        return;
    /* The first connection gets 16 MiB it will never read. */
    static uint8_t chunk[1 << 20];
    for (size_t i = 0; i < 16; i++) {
        nkt_stream_fill(0xb1, i << 20, chunk, sizeof chunk);
        int r = nk_tcp_conn_send(c, chunk, sizeof chunk);
        NKT_CHILD_ASSERT(r == 0 || r == 1);
    }
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    b1.peak = cs.queued;
}

static void b1_close(nk_tcp_conn *c, int reason, void *user)
{
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    if (user == &b1.st && b1.st.closes == 0)
        b1.queued_at_close = cs.queued;
    st_close(c, reason, user);
}

static void b1_child(void *arg)
{
    (void)arg;
    /* The child runs with SIGPIPE at SIG_DFL: one raised signal kills it. */
    struct srv_state *st = &b1.st;
    nk_tcp_server_opts o = echo_opts(st);
    o.on_open = b1_open;
    o.conn.on_close = b1_close;
    o.conn.high_watermark = 1u << 20;
    o.conn.low_watermark = 1u << 16;
    NKT_CHILD_ASSERT(nk_loop_new(&st->loop) == 0);
    nk_addr a;
    NKT_CHILD_ASSERT(nk_addr_parse("127.0.0.1:0", &a) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_start(st->loop, &a, &o, &st->srv) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_addr(st->srv, &st->addr) == 0);
    size_t live_before = nkt_alloc_live_bytes();

    int victim = nkt_tcp_connect(&st->addr);
    NKT_CHILD_ASSERT(victim >= 0);
    static uint8_t buf[65536];
    size_t got = 0;
    while (got < sizeof buf) {
        NKT_CHILD_ASSERT(pump_until_readable(st->loop, victim, 5000));
        int r = nkt_read_some(victim, buf + got, sizeof buf - got, 0);
        NKT_CHILD_ASSERT(r > 0);
        got += (size_t)r;
    }
    NKT_CHILD_ASSERT(nkt_stream_check(0xb1, 0, buf, sizeof buf));
    NKT_CHILD_ASSERT(b1.peak > (8u << 20)); /* most of it is queued */
    /* Half-close, then reset: the server's socket has seen the FIN, so
     * the kernel reports the reset as EPIPE and raises SIGPIPE on the
     * next write without MSG_NOSIGNAL, the library's flush. */
    NKT_CHILD_ASSERT(shutdown(victim, SHUT_WR) == 0);
    nkt_close_rst(victim);

    /* The loop flushes the queue into it: -EPIPE, and no signal. */
    struct count_goal g = {&st->closes, 1};
    NKT_CHILD_ASSERT(nkt_run_until(st->loop, reached, &g, 100000, 5000,
                                   NULL) == 0);
    NKT_CHILD_ASSERT(st->reasons[0] == -EPIPE);
    NKT_CHILD_ASSERT(b1.queued_at_close == 0);
    NKT_CHILD_ASSERT(nkt_alloc_live_bytes() <= live_before + 1024);

    /* A second client is still served. */
    int other = nkt_tcp_connect(&st->addr);
    NKT_CHILD_ASSERT(other >= 0);
    NKT_CHILD_ASSERT(nkt_send_all(other, "still", 5) == 0);
    char back[5];
    size_t n = 0;
    while (n < sizeof back) {
        NKT_CHILD_ASSERT(pump_until_readable(st->loop, other, 5000));
        int r = nkt_read_some(other, back + n, sizeof back - n, 0);
        NKT_CHILD_ASSERT(r > 0);
        n += (size_t)r;
    }
    NKT_CHILD_ASSERT(memcmp(back, "still", 5) == 0);
    close(other);
    g.want = 2;
    NKT_CHILD_ASSERT(nkt_run_until(st->loop, reached, &g, 100000, 5000,
                                   NULL) == 0);
    nk_tcp_server_stats s;
    nk_tcp_server_get_stats(st->srv, &s);
    NKT_CHILD_ASSERT(s.closed_reset == 1);
    NKT_CHILD_ASSERT(s.closed_eof == 1);
    NKT_CHILD_ASSERT(st->closes == 2);
    nk_tcp_server_free(st->srv);
    NKT_CHILD_ASSERT(nk_loop_run(st->loop, NK_RUN_DEFAULT) == 0);
    NKT_CHILD_ASSERT(nk_loop_free(st->loop) == 0);
}

static void test_b1_reset_mid_16mib_write_one_close_no_sigpipe(void **state)
{
    (void)state;
    /* Exit 0: no SIGPIPE (it would be 128 + 13) and every check held. */
    assert_int_equal(nkt_child(b1_child, NULL, NULL, true, 30000), 0);
}

/* ---- A4: huge length prefixes ---- */

static void a4_case(const uint8_t prefix[4])
{
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.frame.kind = NK_FRAME_LENGTH32;
    o.conn.frame.max_frame = 1u << 20;
    srv_start(&st, &o);
    /* A well-behaved connection that must keep working. */
    int good = nkt_tcp_connect(&st.addr);
    assert_true(good >= 0);
    uint8_t ping[8] = {0, 0, 0, 4, 'p', 'i', 'n', 'g'};
    echo_roundtrip(st.loop, good, ping, sizeof ping, "ping", 4);
    int datas = st.datas;

    size_t live_before = nkt_alloc_live_bytes(), live_peak = live_before;
    int bad = nkt_tcp_connect(&st.addr);
    assert_true(bad >= 0);
    uint8_t first[8];
    memcpy(first, prefix, 4);
    memset(first + 4, 'A', 4); /* at most 4 bytes of payload */
    assert_int_equal(nkt_send_all(bad, first, sizeof first), 0);
    for (int i = 0; i < 100000 && st.closes == 0; i++) {
        nk_loop_run(st.loop, NK_RUN_ONCE);
        size_t live = nkt_alloc_live_bytes();
        if (live > live_peak)
            live_peak = live;
    }
    assert_int_equal(st.closes, 1);
    assert_int_equal(st.reasons[0], NK_EFRAME_TOO_LARGE);
    assert_int_equal(st.datas, datas); /* nothing delivered from it */
    /* Then 1 MiB of 'A's (Redis desync): refused, nothing more read. */
    fcntl(bad, F_SETFL, O_NONBLOCK);
    static uint8_t as[1 << 20];
    memset(as, 'A', sizeof as);
    size_t sent = 0;
    int err = 0;
    for (int i = 0; i < 10000 && sent < sizeof as && !err; i++) {
        ssize_t w = send(bad, as + sent, sizeof as - sent, MSG_NOSIGNAL);
        if (w > 0)
            sent += (size_t)w;
        else if (errno != EAGAIN)
            err = errno;
        else
            nk_loop_run(st.loop, NK_RUN_NOWAIT);
    }
    assert_true(err == 0 || err == EPIPE || err == ECONNRESET);
    for (int i = 0; i < 10; i++)
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    /* No allocation of the announced size: the library's live bytes never
     * grew by more than a read chunk. */
    print_message("prefix %02x%02x%02x%02x: closed, live bytes grew %zu\n",
                  prefix[0], prefix[1], prefix[2], prefix[3],
                  live_peak - live_before);
    assert_true(live_peak - live_before <= 2 * o.read_chunk);
    assert_int_equal(st.closes, 1);
    assert_int_equal(srv_stats(&st).closed_frame, 1);
    echo_roundtrip(st.loop, good, ping, sizeof ping, "ping", 4);
    close(bad);
    close(good);
    run_until_count(st.loop, &st.closes, 2, 5000);
    srv_finish(&st);
}

static void test_a4_huge_length_prefix_closes_without_allocating(void **state)
{
    (void)state;
    static const uint8_t prefixes[][4] = {
        {0xff, 0xff, 0xff, 0xff},
        {0x7f, 0xff, 0xff, 0xff},
        {0x00, 0x10, 0x00, 0x01}, /* max_frame (1 MiB) + 1 */
    };
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        a4_case(prefixes[i]);
}

/* ---- A6: over-long line ---- */

static void test_a6_overlong_line_closes_with_bounded_buffer(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.frame.kind = NK_FRAME_LINE;
    o.conn.frame.max_line = 1024;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *c = st.last_conn;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static uint8_t line[1 << 20];
    memset(line, 'x', sizeof line);
    size_t live_before = nkt_alloc_live_bytes(), live_peak = live_before;
    size_t buffered_peak = 0, sent = 0;
    int err = 0;
    for (int i = 0; i < 100000 && st.closes == 0; i++) {
        if (sent < sizeof line && !err) {
            size_t n = sizeof line - sent < 4096 ? sizeof line - sent : 4096;
            ssize_t w = send(fd, line + sent, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                err = errno;
        }
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        if (st.closes == 0) {
            nk_tcp_conn_stats cs;
            nk_tcp_conn_get_stats(c, &cs);
            if (cs.buffered > buffered_peak)
                buffered_peak = cs.buffered;
        }
        size_t live = nkt_alloc_live_bytes();
        if (live > live_peak)
            live_peak = live;
    }
    assert_int_equal(st.closes, 1);
    assert_int_equal(st.reasons[0], NK_ELINE_TOO_LONG);
    assert_int_equal(st.datas, 0);
    print_message("A6: closed after %zu bytes sent; peak buffered %zu, live "
                  "bytes grew %zu\n", sent, buffered_peak,
                  live_peak - live_before);
    assert_true(buffered_peak <= o.conn.frame.max_line + o.read_chunk);
    assert_true(live_peak - live_before <=
                o.conn.frame.max_line + 2 * o.read_chunk);
    assert_true(sent < sizeof line || err == 0);
    assert_int_equal(srv_stats(&st).closed_frame, 1);
    close(fd);
    srv_finish(&st);
}

/* ---- D1: a client that never reads ---- */

static void d1_bounded(bool hard_cap)
{
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.high_watermark = 256u << 10;
    o.conn.low_watermark = 64u << 10;
    if (hard_cap) /* below high watermark + one read: the cap is reached */
        o.conn.max_queue = 128u << 10;
    o.conn.on_drain = st_drain;
    srv_start(&st, &o);
    const size_t total = env_size("NK_TEST_D1_BYTES", 32u << 20, 8u << 20);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *hog = st.last_conn;
    /* A small send buffer on the server's side too, so the queue, not the
     * kernel, takes the backlog whatever the autotuning. */
    assert_int_equal(setsockopt(nk_tcp_conn_fd(hog), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof small), 0);
    /* Three other clients echo 1 MiB each meanwhile. */
    int done = 0;
    struct rawc others[3];
    bool started = false;
    static uint8_t buf[65536];
    size_t sent = 0, got = 0, peak = 0;
    bool mismatch = false, paused_seen = false;
    int eagains = 0;
    /* Phase 1: write without reading until the server stops reading. */
    for (int i = 0; i < 200000 && st.closes == 0; i++) {
        ssize_t w = -1;
        if (sent < total) {
            size_t n = total - sent < sizeof buf ? total - sent : sizeof buf;
            nkt_stream_fill(0xd1, sent, buf, n);
            w = send(fd, buf, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        if (st.closes)
            break;
        nk_tcp_conn_stats cs;
        nk_tcp_conn_get_stats(hog, &cs);
        if (cs.queued > peak)
            peak = cs.queued;
        assert_true(cs.queued <= o.conn.high_watermark + o.read_chunk);
        if (cs.reading_paused)
            paused_seen = true;
        if (w < 0 && cs.reading_paused && !started) {
            for (int k = 0; k < 3; k++)
                rawc_start(&others[k], st.loop, &st.addr, 0xd100u + (unsigned)k,
                           1u << 20, true, &done);
            started = true;
        }
        if (w < 0 && started && ++eagains > 50)
            break;
    }
    if (hard_cap) {
        run_until_count(st.loop, &st.closes, 1, 5000);
        assert_int_equal(st.reasons[0], NK_EQUEUE_FULL);
        assert_int_equal(srv_stats(&st).closed_queue, 1);
        print_message("D1 hard cap: closed with %s after %zu bytes sent\n",
                      nk_err_name(st.reasons[0]), sent);
        close(fd);
        srv_finish(&st);
        return;
    }
    assert_true(paused_seen);
    assert_true(started);
    assert_true(srv_stats(&st).read_pauses >= 1);
    /* The others complete while the hog still does not read. */
    run_until_count(st.loop, &done, 3, 20000);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(others[k].end, 1);
        assert_false(others[k].mismatch);
        assert_int_equal(others[k].recvd, 1u << 20);
        rawc_close(&others[k]);
    }
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(hog, &cs);
    assert_true(cs.reading_paused);
    print_message("D1: paused with %zu bytes sent of %zu, peak queue %zu "
                  "(bound %zu)\n", sent, total, peak,
                  o.conn.high_watermark + o.read_chunk);
    /* Phase 2: the hog reads; the transfer finishes byte-exact. */
    bool shut = false;
    for (long i = 0; i < 10000000 && got < total; i++) {
        if (sent < total) {
            size_t n = total - sent < sizeof buf ? total - sent : sizeof buf;
            nkt_stream_fill(0xd1, sent, buf, n);
            ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        } else if (!shut) {
            shut = true;
            assert_int_equal(shutdown(fd, SHUT_WR), 0);
        }
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
            if (!nkt_stream_check(0xd1, got, buf, (size_t)r))
                mismatch = true;
            got += (size_t)r;
        }
        if (st.closes == 0) {
            nk_tcp_conn_get_stats(hog, &cs);
            if (cs.queued > peak)
                peak = cs.queued;
        }
    }
    assert_int_equal(got, total);
    assert_false(mismatch);
    assert_true(st.drains >= 1);
    assert_true(peak <= o.conn.high_watermark + o.read_chunk);
    assert_int_equal(nkt_expect_eof(fd, 5000), 0);
    run_until_count(st.loop, &st.closes, 4, 5000);
    nk_tcp_server_stats s = srv_stats(&st);
    assert_int_equal(s.closed_eof, 4);
    assert_int_equal(st.unbalanced, 0);
    close(fd);
    srv_finish(&st);
}

/* D1: 32 MiB by default (NK_TEST_D1_BYTES=104857600 for the row's
 * 100 MiB). */
static void test_d1_never_reading_client_bounded_others_served(void **state)
{
    (void)state;
    d1_bounded(false);
}

static void test_d1_hard_queue_cap_closes_with_queue_full(void **state)
{
    (void)state;
    d1_bounded(true);
}

/* D1 and B11 together: a client that stops reading stalls the writes and
 * the reads (paused at the watermark); with idle_timeout set, the stall
 * counts as idleness, so the connection and its queue are released with
 * -ETIMEDOUT. */
static void test_d1_stalled_reader_released_by_idle_timeout(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.high_watermark = 256u << 10;
    o.conn.low_watermark = 64u << 10;
    o.conn.idle_timeout_ms = 200;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *hog = st.last_conn;
    assert_int_equal(setsockopt(nk_tcp_conn_fd(hog), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof small), 0);
    static uint8_t buf[65536];
    memset(buf, 'h', sizeof buf);
    bool paused = false;
    for (int i = 0; i < 100000 && !paused && st.closes == 0; i++) {
        (void)send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        if (st.closes == 0) {
            nk_tcp_conn_stats cs;
            nk_tcp_conn_get_stats(hog, &cs);
            paused = cs.reading_paused;
        }
    }
    assert_true(paused);
    size_t live = nkt_alloc_live_bytes();
    uint64_t t0 = nkt_now_ms();
    run_until_count(st.loop, &st.closes, 1, 5000);
    uint64_t waited = nkt_now_ms() - t0;
    print_message("D1: stalled reader closed with %s after %llu ms; %zu "
                  "library bytes released\n", nk_err_name(st.reasons[0]),
                  (unsigned long long)waited,
                  live - nkt_alloc_live_bytes());
    assert_int_equal(st.reasons[0], -ETIMEDOUT);
    assert_int_equal(srv_stats(&st).closed_timeout, 1);
    assert_true(live - nkt_alloc_live_bytes() >= o.conn.high_watermark);
    close(fd);
    srv_finish(&st);
}

/* ---- B2: graceful close while the peer is still sending ---- */

static void b2_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    (void)d;
    st->bytes += n;
    if (st->datas++ == 0) {
        assert_int_equal(nk_tcp_conn_send(c, "0123456789", 10), 0);
        nk_tcp_conn_close(c);
    }
}

/* The server replies 10 B and closes after the first chunk of a 1 MiB
 * upload that is still arriving: the close drains the input instead of
 * resetting, so the client gets the 10 B, then EOF, and its upload is
 * never refused. */
static void test_b2_close_while_peer_still_sends_reply_then_eof(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.on_data = b2_data;
    o.read_chunk = 4096;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static uint8_t up[1 << 20];
    memset(up, 'u', sizeof up);
    char reply[16];
    size_t sent = 0, got = 0;
    int eof = 0, err = 0;
    for (int i = 0; i < 200000 && !(eof && sent == sizeof up) && !err; i++) {
        if (sent < sizeof up) {
            size_t n = sizeof up - sent < 8192 ? sizeof up - sent : 8192;
            ssize_t w = send(fd, up + sent, n, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (errno != EAGAIN)
                err = errno;
        }
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
        ssize_t r = recv(fd, reply + got, sizeof reply - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            eof = 1;
        else if (errno != EAGAIN)
            err = errno;
    }
    print_message("B2: %zu of %zu bytes sent, reply %zu bytes, eof %d, "
                  "error %s\n", sent, sizeof up, got, eof,
                  err ? strerror(err) : "none");
    assert_int_equal(err, 0);
    assert_int_equal(got, 10);
    assert_memory_equal(reply, "0123456789", 10);
    assert_int_equal(eof, 1);
    assert_int_equal(sent, sizeof up);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], 0);
    srv_finish(&st);
}

/* ---- B4: the server writes after the peer closed ---- */

struct b4 {
    int results[3];
    int closes, reason, eofs;
};

static void b4_eof(nk_tcp_conn *c, void *user)
{
    struct b4 *b = user;
    static const char msg[] = "after your close";
    b->eofs++;
    /* Three sends, the first may still be taken by the kernel. */
    for (int i = 0; i < 3; i++) {
        b->results[i] = nk_tcp_conn_send(c, msg, sizeof msg);
        /* Give the peer's RST a chance to come back between sends. */
        struct pollfd pf = {.fd = nk_tcp_conn_fd(c), .events = POLLIN};
        if (pf.fd >= 0)
            (void)poll(&pf, 1, 50);
    }
}

static void b4_close(nk_tcp_conn *c, int reason, void *user)
{
    struct b4 *b = user;
    (void)c;
    b->closes++;
    b->reason = reason;
}

static void b4_child(void *arg)
{
    (void)arg;
    static struct b4 b;
    nk_loop *loop;
    NKT_CHILD_ASSERT(nk_loop_new(&loop) == 0);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.conn.on_eof = b4_eof; /* stay open after the peer's FIN */
    o.conn.on_close = b4_close;
    o.conn.user = &b;
    nk_addr a;
    nk_tcp_server *srv;
    NKT_CHILD_ASSERT(nk_addr_parse("127.0.0.1:0", &a) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_start(loop, &a, &o, &srv) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_addr(srv, &a) == 0);
    int fd = nkt_tcp_connect(&a);
    NKT_CHILD_ASSERT(fd >= 0);
    close(fd);
    struct count_goal g = {&b.closes, 1};
    NKT_CHILD_ASSERT(nkt_run_until(loop, reached, &g, 100000, 5000,
                                   NULL) == 0);
    NKT_CHILD_ASSERT(b.eofs == 1);
    int errs = 0;
    for (int i = 0; i < 3; i++) {
        int r = b.results[i];
        fprintf(stderr, "B4: send %d after the peer closed: %s\n", i + 1,
                nk_err_name(r));
        NKT_CHILD_ASSERT(r == 0 || r == -EPIPE || r == -ECONNRESET ||
                         r == NK_ECLOSED);
        if (r == -EPIPE || r == -ECONNRESET)
            errs++;
    }
    /* The failure is reported once; later sends see a closed handle. */
    NKT_CHILD_ASSERT(errs <= 1);
    NKT_CHILD_ASSERT(b.results[2] != 0 || b.results[1] != 0);
    NKT_CHILD_ASSERT(b.reason == -EPIPE || b.reason == -ECONNRESET);
    for (int i = 0; i < 20; i++)
        nk_loop_run(loop, NK_RUN_NOWAIT);
    NKT_CHILD_ASSERT(b.closes == 1);
    nk_tcp_server_free(srv);
    NKT_CHILD_ASSERT(nk_loop_run(loop, NK_RUN_DEFAULT) == 0);
    NKT_CHILD_ASSERT(nk_loop_free(loop) == 0);
}

static void test_b4_server_sends_thrice_after_peer_closed_one_close(
    void **state)
{
    (void)state;
    /* SIGPIPE at SIG_DFL: exit 0 means no signal was raised. */
    assert_int_equal(nkt_child(b4_child, NULL, NULL, true, 15000), 0);
}

/* ---- B9: EINTR storm ---- */

static volatile sig_atomic_t b9_ticks;

static void b9_alarm(int sig)
{
    (void)sig;
    b9_ticks++;
}

struct b9_server {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    pthread_t th;
    int run_rc;
    uint64_t timer_fires, timer_early; /* a 10 ms repeating timer */
    uint64_t timer_start; /* loop time when it started */
};

static void b9_echo(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    (void)user;
    int r = nk_tcp_conn_send(c, d, n);
    if (r != 0 && r != 1)
        nk_tcp_conn_abort(c); /* the client then sees the error */
}

static void b9_tick(nk_timer *t, void *user)
{
    (void)t;
    struct b9_server *s = user;
    /* The n-th firing never comes before n periods have passed. */
    s->timer_fires++;
    if (nkt_now_ms() < s->timer_start + 10 * s->timer_fires)
        s->timer_early++;
}

static void *b9_server_main(void *arg)
{
    struct b9_server *s = arg;
    s->run_rc = nk_loop_run(s->loop, NK_RUN_DEFAULT);
    return NULL;
}

/* 64 MiB by default (NK_TEST_B9_BYTES), echoed through a server whose loop
 * runs in another thread, in 1 MiB send_all / recv_exact calls, while
 * SIGALRM (no SA_RESTART) arrives every 50 us: byte-exact, no error, the
 * blocking deadline and the loop's timer still honoured. */
static void test_b9_signal_storm_blocking_64mib_and_loop_exact(void **state)
{
    (void)state;
    if (nkt_under_valgrind()) {
        nkt_skip("valgrind serialises threads and delivers signals at its "
                 "own pace, so a 50 us storm crawls; the other builds run "
                 "it");
    }
    const size_t total = env_size("NK_TEST_B9_BYTES", 64u << 20, 64u << 20);
    const size_t chunk = 1u << 20;
    struct b9_server s;
    memset(&s, 0, sizeof s);
    assert_int_equal(nk_loop_new(&s.loop), 0);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.conn.on_data = b9_echo;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(nk_tcp_server_start(s.loop, &a, &o, &s.srv), 0);
    assert_int_equal(nk_tcp_server_addr(s.srv, &s.addr), 0);
    nk_timer *t;
    nk_loop_update_time(s.loop);
    s.timer_start = nk_loop_now(s.loop);
    assert_int_equal(nk_timer_start(s.loop, 10, 10, b9_tick, &s, &t), 0);

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = b9_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls fail with EINTR */
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    b9_ticks = 0;
    struct itimerval it = {.it_interval = {0, 50}, .it_value = {0, 50}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    assert_int_equal(pthread_create(&s.th, NULL, b9_server_main, &s), 0);

    uint8_t *out = malloc(chunk), *in = malloc(chunk);
    assert_true(out && in);
    nk_tcp_sync *c = NULL;
    int rc = nk_tcp_sync_connect(&s.addr, 10000, &c);
    int code = 0;
    size_t done = 0;
    bool exact = true;
    uint64_t t0 = nkt_now_ms();
    while (rc == 0 && code == 0 && done < total) {
        nkt_stream_fill(0xb9, done, out, chunk);
        code = nk_tcp_sync_send_all(c, out, chunk, 30000);
        if (code == 0)
            code = nk_tcp_sync_recv_exact(c, in, chunk, 30000);
        if (code == 0 && !nkt_stream_check(0xb9, done, in, chunk))
            exact = false;
        done += chunk;
    }
    uint64_t elapsed = nkt_now_ms() - t0;
    /* A deadline on the monotonic clock holds under the storm: nothing
     * comes, so a 200 ms receive returns -ETIMEDOUT after 200 ms. */
    uint64_t w0 = nkt_now_ms();
    int tmo = rc == 0 ? nk_tcp_sync_recv(c, in, 1, 200) : 0;
    uint64_t waited = nkt_now_ms() - w0;
    sig_atomic_t ticks = b9_ticks;

    nk_loop_stop(s.loop);
    pthread_join(s.th, NULL);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    sigaction(SIGALRM, &old, NULL);
    nk_tcp_sync_close(c);
    free(out);
    free(in);
    print_message("B9: %zu MiB echoed in %llu ms under %d signals; timer "
                  "fired %llu times; 200 ms receive waited %llu ms\n",
                  done >> 20, (unsigned long long)elapsed, (int)ticks,
                  (unsigned long long)s.timer_fires,
                  (unsigned long long)waited);
    assert_int_equal(rc, 0);
    assert_int_equal(code, 0);
    assert_true(exact);
    assert_int_equal(done, total);
    assert_int_equal(s.run_rc, 0);
    assert_int_equal(tmo, -ETIMEDOUT);
    assert_true(waited >= 200 && waited < 2000);
    assert_true(ticks > 100); /* the storm really ran */
    assert_true(s.timer_fires >= 1);
    assert_int_equal(s.timer_early, 0);
    nk_timer_stop(t);
    nk_tcp_server_free(s.srv);
    for (int i = 0; i < 100 && nk_loop_run(s.loop, NK_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(nk_loop_free(s.loop), 0);
}

/* ---- F2: a graceful close is bounded from the close call ---- */

enum f2_peer {
    F2_SILENT, /* never reads, sends nothing */
    F2_SENDS,  /* never reads, keeps sending */
};

struct f2 {
    struct srv_state st;
    size_t queued_at_close;
};

static void f2_close(nk_tcp_conn *c, int reason, void *user)
{
    struct f2 *f = (struct f2 *)user;
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    f->queued_at_close = cs.queued;
    st_close(c, reason, &f->st);
}

/* 8 MiB queued to a peer that never reads, then a graceful close: on_close
 * comes within linger_ms of the close call with NK_EDROPPED, and the
 * queue's memory is released. */
static void f2_case(enum f2_peer peer, uint64_t linger)
{
    struct f2 f;
    memset(&f, 0, sizeof f);
    nk_tcp_server_opts o = echo_opts(&f.st);
    f.st.echo = false;
    o.conn.on_close = f2_close;
    o.conn.user = &f;
    o.conn.linger_ms = linger;
    o.conn.high_watermark = 16u << 20;
    srv_start(&f.st, &o);
    int fd = nkt_tcp_connect(&f.st.addr);
    assert_true(fd >= 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    run_until_count(f.st.loop, &f.st.opens, 1, 5000);
    nk_tcp_conn *c = f.st.last_conn;
    size_t live_before = nkt_alloc_live_bytes();
    static uint8_t chunk[1 << 20];
    memset(chunk, 'f', sizeof chunk);
    for (int i = 0; i < 8; i++) {
        int r = nk_tcp_conn_send(c, chunk, sizeof chunk);
        assert_true(r == 0 || r == 1);
    }
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    assert_true(cs.queued >= (1u << 20));
    uint64_t t0 = nkt_now_ms();
    nk_tcp_conn_close(c);
    size_t peer_sent = 0;
    if (peer == F2_SILENT) {
        struct count_goal g = {&f.st.closes, 1};
        (void)nkt_run_until(f.st.loop, reached, &g, 1000000, linger + 5000,
                            NULL);
    }
    while (peer == F2_SENDS && f.st.closes == 0 &&
           nkt_now_ms() - t0 < linger + 5000) {
        ssize_t w = send(fd, chunk, 16384, MSG_NOSIGNAL);
        if (w > 0)
            peer_sent += (size_t)w;
        nk_loop_run(f.st.loop, NK_RUN_NOWAIT);
    }
    uint64_t took = nkt_now_ms() - t0;
    print_message("F2 %s, linger %llu ms: on_close %s after %llu ms "
                  "(peer sent %zu bytes meanwhile)\n",
                  peer == F2_SENDS ? "sending peer" : "silent peer",
                  (unsigned long long)linger, nk_err_name(f.st.last_reason),
                  (unsigned long long)took, peer_sent);
    assert_int_equal(f.st.closes, 1);
    assert_int_equal(f.st.reasons[0], NK_EDROPPED);
    assert_true(took + 1 >= linger);
    assert_true(took < linger + 3000);
    assert_int_equal(f.queued_at_close, 0);
    assert_true(nkt_alloc_live_bytes() <= live_before + 1024);
    assert_int_equal(srv_stats(&f.st).closed_local, 1);
    close(fd);
    srv_finish(&f.st);
}

static void test_f2_close_to_never_reading_peer_bounded_by_linger(void **state)
{
    (void)state;
    /* The default is finite: a close cannot wait forever by default. */
    nk_tcp_conn_opts d = NK_TCP_CONN_OPTS_INIT;
    assert_true(d.linger_ms > 0 && d.linger_ms <= 60000);
    static const struct {
        enum f2_peer peer;
        uint64_t linger_ms;
    } cases[] = {
        {F2_SILENT, 300},
        {F2_SENDS, 300},
        {F2_SILENT, 0}, /* 0: no wait at all, the queue is dropped */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        f2_case(cases[i].peer, cases[i].linger_ms);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b1_reset_mid_16mib_write_one_close_no_sigpipe),
        cmocka_unit_test(test_a4_huge_length_prefix_closes_without_allocating),
        cmocka_unit_test(test_a6_overlong_line_closes_with_bounded_buffer),
        cmocka_unit_test(test_d1_never_reading_client_bounded_others_served),
        cmocka_unit_test(test_d1_hard_queue_cap_closes_with_queue_full),
        cmocka_unit_test(test_b9_signal_storm_blocking_64mib_and_loop_exact),
        cmocka_unit_test(test_b2_close_while_peer_still_sends_reply_then_eof),
        cmocka_unit_test(test_d1_stalled_reader_released_by_idle_timeout),
        cmocka_unit_test(
            test_b4_server_sends_thrice_after_peer_closed_one_close),
        cmocka_unit_test(test_f2_close_to_never_reading_peer_bounded_by_linger),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
