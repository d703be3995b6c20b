/* F1, F3 and F5 of the reliability matrix for the UDP handles: from inside
 * each callback of an endpoint (a datagram, an error event) and each hook
 * of a room (on_join, on_leave from a datagram, from the expiry timer and
 * from refused deliveries, on_message), close the handle itself
 * (once, or twice: the second close of a pending one does nothing, and
 * every other call on it returns NK_ECLOSED), close
 * another live endpoint or room, pause, remove the member concerned or
 * every member, and combinations. One table; each row runs in a fresh
 * world of two endpoints, two rooms and a canary endpoint on one loop.
 *
 * After each row: no callback or hook ran for a handle after its close;
 * the endpoint got exactly what was sent to it up to its close (all of it
 * if not closed, after a resume if paused); every removed member got one
 * on_leave; the room's counters equal the events it reported; a datagram
 * whose sender was removed, or that reached a room closed by its hook, was
 * relayed to nobody; and the loop ends empty. Run under ASan and valgrind
 * on both backends by the test stages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/room.h"
#include "netkit/udp.h"

#include "nkt_loop.h"
#include "nkt_main.h"
#include "nkt_peer.h"

#define WAIT_MS 5000
#define MAX_ITERS 100000
#define MEMBERS 4   /* in the room before the trigger */
#define MAX_SEEN 8  /* members, the newcomer included */
#define BATCH 10    /* datagrams to the endpoint in one batch */
#define AFTER 3     /* datagrams to each handle after the trigger */
#define TTL_MS 500  /* the members' time-to-live in the expiry rows */

/* Where the action runs. */
enum cb_kind { CB_EP_DATA, CB_EP_ERROR, CB_ROOM_JOIN, CB_ROOM_LEAVE,
               CB_ROOM_MESSAGE, CB_ROOM_LEAVE_TTL, CB_ROOM_LEAVE_UNREACHABLE };

/* What it does (a combination). */
enum {
    A_CLOSE_SELF = 1 << 0,
    A_CLOSE_TWICE = 1 << 1, /* with A_CLOSE_SELF: close it again at once */
    A_CLOSE_OTHER_EP = 1 << 2,
    A_CLOSE_OTHER_ROOM = 1 << 3,
    A_PAUSE = 1 << 4,         /* endpoint: pause, resumed by the test */
    A_REMOVE_SENDER = 1 << 5, /* room: the member the hook concerns */
    A_REMOVE_ALL = 1 << 6,    /* room: every member */
};

struct world {
    nk_loop *loop;
    nk_udp_endpoint *ep, *ep2, *canary;
    nk_udp_room *room, *room2;
    nk_addr ep_addr, ep2_addr, canary_addr, room_addr, room2_addr, dead;
    int peer;                 /* sends to the endpoints */
    int member_fd[MAX_SEEN];  /* 0..3 members, 4 the newcomer */
    int room2_fd;
    enum cb_kind cb;
    unsigned actions;
    bool armed, fired;
    bool ep_closed, ep2_closed, room_closed, room2_closed;
    unsigned after_close;     /* callbacks or hooks after their close */
    unsigned ep_data, ep_errors, ep2_data, canary_data;
    /* room */
    nk_addr seen[MAX_SEEN];   /* members, in order of joining */
    unsigned nseen;
    unsigned left[MAX_SEEN];
    bool removed[MAX_SEEN];   /* removed by the action */
    bool sender_removed;
    unsigned joins, leaves, nonmember_messages;
    uint64_t refusals; /* wait for this many refused deliveries */
};

static int seen_index(const struct world *w, const nk_addr *a)
{
    for (unsigned i = 0; i < w->nseen; i++)
        if (nk_addr_equal(&w->seen[i], a))
            return (int)i;
    return -1;
}

static void remove_member(struct world *w, const nk_addr *a)
{
    int i = seen_index(w, a);
    if (nk_udp_room_remove(w->room, a) == 0 && i >= 0)
        w->removed[i] = true;
}

/* Closed from inside its own callback and not freed yet: every call on
 * the handle says so. */
