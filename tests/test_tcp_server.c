/* tcp_server: byte-exact echo at 1, 100 and 1000 clients, a reset peer
 * among others, idle timeouts at scale, the connection cap, running out
 * of fds, the backlog flood, IPv6, SO_REUSEPORT, and freeing the server
 * from a callback (its connections' on_close included) and with data still
 * queued. */
#include "test_tcp_util.h"

#include <netinet/in.h>
#include <poll.h>

#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_proc.h"

static void echo_clients(int n, size_t bytes)
{
    int fds_before = nkt_fd_count();
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    srv_start(&st, &o);
    struct rawc *cs = calloc((size_t)n, sizeof *cs);
    assert_non_null(cs);
    int done = 0;
    for (int i = 0; i < n; i++)
        rawc_start(&cs[i], st.loop, &st.addr, (uint64_t)i + 1, bytes, true,
                   &done);
    run_until_count(st.loop, &done, n, 15000);
    for (int i = 0; i < n; i++) {
        assert_int_equal(cs[i].end, 1);
        assert_false(cs[i].mismatch);
        assert_int_equal(cs[i].recvd, bytes);
        rawc_close(&cs[i]);
    }
    run_until_count(st.loop, &st.closes, n, 10000);
    nk_tcp_server_stats s = srv_stats(&st);
    assert_int_equal(s.accepted, (uint64_t)n);
    assert_int_equal(s.closed_eof, (uint64_t)n);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.closed_reset + s.closed_other, 0);
    assert_int_equal(st.bytes, (size_t)n * bytes);
    assert_int_equal(st.unbalanced, 0); /* bytes_in == bytes_out each */
    free(cs);
    srv_finish(&st);
    assert_int_equal(nkt_fd_count(), fds_before);
}

static void test_echo_byte_exact_1_client(void **state)
{
    (void)state;
    echo_clients(1, 4u << 20);
}

static void test_echo_byte_exact_100_clients(void **state)
{
    (void)state;
    echo_clients(100, 256u << 10);
}

static void test_echo_byte_exact_1000_clients(void **state)
{
    (void)state;
    if (!raise_nofile(2 * 1000 + 64)) {
        nkt_skip("RLIMIT_NOFILE cannot reach 2064");
    }
    echo_clients(1000, 16u << 10);
}

static void test_server_reports_port_and_rejects_bad_options(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_addr a, empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    nk_tcp_server *s = NULL;
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    assert_int_equal(nk_tcp_server_start(NULL, &a, &o, &s), NK_EINVAL);
    assert_int_equal(nk_tcp_server_start(loop, &empty, &o, &s), NK_EINVAL);
    o.conn.low_watermark = o.conn.high_watermark + 1;
    assert_int_equal(nk_tcp_server_start(loop, &a, &o, &s), NK_EINVAL);
    o = (nk_tcp_server_opts)NK_TCP_SERVER_OPTS_INIT;
    o.read_chunk = 0;
    assert_int_equal(nk_tcp_server_start(loop, &a, &o, &s), NK_EINVAL);
    assert_int_equal(nk_tcp_server_start(loop, &a, NULL, &s), 0);
    int port = nk_tcp_server_port(s);
    assert_true(port > 0 && port < 65536);
    /* The port is taken: a second listener without reuseport fails. */
    nk_addr same = a;
    nk_addr_set_port(&same, port);
    nk_tcp_server *s2 = NULL;
    assert_int_equal(nk_tcp_server_start(loop, &same, NULL, &s2), -EADDRINUSE);
    assert_int_equal(nk_tcp_server_port(NULL), NK_EINVAL);
    nk_tcp_server_free(s);
    nk_tcp_server_free(NULL);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_free(loop), 0);
}

