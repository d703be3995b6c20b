/* Load rows of the reliability matrix, counted rather than timed: C1
 * thousands of echo connections from 49 source addresses, byte-exact; C2
 * length-prefixed echo under random write splits; C3 room fan-out where
 * every missing datagram is accounted for; C5, the soak, when scripts/soak
 * asks for it. C1 runs at the row's figure; C2 and C3 are scaled to CI's
 * budget, and the environment variables named at each test restore the
 * matrix's full figures. Under valgrind the defaults shrink further. */
#include "test_tcp_util.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "matrix_fanout.h"
#include "nkt_main.h"
#include "nkt_alloc.h"
#include "nkt_proc.h"

/* Environment override of a default count; under valgrind (some fifty
 * times slower) the default is @slow instead. */
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

/* Raise the soft RLIMIT_NOFILE to the hard limit, or to @want when the
 * process may raise the hard limit too (CAP_SYS_RESOURCE); returns the new
 * soft limit. */
static rlim_t nofile_to_hard(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
        struct rlimit up = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return want;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

/* ---- server side shared by C1 and C2: echo, totals by close reason ---- */

struct load_srv {
    nk_loop *loop;
    nk_tcp_server *srv;
    nk_addr addr;
    bool framed;           /* echo the length prefix too (C2) */
    int closes;
    size_t want_closes;    /* for all_closed() */
    int unbalanced;        /* bytes_in != bytes_out at close */
    uint64_t in, out;      /* totals over closed connections */
    uint64_t messages;
    int queued;            /* connections that queued part of an echo */
};

static void ls_data(nk_tcp_conn *c, const void *d, size_t n, void *user)
{
    struct load_srv *s = user;
    int r;
    if (s->framed) {
        uint8_t pfx[4];
        assert_int_equal(nk_frame_length32_prefix(n, pfx), 0);
        r = nk_tcp_conn_send(c, pfx, sizeof pfx);
        assert_true(r == 0 || r == 1);
        s->messages++;
    }
    r = nk_tcp_conn_send(c, d, n);
    assert_true(r == 0 || r == 1);
}

static void ls_close(nk_tcp_conn *c, int reason, void *user)
{
    struct load_srv *s = user;
    nk_tcp_conn_stats cs;
    nk_tcp_conn_get_stats(c, &cs);
    (void)reason;
    /* Framed or not, the echo is the same bytes (prefix included). */
    if (cs.bytes_out != cs.bytes_in)
        s->unbalanced++;
    if (cs.peak_queued > 0)
        s->queued++;
    s->in += cs.bytes_in;
    s->out += cs.bytes_out;
    s->closes++;
}

static void ls_start(struct load_srv *s, nk_tcp_server_opts *o)
{
    assert_int_equal(nk_loop_new(&s->loop), 0);
    o->backlog = 4096;
    o->conn.on_data = ls_data;
    o->conn.on_close = ls_close;
    o->conn.user = s;
    nk_addr a;
    assert_int_equal(nk_addr_parse("127.0.0.1:0", &a), 0);
    assert_int_equal(nk_tcp_server_start(s->loop, &a, o, &s->srv), 0);
    assert_int_equal(nk_tcp_server_addr(s->srv, &s->addr), 0);
}

static nk_tcp_server_stats ls_stats(const struct load_srv *s)
{
    nk_tcp_server_stats st;
    nk_tcp_server_get_stats(s->srv, &st);
    return st;
}

static void ls_finish(struct load_srv *s)
{
    nk_tcp_server_free(s->srv);
    s->srv = NULL;
    for (int i = 0; i < 100; i++)
        if (nk_loop_run(s->loop, NK_RUN_NOWAIT) == 0)
            break;
    assert_int_equal(nk_loop_free(s->loop), 0);
    s->loop = NULL;
}

/* A nonblocking client socket bound to 127.0.0.(2 + id % 49), port chosen
 * at connect time, connecting to @to. */
static int spread_connect(unsigned id, const nk_addr *to)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                     sizeof one);
    /* Small random splits must not wait for delayed ACKs (Nagle). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + id % 49u);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        (connect(fd, &to->u.sa, to->len) != 0 && errno != EINPROGRESS)) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ---- C1: streaming clients that check the echo as it arrives ---- */

struct c1_client {
    int fd;
    nk_io *io;
    uint64_t seed;
    size_t total, sent, recvd;
    bool connected, shut, mismatch;
    int end; /* 0 running, 1 EOF after everything, -errno */
    int *done;
};