static void closed_calls_say_so(struct world *w, bool room)
{
    nk_addr a;
    char buf[4];
    if (room) {
        nk_udp_room_member_info mi;
        assert_int_equal(nk_udp_room_local_addr(w->room, &a), NK_ECLOSED);
        assert_int_equal(nk_udp_room_member(w->room, &w->seen[0], &mi),
                         NK_ECLOSED);
        assert_int_equal(nk_udp_room_remove(w->room, &w->seen[0]),
                         NK_ECLOSED);
        return;
    }
    nk_udp_msg m = {.data = "x", .len = 1, .to = &w->dead};
    assert_int_equal(nk_udp_endpoint_send_to(w->ep, "x", 1, &w->dead),
                     NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_send_batch(w->ep, &m, 1), NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_recv(w->ep, buf, sizeof buf, 0, NULL,
                                          NULL),
                     NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_set_receiving(w->ep, true), NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_local_addr(w->ep, &a), NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_fd(w->ep), NK_ECLOSED);
    assert_int_equal(nk_udp_endpoint_multicast(w->ep, &w->dead, 0, true),
                     NK_ECLOSED);
}

/* The row's action, once, from inside the first callback of kind @where
 * after the trigger. @concerned: the member a room hook is about (NULL for
 * the endpoint's callback). */
static void act(struct world *w, enum cb_kind where, const nk_addr *concerned)
{
    if (!w->armed || w->fired || where != w->cb)
        return;
    w->fired = true;
    unsigned a = w->actions;
    if (a & A_REMOVE_ALL) {
        nk_addr all[MAX_SEEN];
        unsigned n = w->nseen;
        memcpy(all, w->seen, sizeof all);
        for (unsigned i = 0; i < n; i++)
            remove_member(w, &all[i]);
    }
    if (a & A_REMOVE_SENDER)
        remove_member(w, concerned);
    if ((a & (A_REMOVE_ALL | A_REMOVE_SENDER)) && concerned != NULL &&
        nk_udp_room_member(w->room, concerned,
                           &(nk_udp_room_member_info){0}) != 0)
        w->sender_removed = true;
    if (a & A_PAUSE)
        assert_int_equal(nk_udp_endpoint_set_receiving(w->ep, false), 0);
    if (a & A_CLOSE_OTHER_EP) {
        nk_udp_endpoint_close(w->ep2);
        w->ep2_closed = true;
    }
    if (a & A_CLOSE_OTHER_ROOM) {
        nk_udp_room_close(w->room2);
        w->room2_closed = true;
    }
    if (a & A_CLOSE_SELF) {
        bool room = where >= CB_ROOM_JOIN;
        for (int k = 0; k < ((a & A_CLOSE_TWICE) ? 2 : 1); k++) {
            if (room)
                nk_udp_room_close(w->room);
            else
                nk_udp_endpoint_close(w->ep);
        }
        if (room)
            w->room_closed = true;
        else
            w->ep_closed = true;
        if (a & A_CLOSE_TWICE)
            closed_calls_say_so(w, room);
    }
}

/* ---- callbacks ---- */

static void on_ep(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                  void *user)
{
    (void)ep;
    struct world *w = user;
    if (w->ep_closed) {
        w->after_close++;
        return;
    }
    if (ev->error != 0) {
        w->ep_errors++;
        act(w, CB_EP_ERROR, NULL);
    } else {
        w->ep_data++;
        act(w, CB_EP_DATA, NULL);
    }
}

static void on_ep2(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                   void *user)
{
    (void)ep;
    (void)ev;
    struct world *w = user;
    if (w->ep2_closed)
        w->after_close++;
    else
        w->ep2_data++;
}

static void on_canary(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                      void *user)
{
    (void)ep;
    (void)ev;
    struct world *w = user;
    w->canary_data++;
}

static void on_join(nk_udp_room *room, const nk_udp_room_member_event *ev,
                    void *user)
{
    (void)room;
    struct world *w = user;
    if (w->room_closed) {
        w->after_close++;
        return;
    }
    w->joins++;
    if (seen_index(w, ev->addr) < 0 && w->nseen < MAX_SEEN)
        w->seen[w->nseen++] = *ev->addr;
    act(w, CB_ROOM_JOIN, ev->addr);
}

