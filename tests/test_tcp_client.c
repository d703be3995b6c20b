/* tcp_client (asynchronous connect on a loop) and the blocking client:
 * success then echo, refusal, timeout against a full backlog, cancel; and
 * the blocking calls' exact codes. */
#include "test_tcp_util.h"

#include <netinet/in.h>
#include <poll.h>

#include "nkt_main.h"
#include "nkt_proc.h"

struct cli_state {
    int connects;
    int status;
    nk_tcp_conn *conn;
    int closes;
    int reason;
    char got[64];
    size_t got_len;
};

static void cli_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                        void *user)
{
    struct cli_state *cs = user;
    assert_non_null(cl);
    cs->connects++;
    cs->status = status;
    cs->conn = conn;
    assert_true((status == 0) == (conn != NULL));
}

static void cli_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct cli_state *cs = user;
    (void)c;
    assert_true(cs->got_len + n < sizeof cs->got);
    memcpy(cs->got + cs->got_len, d, n);
    cs->got_len += n;
    if (cs->got_len == 5)
        nk_tcp_conn_close(c);
}

static void cli_close(nk_tcp_conn *c, int reason, void *user)
{
    struct cli_state *cs = user;
    (void)c;
    cs->closes++;
    cs->reason = reason;
}

static nk_tcp_client_opts cli_opts(struct cli_state *cs)
{
    nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
    o.on_connect = cli_connect;
    o.conn.on_data = cli_data;
    o.conn.on_close = cli_close;
    o.conn.user = cs;
    return o;
}

static void test_async_connect_then_echo(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts so = echo_opts(&st);
    srv_start(&st, &so);
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    nk_tcp_client *cl = NULL;
    assert_int_equal(nk_tcp_client_connect(st.loop, &st.addr, &o, &cl), 0);
    assert_non_null(cl);
    assert_int_equal(cs.connects, 0); /* never from inside the call */
    run_until_count(st.loop, &cs.connects, 1, 5000);
    assert_int_equal(cs.status, 0);
    nk_addr peer, local;
    assert_int_equal(nk_tcp_conn_peer(cs.conn, &peer), 0);
    assert_true(nk_addr_equal(&peer, &st.addr));
    assert_int_equal(nk_tcp_conn_local(cs.conn, &local), 0);
    assert_int_equal(nk_addr_family(&local), AF_INET);
    assert_ptr_equal(nk_tcp_conn_loop(cs.conn), st.loop);
    assert_ptr_equal(nk_tcp_conn_user(cs.conn), &cs);
    assert_int_equal(nk_tcp_conn_send(cs.conn, "hello", 5), 0);
    run_until_count(st.loop, &cs.closes, 1, 5000);
    assert_int_equal(cs.got_len, 5);
    assert_memory_equal(cs.got, "hello", 5);
    assert_int_equal(cs.reason, 0);
    run_until_count(st.loop, &st.closes, 1, 5000);
    assert_int_equal(st.reasons[0], NK_EOF);
    srv_finish(&st);
}

static int closed_port(void)
{
    /* A port that was just free: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_async_connect_refused_reports_econnrefused(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:1", &a), 0);
    nk_addr_set_port(&a, closed_port());
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    assert_int_equal(nk_tcp_client_connect(loop, &a, &o, NULL), 0);
    run_until_count(loop, &cs.connects, 1, 5000);
    assert_int_equal(cs.status, -ECONNREFUSED);
    assert_null(cs.conn);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* A listener that never accepts, its queue full: the SYN is dropped and
 * the connect times out. */
static void test_async_connect_times_out_against_full_backlog(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l, 1), 0);
    nk_addr a;
    assert_int_equal(nkt_sock_name(l, &a), 0);
    /* Fill the queue: connects complete until it is full. */
    int fill[8];
    int nfill = 0;
    for (; nfill < 8; nfill++) {
        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[nfill], &a.u.sa, a.len);
        struct pollfd p = {.fd = fill[nfill], .events = POLLOUT};
        if (poll(&p, 1, 200) != 1) {
            nfill++;
            break;
        }
    }
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    o.connect_timeout_ms = 150;
    uint64_t t0 = nkt_now_ms();
    assert_int_equal(nk_tcp_client_connect(loop, &a, &o, NULL), 0);
    run_until_count(loop, &cs.connects, 1, 5000);
    assert_int_equal(cs.status, -ETIMEDOUT);
    assert_true(nkt_now_ms() - t0 >= 150);
    /* The blocking client says the same. */
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&a, 100, &s), -ETIMEDOUT);
    assert_null(s);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(l);
    assert_int_equal(nk_loop_run(loop, NK_RUN_DEFAULT), 0);
    assert_int_equal(nk_loop_free(loop), 0);
}