static void c1_finish(struct c1_client *c, int end)
{
    c->end = end;
    nk_io_stop(c->io);
    c->io = NULL;
    (*c->done)++;
}

static void c1_cb(nk_io *io, unsigned ev, void *user)
{
    struct c1_client *c = user;
    static uint8_t buf[32768];
    if (!c->connected) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            c1_finish(c, -err);
            return;
        }
        c->connected = true;
    }
    if ((ev & NK_WRITE) && c->sent < c->total) {
        size_t n = c->total - c->sent;
        if (n > sizeof buf)
            n = sizeof buf;
        nkt_stream_fill(c->seed, c->sent, buf, n);
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w > 0)
            c->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN) {
            c1_finish(c, -errno);
            return;
        }
    }
    if (c->sent == c->total && !c->shut) {
        c->shut = true;
        if (shutdown(c->fd, SHUT_WR) != 0) {
            c1_finish(c, -errno);
            return;
        }
        nk_io_set(io, NK_READ);
    }
    if (ev & NK_READ) {
        for (int k = 0; k < 4; k++) {
            ssize_t r = recv(c->fd, buf, sizeof buf, 0);
            if (r > 0) {
                if (c->recvd + (size_t)r > c->total ||
                    !nkt_stream_check(c->seed, c->recvd, buf, (size_t)r))
                    c->mismatch = true;
                c->recvd += (size_t)r;
            } else if (r == 0) {
                c1_finish(c, 1);
                return;
            } else {
                if (errno != EAGAIN)
                    c1_finish(c, -errno);
                return;
            }
        }
    }
}

/* C1. 1000 clients x 1 MiB by default, as the row says
 * (NK_TEST_C1_CLIENTS=10000 for the large run; NK_TEST_C1_BYTES to change
 * the size). Sources spread over 127.0.0.2-127.0.0.50. */
/* Start @n clients on @loop against @to, run the loop until all ended, and
 * check them: the number of bad clients (each described on stderr), with
 * *total the bytes echoed back. The sockets are closed. Uses no cmocka
 * assert, so a forked child may call it. */
static size_t c1_clients(nk_loop *loop, const nk_addr *to, size_t n,
                         size_t bytes, uint64_t *total)
{
    struct c1_client *cs = calloc(n, sizeof *cs);
    if (!cs)
        return n;
    int done = 0, started = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct c1_client *c = &cs[i];
        c->seed = 0xc1000000u + i;
        c->total = bytes;
        c->done = &done;
        c->fd = spread_connect((unsigned)i, to);
        if (c->fd < 0 || nk_io_start(loop, c->fd, NK_READ | NK_WRITE, c1_cb,
                                     c, &c->io) != 0) {
            fprintf(stderr, "client %zu: cannot start (%d)\n", i, c->fd);
            return n;
        }
        started++;
    }
    struct count_goal g = {&done, started};
    int r = nkt_run_until(loop, reached, &g, 100000000, 300000, NULL);
    if (r != 0)
        fprintf(stderr, "C1: %d of %d clients ended (code %d)\n", done,
                started, r);
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (cs[i].end != 1 || cs[i].mismatch || cs[i].recvd != bytes) {
            if (bad++ < 5)
                fprintf(stderr, "client %zu: end %d recvd %zu mismatch %d\n",
                        i, cs[i].end, cs[i].recvd, cs[i].mismatch);
        }
        *total += cs[i].recvd;
        if (cs[i].io)
            nk_io_stop(cs[i].io);
        close(cs[i].fd);
    }
    free(cs);
    return bad;
}

static void c1_small_sndbuf(nk_tcp_conn *c, void *user)
{
    (void)user;
    int size = 4096;
    assert_int_equal(setsockopt(nk_tcp_conn_fd(c), SOL_SOCKET, SO_SNDBUF,
                                &size, sizeof size),
                     0);
}

static bool all_closed(void *arg)
{
    const struct load_srv *s = arg;
    return (size_t)s->closes >= s->want_closes;
}

