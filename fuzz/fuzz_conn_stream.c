/* Fuzz target for a TCP connection's receive path (lib/tcp_conn.c): a
 * connection adopted from one end of a socketpair on a real loop, the
 * fuzzed bytes written into the other end in fuzzed chunks, read with a
 * fuzzed read size, then end of stream.
 *
 * Input: byte 0 the framing (bits 0-1: raw, line, length prefix) and the
 * application's behaviour (bits 2-3: echo each message 0 to 3 times back
 * through nk_tcp_conn_send; bit 4: pause reading inside on_data, resumed
 * on the next iteration; bits 5-6: high watermark default, 1, 64 or 1024;
 * bit 7: the smallest socket send buffer, so the write queue fills), byte
 * 1 the decoder's limit (see nk_fuzz_frame_limit), byte 2 the read size
 * (1..255, or 64 KiB for 255), byte 3 the number of write chunk sizes
 * that follow (0..31; bit 5: close the writing end instead of shutting it
 * down, which turns echo off), then the stream. The harness reads the
 * echo back as it arrives.
 *
 * Invariants: the messages delivered are exactly those the pure decoder
 * gives for the whole stream (raw: the bytes, in order); the close reason
 * is the decoder's error when it errs, NK_EMIDFRAME when the stream ends
 * inside a message, NK_EOF otherwise; on_close comes exactly once, within
 * a bounded number of loop iterations; sends from on_data succeed; the
 * echo read back is exactly the messages repeated (a prefix of that when
 * the connection closes on an error, which discards its queue); the loop
 * frees cleanly after. A zero limit for lines or length prefixes is
 * refused by the options check, so no connection is made with it. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include "frame_feed.h"
#include "fuzz.h"
#include "netkit/error.h"
#include "netkit/loop.h"
#include "netkit/tcp.h"
#include "tcp_conn.h"

struct run {
    struct nk_fuzz_frames got;
    size_t cap;
    int reason;
    int closes;
    unsigned echo;      /* copies of each message sent back */
    bool pause;         /* pause reading after each message */
    bool paused;
    uint8_t *want_echo; /* what the echo must read back */
    size_t want_len;
    uint8_t *echoed;    /* what it did */
    size_t echoed_len;
};

static void on_data(nk_tcp_conn *c, const void *data, size_t len, void *user)
{
    (void)c;
    struct run *r = user;
    NK_FUZZ_CHECK(r->closes == 0);
    NK_FUZZ_CHECK(r->got.count < r->cap && r->got.nbytes + len <= r->cap);
    if (len > 0)
        memcpy(r->got.bytes + r->got.nbytes, data, len);
    r->got.nbytes += len;
    r->got.lens[r->got.count++] = len;
    for (unsigned i = 0; i < r->echo; i++) {
        NK_FUZZ_CHECK(nk_tcp_conn_send(c, data, len) >= 0);
        memcpy(r->want_echo + r->want_len, data, len);
        r->want_len += len;
    }
    if (r->pause) {
        NK_FUZZ_CHECK(nk_tcp_conn_set_reading(c, false) == 0);
        r->paused = true;
    }
}

/* Read back what the connection echoed so far. */
static void drain_echo(struct run *r, int fd)
{
    if (fd < 0)
        return;
    for (;;) {
        uint8_t buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            return;
        NK_FUZZ_CHECK(r->echoed_len + (size_t)n <= r->want_len);
        memcpy(r->echoed + r->echoed_len, buf, (size_t)n);
        r->echoed_len += (size_t)n;
    }
}

/* One loop iteration without waiting, as the application would see it:
 * resume a paused read, then read the echo. */
static void step(nk_loop *loop, nk_tcp_conn *conn, struct run *r, int peer)
{
    if (r->paused && r->closes == 0) {
        /* NK_ECLOSED: closed or closing, on_close not run yet. */
        int rc = nk_tcp_conn_set_reading(conn, true);
        NK_FUZZ_CHECK(rc == 0 || rc == NK_ECLOSED);
        r->paused = false;
    }
    NK_FUZZ_CHECK(nk_loop_run(loop, NK_RUN_NOWAIT) >= 0);
    drain_echo(r, peer);
}

static void on_close(nk_tcp_conn *c, int reason, void *user)
{
    (void)c;
    struct run *r = user;
    r->closes++;
    r->reason = reason;
    r->paused = false;
}

/* Write all of @p (the reader may have closed: then stop). */
static bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false; /* EPIPE/ECONNRESET after an error close */
        p += w;
        n -= (size_t)w;
    }
    return true;
}