static void on_leave(nk_udp_room *room, const nk_udp_room_member_event *ev,
                     void *user)
{
    (void)room;
    struct world *w = user;
    if (w->room_closed) {
        w->after_close++;
        return;
    }
    w->leaves++;
    int i = seen_index(w, ev->addr);
    if (i >= 0)
        w->left[i]++;
    enum cb_kind kind = ev->reason == NK_ROOM_LEAVE_TTL ? CB_ROOM_LEAVE_TTL
                        : ev->reason == NK_ROOM_LEAVE_UNREACHABLE
                            ? CB_ROOM_LEAVE_UNREACHABLE
                            : CB_ROOM_LEAVE;
    act(w, kind, ev->addr);
}

static int on_message(nk_udp_room *room, nk_udp_room_message *msg,
                      void *user)
{
    struct world *w = user;
    if (w->room_closed) {
        w->after_close++;
        return NK_ROOM_DROP;
    }
    nk_udp_room_member_info mi;
    if (nk_udp_room_member(room, msg->from, &mi) != 0)
        w->nonmember_messages++;
    act(w, CB_ROOM_MESSAGE, msg->from);
    return NK_ROOM_RELAY;
}

static void on_room2(nk_udp_room *room, const nk_udp_room_member_event *ev,
                     void *user)
{
    (void)room;
    (void)ev;
    struct world *w = user;
    if (w->room2_closed)
        w->after_close++;
}

static int on_room2_message(nk_udp_room *room, nk_udp_room_message *msg,
                            void *user)
{
    (void)msg;
    on_room2(room, NULL, user);
    return NK_ROOM_RELAY;
}

/* ---- the world ---- */

static nk_addr loopback(void)
{
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    return a;
}

static nk_udp_endpoint *endpoint(struct world *w, nk_udp_recv_cb cb,
                                 nk_addr *local)
{
    nk_addr a = loopback();
    nk_udp_endpoint_opts o = NK_UDP_ENDPOINT_OPTS_INIT;
    o.recv_errors = true;
    o.max_datagram = 2048;
    nk_udp_endpoint *ep = NULL;
    assert_int_equal(nk_udp_endpoint_bind(w->loop, &a, &o, cb, w, &ep), 0);
    assert_int_equal(nk_udp_endpoint_local_addr(ep, local), 0);
    return ep;
}

static nk_udp_room *room(struct world *w, const nk_udp_room_hooks *h,
                         nk_addr *local)
{
    nk_addr a = loopback();
    nk_udp_room_opts o = NK_UDP_ROOM_OPTS_INIT;
    o.leave_message = "bye";
    if (w->cb == CB_ROOM_LEAVE_TTL && h->on_join == on_join)
        o.member_ttl_ms = TTL_MS;
    nk_udp_room *r = NULL;
    assert_int_equal(nk_udp_room_open(w->loop, &a, &o, h, w, &r), 0);
    assert_int_equal(nk_udp_room_local_addr(r, local), 0);
    return r;
}

static int peer(void)
{
    int fd = nkt_udp_socket(AF_INET, NULL);
    assert_true(fd >= 0);
    return fd;
}

static void send_to(int fd, const void *data, size_t len, const nk_addr *to)
{
    assert_int_equal(nkt_udp_sendto(fd, data, len, to), (int)len);
}

static bool joined_all(void *arg)
{
    struct world *w = arg;
    return w->joins >= MEMBERS;
}

static bool fired(void *arg)
{
    return ((struct world *)arg)->fired;
}

static uint64_t room_refusals(struct world *w)
{
    nk_udp_room_stats st;
    nk_udp_room_get_stats(w->room, &st);
    return st.unreachable;
}

/* The refusal of the last relay was reported (or the action ran). */
static bool refused_or_fired(void *arg)
{
    struct world *w = arg;
    return w->fired || room_refusals(w) >= w->refusals;
}

static bool canary_sang(void *arg)
{
    return ((struct world *)arg)->canary_data > 0;
}