static void test_cancel_means_no_callback(void **state)
{
    (void)state;
    struct srv_state st = {0};
    nk_tcp_server_opts so = echo_opts(&st);
    srv_start(&st, &so);
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    nk_tcp_client *cl = NULL;
    assert_int_equal(nk_tcp_client_connect(st.loop, &st.addr, &o, &cl), 0);
    nk_tcp_client_cancel(cl);
    nk_tcp_client_cancel(NULL);
    for (int i = 0; i < 10; i++)
        nk_loop_run(st.loop, NK_RUN_NOWAIT);
    assert_int_equal(cs.connects, 0);
    srv_finish(&st);
}

static void test_client_rejects_bad_arguments(void **state)
{
    (void)state;
    nk_loop *loop;
    assert_int_equal(nk_loop_new(&loop), 0);
    nk_addr a, empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(nk_addr_parse("127.0.0.1:9", &a), 0);
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    assert_int_equal(nk_tcp_client_connect(NULL, &a, &o, NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_client_connect(loop, &empty, &o, NULL), NK_EINVAL);
    assert_int_equal(nk_tcp_client_connect(loop, &a, NULL, NULL), NK_EINVAL);
    o.on_connect = NULL;
    assert_int_equal(nk_tcp_client_connect(loop, &a, &o, NULL), NK_EINVAL);
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(NULL, 10, &s), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_connect(&empty, 10, &s), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_send_all(NULL, "a", 1, 10), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_recv(NULL, &cs, 1, 10), NK_EINVAL);
    assert_int_equal(nk_tcp_sync_fd(NULL), NK_EINVAL);
    nk_tcp_sync_close(NULL);
    assert_int_equal(nk_loop_free(loop), 0);
}

/* ---- blocking client against a raw listener ---- */

struct raw_listener {
    int fd;
    nk_addr addr;
};

static void raw_listen(struct raw_listener *l)
{
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l->fd, 8), 0);
    assert_int_equal(nkt_sock_name(l->fd, &l->addr), 0);
}

static void test_sync_calls_give_exact_codes(void **state)
{
    (void)state;
    struct raw_listener l;
    raw_listen(&l);
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&l.addr, 2000, &s), 0);
    assert_true(nk_tcp_sync_fd(s) >= 0);
    int peer = accept(l.fd, NULL, NULL);
    assert_true(peer >= 0);
    /* send_all arrives whole */
    static uint8_t big[1 << 20], back[1 << 20];
    nkt_stream_fill(11, 0, big, sizeof big);
    assert_int_equal(nk_tcp_sync_send_all(s, "ping", 4, 1000), 0);
    char b4[4];
    assert_int_equal(nkt_read_exact(peer, b4, 4, 1000), 0);
    assert_memory_equal(b4, "ping", 4);
    /* recv with nothing there times out */
    char buf[64];
    uint64_t t0 = nkt_now_ms();
    assert_int_equal(nk_tcp_sync_recv(s, buf, sizeof buf, 50), -ETIMEDOUT);
    assert_true(nkt_now_ms() - t0 >= 50);
    /* lines: "\r\n" and "\n" endings, glued in one write, split across two */
    assert_int_equal(nkt_send_all(peer, "one\r\ntwo\nthr", 12), 0);
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 1000), 3);
    assert_string_equal(buf, "one");
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 1000), 3);
    assert_string_equal(buf, "two");
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 50), -ETIMEDOUT);
    assert_int_equal(nkt_send_all(peer, "ee\nrest", 7), 0);
    /* the partial line survives the timeout */
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 1000), 5);
    assert_string_equal(buf, "three");
    /* bytes read ahead by recv_line are returned by recv and recv_exact */
    assert_int_equal(nk_tcp_sync_recv_exact(s, buf, 4, 1000), 0);
    assert_memory_equal(buf, "rest", 4);
    /* recv_exact of 1 MiB: many reads */
    assert_int_equal(nkt_send_all(peer, big, sizeof big), 0);
    assert_int_equal(nk_tcp_sync_recv_exact(s, back, sizeof back, 5000), 0);
    assert_memory_equal(back, big, sizeof big);
    /* a too-long line */
    assert_int_equal(nkt_send_all(peer, "0123456789\n", 11), 0);
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, 8, 1000), NK_ELINE_TOO_LONG);
    /* EOF in the middle of recv_exact, then at the start */
    assert_int_equal(nkt_send_all(peer, "\nab", 3), 0);
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 1000) >= 0, 1);
    assert_int_equal(nkt_shutdown_wr(peer), 0);
    assert_int_equal(nk_tcp_sync_recv_exact(s, buf, 5, 1000), NK_EMIDFRAME);
    assert_int_equal(nk_tcp_sync_recv(s, buf, sizeof buf, 1000), NK_EOF);
    assert_int_equal(nk_tcp_sync_recv_line(s, buf, sizeof buf, 1000), NK_EOF);
    /* our half-close reaches the peer */
    assert_int_equal(nk_tcp_sync_shutdown(s), 0);
    assert_int_equal(nkt_expect_eof(peer, 1000), 0);
    nk_tcp_sync_close(s);
    close(peer);
    close(l.fd);
}