static void test_peer_reset_mid_stream_others_still_served(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    srv_start(&st, &o);
    /* The resetting peer sends 1 MiB, reads nothing, and resets. */
    int bad = nkt_tcp_connect(&st.addr);
    assert_true(bad >= 0);
    static uint8_t chunk[1 << 20];
    memset(chunk, 'r', sizeof chunk);
    int done = 0;
    struct rawc good[3];
    for (int i = 0; i < 3; i++)
        rawc_start(&good[i], st.loop, &st.addr, 100 + (uint64_t)i, 512u << 10,
                   true, &done);
    run_until_count(st.loop, &st.opens, 4, 5000);
    (void)send(bad, chunk, sizeof chunk / 4, MSG_NOSIGNAL);
    run_until_count(st.loop, &done, 1, 5000);
    nkt_close_rst(bad);
    run_until_count(st.loop, &done, 3, 10000);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_true(st.reasons[0] == -ECONNRESET || st.reasons[0] == -EPIPE);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(good[i].end, 1);
        assert_false(good[i].mismatch);
        rawc_close(&good[i]);
    }
    run_until_count(st.loop, &st.closes, 4, 5000);
    nk_tcp_server_stats s = srv_stats(&st);
    assert_int_equal(s.closed_reset, 1);
    assert_int_equal(s.closed_eof, 3);
    srv_finish(&st);
}

static void test_idle_timeout_closes_with_etimedout(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.idle_timeout_ms = 100;
    srv_start(&st, &o);
    uint64_t start = nkt_now_ms(); /* before the accept that arms the timer */
    int idle = nkt_tcp_connect(&st.addr);
    int busy = nkt_tcp_connect(&st.addr);
    assert_true(idle >= 0 && busy >= 0);
    run_until_count(st.loop, &st.opens, 2, 5000);
    /* The busy client keeps talking past the idle one's deadline. */
    char b[4];
    while (st.closes == 0 && nkt_now_ms() - start < 5000) {
        assert_int_equal(nkt_send_all(busy, "ping", 4), 0);
        while (nkt_read_some(busy, b, 4, 0) == -ETIMEDOUT)
            nk_loop_run(st.loop, NK_RUN_ONCE);
    }
    assert_int_equal(st.closes, 1);
    assert_int_equal(st.reasons[0], -ETIMEDOUT);
    assert_true(nkt_now_ms() - start >= 100);
    int r = nkt_expect_eof(idle, 0);
    assert_true(r == 0 || r == -ECONNRESET);
    run_until_count(st.loop, &st.closes, 2, 5000);
    assert_int_equal(st.reasons[1], -ETIMEDOUT);
    assert_int_equal(srv_stats(&st).closed_timeout, 2);
    close(idle);
    close(busy);
    srv_finish(&st);
}

static void test_max_connections_rejects_excess_at_once(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.max_connections = 10;
    srv_start(&st, &o);
    int done = 0;
    struct rawc cs[50];
    for (int i = 0; i < 50; i++)
        rawc_start(&cs[i], st.loop, &st.addr, (uint64_t)i, 1, true, &done);
    /* The 10 served get their byte back; the 40 others see EOF at once. */
    run_until_count(st.loop, &done, 50, 10000);
    int served = 0, refused = 0;
    for (int i = 0; i < 50; i++) {
        if (cs[i].recvd == 1)
            served++;
        else if (cs[i].end == 1 || cs[i].end == -ECONNRESET)
            refused++;
        rawc_close(&cs[i]);
    }
    assert_int_equal(served, 10);
    assert_int_equal(refused, 40);
    nk_tcp_server_stats s = srv_stats(&st);
    assert_int_equal(s.accepted, 10);
    assert_int_equal(s.rejected, 40);
    run_until_count(st.loop, &st.closes, 10, 5000);
    srv_finish(&st);
}

/* Server freed from inside a callback, with connections open. */
static void sf_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct srv_state *st = user;
    (void)c;
    (void)d;
    (void)n;
    nk_tcp_server_free(st->srv);
    st->srv = NULL;
}

static void test_server_free_from_callback_closes_all(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.on_data = sf_data;
    srv_start(&st, &o);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = nkt_tcp_connect(&st.addr);
    run_until_count(st.loop, &st.opens, 3, 5000);
    assert_int_equal(nkt_send_all(fds[1], "x", 1), 0);
    run_until_count(st.loop, &st.closes, 3, 5000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(st.reasons[i], 0);
        int r = nkt_expect_eof(fds[i], 2000);
        assert_true(r == 0 || r == -ECONNRESET);
        close(fds[i]);
    }
    assert_int_equal(nk_loop_run(st.loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_free(st.loop), 0);
}

/* The server freed from a connection's on_close ("stop when a client
 * leaves"): from the first of three on_close (the two others are closed by
 * the free and reported in the same run) and from the last one. The
 * server must not be touched after its release. */
struct free_on_close {
    struct srv_state st;
    int free_at; /* free the server in this on_close (1-based) */
};

static void foc_close(nk_tcp_conn *c, int reason, void *user)
{
    struct free_on_close *f = user;
    st_close(c, reason, &f->st);
    if (f->st.closes == f->free_at) {
        nk_tcp_server_free(f->st.srv);
        f->st.srv = NULL;
    }
}

static void foc_open(nk_tcp_conn *c, void *user)
{
    struct free_on_close *f = user;
    st_open(c, &f->st);
}

static void foc_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct free_on_close *f = user;
    st_data(c, d, n, &f->st);
}

