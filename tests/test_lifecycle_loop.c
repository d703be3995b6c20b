/* Lifecycle of the loop's own handles (F1): from inside every kind of
 * callback (fd watcher, one-shot and repeating timer, signal, deferred and
 * posted task), stop its own handle, stop a live handle of each kind, or
 * both, while those handles have events ready in the same iteration; and
 * try nk_loop_stop() and nk_loop_free() there. Nothing may run after it was
 * stopped, and the loop must end empty. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit.h"
#include "nkt_main.h"
#include "nkt_loop.h"

enum kind { K_IO, K_TIMER_ONCE, K_TIMER_REPEAT, K_SIGNAL, K_DEFER, K_POST };

enum action { A_SELF = 1, A_OTHERS = 2, A_BOTH = A_SELF | A_OTHERS };

/* Where a kind's callbacks run within one iteration: deferred tasks, then
 * due timers, then ready fds (signals come through a signalfd), then
 * posted tasks. */
static int phase(enum kind k)
{
    switch (k) {
    case K_DEFER:
        return 0;
    case K_TIMER_ONCE:
    case K_TIMER_REPEAT:
        return 1;
    case K_IO:
    case K_SIGNAL:
        return 2;
    case K_POST:
        break;
    }
    return 3;
}

/* A live handle of each kind, each with an event ready. */
enum { V_IO, V_TIMER, V_SIGNAL, V_COUNT };

static const enum kind victim_kind[V_COUNT] = {K_IO, K_TIMER_ONCE, K_SIGNAL};

struct victim {
    int calls;
    int after_stop;
    bool stopped;
};

struct matrix {
    nk_loop *loop;
    enum kind kind;
    unsigned action;
    /* The source: the handle whose callback acts (none for tasks). */
    nk_io *io;
    nk_timer *timer;
    nk_signal *sig;
    int src_fds[2];
    int calls;
    int after_stop;
    bool stopped;
    int free_rc;
    /* The victims. */
    nk_io *v_io;
    nk_timer *v_timer;
    nk_signal *v_sig;
    int v_fds[2];
    struct victim v[V_COUNT];
    nk_timer *watchdog;
    bool timed_out;
};

static void make_pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

static void stop_source(struct matrix *m)
{
    switch (m->kind) {
    case K_IO:
        nk_io_stop(m->io);
        m->io = NULL;
        break;
    case K_TIMER_ONCE:
    case K_TIMER_REPEAT:
        nk_timer_stop(m->timer);
        m->timer = NULL;
        break;
    case K_SIGNAL:
        nk_signal_stop(m->sig);
        m->sig = NULL;
        break;
    case K_DEFER:
    case K_POST:
        return; /* a task has no handle: it ends when it has run */
    }
    m->stopped = true;
}

static void stop_victims(struct matrix *m)
{
    nk_io_stop(m->v_io);
    m->v_io = NULL;
    nk_timer_stop(m->v_timer);
    m->v_timer = NULL;
    nk_signal_stop(m->v_sig);
    m->v_sig = NULL;
    for (int i = 0; i < V_COUNT; i++)
        m->v[i].stopped = true;
}

/* Every source callback: acts on its first call only. */
static void act(struct matrix *m)
{
    m->calls++;
    if (m->stopped)
        m->after_stop++;
    if (m->calls > 1)
        return;
    if (m->action & A_SELF)
        stop_source(m);
    if (m->action & A_OTHERS)
        stop_victims(m);
    m->free_rc = nk_loop_free(m->loop);
    nk_loop_stop(m->loop);
}

static void src_io(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    act(user);
}

static void src_timer(nk_timer *t, void *user)
{
    (void)t;
    act(user);
}

static void src_signal(nk_signal *s, int signum, void *user)
{
    (void)s;
    (void)signum;
    act(user);
}

static void src_task(nk_loop *loop, void *user)
{
    (void)loop;
    act(user);
}

static void victim_hit(struct victim *v)
{
    v->calls++;
    if (v->stopped)
        v->after_stop++;
}