static void c1_run(size_t n, size_t bytes)
{
    /* One process holds both ends (2 fds per client) when the limit
     * allows; otherwise the clients run in a forked child with its own
     * loop, so each process needs one fd per client. */
    rlim_t lim = nofile_to_hard(2 * n + 64);
    bool split = lim < 2 * n + 64;
    if (split && lim < n + 64) {
        nkt_skip("RLIMIT_NOFILE hard limit %llu < %zu needed for %zu clients",
                 (unsigned long long)lim, n + 64, n);
    }
    print_message("C1: %zu clients x %zu bytes from 127.0.0.2-50%s\n", n,
                  bytes, split ? " (clients in a child process)" : "");
    int fds_before = nkt_fd_count();
    struct load_srv s = {0};
    s.want_closes = n;
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    /* A small send buffer per connection: the echo's writes are cut short
     * and their tails queued, the path where bytes could be lost. */
    o.on_open = c1_small_sndbuf;
    ls_start(&s, &o);
    uint64_t total = 0;
    if (!split) {
        assert_int_equal(c1_clients(s.loop, &s.addr, n, bytes, &total), 0);
        run_until_count(s.loop, &s.closes, (int)n, 20000);
        assert_int_equal(total, (uint64_t)n * bytes);
    } else {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            nk_loop *cl;
            if (nk_loop_new(&cl) != 0)
                _exit(2);
            size_t bad = c1_clients(cl, &s.addr, n, bytes, &total);
            bool ok = bad == 0 && total == (uint64_t)n * bytes;
            nk_loop_free(cl);
            _exit(ok ? 0 : 1);
        }
        int r = nkt_run_until(s.loop, all_closed, &s, 100000000, 300000,
                              NULL);
        if (r != 0)
            kill(pid, SIGKILL);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_int_equal(r, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    nk_tcp_server_stats st = ls_stats(&s);
    assert_int_equal(st.accepted, n);
    assert_int_equal(st.closed_eof, n);
    assert_int_equal(st.closed_reset, 0);
    assert_int_equal(st.closed_other + st.closed_frame + st.closed_queue, 0);
    assert_int_equal(st.shed + st.rejected, 0);
    assert_int_equal(st.active, 0);
    assert_int_equal(s.unbalanced, 0);
    print_message("C1: %d of %zu connections queued part of an echo\n",
                  s.queued, n);
    if (bytes >= 65536) /* more than the buffers hold: writes were cut */
        assert_true(s.queued > 0);
    assert_int_equal(s.in, (uint64_t)n * bytes);
    assert_int_equal(s.out, (uint64_t)n * bytes);
    ls_finish(&s);
    assert_int_equal(nkt_fd_count(), fds_before);
}

/* ---- C2: length-prefixed messages under random write splits ---- */

#define C2_MAX 65536u

struct c2_client {
    int fd;
    nk_io *io;
    unsigned id;
    size_t nmsgs;
    uint64_t rng;
    /* writer: message wi, byte wo of its framed form */
    size_t wi, wo;
    uint8_t *wbuf;
    size_t wlen, woff;
    bool shut;
    /* reader */
    uint8_t *rbuf;
    size_t rlen, ri;
    bool connected, bad;
    int end;
    int *done;
};

static uint64_t c2_next(uint64_t *x)
{
    *x = *x * 6364136223846793005u + 1442695040888963407u;
    return *x >> 33;
}

/* Length of message k of client id: 0 and 64 KiB come first, then
 * uniform in 0..64 KiB. */
static size_t c2_len(unsigned id, size_t k)
{
    if (k == 0)
        return 0;
    if (k == 1)
        return C2_MAX;
    uint64_t x = ((uint64_t)id << 32) ^ (k * 0x9e3779b97f4a7c15u);
    return (size_t)(c2_next(&x) % (C2_MAX + 1));
}

static uint64_t c2_seed(unsigned id, size_t k)
{
    return ((uint64_t)id << 32) | k;
}

/* Fill @n bytes of the client's framed stream, advancing the writer. */
static size_t c2_fill(struct c2_client *c, uint8_t *out, size_t n)
{
    size_t at = 0;
    while (at < n && c->wi < c->nmsgs) {
        size_t len = c2_len(c->id, c->wi);
        if (c->wo < 4) {
            uint8_t pfx[4];
            nk_frame_length32_prefix(len, pfx);
            while (c->wo < 4 && at < n)
                out[at++] = pfx[c->wo++];
        }
        size_t off = c->wo - 4, take = len - off;
        if (take > n - at)
            take = n - at;
        nkt_stream_fill(c2_seed(c->id, c->wi), off, out + at, take);
        at += take;
        c->wo += take;
        if (c->wo == 4 + len) {
            c->wi++;
            c->wo = 0;
        }
    }
    return at;
}

static void c2_finish(struct c2_client *c, int end)
{
    c->end = end;
    nk_io_stop(c->io);
    c->io = NULL;
    (*c->done)++;
}

static void c2_read(struct c2_client *c)
{
    const nk_frame_opts fo = {.kind = NK_FRAME_LENGTH32, .max_line = 0,
                              .max_frame = C2_MAX};
    for (int k = 0; k < 8; k++) {
        ssize_t r = recv(c->fd, c->rbuf + c->rlen, 2 * (C2_MAX + 4) - c->rlen,
                         0);
        if (r == 0) {
            c2_finish(c, c->rlen == 0 && c->ri == c->nmsgs ? 1 : NK_EMIDFRAME);
            return;
        }
        if (r < 0) {
            if (errno != EAGAIN)
                c2_finish(c, -errno);
            return;
        }
        c->rlen += (size_t)r;
        size_t at = 0;
        for (;;) {
            nk_frame_msg m;
            ptrdiff_t used = nk_frame_decode(&fo, c->rbuf + at, c->rlen - at,
                                             &m);
            if (used < 0) {
                c->bad = true;
                c2_finish(c, (int)used);
                return;
            }
            if (used == 0)
                break;
            if (c->ri >= c->nmsgs || m.len != c2_len(c->id, c->ri) ||
                !nkt_stream_check(c2_seed(c->id, c->ri), 0, m.data, m.len))
                c->bad = true;
            c->ri++;
            at += (size_t)used;
        }
        memmove(c->rbuf, c->rbuf + at, c->rlen - at);
        c->rlen -= at;
    }
}

static void c2_cb(nk_io *io, unsigned ev, void *user)
{
    struct c2_client *c = user;
    if (!c->connected) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            c2_finish(c, -err);
            return;
        }
        c->connected = true;
    }
    if ((ev & NK_WRITE) && !c->shut) {
        if (c->woff == c->wlen) {
            /* A random split: 1 byte to 96 KiB, across message edges. */
            size_t want = 1 + (size_t)(c2_next(&c->rng) % (96u << 10));
            if (c2_next(&c->rng) % 8 == 0)
                want = 1 + (size_t)(c2_next(&c->rng) % 7);
            c->wlen = c2_fill(c, c->wbuf, want);
            c->woff = 0;
        }
        if (c->wlen > c->woff) {
            ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                             MSG_NOSIGNAL);
            if (w > 0)
                c->woff += (size_t)w;
            else if (w < 0 && errno != EAGAIN) {
                c2_finish(c, -errno);
                return;
            }
        }
        if (c->woff == c->wlen && c->wi == c->nmsgs) {
            c->shut = true;
            assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
            nk_io_set(io, NK_READ);
        }
    }
    if (ev & NK_READ)
        c2_read(c);
}