static void test_server_freed_from_on_close_of_its_connection(void **state)
{
    (void)state;
    static const int free_at[] = {1, 3};
    for (size_t k = 0; k < sizeof free_at / sizeof free_at[0]; k++) {
        struct free_on_close f = {.free_at = free_at[k]};
        nk_tcp_server_opts o = echo_opts(&f.st);
        o.on_open = foc_open;
        o.conn.on_data = foc_data;
        o.conn.on_close = foc_close;
        o.conn.user = &f;
        srv_start(&f.st, &o);
        int fds[3];
        for (int i = 0; i < 3; i++) {
            fds[i] = nkt_tcp_connect(&f.st.addr);
            assert_true(fds[i] >= 0);
        }
        run_until_count(f.st.loop, &f.st.opens, 3, 5000);
        /* One at a time, so the server is freed from the wanted one. */
        for (int i = 0; i < 3 && f.st.srv; i++) {
            close(fds[i]);
            fds[i] = -1;
            run_until_count(f.st.loop, &f.st.closes, i + 1, 5000);
        }
        assert_null(f.st.srv);
        assert_int_equal(f.st.closes, 3);
        /* The task that released the server must not run again. */
        for (int i = 0; i < 10 && nk_loop_run(f.st.loop, NK_RUN_NOWAIT); i++)
            ;
        assert_int_equal(f.st.closes, 3);
        for (int i = 0; i < 3; i++) {
            int want = i < free_at[k] ? NK_EOF : 0;
            assert_int_equal(f.st.reasons[i], want);
            if (fds[i] >= 0)
                close(fds[i]);
        }
        nkt_loop_free_empty(f.st.loop);
    }
}

/* Freeing the server (or aborting) with data still queued on a connection
 * is not a clean close: that connection reports NK_EDROPPED, an idle one
 * 0. */
static void dq_open(nk_tcp_conn *c, void *user)
{
    struct srv_state *st = user;
    st_open(c, user);
    if (st->opens != 1)
        return;
    int small = 4096;
    assert_int_equal(setsockopt(nk_tcp_conn_fd(c), SOL_SOCKET, SO_SNDBUF,
                                &small, sizeof small), 0);
    static uint8_t chunk[1 << 20];
    memset(chunk, 'q', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        int r = nk_tcp_conn_send(c, chunk, sizeof chunk);
        assert_true(r == 0 || r == 1);
    }
}

/* @abort_first: abort the full connection before freeing the server. */
static void queued_data_dropped(bool abort_first)
{
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.on_open = dq_open;
    o.conn.high_watermark = 8u << 20;
    srv_start(&st, &o);
    int full = nkt_tcp_connect(&st.addr);
    assert_true(full >= 0);
    run_until_count(st.loop, &st.opens, 1, 5000);
    nk_tcp_conn *c = st.last_conn;
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    assert_true(cs.queued > 0);
    int idle = nkt_tcp_connect(&st.addr);
    assert_true(idle >= 0);
    run_until_count(st.loop, &st.opens, 2, 5000);
    if (abort_first) {
        nk_tcp_conn_abort(c);
        run_until_count(st.loop, &st.closes, 1, 5000);
        assert_int_equal(st.reasons[0], NK_EDROPPED);
        assert_int_equal(srv_stats(&st).closed_local, 1);
    }
    nk_tcp_server_free(st.srv);
    st.srv = NULL;
    run_until_count(st.loop, &st.closes, 2, 5000);
    /* Freeing closes in list order, newest first: the idle one (nothing
     * dropped), then the full one unless it was aborted already. */
    assert_int_equal(st.reasons[abort_first ? 1 : 0], 0);
    assert_int_equal(st.reasons[abort_first ? 0 : 1], NK_EDROPPED);
    close(full);
    close(idle);
    for (int i = 0; i < 10 && nk_loop_run(st.loop, NK_RUN_NOWAIT); i++)
        ;
    nkt_loop_free_empty(st.loop);
}

