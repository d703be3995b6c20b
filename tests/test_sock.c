/* Socket helpers: flags and options on new sockets, listen/connect/accept on
 * loopback, errors passed through exactly, no SIGPIPE, and the reserve
 * descriptor that sheds connections instead of spinning at EMFILE. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "netkit.h"
#include "nkt_main.h"
#include "nkt_peer.h"
#include "nkt_proc.h"
#include "sock.h"

static nk_addr addr_of(const char *text)
{
    nk_addr a;
    int rc = nk_addr_parse(text, &a);
    assert_int_equal(rc, 0);
    return a;
}

static void assert_nonblock_cloexec(int fd)
{
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

static int get_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* A listener on @text (port 0) and the address it got. */
static int listen_on(const char *text, nk_addr *bound)
{
    nk_addr a = addr_of(text);
    int fd = nk__tcp_listen(&a, 64, NULL);
    assert_true(fd >= 0);
    assert_int_equal(nk__sock_name(fd, bound), 0);
    assert_int_not_equal(nk_addr_port(bound), 0);
    return fd;
}

static void test_sock_new_sockets_are_nonblocking_and_cloexec(void **state)
{
    (void)state;
    int fds0 = nkt_fd_count();
    const int families[] = {AF_INET, AF_INET6};
    const int types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (int f = 0; f < 2; f++) {
        for (int t = 0; t < 2; t++) {
            int fd = nk__socket(families[f], types[t]);
            assert_nonblock_cloexec(fd);
            close(fd);
        }
    }
    assert_int_equal(nk__socket(12345, SOCK_STREAM), -EAFNOSUPPORT);
    assert_int_equal(nkt_fd_count(), fds0);
}