/* C2. 100 clients x 100 messages of 0..64 KiB by default
 * (NK_TEST_C2_MESSAGES=10000 for the row's figure: 100 x 10 000 messages
 * averaging 32 KiB is 32 GiB each way, far beyond CI's budget). */
static void c2_run(size_t n, size_t msgs)
{
    if (msgs < 2)
        msgs = 2;
    if (nofile_to_hard(2 * n + 64) < 2 * n + 64) {
        nkt_skip("RLIMIT_NOFILE too low for %zu clients", n);
    }
    print_message("C2: %zu clients x %zu messages of 0..64 KiB\n", n, msgs);
    int fds_before = nkt_fd_count();
    struct load_srv s = {.framed = true};
    nk_tcp_server_opts o = NK_TCP_SERVER_OPTS_INIT;
    o.conn.frame.kind = NK_FRAME_LENGTH32;
    o.conn.frame.max_frame = C2_MAX;
    ls_start(&s, &o);
    struct c2_client *cs = calloc(n, sizeof *cs);
    assert_non_null(cs);
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        struct c2_client *c = &cs[i];
        c->id = (unsigned)i + 1;
        c->nmsgs = msgs;
        c->rng = 0xc2u + i;
        c->done = &done;
        c->wbuf = malloc(96u << 10);
        c->rbuf = malloc(2 * (C2_MAX + 4));
        assert_true(c->wbuf && c->rbuf);
        c->fd = spread_connect((unsigned)i, &s.addr);
        assert_true(c->fd >= 0);
        assert_int_equal(nk_io_start(s.loop, c->fd, NK_READ | NK_WRITE, c2_cb,
                                     c, &c->io), 0);
    }
    run_until_count(s.loop, &done, (int)n, 120000);
    run_until_count(s.loop, &s.closes, (int)n, 20000);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct c2_client *c = &cs[i];
        if (c->end != 1 || c->bad || c->ri != msgs) {
            if (bad++ < 5)
                print_message("client %zu: end %d got %zu of %zu bad %d\n", i,
                              c->end, c->ri, msgs, c->bad);
        }
        close(c->fd);
        free(c->wbuf);
        free(c->rbuf);
    }
    assert_int_equal(bad, 0);
    nk_tcp_server_stats st = ls_stats(&s);
    assert_int_equal(st.closed_frame, 0); /* the decoder's error count */
    assert_int_equal(st.closed_eof, n);
    assert_int_equal(st.closed_reset + st.closed_other, 0);
    assert_int_equal(s.messages, (uint64_t)n * msgs);
    assert_int_equal(s.unbalanced, 0);
    free(cs);
    ls_finish(&s);
    assert_int_equal(nkt_fd_count(), fds_before);
}

