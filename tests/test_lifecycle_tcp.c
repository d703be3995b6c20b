/* F1 of the reliability matrix for the TCP handles: from inside every
 * callback of every TCP handle (the server's on_open; on_data, on_eof,
 * on_drain and on_close of an accepted and of a client-side connection;
 * a client's on_connect, success and failure), close (or abort) or free
 * the handle itself, another live connection, the server, a pending
 * connect, or all of them. Each case checks that every connection's on_close comes exactly
 * once with a sensible reason, that nothing is called after it, that a
 * cancelled connect never reports, and that the loop is empty afterwards.
 * One table, one runner: the cases differ only by their row. */
#include "test_tcp_util.h"

#include <netinet/in.h>
#include <poll.h>

#include "nkt_main.h"

enum trigger {
    T_OPEN,         /* server: on_open of a new connection */
    T_DATA,         /* connection: on_data */
    T_EOF,          /* connection: on_eof (the peer shut down writing) */
    T_DRAIN,        /* connection: on_drain after the high watermark */
    T_CLOSE,        /* connection: on_close */
    T_CONNECT_OK,   /* client: on_connect with a connection */
    T_CONNECT_FAIL, /* client: on_connect with -ECONNREFUSED */
};

enum side {
    ACCEPTED, /* the callback of a server's connection */
    CLIENT,   /* the callback of a client's connection */
};

/* What the callback does. */
enum {
    ACT_SELF = 1,    /* close its own handle (a no-op where it is closed) */
    ACT_CONN = 2,    /* abort another live connection */
    ACT_SERVER = 4,  /* free the server */
    ACT_PENDING = 8, /* cancel a connect still in progress */
    ACT_ALL = ACT_SELF | ACT_CONN | ACT_SERVER | ACT_PENDING,
    ACT_ABORT = 16,  /* with ACT_SELF: abort instead of a graceful close */
};

struct row {
    const char *name;
    enum trigger trigger;
    enum side side;
};

/* One connection's record; it outlives the connection. */
struct slot {
    nk_tcp_conn *conn; /* NULL once on_close returned */
    bool accepted;
    int closes, reason;
    int late; /* callbacks after on_close */
};

enum { MAX_SLOTS = 8 };

static struct world {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    struct slot slots[MAX_SLOTS];
    int nslots;
    struct slot *a;  /* accepted, raw peer ra */
    struct slot *b;  /* accepted, raw peer rb: the "other" connection */
    struct slot *c;  /* client side, connected to the server */
    struct slot *a2; /* accepted: the server side of c */
    int ra, rb, extra_fd;
    nk_tcp_client *pending;   /* connect to a listener that never answers */
    nk_tcp_client *trigger_client;
    int connects;             /* on_connect of the clients that may report */
    int pending_reports;      /* on_connect of a cancelled connect: 0 */
    const struct row *row;
    unsigned acts;
    bool armed, fired;
    struct slot *target;      /* whose callback acts (connection triggers) */
} W;

/* A listener whose backlog is full: a connect to it stays in progress. */
static struct {
    int listener;
    int fill[8];
    int nfill;
    nk_addr addr;
} hole;

/* ---- acting from a callback ---- */

static void act(struct slot *self, nk_tcp_client *self_client)
{
    W.fired = true;
    if (W.acts & ACT_SELF) {
        if (self_client)
            nk_tcp_client_cancel(self_client); /* inside its on_connect */
        if (self && self->conn && (W.acts & ACT_ABORT))
            nk_tcp_conn_abort(self->conn);
        else if (self && self->conn)
            nk_tcp_conn_close(self->conn);
    }
    if ((W.acts & ACT_CONN) && W.b->conn)
        nk_tcp_conn_abort(W.b->conn);
    if (W.acts & ACT_SERVER) {
        nk_tcp_server_free(W.srv);
        W.srv = NULL;
    }
    if (W.acts & ACT_PENDING) {
        nk_tcp_client_cancel(W.pending);
        W.pending = NULL;
    }
}

static bool is_trigger(const struct slot *s, enum trigger t)
{
    return W.armed && !W.fired && W.row->trigger == t && s == W.target;
}

static struct slot *new_slot(nk_tcp_conn *conn, bool accepted)
{
    assert_true(W.nslots < MAX_SLOTS);
    struct slot *s = &W.slots[W.nslots++];
    s->conn = conn;
    s->accepted = accepted;
    nk_tcp_conn_set_user(conn, s);
    return s;
}

/* ---- callbacks ---- */

static void lc_open(nk_tcp_conn *conn, void *user)
{
    (void)user;
    struct slot *s = new_slot(conn, true);
    if (W.armed && !W.fired && W.row->trigger == T_OPEN)
        act(s, NULL);
}

