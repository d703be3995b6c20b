/* Fuzz target for a TCP connection's receive path (lib/tcp_conn.c): a
 * connection adopted from one end of a socketpair on a real loop, the
 * fuzzed bytes written into the other end in fuzzed chunks, read with a
 * fuzzed read size, then end of stream.
 *
 * Input: byte 0 the framing (raw, line, length prefix), byte 1 its limit
 * (see nk_fuzz_frame_limit), byte 2 the read size (1..255, or 64 KiB for
 * 255), byte 3 the number of write chunk sizes that follow (0..31; bit 5:
 * close the writing end instead of shutting it down), then the stream.
 *
 * Invariants: the messages delivered are exactly those the pure decoder
 * gives for the whole stream (raw: the bytes, in order); the close reason
 * is the decoder's error when it errs, NK_EMIDFRAME when the stream ends
 * inside a message, NK_EOF otherwise; on_close comes exactly once, within
 * a bounded number of loop iterations; the loop frees cleanly after. */
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
}

static void on_close(nk_tcp_conn *c, int reason, void *user)
{
    (void)c;
    struct run *r = user;
    r->closes++;
    r->reason = reason;
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
    unsigned kind = nk_fuzz_u8(&in) % 3;
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
    opts.on_data = on_data;
    opts.on_close = on_close;

    struct run r;
    memset(&r, 0, sizeof r);
    r.cap = len + 1;
    r.got.bytes = malloc(r.cap);
    r.got.lens = malloc(r.cap * sizeof *r.got.lens);
    NK_FUZZ_CHECK(r.got.bytes != NULL && r.got.lens != NULL);
    opts.user = &r;

    nk_loop *loop = NULL;
    NK_FUZZ_CHECK(nk_loop_new(&loop) == 0);
    int sv[2];
    NK_FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
                                          SOCK_CLOEXEC, 0, sv) == 0);
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
        NK_FUZZ_CHECK(nk_loop_run(loop, NK_RUN_NOWAIT) >= 0);
    }
    if (close_end) {
        close(sv[1]);
        sv[1] = -1;
    } else {
        shutdown(sv[1], SHUT_WR);
    }
    /* Everything is readable now: the close must follow in bounded work. */
    for (size_t i = 0; r.closes == 0 && i < 4 * len + 64; i++)
        NK_FUZZ_CHECK(nk_loop_run(loop, NK_RUN_NOWAIT) >= 0);
    NK_FUZZ_CHECK(r.closes == 1);
    NK_FUZZ_CHECK(nk_loop_run(loop, NK_RUN_NOWAIT) >= 0);
    NK_FUZZ_CHECK(r.closes == 1);

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
    nk_fuzz_frames_free(&r.got);
    return 0;
}

#ifdef NK_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return nk_fuzz_conn_stream(data, size);
}
#endif