static void test_c1_thousand_clients_byte_exact(void **state)
{
    (void)state;
    c1_run(env_size("NK_TEST_C1_CLIENTS", 1000, 100),
           env_size("NK_TEST_C1_BYTES", 1u << 20, 16u << 10));
}

static void test_c2_framed_echo_random_splits_in_order(void **state)
{
    (void)state;
    c2_run(env_size("NK_TEST_C2_CLIENTS", 100, 20),
           env_size("NK_TEST_C2_MESSAGES", 100, 10));
}

static void test_c3_room_fanout_every_loss_accounted(void **state)
{
    (void)state;
    c3_run(env_size("NK_TEST_C3_ROUNDS", 100, 5), 4 << 20);
}

/* C3 where losses happen: receivers with the smallest receive buffer drop
 * most of each round, and every loss is still accounted for, exactly. */
static void test_c3_small_buffers_losses_equal_drop_counters(void **state)
{
    (void)state;
    c3_run(env_size("NK_TEST_C3_ROUNDS", 20, 3), 1);
}

/* C5, the soak: only when scripts/soak sets NK_TEST_SOAK_SECONDS (it is
 * not part of CI). A random mix of C1, C2 and C3 at moderate sizes, over
 * and over in one process; after every run the process's descriptor count
 * and the library's live heap bytes must be back at their baseline. */
static void test_c5_soak_random_mix_counters_flat(void **state)
{
    (void)state;
    const char *env = getenv("NK_TEST_SOAK_SECONDS");
    if (!env || !*env) {
        nkt_skip("C5 is the soak, run by scripts/soak (NK_TEST_SOAK_SECONDS), "
                 "not by CI");
    }
    uint64_t seconds = strtoull(env, NULL, 10);
    uint64_t end = nkt_now_ms() + seconds * 1000u;
    uint64_t x = env_size("NK_TEST_SOAK_SEED", 5, 5);
    (void)nofile_to_hard(2 * 600 + 64);
    int fds = nkt_fd_count();
    size_t live = nkt_alloc_live_bytes();
    unsigned runs[3] = {0, 0, 0};
    while (nkt_now_ms() < end) {
        unsigned pick = (unsigned)(c2_next(&x) % 3);
        if (pick == 0)
            c1_run(50 + c2_next(&x) % 500, 1 + c2_next(&x) % (512u << 10));
        else if (pick == 1)
            c2_run(10 + c2_next(&x) % 90, 2 + c2_next(&x) % 60);
        else
            c3_run(1 + c2_next(&x) % 50, c2_next(&x) % 2 ? 4 << 20 : 1);
        runs[pick]++;
        assert_int_equal(nkt_fd_count(), fds);
        assert_int_equal(nkt_alloc_live_bytes(), live);
        print_message("soak: %u C1, %u C2, %u C3 runs; fds %d, library "
                      "live bytes %zu\n", runs[0], runs[1], runs[2], fds,
                      live);
    }
}

int main(int argc, char **argv)
{
    nkt_alloc_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c1_thousand_clients_byte_exact),
        cmocka_unit_test(test_c2_framed_echo_random_splits_in_order),
        cmocka_unit_test(test_c3_room_fanout_every_loss_accounted),
        cmocka_unit_test(test_c3_small_buffers_losses_equal_drop_counters),
        cmocka_unit_test(test_c5_soak_random_mix_counters_flat),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