static void lc_data(nk_tcp_conn *conn, const void *d, size_t n, void *user)
{
    (void)conn;
    (void)d;
    (void)n;
    struct slot *s = user;
    if (s->closes)
        s->late++;
    if (is_trigger(s, T_DATA))
        act(s, NULL);
}

static void lc_eof(nk_tcp_conn *conn, void *user)
{
    struct slot *s = user;
    if (s->closes)
        s->late++;
    if (is_trigger(s, T_EOF))
        act(s, NULL);
    else
        nk_tcp_conn_close(conn); /* as without on_eof */
}

static void lc_drain(nk_tcp_conn *conn, void *user)
{
    (void)conn;
    struct slot *s = user;
    if (s->closes)
        s->late++;
    if (is_trigger(s, T_DRAIN))
        act(s, NULL);
}

static void lc_close(nk_tcp_conn *conn, int reason, void *user)
{
    (void)conn;
    struct slot *s = user;
    if (s->closes)
        s->late++;
    s->closes++;
    s->reason = reason;
    if (is_trigger(s, T_CLOSE))
        act(s, NULL); /* its own close is then a no-op on a closed handle */
    s->conn = NULL;
}

static void lc_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                       void *user)
{
    (void)user;
    W.connects++;
    struct slot *s = status == 0 ? new_slot(conn, false) : NULL;
    assert_true((status == 0) == (conn != NULL));
    if (W.armed && !W.fired && cl == W.trigger_client)
        act(s, cl);
}

static void pending_connect(nk_tcp_client *cl, nk_tcp_conn *conn, int status,
                            void *user)
{
    (void)cl;
    (void)status;
    (void)user;
    W.pending_reports++;
    if (conn)
        nk_tcp_conn_abort(conn);
}

/* ---- setup ---- */

static nk_tcp_conn_opts conn_opts(void)
{
    nk_tcp_conn_opts o = NK_TCP_CONN_OPTS_INIT;
    o.on_data = lc_data;
    o.on_eof = lc_eof;
    o.on_drain = lc_drain;
    o.on_close = lc_close;
    o.user = &W;
    o.high_watermark = 64u << 10;
    o.low_watermark = 16u << 10;
    o.linger_ms = 500; /* bounds the closes left to the teardown */
    return o;
}

static int connect_client(const nk_addr *to, nk_tcp_connect_cb cb,
                          nk_tcp_client **out)
{
    nk_tcp_client_opts o = NK_TCP_CLIENT_OPTS_INIT;
    o.on_connect = cb;
    o.connect_timeout_ms = 60000;
    o.conn = conn_opts();
    return nk_tcp_client_connect(W.loop, to, &o, out);
}

static bool slots_at_least(void *arg)
{
    return W.nslots >= *(const int *)arg;
}

static void wait_slots(int n)
{
    assert_int_equal(nkt_run_until(W.loop, slots_at_least, &n, 100000, 5000,
                                   NULL), 0);
}

static int raw_peer(void)
{
    int fd = nkt_tcp_connect(&W.addr);
    assert_true(fd >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static void set_buf(int fd, int opt)
{
    int small = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, opt, &small, sizeof small), 0);
}

/* A server with two accepted connections (a, b) from raw peers, a client
 * connection c to it (a2 its server side), and a pending connect. */
static void world_up(const struct row *row, unsigned acts)
{
    memset(&W, 0, sizeof W);
    W.row = row;
    W.acts = acts;
    W.ra = W.rb = W.extra_fd = -1;
    W.loop = nkt_loop_new();
    nk_tcp_server_opts so = NK_TCP_SERVER_OPTS_INIT;
    so.on_open = lc_open;
    so.conn = conn_opts();
    nk_addr any;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &any), 0);
    assert_int_equal(nk_tcp_server_start(W.loop, &any, &so, &W.srv), 0);
    assert_int_equal(nk_tcp_server_addr(W.srv, &W.addr), 0);
    W.ra = raw_peer();
    wait_slots(1);
    W.a = &W.slots[0];
    W.rb = raw_peer();
    wait_slots(2);
    W.b = &W.slots[1];
    assert_int_equal(connect_client(&W.addr, lc_connect, NULL), 0);
    wait_slots(4);
    for (int i = 2; i < 4; i++) {
        if (W.slots[i].accepted)
            W.a2 = &W.slots[i];
        else
            W.c = &W.slots[i];
    }
    assert_true(W.a2 && W.c);
    assert_int_equal(connect_client(&hole.addr, pending_connect, &W.pending),
                     0);
}

