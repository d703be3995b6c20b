/* A10 of the reliability matrix, across the whole public API: every
 * function called with NULL handles (and NULL outputs where a handle is not
 * needed) returns its documented code or does nothing; none aborts, prints
 * or crashes. The address parser's own bad inputs are in test_addr.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nkt_main.h"

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

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a10_addr_and_frame_functions_reject_null),
        cmocka_unit_test(test_a10_loop_functions_reject_null),
        cmocka_unit_test(test_a10_tcp_functions_reject_null),
        cmocka_unit_test(test_a10_udp_and_room_functions_reject_null),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
