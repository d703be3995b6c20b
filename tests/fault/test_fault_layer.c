/* The fault layer itself, and the socket helpers of lib/sock.c meeting it:
 * scripted faults reach the library's calls and only those, and the helpers
 * retry EINTR, report the other codes unchanged and leak no descriptor. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"

#include "nkt_main.h"
#include "nkt_fault.h"
#include "nkt_peer.h"
#include "nkt_proc.h"
#include "sock.h"

static int setup(void **state)
{
    (void)state;
    nkt_fault_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nkt_fault_reset();
    return 0;
}

static void stream_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_send_retries_injected_eintr(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    nkt_fault_errno(NKT_SEND, EINTR, 3);
    assert_int_equal(nk__send(sv[0], "hello", 5), 5);
    assert_int_equal(nkt_fault_calls(NKT_SEND), 4);
    assert_int_equal(nkt_fault_injected(NKT_SEND), 3);
    char buf[8];
    assert_int_equal(recv(sv[1], buf, sizeof buf, 0), 5);
    assert_memory_equal(buf, "hello", 5);
    close(sv[0]);
    close(sv[1]);
}

static void test_short_write_cap_sends_one_byte_per_call(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    nkt_fault_short(NKT_SEND, 1, 2);
    assert_int_equal(nk__send(sv[0], "abc", 3), 1);
    assert_int_equal(nk__send(sv[0], "bc", 2), 1);
    assert_int_equal(nk__send(sv[0], "c", 1), 1);
    assert_int_equal(nkt_fault_injected(NKT_SEND), 2);
    assert_int_equal(nkt_fault_cut(NKT_SEND), 2); /* "abc" and "bc" */
    char buf[4];
    assert_int_equal(nkt_read_exact(sv[1], buf, 3, 1000), 0);
    assert_memory_equal(buf, "abc", 3);
    close(sv[0]);
    close(sv[1]);
}

static void test_short_cap_leaves_datagrams_whole(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    nkt_fault_short(NKT_SEND, 1, -1);
    assert_int_equal(nk__send(sv[0], "whole", 5), 5);
    assert_int_equal(nkt_fault_injected(NKT_SEND), 0);
    close(sv[0]);
    close(sv[1]);
}