static unsigned ep_expected(const struct world *w)
{
    return (w->cb == CB_EP_DATA ? BATCH : 0) + AFTER;
}

static bool ep_has_all(void *arg)
{
    struct world *w = arg;
    return w->ep_data >= ep_expected(w);
}

static void world_up(struct world *w, enum cb_kind cb, unsigned actions)
{
    memset(w, 0, sizeof *w);
    w->cb = cb;
    w->actions = actions;
    w->loop = nkt_loop_new();
    w->ep = endpoint(w, on_ep, &w->ep_addr);
    w->ep2 = endpoint(w, on_ep2, &w->ep2_addr);
    w->canary = endpoint(w, on_canary, &w->canary_addr);
    nk_udp_room_hooks h = {.on_join = on_join, .on_leave = on_leave,
                           .on_message = on_message};
    nk_udp_room_hooks h2 = {.on_join = on_room2, .on_leave = on_room2,
                            .on_message = on_room2_message};
    w->room = room(w, &h, &w->room_addr);
    w->room2 = room(w, &h2, &w->room2_addr);
    w->peer = peer();
    for (int i = 0; i < MAX_SEEN; i++)
        w->member_fd[i] = -1;
    for (int i = 0; i <= MEMBERS; i++)
        w->member_fd[i] = peer();
    w->room2_fd = peer();
    /* A closed port: sends to it come back refused (error events). */
    int dead = peer();
    assert_int_equal(nkt_sock_name(dead, &w->dead), 0);
    close(dead);

    for (int i = 0; i < MEMBERS; i++)
        send_to(w->member_fd[i], "", 0, &w->room_addr);
    send_to(w->room2_fd, "", 0, &w->room2_addr);
    assert_int_equal(nkt_run_until(w->loop, joined_all, w, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
}

/* The datagrams (or the send) that make the row's callback run. */
static void trigger(struct world *w)
{
    w->armed = true;
    switch (w->cb) {
    case CB_EP_DATA:
        for (uint32_t i = 0; i < BATCH; i++)
            send_to(w->peer, &i, sizeof i, &w->ep_addr);
        break;
    case CB_EP_ERROR:
        assert_int_equal(nk_udp_endpoint_send_to(w->ep, "x", 1, &w->dead), 1);
        break;
    case CB_ROOM_JOIN:
        send_to(w->member_fd[MEMBERS], "hi", 2, &w->room_addr);
        break;
    case CB_ROOM_LEAVE:
        send_to(w->member_fd[0], "bye", 3, &w->room_addr);
        break;
    case CB_ROOM_MESSAGE:
        send_to(w->member_fd[0], "hi", 2, &w->room_addr);
        break;
    case CB_ROOM_LEAVE_TTL:
        break; /* the members fall silent: the room's timer expires them */
    case CB_ROOM_LEAVE_UNREACHABLE:
        /* The last member's port closes: relays to it come back refused
         * (ICMP, the room's error events) until it is evicted. */
        close(w->member_fd[MEMBERS - 1]);
        w->member_fd[MEMBERS - 1] = -1;
        for (int k = 0; k < 10 && !w->fired; k++) {
            w->refusals = room_refusals(w) + 1;
            send_to(w->member_fd[0], "hi", 2, &w->room_addr);
            assert_int_equal(nkt_run_until(w->loop, refused_or_fired, w,
                                           MAX_ITERS, WAIT_MS, NULL),
                             0);
        }
        break;
    }
    assert_int_equal(nkt_run_until(w->loop, fired, w, MAX_ITERS, WAIT_MS,
                                   NULL), 0);
}

/* Traffic to every handle after the action, then a datagram to the canary
 * sent last: once it is in, everything before it has been dispatched (a
 * few more iterations for what was ready in the same one). */
static void traffic_after(struct world *w)
{
    for (uint32_t i = 0; i < AFTER; i++) {
        send_to(w->peer, &i, sizeof i, &w->ep_addr);
        send_to(w->peer, &i, sizeof i, &w->ep2_addr);
    }
    /* In the expiry rows a newcomer, which could only expire once. */
    int sender = w->cb == CB_ROOM_LEAVE_TTL ? MEMBERS : 1;
    send_to(w->member_fd[sender], "after", 5, &w->room_addr);
    send_to(w->room2_fd, "after", 5, &w->room2_addr);
    send_to(w->peer, "s", 1, &w->canary_addr);
    assert_int_equal(nkt_run_until(w->loop, canary_sang, w, MAX_ITERS,
                                   WAIT_MS, NULL), 0);
    for (int k = 0; k < 3; k++)
        (void)nk_loop_run(w->loop, NK_RUN_NOWAIT);
    if ((w->actions & A_PAUSE) && !w->ep_closed) {
        assert_int_equal(nk_udp_endpoint_set_receiving(w->ep, true), 0);
        assert_int_equal(nkt_run_until(w->loop, ep_has_all, w, MAX_ITERS,
                                       WAIT_MS, NULL), 0);
    }
}

/* Datagrams of @len bytes equal to @text waiting at @fd, read now. */
static unsigned count_waiting(int fd, const char *text)
{
    unsigned n = 0;
    char buf[64];
    int r;
    while ((r = nkt_udp_recv(fd, buf, sizeof buf, 0, NULL)) >= 0)
        if ((size_t)r == strlen(text) && memcmp(buf, text, (size_t)r) == 0)
            n++;
    return n;
}

static void check_endpoint(struct world *w)
{
    if (w->ep_closed) {
        /* Closed at the first callback: the rest of the batch goes with
         * it (a close, not a loss). */
        assert_int_equal(w->ep_data, w->cb == CB_EP_DATA ? 1 : 0);
    } else {
        assert_int_equal(nkt_run_until(w->loop, ep_has_all, w, MAX_ITERS,
                                       WAIT_MS, NULL), 0);
        assert_int_equal(w->ep_data, ep_expected(w));
        nk_udp_endpoint_stats st;
        nk_udp_endpoint_get_stats(w->ep, &st);
        assert_int_equal(st.datagrams_in, w->ep_data);
    }
    if (!w->ep2_closed)
        assert_int_equal(w->ep2_data, AFTER);
}

static void check_room(struct world *w)
{
    assert_int_equal(w->nonmember_messages, 0);
    for (unsigned i = 0; i < w->nseen; i++) {
        assert_true(w->left[i] <= 1);
        /* Removed by the action, the room still open: told once. */
        if (w->removed[i] && !w->room_closed)
            assert_int_equal(w->left[i], 1);
    }
    /* The trigger's "hi": relayed to every member unless its sender was
     * removed first or the room closed in the hook. */
    unsigned hi = 0;
    for (int i = 0; i <= MEMBERS; i++)
        if (w->member_fd[i] >= 0)
            hi += count_waiting(w->member_fd[i], "hi");
    bool relayed = (w->cb == CB_ROOM_JOIN || w->cb == CB_ROOM_MESSAGE) &&
                   !w->sender_removed && !w->room_closed;
    unsigned members_then = w->cb == CB_ROOM_JOIN ? MEMBERS + 1 : MEMBERS;
    if (w->cb != CB_ROOM_LEAVE_UNREACHABLE) /* its "hi"s were relayed */
        assert_int_equal(hi, relayed ? members_then : 0);
    if (w->room_closed)
        return;
    nk_udp_room_stats st;
    nk_udp_room_get_stats(w->room, &st);
    assert_int_equal(st.joins, w->joins);
    assert_int_equal(st.leaves, w->leaves);
    assert_int_equal(st.members, w->joins - w->leaves);
    if (w->sender_removed &&
        (w->cb == CB_ROOM_JOIN || w->cb == CB_ROOM_MESSAGE))
        assert_int_equal(st.drops[NK_ROOM_DROP_HOOK], 1);
}

static void world_down(struct world *w)
{
    if (!w->ep_closed)
        nk_udp_endpoint_close(w->ep);
    if (!w->ep2_closed)
        nk_udp_endpoint_close(w->ep2);
    if (!w->room_closed)
        nk_udp_room_close(w->room);
    if (!w->room2_closed)
        nk_udp_room_close(w->room2);
    nk_udp_endpoint_close(w->canary);
    close(w->peer);
    close(w->room2_fd);
    for (int i = 0; i <= MEMBERS; i++)
        if (w->member_fd[i] >= 0)
            close(w->member_fd[i]);
    nkt_loop_free_empty(w->loop);
}

static void run_row(enum cb_kind cb, unsigned actions)
{
    struct world w;
    world_up(&w, cb, actions);
    trigger(&w);
    traffic_after(&w);
    assert_int_equal(w.after_close, 0);
    if (cb <= CB_EP_ERROR)
        check_endpoint(&w);
    else
        check_room(&w);
    world_down(&w);
}

/* ---- the table ---- */

static const unsigned endpoint_actions[] = {
    A_CLOSE_SELF,
    A_CLOSE_SELF | A_CLOSE_TWICE,
    A_CLOSE_OTHER_EP,
    A_CLOSE_OTHER_ROOM,
    A_PAUSE,
    A_PAUSE | A_CLOSE_OTHER_EP,
    A_CLOSE_SELF | A_CLOSE_OTHER_EP | A_CLOSE_OTHER_ROOM,
    A_CLOSE_SELF | A_CLOSE_TWICE | A_CLOSE_OTHER_ROOM,
};

static const unsigned room_actions[] = {
    A_CLOSE_SELF,
    A_CLOSE_SELF | A_CLOSE_TWICE,
    A_CLOSE_OTHER_EP,
    A_CLOSE_OTHER_ROOM,
    A_REMOVE_SENDER,
    A_REMOVE_ALL,
    A_REMOVE_ALL | A_CLOSE_SELF,
    A_REMOVE_SENDER | A_CLOSE_SELF | A_CLOSE_TWICE,
    A_REMOVE_SENDER | A_CLOSE_OTHER_EP | A_CLOSE_OTHER_ROOM,
    A_REMOVE_ALL | A_CLOSE_OTHER_ROOM,
};

static void run_table(enum cb_kind cb, const unsigned *actions, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        print_message("callback %d, actions 0x%x\n", (int)cb, actions[i]);
        run_row(cb, actions[i]);
    }
}

#define RUN_TABLE(cb, table)                                                  \
    run_table(cb, table, sizeof table / sizeof table[0])

static void test_lifecycle_endpoint_datagram_callback(void **state)
{
    (void)state;
    RUN_TABLE(CB_EP_DATA, endpoint_actions);
}

static void test_lifecycle_endpoint_error_callback(void **state)
{
    (void)state;
    RUN_TABLE(CB_EP_ERROR, endpoint_actions);
}

static void test_lifecycle_room_on_join(void **state)
{
    (void)state;
    RUN_TABLE(CB_ROOM_JOIN, room_actions);
}

static void test_lifecycle_room_on_leave(void **state)
{
    (void)state;
    RUN_TABLE(CB_ROOM_LEAVE, room_actions);
}

static void test_lifecycle_room_on_message(void **state)
{
    (void)state;
    RUN_TABLE(CB_ROOM_MESSAGE, room_actions);
}

/* on_leave from the time-to-live timer: the room's other dispatch. */
static void test_lifecycle_room_on_leave_by_expiry(void **state)
{
    (void)state;
    RUN_TABLE(CB_ROOM_LEAVE_TTL, room_actions);
}

/* on_leave for a member whose deliveries come back refused: from the
 * room's handling of its endpoint's error events. */
static void test_lifecycle_room_on_leave_unreachable(void **state)
{
    (void)state;
    RUN_TABLE(CB_ROOM_LEAVE_UNREACHABLE, room_actions);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_endpoint_datagram_callback),
        cmocka_unit_test(test_lifecycle_endpoint_error_callback),
        cmocka_unit_test(test_lifecycle_room_on_join),
        cmocka_unit_test(test_lifecycle_room_on_leave),
        cmocka_unit_test(test_lifecycle_room_on_message),
        cmocka_unit_test(test_lifecycle_room_on_leave_by_expiry),
        cmocka_unit_test(test_lifecycle_room_on_leave_unreachable),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