static void victim_io(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    victim_hit(user);
}

static void victim_timer(nk_timer *t, void *user)
{
    (void)t;
    victim_hit(user);
}

static void victim_signal(nk_signal *s, int signum, void *user)
{
    (void)s;
    (void)signum;
    victim_hit(user);
}

static void watchdog_cb(nk_timer *t, void *user)
{
    (void)t;
    struct matrix *m = user;
    m->timed_out = true;
    nk_loop_stop(m->loop);
}

/* How often victim @v runs in the source's iteration; -1 for "0 or 1":
 * for fds ready together the backend picks the order (and poll(2) leaves
 * for the next iteration a watcher moved into the slot of one stopped). */
static int victim_expected(const struct matrix *m, int v)
{
    enum kind vk = victim_kind[v];
    int unless_stopped = (m->action & A_OTHERS) ? 0 : 1;
    if (phase(vk) < phase(m->kind))
        return 1;
    if (phase(vk) > phase(m->kind))
        return unless_stopped;
    if (vk == K_TIMER_ONCE)
        return unless_stopped; /* started after the source timer */
    if (vk == K_SIGNAL && m->kind == K_SIGNAL)
        return unless_stopped; /* SIGUSR1 is read before SIGUSR2 */
    return -1;
}

static void start_source(struct matrix *m)
{
    nk_loop *loop = m->loop;
    switch (m->kind) {
    case K_IO:
        make_pair(m->src_fds);
        assert_int_equal(
            nk_io_start(loop, m->src_fds[0], NK_READ, src_io, m, &m->io), 0);
        assert_int_equal(write(m->src_fds[1], "x", 1), 1);
        break;
    case K_TIMER_ONCE:
        assert_int_equal(nk_timer_start(loop, 0, 0, src_timer, m, &m->timer), 0);
        break;
    case K_TIMER_REPEAT:
        assert_int_equal(
            nk_timer_start(loop, 0, 1000, src_timer, m, &m->timer), 0);
        break;
    case K_SIGNAL:
        assert_int_equal(nk_signal_start(loop, SIGUSR1, src_signal, m, &m->sig),
                         0);
        assert_int_equal(raise(SIGUSR1), 0);
        break;
    case K_DEFER:
        assert_int_equal(nk_loop_defer(loop, src_task, m), 0);
        break;
    case K_POST:
        assert_int_equal(nk_loop_post(loop, src_task, m), 0);
        break;
    }
}

static void start_victims(struct matrix *m)
{
    nk_loop *loop = m->loop;
    make_pair(m->v_fds);
    assert_int_equal(nk_io_start(loop, m->v_fds[0], NK_READ, victim_io,
                                 &m->v[V_IO], &m->v_io),
                     0);
    assert_int_equal(write(m->v_fds[1], "x", 1), 1);
    assert_int_equal(
        nk_timer_start(loop, 0, 0, victim_timer, &m->v[V_TIMER], &m->v_timer),
        0);
    assert_int_equal(nk_signal_start(loop, SIGUSR2, victim_signal,
                                     &m->v[V_SIGNAL], &m->v_sig),
                     0);
    assert_int_equal(raise(SIGUSR2), 0);
}

/* Ends whatever is still alive, the way an application would. */
static void end_all(struct matrix *m)
{
    nk_io_stop(m->io);
    nk_timer_stop(m->timer);
    nk_signal_stop(m->sig);
    nk_io_stop(m->v_io);
    nk_timer_stop(m->v_timer);
    nk_signal_stop(m->v_sig);
    nk_timer_stop(m->watchdog);
    for (int i = 0; i < 2; i++) {
        if (m->src_fds[i] >= 0)
            close(m->src_fds[i]);
        close(m->v_fds[i]);
    }
}