static void test_server_free_with_queued_data_reports_dropped(void **state)
{
    (void)state;
    queued_data_dropped(false);
    queued_data_dropped(true);
}

/* Out of fds under a low RLIMIT_NOFILE (in a child): every pending client
 * is shed (it sees EOF or RST, never hangs), the loop does not spin, and
 * once fds are free again a new client is served. */
static bool shed_all(void *arg)
{
    struct srv_state *st = arg;
    return srv_stats(st).shed >= 20;
}

static void emfile_child(void *arg)
{
    (void)arg;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.accept_retry_ms = 20;
    NKT_CHILD_ASSERT(nk_loop_new(&st.loop) == 0);
    nk_addr a;
    NKT_CHILD_ASSERT(nk_addr_parse("127.0.0.1:0", &a) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_start(st.loop, &a, &o, &st.srv) == 0);
    NKT_CHILD_ASSERT(nk_tcp_server_addr(st.srv, &st.addr) == 0);
    /* The clients' sockets exist before the table fills up. */
    int cl[20];
    for (int i = 0; i < 20; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        NKT_CHILD_ASSERT(cl[i] >= 0);
    }
    int n = nkt_fd_count();
    struct rlimit rl;
    NKT_CHILD_ASSERT(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = (rlim_t)n + 8;
    NKT_CHILD_ASSERT(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    int dups[64];
    int nd = 0;
    while (nd < 64) {
        int d = dup(0);
        if (d < 0)
            break;
        dups[nd++] = d;
    }
    NKT_CHILD_ASSERT(errno == EMFILE);
    for (int i = 0; i < 20; i++) {
        int r = connect(cl[i], &st.addr.u.sa, st.addr.len);
        NKT_CHILD_ASSERT(r == 0 || errno == EINPROGRESS);
    }
    uint64_t iters = 0;
    int r = nkt_run_until(st.loop, shed_all, &st, 40, 5000, &iters);
    NKT_CHILD_ASSERT(r == 0);
    NKT_CHILD_ASSERT(iters <= 40); /* a few per batch of 64, never a spin */
    nk_tcp_server_stats s = srv_stats(&st);
    NKT_CHILD_ASSERT(s.shed == 20);
    NKT_CHILD_ASSERT(s.accepted == 0);
    for (int i = 0; i < 20; i++) {
        int e = nkt_expect_eof(cl[i], 2000);
        NKT_CHILD_ASSERT(e == 0 || e == -ECONNRESET);
        close(cl[i]);
    }
    /* Nothing pending: the loop waits instead of spinning. */
    for (int i = 0; i < nd; i++)
        close(dups[i]);
    int fd = nkt_tcp_connect(&st.addr);
    NKT_CHILD_ASSERT(fd >= 0);
    NKT_CHILD_ASSERT(nkt_send_all(fd, "back", 4) == 0);
    char b[4];
    int got = -ETIMEDOUT;
    for (int i = 0; i < 1000 && got == -ETIMEDOUT; i++) {
        nk_loop_run(st.loop, NK_RUN_ONCE);
        got = nkt_read_some(fd, b, 4, 0);
    }
    NKT_CHILD_ASSERT(got == 4 && memcmp(b, "back", 4) == 0);
    NKT_CHILD_ASSERT(srv_stats(&st).accepted == 1);
    close(fd);
    nk_tcp_server_free(st.srv);
    NKT_CHILD_ASSERT(nk_loop_run(st.loop, NK_RUN_DEFAULT) == 0);
    NKT_CHILD_ASSERT(nk_loop_free(st.loop) == 0);
}

static void test_emfile_sheds_pending_without_spin_then_recovers(void **state)
{
    (void)state;
    if (nkt_under_valgrind()) {
        nkt_skip("RLIMIT_NOFILE is emulated under valgrind");
    }
    assert_int_equal(nkt_child(emfile_child, NULL, NULL, true, 15000), 0);
}

static void test_echo_over_ipv6_loopback(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    assert_int_equal(nk_loop_new(&st.loop), 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("[::1]:0", &a), 0);
    int r = nk_tcp_server_start(st.loop, &a, &o, &st.srv);
    if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
        nk_loop_free(st.loop);
        nkt_skip("no IPv6 loopback (%s)", nk_strerror(r));
    }
    assert_int_equal(r, 0);
    assert_int_equal(nk_tcp_server_addr(st.srv, &st.addr), 0);
    assert_int_equal(nk_addr_family(&st.addr), AF_INET6);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    assert_int_equal(nkt_send_all(fd, "six", 3), 0);
    char b[3];
    int got = -ETIMEDOUT;
    for (int i = 0; i < 1000 && got == -ETIMEDOUT; i++) {
        nk_loop_run(st.loop, NK_RUN_ONCE);
        got = nkt_read_some(fd, b, 3, 0);
    }
    assert_int_equal(got, 3);
    assert_memory_equal(b, "six", 3);
    run_until_count(st.loop, &st.opens, 1, 1000);
    nk_addr peer;
    assert_int_equal(nk_tcp_conn_peer(st.last_conn, &peer), 0);
    assert_int_equal(nk_addr_family(&peer), AF_INET6);
    close(fd);
    run_until_count(st.loop, &st.closes, 1, 5000);
    srv_finish(&st);
}

/* A client that connects and resets before the server accepts: the
 * connection still knows its peer (kept from accept(); getpeername() would
 * fail with ENOTCONN), so a server can log who reset. */
static nk_addr reset_peer;
static int reset_peer_rc = 1;

static void open_record_peer(nk_tcp_conn *c, void *user)
{
    reset_peer_rc = nk_tcp_conn_peer(c, &reset_peer);
    st_open(c, user);
}

static void test_peer_address_known_after_reset_before_accept(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.start_paused = true;
    o.on_open = open_record_peer;
    srv_start(&st, &o);
    int fd = nkt_tcp_connect(&st.addr);
    assert_true(fd >= 0);
    nk_addr local;
    assert_int_equal(nkt_sock_name(fd, &local), 0);
    assert_int_equal(nkt_send_all(fd, "gone", 4), 0);
    nkt_close_rst(fd); /* queued in the backlog, already reset */
    assert_int_equal(nk_tcp_server_resume(st.srv), 0);
    run_until_count(st.loop, &st.opens, 1, 5000);
    assert_int_equal(reset_peer_rc, 0);
    assert_true(nk_addr_equal(&reset_peer, &local));
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.last_reason, -ECONNRESET);
    srv_finish(&st);
}