static void test_sync_connect_refused_and_reset(void **state)
{
    (void)state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:1", &a), 0);
    nk_addr_set_port(&a, closed_port());
    nk_tcp_sync *s = NULL;
    assert_int_equal(nk_tcp_sync_connect(&a, 1000, &s), -ECONNREFUSED);
    struct raw_listener l;
    raw_listen(&l);
    assert_int_equal(nk_tcp_sync_connect(&l.addr, -1, &s), 0);
    int peer = accept(l.fd, NULL, NULL);
    nkt_close_rst(peer);
    char buf[8];
    assert_int_equal(nk_tcp_sync_recv(s, buf, sizeof buf, 1000), -ECONNRESET);
    nk_tcp_sync_close(s);
    close(l.fd);
}

static void ignore_eof(nk_tcp_conn *c, void *user)
{
    (void)c;
    (void)user;
}

/* Writing to a closed peer gives an error code; SIGPIPE stays at SIG_DFL
 * in this child and it must not die. */
static void write_to_closed_peer(void *arg)
{
    (void)arg;
    struct raw_listener l;
    l.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    NKT_CHILD_ASSERT(bind(l.fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    NKT_CHILD_ASSERT(listen(l.fd, 8) == 0);
    NKT_CHILD_ASSERT(nkt_sock_name(l.fd, &l.addr) == 0);
    /* blocking client */
    nk_tcp_sync *s = NULL;
    NKT_CHILD_ASSERT(nk_tcp_sync_connect(&l.addr, 1000, &s) == 0);
    int peer = accept(l.fd, NULL, NULL);
    close(peer);
    static char big[65536];
    int r = 0;
    for (int i = 0; i < 100 && r == 0; i++)
        r = nk_tcp_sync_send_all(s, big, sizeof big, 1000);
    NKT_CHILD_ASSERT(r == -EPIPE || r == -ECONNRESET);
    nk_tcp_sync_close(s);
    /* event-driven connection */
    nk_loop *loop;
    NKT_CHILD_ASSERT(nk_loop_new(&loop) == 0);
    struct cli_state cs = {0};
    nk_tcp_client_opts o = cli_opts(&cs);
    o.conn.on_eof = ignore_eof; /* keep writing after the peer's FIN */
    NKT_CHILD_ASSERT(nk_tcp_client_connect(loop, &l.addr, &o, NULL) == 0);
    while (cs.connects == 0)
        nk_loop_run(loop, NK_RUN_ONCE);
    NKT_CHILD_ASSERT(cs.status == 0);
    peer = accept(l.fd, NULL, NULL);
    close(peer);
    r = 0;
    for (int i = 0; i < 1000 && r >= 0; i++) {
        r = nk_tcp_conn_send(cs.conn, big, sizeof big);
        nk_loop_run(loop, NK_RUN_NOWAIT);
    }
    NKT_CHILD_ASSERT(r == -EPIPE || r == -ECONNRESET);
    while (cs.closes == 0)
        nk_loop_run(loop, NK_RUN_ONCE);
    NKT_CHILD_ASSERT(cs.reason == -EPIPE || cs.reason == -ECONNRESET);
    NKT_CHILD_ASSERT(nk_loop_run(loop, NK_RUN_DEFAULT) == 0);
    NKT_CHILD_ASSERT(nk_loop_free(loop) == 0);
    close(l.fd);
}

static void test_write_to_closed_peer_errors_and_process_lives(void **state)
{
    (void)state;
    assert_int_equal(nkt_child(write_to_closed_peer, NULL, NULL, true, 10000),
                     0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_connect_then_echo),
        cmocka_unit_test(test_async_connect_refused_reports_econnrefused),
        cmocka_unit_test(test_async_connect_times_out_against_full_backlog),
        cmocka_unit_test(test_cancel_means_no_callback),
        cmocka_unit_test(test_client_rejects_bad_arguments),
        cmocka_unit_test(test_sync_calls_give_exact_codes),
        cmocka_unit_test(test_sync_connect_refused_and_reset),
        cmocka_unit_test(test_write_to_closed_peer_errors_and_process_lives),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
