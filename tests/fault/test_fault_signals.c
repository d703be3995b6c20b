/* B9 with real signals: SIGALRM every 50 us from setitimer(), its handler
 * installed without SA_RESTART, so every blocking call and every loop wait
 * can be interrupted. The blocking client stays byte-exact with no
 * spurious error, deadlines on the monotonic clock still hold, and loop
 * timers fire neither early nor never. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/tcp.h"

#include "nkt_main.h"
#include "nkt_loop.h"
#include "nkt_stream.h"

#define CHUNK 65536
#define CHUNKS 64 /* 4 MiB each way */
#define CALL_MS 30000

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
    (void)sig;
    ticks++;
}

static void storm_start(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls fail with EINTR */
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    ticks = 0;
    struct itimerval it = {.it_interval = {0, 50}, .it_value = {0, 50}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void storm_stop(void)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    /* A signal still pending is ignored rather than fatal. */
    signal(SIGALRM, SIG_IGN);
}

struct server {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    pthread_t th;
    int run_rc;
};

static void echo(nk_tcp_conn *c, const void *data, size_t len, void *user)
{
    (void)user;
    nk_tcp_conn_send(c, data, len);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    s->run_rc = nk_loop_run(s->loop, NK_RUN_DEFAULT);
    return NULL;
}

static void server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(nk_loop_new(&s->loop), 0);
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.conn.on_data = echo;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(nk_tcp_server_start(s->loop, &a, &o, &s->srv), 0);
    assert_int_equal(nk_tcp_server_addr(s->srv, &s->addr), 0);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    nk_loop_stop(s->loop);
    pthread_join(s->th, NULL);
    assert_int_equal(s->run_rc, 0);
    nk_tcp_server_free(s->srv);
    for (int i = 0; i < 10 && nk_loop_free(s->loop) != 0; i++)
        nk_loop_run(s->loop, NK_RUN_NOWAIT);
}

/* The blocking client echoes 4 MiB through a server running its loop in
 * another thread, both under the storm: byte-exact, no error. */
static void test_blocking_echo_exact_under_signal_storm(void **state)
{
    (void)state;
    static uint8_t out[CHUNK], in[CHUNK];
    struct server s;
    server_start(&s);
    storm_start();
    nk_tcp_sync *c = NULL;
    int rc = nk_tcp_sync_connect(&s.addr, 10000, &c);
    int failed_at = -1, code = 0;
    for (int i = 0; rc == 0 && i < CHUNKS; i++) {
        nkt_stream_fill(9, (uint64_t)i * CHUNK, out, CHUNK);
        code = nk_tcp_sync_send_all(c, out, CHUNK, CALL_MS);
        if (code == 0)
            code = nk_tcp_sync_recv_exact(c, in, CHUNK, CALL_MS);
        if (code == 0 && !nkt_stream_check(9, (uint64_t)i * CHUNK, in, CHUNK))
            code = -EILSEQ;
        if (code != 0) {
            failed_at = i;
            break;
        }
    }
    storm_stop();
    unsigned long seen = (unsigned long)ticks;
    nk_tcp_sync_close(c);
    server_stop(&s);
    assert_int_equal(rc, 0);
    assert_int_equal(code, 0);
    assert_int_equal(failed_at, -1);
    assert_true(seen > 10); /* the storm did happen */
}

static int64_t mono_ms(void)
{
    return (int64_t)nkt_now_ms();
}

/* A receive with a 200 ms deadline under the storm times out after 200 ms,
 * not at the first signal and not never. */
static void test_blocking_deadline_holds_under_signal_storm(void **state)
{
    (void)state;
    struct server s;
    server_start(&s);
    nk_tcp_sync *c = NULL;
    assert_int_equal(nk_tcp_sync_connect(&s.addr, 10000, &c), 0);
    storm_start();
    char buf[16];
    int64_t t0 = mono_ms();
    int rc = nk_tcp_sync_recv(c, buf, sizeof buf, 200);
    int64_t took = mono_ms() - t0;
    storm_stop();
    nk_tcp_sync_close(c);
    server_stop(&s);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_true(took >= 199);
    assert_true(took < 5000);
}

static bool fired_flag;
static void on_timer(nk_timer *t, void *user)
{
    (void)t;
    (void)user;
    fired_flag = true;
}
static bool fired(void *arg)
{
    (void)arg;
    return fired_flag;
}

/* The loop's waits are interrupted thousands of times; a 100 ms timer
 * still fires once, not before 100 ms, and the loop reports no error. */
static void test_loop_timer_neither_early_nor_lost_under_signal_storm(void **state)
{
    (void)state;
    nk_loop *loop = NULL;
    assert_int_equal(nk_loop_new(&loop), 0);
    fired_flag = false;
    nk_timer *t = NULL;
    int64_t t0 = mono_ms();
    assert_int_equal(nk_timer_start(loop, 100, 0, on_timer, NULL, &t), 0);
    storm_start();
    int rc = nkt_run_until(loop, fired, NULL, 10000000, 5000, NULL);
    int64_t took = mono_ms() - t0;
    storm_stop();
    nk_timer_stop(t);
    assert_int_equal(nk_loop_free(loop), 0);
    assert_int_equal(rc, 0);
    assert_true(took >= 99);
    assert_true(took < 5000);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocking_echo_exact_under_signal_storm),
        cmocka_unit_test(test_blocking_deadline_holds_under_signal_storm),
        cmocka_unit_test(test_loop_timer_neither_early_nor_lost_under_signal_storm),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