static void test_reuseport_lets_two_servers_share_a_port(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.reuseport = true;
    nk_tcp_server *s1, *s2;
    assert_int_equal(nk_tcp_server_start(loop, &a, &o, &s1), 0);
    nk_addr_set_port(&a, nk_tcp_server_port(s1));
    assert_int_equal(nk_tcp_server_start(loop, &a, &o, &s2), 0);
    assert_int_equal(nk_tcp_server_port(s2), nk_tcp_server_port(s1));
    nk_tcp_server_free(s1);
    nk_tcp_server_free(s2);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* B12: a paused listener with backlog 5 and 50 connects with a 300 ms
 * timeout: a few handshakes complete, the rest time out, none hangs, and
 * after resuming every completed one is served. */
struct flood {
    int finished, ok, timed_out, other, served;
    nk_tcp_conn *conns[50];
};

static void fl_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                       void *user)
{
    (void)cl;
    struct flood *f = user;
    f->finished++;
    if (status == 0) {
        f->conns[f->ok++] = conn;
        nk_tcp_conn_set_user(conn, f);
        assert_int_equal(nk_tcp_conn_send(conn, "q", 1), 0);
    } else if (status == -ETIMEDOUT) {
        f->timed_out++;
    } else {
        f->other++;
    }
}

static void fl_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct flood *f = user;
    (void)d;
    f->served += (int)n;
    nk_tcp_conn_close(c);
}