static void test_recv_reports_injected_reset(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    assert_int_equal(send(sv[1], "x", 1, 0), 1);
    nkt_fault_errno(NKT_RECV, ECONNRESET, 1);
    char c;
    assert_int_equal(nk__recv(sv[0], &c, 1), -ECONNRESET);
    assert_int_equal(nk__recv(sv[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(sv[0]);
    close(sv[1]);
}

static void test_tests_own_calls_are_not_faulted(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    nkt_fault_errno(NKT_SEND, EPIPE, -1);
    nkt_fault_errno(NKT_RECV, ECONNRESET, -1);
    assert_int_equal(send(sv[0], "ok", 2, 0), 2);
    char buf[2];
    assert_int_equal(recv(sv[1], buf, 2, 0), 2);
    assert_int_equal(nkt_fault_calls(NKT_SEND), 0);
    assert_int_equal(nkt_fault_calls(NKT_RECV), 0);
    assert_int_equal(nk__send(sv[0], "no", 2), -EPIPE);
    close(sv[0]);
    close(sv[1]);
}

static void test_socket_emfile_is_reported_without_fd_leak(void **state)
{
    (void)state;
    int before = nkt_fd_count();
    assert_true(before > 0);
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:9", &a), 0);
    nkt_fault_errno(NKT_SOCKET, EMFILE, 1);
    int fd = -1;
    assert_int_equal(nk__tcp_connect(&a, NULL, &fd), -EMFILE);
    nkt_fault_errno(NKT_SOCKET, ENFILE, 1);
    assert_int_equal(nk__udp_open(&a, NULL), -ENFILE);
    assert_int_equal(nkt_fd_count(), before);
}

static void test_connect_eintr_still_connects(void **state)
{
    (void)state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    int lfd = nk__tcp_listen(&a, 8, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(nk__sock_name(lfd, &a), 0);

    nkt_fault_errno(NKT_CONNECT, EINTR, 1);
    int fd = -1;
    int rc = nk__tcp_connect(&a, NULL, &fd);
    assert_int_equal(rc, 1); /* in progress, not an error */
    assert_int_equal(nkt_fault_injected(NKT_CONNECT), 1);
    assert_int_equal(nk__wait_fd(fd, POLLOUT, 5000), 1);
    assert_int_equal(nk__sock_error(fd), 0);
    assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
    int cfd = nk__accept(NULL, lfd, NULL, NULL);
    assert_true(cfd >= 0);
    close(cfd);
    close(fd);
    close(lfd);
}

static void test_accept_emfile_sheds_the_pending_connection(void **state)
{
    (void)state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    int lfd = nk__tcp_listen(&a, 8, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(nk__sock_name(lfd, &a), 0);
    struct nk__acceptor acc;
    assert_int_equal(nk__acceptor_init(&acc), 0);
    int before = nkt_fd_count();

    int c = nkt_tcp_connect(&a);
    assert_true(c >= 0);
    assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
    nkt_fault_errno(NKT_ACCEPT4, EMFILE, 1);
    bool shed = false;
    assert_int_equal(nk__accept(&acc, lfd, NULL, &shed), -EMFILE);
    assert_true(shed);
    assert_int_equal(nk__accept(&acc, lfd, NULL, &shed), -EAGAIN);
    assert_false(shed);
    int eof = nkt_expect_eof(c, 5000);
    assert_true(eof == 0 || eof == -ECONNRESET);
    close(c);
    assert_int_equal(nkt_fd_count(), before);

    /* Recovered: the next client is accepted. */
    c = nkt_tcp_connect(&a);
    assert_true(c >= 0);
    assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
    int s = nk__accept(&acc, lfd, NULL, &shed);
    assert_true(s >= 0);
    close(s);
    close(c);
    nk__acceptor_free(&acc);
    close(lfd);
}

static void test_mmsg_partial_handles_only_k(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    char data[4] = {'a', 'b', 'c', 'd'};
    struct iovec iov[4];
    struct mmsghdr v[4];
    memset(v, 0, sizeof v);
    for (int i = 0; i < 4; i++) {
        iov[i].iov_base = &data[i];
        iov[i].iov_len = 1;
        v[i].msg_hdr.msg_iov = &iov[i];
        v[i].msg_hdr.msg_iovlen = 1;
    }
    nkt_fault_mmsg_partial(NKT_SENDMMSG, 2, 1);
    assert_int_equal(nkt_sys_sendmmsg(sv[0], v, 4, 0), 2);
    assert_int_equal(nkt_sys_sendmmsg(sv[0], v + 2, 2, 0), 2);
    char c;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(recv(sv[1], &c, 1, 0), 1);
        assert_int_equal(c, data[i]);
    }
    close(sv[0]);
    close(sv[1]);
}

static void test_filter_picks_one_connection(void **state)
{
    (void)state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    int lfd = nk__tcp_listen(&a, 8, NULL);
    assert_true(lfd >= 0);
    assert_int_equal(nk__sock_name(lfd, &a), 0);
    int c1 = nkt_tcp_connect(&a), c2 = nkt_tcp_connect(&a);
    assert_true(c1 >= 0 && c2 >= 0);
    int s1 = -1, s2 = -1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nk__wait_fd(lfd, POLLIN, 5000), 1);
        nk_addr peer;
        int s = nk__accept(NULL, lfd, &peer, NULL);
        assert_true(s >= 0);
        nk_addr l1;
        assert_int_equal(nkt_sock_name(c1, &l1), 0);
        if (nk_addr_port(&peer) == nk_addr_port(&l1))
            s1 = s;
        else
            s2 = s;
    }
    nk_addr l1;
    assert_int_equal(nkt_sock_name(c1, &l1), 0);
    unsigned short port = (unsigned short)nk_addr_port(&l1);
    nkt_fault_filter(NKT_SEND, nkt_fault_peer_port_is, &port);
    nkt_fault_errno(NKT_SEND, ECONNRESET, -1);
    assert_int_equal(nk__send(s2, "y", 1), 1);
    assert_int_equal(nk__send(s1, "n", 1), -ECONNRESET);
    assert_int_equal(nkt_fault_calls(NKT_SEND), 2);
    assert_int_equal(nkt_fault_injected(NKT_SEND), 1);
    close(s1);
    close(s2);
    close(c1);
    close(c2);
    close(lfd);
}

static void test_storm_fails_every_other_call(void **state)
{
    (void)state;
    int sv[2];
    stream_pair(sv);
    nkt_fault_eintr_storm();
    for (int i = 0; i < 100; i++)
        assert_int_equal(nk__send(sv[0], "z", 1), 1);
    /* Call 1 passes; each later send meets one EINTR first. */
    assert_int_equal(nkt_fault_calls(NKT_SEND), 199);
    assert_int_equal(nkt_fault_injected(NKT_SEND), 99);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_retries_injected_eintr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_write_cap_sends_one_byte_per_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_cap_leaves_datagrams_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_reports_injected_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tests_own_calls_are_not_faulted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_emfile_is_reported_without_fd_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_eintr_still_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_emfile_sheds_the_pending_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmsg_partial_handles_only_k, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_picks_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storm_fails_every_other_call, setup, teardown),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