int nk_fuzz_conn_stream(const uint8_t *data, size_t size)
{
    struct nk_fuzz_in in = {data, size};
    unsigned mode = nk_fuzz_u8(&in);
    unsigned kind = (mode & 3u) % 3;
    unsigned limit = nk_fuzz_u8(&in);
    unsigned rsize = nk_fuzz_u8(&in);
    unsigned nch = nk_fuzz_u8(&in);
    struct nk_fuzz_chunks split = {in.p, nch & 31u, false};
    bool close_end = nch & 32u;
    if (split.n > in.left)
        split.n = in.left;
    in.p += split.n;
    in.left -= split.n;
    const uint8_t *stream = in.p;
    size_t len = in.left < 16384 ? in.left : 16384;

    nk_tcp_conn_opts opts = NK_TCP_CONN_OPTS_INIT;
    opts.frame.kind = kind == 0   ? NK_FRAME_RAW
                      : kind == 1 ? NK_FRAME_LINE
                                  : NK_FRAME_LENGTH32;
    if (kind == 1)
        opts.frame.max_line = nk_fuzz_frame_limit(limit, opts.frame.max_line);
    else
        opts.frame.max_frame =
            nk_fuzz_frame_limit(limit, opts.frame.max_frame);
    if (nk__tcp_conn_opts_check(&opts) != 0) {
        /* A zero limit for the framing in use: no server or client starts
         * with it, so there is no connection to feed. */
        NK_FUZZ_CHECK(kind == 1 ? opts.frame.max_line == 0
                                : kind == 2 && opts.frame.max_frame == 0);
        return 0;
    }
    opts.on_data = on_data;
    opts.on_close = on_close;
    static const size_t high[4] = {0, 1, 64, 1024};
    if ((mode >> 5) & 3u) {
        opts.high_watermark = high[(mode >> 5) & 3u];
        opts.low_watermark = opts.high_watermark / 2;
    }

    struct run r;
    memset(&r, 0, sizeof r);
    r.cap = len + 1;
    r.echo = close_end ? 0 : (mode >> 2) & 3u;
    r.pause = mode & 16u;
    r.got.bytes = malloc(r.cap);
    r.got.lens = malloc(r.cap * sizeof *r.got.lens);
    r.want_echo = malloc(r.cap * r.echo + 1);
    r.echoed = malloc(r.cap * r.echo + 1);
    NK_FUZZ_CHECK(r.got.bytes != NULL && r.got.lens != NULL &&
                  r.want_echo != NULL && r.echoed != NULL);
    opts.user = &r;

    nk_loop *loop = NULL;
    NK_FUZZ_CHECK(nk_loop_new(&loop) == 0);
    int sv[2];
    NK_FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                          SOCK_CLOEXEC, 0, sv) == 0);
    if (mode & 128u) {
        int one = 1; /* the kernel rounds it up to its minimum */
        NK_FUZZ_CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one,
                                 sizeof one) == 0);
    }
    struct nk__tcp_cfg cfg;
    nk__tcp_cfg_init(&cfg, loop, &opts);
    cfg.scratch_size = rsize == 255 ? 65536 : 1 + rsize;
    cfg.scratch = malloc(cfg.scratch_size);
    NK_FUZZ_CHECK(cfg.scratch != NULL);
    int err = 0;
    nk_tcp_conn *conn = nk__tcp_conn_new(&cfg, sv[0], &err);
    NK_FUZZ_CHECK(conn != NULL);

    /* Each chunk is written, then the loop runs once without waiting, so
     * the chunks reach the connection as separate reads. */
    size_t fed = 0;
    bool open = true;
    for (size_t i = 0; open && fed < len; i++) {
        size_t n = len - fed;
        if (i < split.n && split.sizes[i] < n)
            n = split.sizes[i];
        open = write_all(sv[1], stream + fed, n);
        fed += n;
        step(loop, conn, &r, sv[1]);
    }
    if (close_end) {
        close(sv[1]);
        sv[1] = -1;
    } else {
        shutdown(sv[1], SHUT_WR);
    }
    /* Everything is readable now: the close must follow in bounded work. */
    for (size_t i = 0; r.closes == 0 && i < 8 * len + 256; i++)
        step(loop, conn, &r, sv[1]);
    NK_FUZZ_CHECK(r.closes == 1);
    step(loop, conn, &r, sv[1]);
    NK_FUZZ_CHECK(r.closes == 1);

    /* All of the echo arrives unless an error cut the stream. */
    NK_FUZZ_CHECK(r.echoed_len == 0 ||
                  memcmp(r.echoed, r.want_echo, r.echoed_len) == 0);
    if (r.reason == NK_EOF)
        NK_FUZZ_CHECK(r.echoed_len == r.want_len);

    if (opts.frame.kind == NK_FRAME_RAW) {
        NK_FUZZ_CHECK(r.got.nbytes == len && r.reason == NK_EOF);
        NK_FUZZ_CHECK(len == 0 || memcmp(r.got.bytes, stream, len) == 0);
        for (size_t i = 0; i < r.got.count; i++)
            NK_FUZZ_CHECK(r.got.lens[i] > 0 &&
                          r.got.lens[i] <= cfg.scratch_size);
    } else {
        struct nk_fuzz_frames want;
        nk_fuzz_frames_feed(&opts.frame, stream, len, NULL, &want);
        int reason = want.error != 0            ? want.error
                     : want.consumed < len ? NK_EMIDFRAME
                                           : NK_EOF;
        NK_FUZZ_CHECK(r.reason == reason);
        /* The connection does not report how much it consumed. */
        r.got.error = want.error;
        r.got.consumed = want.consumed;
        NK_FUZZ_CHECK(nk_fuzz_frames_equal(&r.got, &want));
        nk_fuzz_frames_free(&want);
    }

    if (sv[1] >= 0)
        close(sv[1]);
    NK_FUZZ_CHECK(nk_loop_free(loop) == 0);
    free(cfg.scratch);
    free(r.want_echo);
    free(r.echoed);
    nk_fuzz_frames_free(&r.got);
    return 0;
}

#ifdef NK_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return nk_fuzz_conn_stream(data, size);
}
#endif