/* Fill @from's queue past the high watermark (its peer reads nothing). */
static void fill_queue(nk_tcp_conn *from)
{
    static uint8_t chunk[64u << 10];
    set_buf(nk_tcp_conn_fd(from), SO_SNDBUF);
    for (int i = 0; i < 1024; i++) {
        int r = nk_tcp_conn_send(from, chunk, sizeof chunk);
        assert_true(r == 0 || r == 1);
        if (r == 1)
            return;
    }
    fail_msg("the queue never passed the high watermark");
}

static bool fired(void *arg)
{
    (void)arg;
    return W.fired;
}

/* Make the row's callback happen, then run until it acted. */
static void trigger(void)
{
    const struct row *row = W.row;
    W.target = row->side == ACCEPTED ? W.a : W.c;
    nk_tcp_conn *peer = row->side == CLIENT ? W.a2->conn : NULL;
    W.armed = true;
    switch (row->trigger) {
    case T_OPEN:
        W.extra_fd = raw_peer();
        break;
    case T_DATA:
        if (peer)
            assert_int_equal(nk_tcp_conn_send(peer, "x", 1), 0);
        else
            assert_int_equal(nkt_send_all(W.ra, "x", 1), 0);
        break;
    case T_EOF:
        if (peer)
            assert_int_equal(nk_tcp_conn_shutdown(peer), 0);
        else
            assert_int_equal(nkt_shutdown_wr(W.ra), 0);
        break;
    case T_DRAIN:
        if (peer) {
            assert_int_equal(nk_tcp_conn_set_reading(peer, false), 0);
            fill_queue(W.c->conn);
            assert_int_equal(nk_tcp_conn_set_reading(peer, true), 0);
        } else {
            fill_queue(W.a->conn);
        }
        break;
    case T_CLOSE:
        if (peer) {
            nk_tcp_conn_close(peer);
        } else {
            close(W.ra);
            W.ra = -1;
        }
        break;
    case T_CONNECT_OK:
        assert_int_equal(connect_client(&W.addr, lc_connect,
                                        &W.trigger_client), 0);
        break;
    case T_CONNECT_FAIL: {
        /* A port that was just free: nothing listens there. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        nk_addr closed;
        assert_int_equal(nk_addr_parse("127.0.0.1:0", &closed), 0);
        assert_int_equal(bind(fd, &closed.u.sa, closed.len), 0);
        assert_int_equal(nkt_sock_name(fd, &closed), 0);
        close(fd);
        assert_int_equal(connect_client(&closed, lc_connect,
                                        &W.trigger_client), 0);
        break;
    }
    }
    /* The raw peer of a reads what it is sent (on_drain needs it). */
    uint64_t end = nkt_now_ms() + 5000;
    while (!W.fired && nkt_now_ms() < end) {
        nk_loop_run(W.loop, NK_RUN_NOWAIT);
        static uint8_t sink[65536];
        if (W.ra >= 0)
            while (recv(W.ra, sink, sizeof sink, 0) > 0)
                ;
        if (!W.fired)
            (void)nkt_run_until(W.loop, fired, NULL, 1, 5, NULL);
    }
    assert_true(W.fired);
}

/* ---- teardown and checks ---- */

static bool all_closed(void *arg)
{
    (void)arg;
    for (int i = 0; i < W.nslots; i++)
        if (W.slots[i].closes == 0)
            return false;
    return true;
}

static void world_down(void)
{
    for (int i = 0; i < 5; i++)
        nk_loop_run(W.loop, NK_RUN_NOWAIT);
    nk_tcp_server_free(W.srv);
    W.srv = NULL;
    nk_tcp_client_cancel(W.pending);
    W.pending = NULL;
    for (int i = 0; i < W.nslots; i++)
        if (W.slots[i].conn)
            nk_tcp_conn_abort(W.slots[i].conn);
    int fds[] = {W.ra, W.rb, W.extra_fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    assert_int_equal(nkt_run_until(W.loop, all_closed, NULL, 100000, 5000,
                                   NULL), 0);
    /* Let anything wrongly left over run before counting. */
    for (int i = 0; i < 100 && nk_loop_run(W.loop, NK_RUN_NOWAIT) != 0; i++)
        ;
}

static bool sensible(int reason)
{
    return reason == 0 || reason == NK_EOF || reason == NK_EDROPPED ||
           reason == -ECONNRESET || reason == -EPIPE;
}

static void check(const char *label)
{
    for (int i = 0; i < W.nslots; i++) {
        const struct slot *s = &W.slots[i];
        if (s->closes != 1 || s->late != 0 || !sensible(s->reason))
            fail_msg("%s: connection %d (%s): %d on_close, %d late "
                     "callbacks, reason %s", label, i,
                     s->accepted ? "accepted" : "client", s->closes,
                     s->late, nk_err_name(s->reason));
    }
    /* The connection aborted from the callback had nothing queued. */
    if ((W.acts & ACT_CONN) && W.b->reason != 0)
        fail_msg("%s: aborted connection closed with %s", label,
                 nk_err_name(W.b->reason));
    /* A connection that closed itself from its on_data, on_eof or
     * on_drain: 0, NK_EOF, or NK_EDROPPED if the linger ran out with data
     * left; a reset only if the same callback freed the server that held
     * its peer (closed with unread input, the peer resets). */
    bool conn_cb = W.row->trigger == T_DATA || W.row->trigger == T_EOF ||
                   W.row->trigger == T_DRAIN;
    int r = W.target ? W.target->reason : 0;
    bool peer_freed = W.row->side == CLIENT && (W.acts & ACT_SERVER);
    if (conn_cb && (W.acts & ACT_SELF) && r != 0 && r != NK_EDROPPED &&
        r != NK_EOF && !(peer_freed && (r == -ECONNRESET || r == -EPIPE)))
        fail_msg("%s: self-closed connection ended with %s", label,
                 nk_err_name(r));
    if (W.pending_reports != 0)
        fail_msg("%s: a cancelled connect reported", label);
    int want_connects = 1 + (W.trigger_client != NULL);
    if (W.connects != want_connects)
        fail_msg("%s: %d on_connect, expected %d", label, W.connects,
                 want_connects);
    nkt_loop_free_empty(W.loop);
}

static void run_row(void **state)
{
    const struct row *row = *state;
    static const struct {
        unsigned acts;
        const char *name;
    } actions[] = {
        {ACT_SELF, "itself"},
        {ACT_SELF | ACT_ABORT, "itself (abort)"},
        {ACT_CONN, "another connection"},
        {ACT_SERVER, "the server"},
        {ACT_PENDING, "a pending connect"},
        {ACT_ALL, "all of them"},
    };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        char label[128];
        snprintf(label, sizeof label, "%s closes %s", row->name,
                 actions[i].name);
        world_up(row, actions[i].acts);
        trigger();
        world_down();
        check(label);
    }
}

/* ---- the blackhole listener, shared by every case ---- */

static int hole_up(void **state)
{
    (void)state;
    hole.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    nk_addr a;
    if (hole.listener < 0 || nk_addr_parse("127.0.0.1:0", &a) != 0 ||
        bind(hole.listener, &a.u.sa, a.len) != 0 ||
        listen(hole.listener, 1) != 0 ||
        nkt_sock_name(hole.listener, &hole.addr) != 0)
        return -1;
    /* Connect until one hangs: the queue is full from then on. */
    for (hole.nfill = 0; hole.nfill < 8;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
        hole.fill[hole.nfill++] = fd;
        (void)connect(fd, &hole.addr.u.sa, hole.addr.len);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 200) != 1)
            break;
    }
    return 0;
}