static void test_flood_beyond_backlog_times_out_rest_then_serves(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.backlog = 5;
    o.start_paused = true;
    srv_start(&st, &o);
    struct flood f = {0};
    nk_tcp_client_opts co = NK_TCP_CLIENT_OPTS_INIT;
    co.connect_timeout_ms = 300;
    co.on_connect = fl_connect;
    co.conn.on_data = fl_data;
    co.conn.user = &f;
    for (int i = 0; i < 50; i++)
        assert_int_equal(nk_tcp_client_connect(st.loop, &st.addr, &co, NULL),
                         0);
    run_until_count(st.loop, &f.finished, 50, 5000);
    print_message("backlog 5: %d handshakes, %d timed out\n", f.ok,
                  f.timed_out);
    assert_true(f.ok >= 1 && f.ok <= 6);
    assert_int_equal(f.ok + f.timed_out, 50);
    assert_int_equal(st.opens, 0);
    assert_int_equal(nk_tcp_server_resume(st.srv), 0);
    run_until_count(st.loop, &f.served, f.ok, 5000);
    assert_int_equal(st.opens, f.ok);
    run_until_count(st.loop, &st.closes, f.ok, 5000);
    srv_finish(&st);
}

/* B11: 200 idle clients all time out while a busy one is served. */
static void test_many_idle_clients_time_out_busy_one_served(void **state)
{
    (void)state;
    if (!raise_nofile(2 * 201 + 64)) {
        nkt_skip("RLIMIT_NOFILE cannot reach 466");
    }
    struct srv_state st = {0};
    nk_tcp_server_opts o = echo_opts(&st);
    o.conn.idle_timeout_ms = 100;
    o.on_open = NULL;
    srv_start(&st, &o);
    int idle[200];
    for (int i = 0; i < 200; i++) {
        idle[i] = nkt_tcp_connect(&st.addr);
        assert_true(idle[i] >= 0);
        if (i % 2) /* half of them start a line and stall (slowloris) */
            assert_int_equal(nkt_send_all(idle[i], "G", 1), 0);
    }
    int busy = nkt_tcp_connect(&st.addr);
    uint64_t t0 = nkt_now_ms();
    int pongs = 0;
    while (st.closes < 200 && nkt_now_ms() - t0 < 5000) {
        char b[4];
        assert_int_equal(nkt_send_all(busy, "ping", 4), 0);
        int r;
        while ((r = nkt_read_some(busy, b, 4, 0)) == -ETIMEDOUT)
            nk_loop_run(st.loop, NK_RUN_ONCE);
        assert_int_equal(r, 4);
        pongs++;
    }
    assert_int_equal(st.closes, 200);
    for (int i = 0; i < 200; i++) {
        char g;
        if (i % 2) /* the echo of the stalled line's first byte */
            assert_int_equal(nkt_read_exact(idle[i], &g, 1, 1000), 0);
        int r = nkt_expect_eof(idle[i], 1000);
        assert_true(r == 0 || r == -ECONNRESET);
        close(idle[i]);
    }
    nk_tcp_server_stats s = srv_stats(&st);
    assert_int_equal(s.closed_timeout, 200);
    assert_int_equal(s.active, 1);
    assert_true(pongs > 1);
    close(busy);
    run_until_count(st.loop, &st.closes, 201, 5000);
    srv_finish(&st);
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_byte_exact_1_client),
        cmocka_unit_test(test_echo_byte_exact_100_clients),
        cmocka_unit_test(test_echo_byte_exact_1000_clients),
        cmocka_unit_test(test_server_reports_port_and_rejects_bad_options),
        cmocka_unit_test(test_peer_reset_mid_stream_others_still_served),
        cmocka_unit_test(test_idle_timeout_closes_with_etimedout),
        cmocka_unit_test(test_max_connections_rejects_excess_at_once),
        cmocka_unit_test(test_server_free_from_callback_closes_all),
        cmocka_unit_test(test_server_freed_from_on_close_of_its_connection),
        cmocka_unit_test(test_server_free_with_queued_data_reports_dropped),
        cmocka_unit_test(test_emfile_sheds_pending_without_spin_then_recovers),
        cmocka_unit_test(test_echo_over_ipv6_loopback),
        cmocka_unit_test(test_peer_address_known_after_reset_before_accept),
        cmocka_unit_test(test_reuseport_lets_two_servers_share_a_port),
        cmocka_unit_test(test_flood_beyond_backlog_times_out_rest_then_serves),
        cmocka_unit_test(test_many_idle_clients_time_out_busy_one_served),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
