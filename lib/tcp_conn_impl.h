/* The layout of a connection, shared by tcp_conn.c (its behaviour) and
 * tcp_conn_info.c (its accessors); nothing else includes this. */
#ifndef NK_LIB_TCP_CONN_IMPL_H
#define NK_LIB_TCP_CONN_IMPL_H

#include "tcp_conn.h"

enum {
    C_PAUSED_WM = 1u << 0,  /* queue above the high watermark */
    C_PAUSED_APP = 1u << 1, /* nk_tcp_conn_set_reading(false) */
    C_EOF = 1u << 2,        /* the peer finished sending */
    C_SHUT_WANTED = 1u << 3,/* shut down writing once the queue is sent */
    C_WR_SHUT = 1u << 4,    /* writing side shut down */
    C_CLOSING = 1u << 5,    /* graceful close: flushing, then draining */
    C_DRAINING = 1u << 6,   /* flushed and shut: discarding until EOF */
    C_DEAD = 1u << 7,       /* fd closed, on_close pending */
    C_HELD = 1u << 8,       /* messages or the EOF read before a pause */
};

/* The incomplete message carried between reads, or the messages a pause
 * holds; freed when empty. */
struct rbuf {
    size_t len, cap;
    uint8_t data[];
};

/* Bytes the socket did not take; allocated only while it holds some. */
struct wq {
    size_t head, len, cap; /* pending bytes are data[head, len) */
    uint8_t data[];
};

struct nk_tcp_conn {
    nk_io io;
    nk_timer timer;          /* idle timeout; linger once closing */
    struct nk__tcp_cfg *cfg;
    void *user;
    nk_tcp_conn *prev, *next;/* cfg->live; next also links cfg->closed */
    struct rbuf *rbuf;
    struct wq *wq;
    uint64_t bytes_in, bytes_out;
    uint64_t last_active;    /* loop time of the last read or write */
    size_t peak_queued;
    unsigned flags;
    int reason;
};

/* Bytes in the write queue. */
static inline size_t nk__conn_queued(const nk_tcp_conn *c)
{
    return c->wq ? c->wq->len - c->wq->head : 0;
}

/* Bytes of the incomplete (or held) messages. */
static inline size_t nk__conn_buffered(const nk_tcp_conn *c)
{
    return c->rbuf ? c->rbuf->len : 0;
}

#endif