static void test_sock_apply_sets_requested_options(void **state)
{
    (void)state;
    struct nk__sock_opts o = NK__SOCK_OPTS_INIT;
    o.reuseport = true;
    o.v6only = 1;
    o.nodelay = true;
    o.sndbuf = 65536;
    o.rcvbuf = 131072;
    int fd = nk__socket(AF_INET6, SOCK_STREAM);
    assert_int_equal(nk__sock_apply(fd, AF_INET6, SOCK_STREAM, &o), 0);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_REUSEPORT), 1);
    assert_int_equal(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    /* Linux doubles the request for its bookkeeping: at least what we asked */
    assert_true(get_int(fd, SOL_SOCKET, SO_SNDBUF) >= 65536);
    assert_true(get_int(fd, SOL_SOCKET, SO_RCVBUF) >= 131072);
    close(fd);

    struct nk__sock_opts off = NK__SOCK_OPTS_INIT;
    off.reuseaddr = false;
    off.v6only = 0;
    fd = nk__socket(AF_INET6, SOCK_STREAM);
    assert_int_equal(nk__sock_apply(fd, AF_INET6, SOCK_STREAM, &off), 0);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_REUSEADDR), 0);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_REUSEPORT), 0);
    assert_int_equal(get_int(fd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    close(fd);

    /* NULL means the defaults; v4 and datagram sockets skip what does not
     * apply to them. */
    fd = nk__socket(AF_INET, SOCK_DGRAM);
    assert_int_equal(nk__sock_apply(fd, AF_INET, SOCK_DGRAM, NULL), 0);
    assert_int_equal(get_int(fd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(nk__sock_apply(fd, AF_INET, SOCK_DGRAM, &o), 0);
    close(fd);
    assert_int_equal(nk__sock_apply(-1, AF_INET, SOCK_DGRAM, NULL), -EBADF);
}

static void test_sock_v6only_decides_dual_stack_on_any(void **state)
{
    (void)state;
    struct nk__sock_opts o = NK__SOCK_OPTS_INIT;
    struct nk__sock_opts plain = NK__SOCK_OPTS_INIT;
    plain.reuseaddr = false;
    nk_addr any6 = addr_of("[::]:0"), bound, v4;

    /* Dual stack: the v6 listener holds the v4 port too, and a v4 client
     * arrives as ::ffff:127.0.0.1, equal to its v4 form. */
    o.v6only = 0;
    int lfd = nk__tcp_listen(&any6, 16, &o);
    assert_true(lfd >= 0);
    assert_int_equal(get_int(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    assert_int_equal(nk__sock_name(lfd, &bound), 0);
    v4 = addr_of("127.0.0.1:0");
    assert_int_equal(nk_addr_set_port(&v4, nk_addr_port(&bound)), 0);
    int c = nkt_tcp_connect(&v4);
    assert_true(c >= 0);
    assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
    nk_addr peer, client_name;
    bool shed;
    int s = nk__accept(NULL, lfd, &peer, &shed);
    assert_true(s >= 0);
    assert_false(shed);
    assert_int_equal(nk_addr_family(&peer), AF_INET6);
    assert_true(IN6_IS_ADDR_V4MAPPED(&peer.u.v6.sin6_addr));
    assert_int_equal(nkt_sock_name(c, &client_name), 0);
    assert_true(nk_addr_equal(&peer, &client_name));
    close(s);
    close(c);
    int busy = nk__tcp_listen(&v4, 16, &plain);
    assert_int_equal(busy, -EADDRINUSE);
    close(lfd);

    /* The other way round, from a v4 port we hold: a v6-only listener on
     * [::] can share it, a dual-stack one cannot. The v6 side of the port
     * may be busy elsewhere (other tests run at the same time), so try a few
     * ports; if v6only were ignored, every attempt would fail. */
    bool shared = false;
    for (int attempt = 0; attempt < 10 && !shared; attempt++) {
        int v4fd = listen_on("127.0.0.1:0", &v4);
        nk_addr six = any6;
        assert_int_equal(nk_addr_set_port(&six, nk_addr_port(&v4)), 0);
        o.v6only = 0;
        assert_int_equal(nk__tcp_listen(&six, 16, &o), -EADDRINUSE);
        o.v6only = 1;
        lfd = nk__tcp_listen(&six, 16, &o);
        if (lfd >= 0) {
            assert_int_equal(get_int(lfd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
            shared = true;
            close(lfd);
        } else {
            assert_int_equal(lfd, -EADDRINUSE);
        }
        close(v4fd);
    }
    assert_true(shared);
}

static void check_listen_connect_accept(const char *text)
{
    int fds0 = nkt_fd_count();
    nk_addr bound, peer, name;
    int lfd = listen_on(text, &bound);
    assert_nonblock_cloexec(lfd);

    struct nk__acceptor acc;
    assert_int_equal(nk__acceptor_init(&acc), 0);
    bool shed = true;
    assert_int_equal(nk__accept(&acc, lfd, &peer, &shed), -EAGAIN);
    assert_false(shed);

    int c = nkt_tcp_connect(&bound);
    assert_true(c >= 0);
    assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
    int s = nk__accept(&acc, lfd, &peer, &shed);
    assert_nonblock_cloexec(s);
    assert_false(shed);
    assert_int_equal(nkt_sock_name(c, &name), 0);
    assert_true(nk_addr_equal(&peer, &name));
    assert_int_equal(nk__sock_peer(s, &name), 0);
    assert_true(nk_addr_equal(&peer, &name));
    assert_int_equal(nk__sock_name(s, &name), 0);
    assert_true(nk_addr_equal(&bound, &name));

    /* bytes both ways, then EOF */
    assert_int_equal(nk__send(s, "ping", 4), 4);
    char buf[8];
    assert_int_equal(nkt_read_exact(c, buf, 4, 5000), 0);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(nk__recv(s, buf, sizeof buf), -EAGAIN);
    assert_int_equal(nkt_send_all(c, "pong", 4), 0);
    assert_int_equal(nk__wait_fd(s, POLLIN, 5000), 1);
    assert_int_equal(nk__recv(s, buf, sizeof buf), 4);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(nkt_shutdown_wr(c), 0);
    assert_int_equal(nk__wait_fd(s, POLLIN, 5000), 1);
    assert_int_equal(nk__recv(s, buf, sizeof buf), 0);

    close(s);
    assert_int_equal(nkt_expect_eof(c, 5000), 0);
    close(c);
    nk__acceptor_free(&acc);
    assert_int_equal(acc.reserve_fd, -1);
    close(lfd);
    assert_int_equal(nkt_fd_count(), fds0);
}

static void test_sock_listen_connect_accept_on_v4_loopback(void **state)
{
    (void)state;
    check_listen_connect_accept("127.0.0.1:0");
}

static void test_sock_listen_connect_accept_on_v6_loopback(void **state)
{
    (void)state;
    check_listen_connect_accept("[::1]:0");
}

static void test_sock_connect_in_progress_then_so_error(void **state)
{
    (void)state;
    nk_addr bound;
    int lfd = listen_on("127.0.0.1:0", &bound);
    struct nk__sock_opts o = NK__SOCK_OPTS_INIT;
    o.nodelay = true;
    int fd = -1;
    int rc = nk__tcp_connect(&bound, &o, &fd);
    assert_true(rc == 0 || rc == 1);
    assert_nonblock_cloexec(fd);
    assert_int_equal(get_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    if (rc == 1)
        assert_int_equal(nk__wait_fd(fd, POLLOUT, 5000), 1);
    assert_int_equal(nk__sock_error(fd), 0);
    nk_addr peer;
    assert_int_equal(nk__sock_peer(fd, &peer), 0);
    assert_true(nk_addr_equal(&peer, &bound));
    close(fd);
    close(lfd);
}

static void test_sock_connect_refused_gives_econnrefused(void **state)
{
    (void)state;
    int fds0 = nkt_fd_count();
    /* A bound, non-listening socket holds the port, so nobody else can
     * listen there while the test runs: the connection must be refused. */
    nk_addr a = addr_of("127.0.0.1:0");
    int holder = nk__socket(AF_INET, SOCK_STREAM);
    assert_int_equal(bind(holder, &a.u.sa, a.len), 0);
    assert_int_equal(nk__sock_name(holder, &a), 0);

    int fd = -1;
    int rc = nk__tcp_connect(&a, NULL, &fd);
    if (rc == 1) {
        assert_int_equal(nk__wait_fd(fd, POLLOUT, 5000), 1);
        rc = nk__sock_error(fd);
        close(fd);
    }
    assert_int_equal(rc, -ECONNREFUSED);
    close(holder);
    assert_int_equal(nkt_fd_count(), fds0);

    nk_addr empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(nk__tcp_connect(&empty, NULL, &fd), NK_EINVAL);
    assert_int_equal(nk__tcp_listen(&empty, 1, NULL), NK_EINVAL);
    assert_int_equal(nk__udp_open(&empty, NULL), NK_EINVAL);
    assert_int_equal(nkt_fd_count(), fds0);
}

/* Child: a peer resets the connection; sending afterwards must give an
 * error code, not kill the process with SIGPIPE (disposition SIG_DFL). */
static void send_after_reset_child(void *arg)
{
    bool use_library = *(bool *)arg;
    nk_addr bound;
    nk_addr a;
    NKT_CHILD_ASSERT(nk_addr_parse("127.0.0.1:0", &a) == 0);
    int lfd = nk__tcp_listen(&a, 4, NULL);
    NKT_CHILD_ASSERT(lfd >= 0);
    NKT_CHILD_ASSERT(nk__sock_name(lfd, &bound) == 0);
    int c = nkt_tcp_connect(&bound);
    NKT_CHILD_ASSERT(c >= 0);
    NKT_CHILD_ASSERT(nk__wait_fd(lfd, POLLIN, 5000) == 1);
    int s = nk__accept(NULL, lfd, NULL, NULL);
    NKT_CHILD_ASSERT(s >= 0);
    nkt_close_rst(c);
    NKT_CHILD_ASSERT(nk__wait_fd(s, POLLIN, 5000) == 1); /* RST arrived */

    int errors = 0;
    for (int i = 0; i < 4; i++) {
        ssize_t n = use_library ? nk__send(s, "x", 1)
                                : (send(s, "x", 1, 0) < 0 ? -errno : 1);
        NKT_CHILD_ASSERT(n == -EPIPE || n == -ECONNRESET);
        errors++;
    }
    NKT_CHILD_ASSERT(errors == 4);
    close(s);
    close(lfd);
}

static void test_sock_send_to_reset_peer_returns_code_without_sigpipe(
    void **state)
{
    (void)state;
    bool use_library = true;
    assert_int_equal(nkt_child(send_after_reset_child, &use_library, NULL,
                               true, 10000),
                     0);
    /* Control: the same sends without MSG_NOSIGNAL kill the child, so the
     * check above can tell the difference. */
    use_library = false;
    assert_int_equal(nkt_child(send_after_reset_child, &use_library, NULL,
                               true, 10000),
                     128 + SIGPIPE);
}

#define EMFILE_CLIENTS 6

/* Child with a low RLIMIT_NOFILE: clients queue on the listener, the
 * process runs out of fds, and each accept call sheds one client. */
static void emfile_child(void *arg)
{
    (void)arg;
    nk_addr a, bound;
    NKT_CHILD_ASSERT(nk_addr_parse("127.0.0.1:0", &a) == 0);
    int lfd = nk__tcp_listen(&a, 64, NULL);
    NKT_CHILD_ASSERT(lfd >= 0);
    NKT_CHILD_ASSERT(nk__sock_name(lfd, &bound) == 0);
    struct nk__acceptor acc;
    NKT_CHILD_ASSERT(nk__acceptor_init(&acc) == 0);

    int clients[EMFILE_CLIENTS];
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        clients[i] = nkt_tcp_connect(&bound);
        NKT_CHILD_ASSERT(clients[i] >= 0);
    }

    /* Use up every descriptor. */
    int dups[256];
    int ndups = 0;
    for (;;) {
        NKT_CHILD_ASSERT(ndups < 256);
        int d = dup(0);
        if (d < 0) {
            NKT_CHILD_ASSERT(errno == EMFILE);
            break;
        }
        dups[ndups++] = d;
    }

    /* Without a reserve: report EMFILE, shed nothing, take no fd. */
    close(acc.reserve_fd);
    acc.reserve_fd = -1;
    dups[ndups] = dup(0); /* refill the slot the reserve had */
    NKT_CHILD_ASSERT(dups[ndups] >= 0);
    ndups++;
    bool shed = true;
    NKT_CHILD_ASSERT(nk__accept(&acc, lfd, NULL, &shed) == -EMFILE);
    NKT_CHILD_ASSERT(!shed);
    NKT_CHILD_ASSERT(acc.reserve_fd == -1);

    /* One free slot: the reserve comes back and sheds one per call. */
    close(dups[--ndups]);
    int calls = 0, sheds = 0, rc;
    do {
        NKT_CHILD_ASSERT(calls < EMFILE_CLIENTS * 2 + 2); /* no spin */
        calls++;
        rc = nk__accept(&acc, lfd, NULL, &shed);
        if (rc == -EMFILE) {
            NKT_CHILD_ASSERT(shed);
            sheds++;
        }
    } while (rc == -EMFILE);
    NKT_CHILD_ASSERT(rc == -EAGAIN);
    NKT_CHILD_ASSERT(sheds == EMFILE_CLIENTS);
    NKT_CHILD_ASSERT(calls == EMFILE_CLIENTS + 1);
    NKT_CHILD_ASSERT(acc.reserve_fd >= 0);

    /* Every shed client sees the end of its stream, none hangs. */
    for (int i = 0; i < EMFILE_CLIENTS; i++) {
        int e = nkt_expect_eof(clients[i], 5000);
        NKT_CHILD_ASSERT(e == 0 || e == -ECONNRESET);
        close(clients[i]);
    }

    /* Recovery: with fds free again a new client is accepted. */
    while (ndups > 0)
        close(dups[--ndups]);
    int c = nkt_tcp_connect(&bound);
    NKT_CHILD_ASSERT(c >= 0);
    NKT_CHILD_ASSERT(nk__wait_fd(lfd, POLLIN, 5000) == 1);
    nk_addr peer;
    int s = nk__accept(&acc, lfd, &peer, &shed);
    NKT_CHILD_ASSERT(s >= 0);
    NKT_CHILD_ASSERT(!shed);
    NKT_CHILD_ASSERT(nk_addr_port(&peer) > 0);
    NKT_CHILD_ASSERT(nk__send(s, "ok", 2) == 2);
    char buf[2];
    NKT_CHILD_ASSERT(nkt_read_exact(c, buf, 2, 5000) == 0);
    close(s);
    close(c);
    nk__acceptor_free(&acc);
    close(lfd);
}

static void test_sock_accept_sheds_pending_connections_at_emfile(void **state)
{
    (void)state;
    int open_now = nkt_fd_count();
    assert_true(open_now > 0);
    /* room for the listener, the reserve, the clients and a few spare */
    struct rlimit lim = {.rlim_cur = (rlim_t)open_now + EMFILE_CLIENTS + 24,
                         .rlim_max = (rlim_t)open_now + EMFILE_CLIENTS + 24};
    struct rlimit cur;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &cur), 0);
    if (lim.rlim_max > cur.rlim_max)
        lim.rlim_max = cur.rlim_max;
    assert_int_equal(nkt_child(emfile_child, NULL, &lim, false, 15000), 0);
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_sock_wait_fd_times_out_and_reports_ready(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                     0);
    long long t0 = mono_ms();
    assert_int_equal(nk__wait_fd(sv[0], POLLIN, 60), -ETIMEDOUT);
    long long took = mono_ms() - t0;
    assert_true(took >= 55 && took < 5000);
    assert_int_equal(nk__wait_fd(sv[0], POLLIN, 0), -ETIMEDOUT);
    assert_int_equal(nk__wait_fd(sv[0], POLLOUT, 0), 1);
    assert_int_equal(write(sv[1], "z", 1), 1);
    assert_int_equal(nk__wait_fd(sv[0], POLLIN, 5000), 1);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(nk__wait_fd(sv[0], POLLIN, 0), -EBADF);
}

static void test_sock_udp_open_binds_and_receives(void **state)
{
    (void)state;
    const char *texts[] = {"127.0.0.1:0", "[::1]:0"};
    for (int i = 0; i < 2; i++) {
        nk_addr a = addr_of(texts[i]), bound, from, peer_name;
        int fd = nk__udp_open(&a, NULL);
        assert_nonblock_cloexec(fd);
        assert_int_equal(nk__sock_name(fd, &bound), 0);
        assert_int_not_equal(nk_addr_port(&bound), 0);
        int peer = nkt_udp_socket(nk_addr_family(&a), NULL);
        assert_true(peer >= 0);
        char buf[16];
        assert_int_equal(nk__recv(fd, buf, sizeof buf), -EAGAIN);
        assert_int_equal(nkt_udp_sendto(peer, "dgram", 5, &bound), 5);
        assert_int_equal(nk__wait_fd(fd, POLLIN, 5000), 1);
        assert_int_equal(nk__recv(fd, buf, sizeof buf), 5);
        assert_memory_equal(buf, "dgram", 5);
        /* and back, to check the test peer's receive path */
        assert_int_equal(nkt_sock_name(peer, &peer_name), 0);
        ssize_t n = sendto(fd, "back", 4, MSG_NOSIGNAL, &peer_name.u.sa,
                           peer_name.len);
        assert_int_equal(n, 4);
        assert_int_equal(nkt_udp_recv(peer, buf, sizeof buf, 5000, &from), 4);
        assert_true(nk_addr_equal(&from, &bound));
        assert_int_equal(nkt_udp_recv(peer, buf, sizeof buf, 20, NULL),
                         -ETIMEDOUT);
        close(peer);
        close(fd);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_new_sockets_are_nonblocking_and_cloexec),
        cmocka_unit_test(test_sock_apply_sets_requested_options),
        cmocka_unit_test(test_sock_v6only_decides_dual_stack_on_any),
        cmocka_unit_test(test_sock_listen_connect_accept_on_v4_loopback),
        cmocka_unit_test(test_sock_listen_connect_accept_on_v6_loopback),
        cmocka_unit_test(test_sock_connect_in_progress_then_so_error),
        cmocka_unit_test(test_sock_connect_refused_gives_econnrefused),
        cmocka_unit_test(
            test_sock_send_to_reset_peer_returns_code_without_sigpipe),
        cmocka_unit_test(test_sock_accept_sheds_pending_connections_at_emfile),
        cmocka_unit_test(test_sock_wait_fd_times_out_and_reports_ready),
        cmocka_unit_test(test_sock_udp_open_binds_and_receives),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