static int hole_down(void **state)
{
    (void)state;
    for (int i = 0; i < hole.nfill; i++)
        close(hole.fill[i]);
    close(hole.listener);
    return 0;
}

static const struct row rows[] = {
    {"lifecycle_server_on_open", T_OPEN, ACCEPTED},
    {"lifecycle_accepted_on_data", T_DATA, ACCEPTED},
    {"lifecycle_client_conn_on_data", T_DATA, CLIENT},
    {"lifecycle_accepted_on_eof", T_EOF, ACCEPTED},
    {"lifecycle_client_conn_on_eof", T_EOF, CLIENT},
    {"lifecycle_accepted_on_drain", T_DRAIN, ACCEPTED},
    {"lifecycle_client_conn_on_drain", T_DRAIN, CLIENT},
    {"lifecycle_accepted_on_close", T_CLOSE, ACCEPTED},
    {"lifecycle_client_conn_on_close", T_CLOSE, CLIENT},
    {"lifecycle_client_on_connect_success", T_CONNECT_OK, CLIENT},
    {"lifecycle_client_on_connect_failure", T_CONNECT_FAIL, CLIENT},
};

enum { NROWS = sizeof rows / sizeof rows[0] };

int main(int argc, char **argv)
{
    struct CMUnitTest tests[NROWS];
    for (size_t i = 0; i < NROWS; i++)
        tests[i] = (struct CMUnitTest){.name = rows[i].name,
                                       .test_func = run_row,
                                       .initial_state = (void *)&rows[i]};
    return nkt_run_tests(tests, hole_up, hole_down, argc, argv);
}