static void run_case(enum kind kind, unsigned action)
{
    struct matrix m = {.kind = kind, .action = action, .src_fds = {-1, -1}};
    m.loop = nkt_loop_new();
    start_source(&m); /* first: a source timer fires before the victim */
    start_victims(&m);
    assert_int_equal(
        nk_timer_start(m.loop, 5000, 0, watchdog_cb, &m, &m.watchdog), 0);

    /* The source's callback stops the loop: DEFAULT returns after that
     * one iteration, in which every handle had an event ready. */
    assert_int_equal(nk_loop_run(m.loop, NK_RUN_DEFAULT), 0);
    assert_false(m.timed_out);
    assert_int_equal(m.calls, 1);
    assert_int_equal(m.free_rc, NK_EBUSY);
    for (int v = 0; v < V_COUNT; v++) {
        int want = victim_expected(&m, v);
        if (want < 0)
            assert_in_range(m.v[v].calls, 0, 1);
        else
            assert_int_equal(m.v[v].calls, want);
    }

    /* What was stopped stays silent while the rest keeps its events. */
    for (int i = 0; i < 3; i++)
        assert_true(nk_loop_run(m.loop, NK_RUN_NOWAIT) >= 0);
    assert_int_equal(m.after_stop, 0);
    for (int v = 0; v < V_COUNT; v++)
        assert_int_equal(m.v[v].after_stop, 0);
    if (m.stopped)
        assert_int_equal(m.calls, 1);

    end_all(&m);
    nkt_loop_free_empty(m.loop);
}

static void run_kind(enum kind kind)
{
    const unsigned actions[] = {A_SELF, A_OTHERS, A_BOTH};
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++)
        run_case(kind, actions[i]);
}

static void test_io_callback_stops_itself_and_others(void **state)
{
    (void)state;
    run_kind(K_IO);
}

static void test_one_shot_timer_callback_stops_itself_and_others(void **state)
{
    (void)state;
    run_kind(K_TIMER_ONCE);
}

static void test_repeating_timer_callback_stops_itself_and_others(void **state)
{
    (void)state;
    run_kind(K_TIMER_REPEAT);
}

static void test_signal_callback_stops_itself_and_others(void **state)
{
    (void)state;
    run_kind(K_SIGNAL);
}

static void test_deferred_task_stops_others(void **state)
{
    (void)state;
    run_kind(K_DEFER);
}

static void test_posted_task_stops_others(void **state)
{
    (void)state;
    run_kind(K_POST);
}

/* nk_loop_free() runs the close work still queued; a task among it that
 * tries to free (or run) the loop must be refused, not free the loop
 * under the outer call. */
struct nested {
    int free_rc;
    int run_rc;
};

static void free_from_task(nk_loop *loop, void *user)
{
    struct nested *n = user;
    n->free_rc = nk_loop_free(loop);
    n->run_rc = nk_loop_run(loop, NK_RUN_NOWAIT);
}

static void test_free_from_task_run_by_free_is_refused(void **state)
{
    (void)state;
    nk_loop *loop = nkt_loop_new();
    struct nested n = {0};
    assert_int_equal(nk_loop_defer(loop, free_from_task, &n), 0);
    assert_int_equal(nk_loop_free(loop), 0);
    assert_int_equal(n.free_rc, NK_EBUSY);
    assert_int_equal(n.run_rc, NK_EBUSY);
}

/* A failed assertion jumps out with the signal mask of the test's start,
 * unblocking a signal still pending: ignored, it cannot end the run before
 * the failure is reported. Blocked signals still reach the signalfd. */
static int group_setup(void **state)
{
    (void)state;
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_callback_stops_itself_and_others),
        cmocka_unit_test(test_one_shot_timer_callback_stops_itself_and_others),
        cmocka_unit_test(test_repeating_timer_callback_stops_itself_and_others),
        cmocka_unit_test(test_signal_callback_stops_itself_and_others),
        cmocka_unit_test(test_deferred_task_stops_others),
        cmocka_unit_test(test_posted_task_stops_others),
        cmocka_unit_test(test_free_from_task_run_by_free_is_refused),
    };
    return nkt_run_tests(tests, group_setup, NULL, argc, argv);
}
