/**
 * @file netkit/tcp.h
 * @brief TCP servers, asynchronous clients, the buffered connection they
 * share, and a blocking client for simple programs.
 *
 * A connection (nk_tcp_conn) reads what the peer sends, cuts it into
 * messages with the decoder chosen in its options (netkit/frame.h), and
 * hands each one to `on_data`. nk_tcp_conn_send() writes at once when it
 * can and queues (copies) only what the socket did not take; the loop
 * flushes the queue. A peer that does not read makes the queue grow to the
 * high watermark only: past it the connection stops reading from that peer
 * until the queue falls to the low watermark, then calls `on_drain`.
 *
 * Every handle lives on one loop and is used from that loop's thread only.
 * All functions here may be called from any callback of that loop,
 * including closing or freeing the handle whose callback is running.
 *
 * | callback   | when                                          | data               |
 * |------------|-----------------------------------------------|--------------------|
 * | on_open    | server accepted a connection                  | the connection     |
 * | on_connect | client connect finished (or failed)           | conn or NULL, code |
 * | on_data    | a message (or a raw chunk) arrived            | bytes and length (no NUL added), valid during the call |
 * | on_eof     | peer shut down its writing side (if set)      | none               |
 * | on_drain   | queue fell to the low watermark after passing the high one | none  |
 * | on_close   | the connection is gone, exactly once          | reason             |
 *
 * Close reasons given to `on_close`:
 * | reason                 | meaning                                           |
 * |------------------------|---------------------------------------------------|
 * | 0                      | closed locally (close, abort, server freed), and  |
 * |                        | everything given to send was written              |
 * | NK_EDROPPED            | closed locally with data still unsent, now        |
 * |                        | dropped: abort or server freed with a queue, or a |
 * |                        | graceful close whose `linger_ms` ran out before   |
 * |                        | the peer took everything (it is then reset)       |
 * | NK_EOF                 | the peer closed and everything queued was sent    |
 * | -ECONNRESET, -EPIPE    | the peer reset the connection                     |
 * | -ETIMEDOUT             | idle timeout                                      |
 * | NK_ELINE_TOO_LONG      | line decoder: line over `max_line`                |
 * | NK_EFRAME_TOO_LARGE    | length decoder: prefix over `max_frame`           |
 * | NK_EMIDFRAME           | the peer closed in the middle of a message (a     |
 * |                        | last line without "\n" included: not delivered)   |
 * | NK_EQUEUE_FULL         | a send would pass the hard cap `max_queue`        |
 * | other negative codes   | a system error (-ENOMEM while queueing, ...)      |
 */
#ifndef NETKIT_TCP_H
#define NETKIT_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/addr.h"
#include "netkit/export.h"
#include "netkit/frame.h"
#include "netkit/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief One TCP connection (opaque), accepted or connected. */
typedef struct nk_tcp_conn nk_tcp_conn;
/** @brief A listening server (opaque). */
typedef struct nk_tcp_server nk_tcp_server;
/** @brief A connect in progress (opaque); gone after its on_connect. */
typedef struct nk_tcp_client nk_tcp_client;
/** @brief A blocking client connection (opaque). */
typedef struct nk_tcp_sync nk_tcp_sync;

/** @brief Server: a new connection is ready; set its user data here. */
typedef void (*nk_tcp_open_cb)(nk_tcp_conn *conn, void *user);
/** @brief A message (line without its ending, frame payload, or raw chunk).
 * @p data is valid during the call only, and is not NUL-terminated, even
 * for a line: use @p len, and copy the bytes to keep them or to make a C
 * string. A line comes without its "\n", and without the "\r" of a
 * "\r\n" ending; an empty line has @p len 0. */
typedef void (*nk_tcp_data_cb)(nk_tcp_conn *conn, const void *data,
                               size_t len, void *user);
/** @brief The peer will send nothing more; the connection may still send. */
typedef void (*nk_tcp_eof_cb)(nk_tcp_conn *conn, void *user);
/** @brief The write queue drained to the low watermark; reading resumed. */
typedef void (*nk_tcp_drain_cb)(nk_tcp_conn *conn, void *user);
/** @brief The connection is closed (see the reason table); @p conn is
 * freed when this returns. */
typedef void (*nk_tcp_close_cb)(nk_tcp_conn *conn, int reason, void *user);
/**
 * @brief Client: the connect finished. On success @p status is 0 and
 * @p conn is the new connection (owned by the caller from now on); on
 * failure @p conn is NULL and @p status is -ECONNREFUSED, -ETIMEDOUT,
 * -ENETUNREACH, -ENOMEM, ... @p client is freed when this returns.
 */
typedef void (*nk_tcp_connect_cb)(nk_tcp_client *client, nk_tcp_conn *conn,
                                  int status, void *user);

/** @brief How a connection frames, buffers and times out. */
typedef struct nk_tcp_conn_opts {
    nk_frame_opts frame;      /**< Decoder; default raw bytes. */
    size_t high_watermark;    /**< Stop reading above this many queued bytes (256 KiB). */
    size_t low_watermark;     /**< Resume at or below this (64 KiB). */
    size_t max_queue;         /**< Hard cap: a send past it closes with NK_EQUEUE_FULL; 0 = none. */
    uint64_t idle_timeout_ms; /**< Close with -ETIMEDOUT after this long without I/O; 0 = never. */
    uint64_t linger_ms;       /**< Longest graceful close, counted from the close call: flush, then wait for the peer's EOF; past it the connection is reset (NK_EDROPPED if data was left). 0: close at once, dropping any queue (5000). */
    nk_tcp_data_cb on_data;   /**< Messages; NULL discards them. */
    nk_tcp_eof_cb on_eof;     /**< NULL: the peer's EOF closes (NK_EOF) once the queue is sent. */
    nk_tcp_drain_cb on_drain; /**< Optional. */
    nk_tcp_close_cb on_close; /**< Optional, but the only way to learn the reason. */
    void *user;               /**< Initial user data of each connection. */
} nk_tcp_conn_opts;

/** @brief Connection defaults. */
#define NK_TCP_CONN_OPTS_INIT                                                 \
    {                                                                         \
        .frame = NK_FRAME_OPTS_INIT, .high_watermark = 262144,                \
        .low_watermark = 65536, .max_queue = 0, .idle_timeout_ms = 0,         \
        .linger_ms = 5000, .on_data = NULL, .on_eof = NULL,                   \
        .on_drain = NULL, .on_close = NULL, .user = NULL                      \
    }

/** @brief Server options. */
typedef struct nk_tcp_server_opts {
    int backlog;             /**< Accept queue length for listen() (128): not a connection limit; 0 = SOMAXCONN. */
    bool reuseport;          /**< SO_REUSEPORT, for one listener per loop thread. */
    int v6only;              /**< IPV6_V6ONLY: -1 system default, 0 off, 1 on (nothing else). */
    bool nodelay;            /**< TCP_NODELAY on accepted connections (true). */
    size_t max_connections;  /**< Beyond it, accept and close at once (`rejected`); 0 = no cap. */
    unsigned accept_batch;   /**< Accepts per listener wakeup (64); 1 = one per iteration. */
    bool start_paused;       /**< Listen without accepting until nk_tcp_server_resume(). */
    uint64_t accept_retry_ms;/**< Out of fds with nothing to shed: retry accepting after (100); not 0, which would spin. */
    size_t read_chunk;       /**< Bytes read per recv, one buffer shared by all connections (65536); 1 byte to 1 GiB. */
    nk_tcp_open_cb on_open;  /**< Optional: called with conn.user as user data. */
    nk_tcp_conn_opts conn;   /**< Applied to every accepted connection. */
} nk_tcp_server_opts;

/** @brief Server defaults. */
#define NK_TCP_SERVER_OPTS_INIT                                               \
    {                                                                         \
        .backlog = 128, .reuseport = false, .v6only = -1, .nodelay = true,    \
        .max_connections = 0, .accept_batch = 64, .start_paused = false,      \
        .accept_retry_ms = 100, .read_chunk = 65536, .on_open = NULL,         \
        .conn = NK_TCP_CONN_OPTS_INIT                                         \
    }

/** @brief Client options. */
typedef struct nk_tcp_client_opts {
    uint64_t connect_timeout_ms; /**< -ETIMEDOUT after this long (10000); 0 = the system's. */
    bool nodelay;                /**< TCP_NODELAY (true). */
    size_t read_chunk;           /**< Read buffer of the connection (65536); 1 byte to 1 GiB. */
    nk_tcp_connect_cb on_connect;/**< Required. Called with conn.user. */
    nk_tcp_conn_opts conn;       /**< For the connection once connected. */
} nk_tcp_client_opts;

/** @brief Client defaults. */
#define NK_TCP_CLIENT_OPTS_INIT                                               \
    {                                                                         \
        .connect_timeout_ms = 10000, .nodelay = true, .read_chunk = 65536,    \
        .on_connect = NULL, .conn = NK_TCP_CONN_OPTS_INIT                     \
    }

/** @brief Counters of one connection. */
typedef struct nk_tcp_conn_stats {
    uint64_t bytes_in;    /**< Bytes received. */
    uint64_t bytes_out;   /**< Bytes written to the socket. */
    size_t queued;        /**< Bytes in the write queue now. */
    size_t peak_queued;   /**< Largest queue so far. */
    size_t buffered;      /**< Bytes of an incomplete message held now. */
    bool reading_paused;  /**< Paused by the high watermark. */
} nk_tcp_conn_stats;

/** @brief Counters of a server. */
typedef struct nk_tcp_server_stats {
    uint64_t accepted;      /**< Connections handed to the application. */
    uint64_t rejected;      /**< Closed at once over max_connections. */
    uint64_t shed;          /**< Closed at once because the process was out of fds. */
    uint64_t accept_pauses; /**< Times accepting paused (out of fds, nothing to shed). */
    uint64_t accept_errors; /**< Other accept failures (aborted handshakes, ENOMEM). */
    size_t active;          /**< Open connections now. */
    uint64_t closed_eof;    /**< Closes by reason: NK_EOF. */
    uint64_t closed_reset;  /**< -ECONNRESET or -EPIPE. */
    uint64_t closed_timeout;/**< -ETIMEDOUT. */
    uint64_t closed_frame;  /**< NK_ELINE_TOO_LONG, NK_EFRAME_TOO_LARGE, NK_EMIDFRAME. */
    uint64_t closed_queue;  /**< NK_EQUEUE_FULL. */
    uint64_t closed_local;  /**< 0 and NK_EDROPPED. */
    uint64_t closed_other;  /**< Any other reason. */
    uint64_t read_pauses;   /**< Times a connection stopped reading at the high watermark. */
} nk_tcp_server_stats;

/* ---- server ---- */

/**
 * @brief Listen on @p addr and accept on @p loop.
 *
 * Port 0 picks a free port: read it back with nk_tcp_server_port(). The
 * options are copied.
 * @param loop The loop that accepts and runs the connections.
 * @param addr The address to listen on.
 * @param opts Options and callbacks (copied).
 * @param out  Receives the server.
 * @return 0, NK_EINVAL (NULL, empty address, low watermark above the high
 * one, unknown frame kind, a zero `max_line` or `max_frame` for the frame
 * kind in use, read_chunk 0 or over 1 GiB, accept_batch or
 * accept_retry_ms 0, negative backlog, v6only not -1, 0 or 1),
 * -EADDRINUSE, -EACCES, -EMFILE, -ENOMEM, or another -errno from
 * socket/bind/listen.
 */
NK_API int nk_tcp_server_start(nk_loop *loop, const nk_addr *addr,
                               const nk_tcp_server_opts *opts,
                               nk_tcp_server **out);

/**
 * @brief Stop listening, close every connection at once (each gets
 * on_close on the next iteration, with reason 0, or NK_EDROPPED if data
 * was still queued on it), and free the server afterwards.
 * Safe from any callback, on_close of its own connections included; NULL
 * is ignored. @p srv is invalid afterwards.
 * @param srv The server.
 */
NK_API void nk_tcp_server_free(nk_tcp_server *srv);

/** @brief Stop accepting (connections wait in the kernel's backlog).
 * @param srv The server.
 * @return 0, NK_EINVAL, NK_ECLOSED. */
NK_API int nk_tcp_server_pause(nk_tcp_server *srv);

/** @brief Accept again after nk_tcp_server_pause() or `start_paused`.
 * @param srv The server.
 * @return 0, NK_EINVAL, NK_ECLOSED, or a -errno from the loop. */
NK_API int nk_tcp_server_resume(nk_tcp_server *srv);

/** @brief The port listened on.
 * @param srv The server.
 * @return The port (the chosen one after port 0), or NK_EINVAL. */
NK_API int nk_tcp_server_port(const nk_tcp_server *srv);

/** @brief The address listened on.
 * @param srv The server.
 * @param out Receives the address.
 * @return 0, NK_EINVAL. */
NK_API int nk_tcp_server_addr(const nk_tcp_server *srv, nk_addr *out);

/** @brief Copy the server's counters into @p out.
 * @param srv The server.
 * @param out Receives the counters. */
NK_API void nk_tcp_server_get_stats(const nk_tcp_server *srv,
                                    nk_tcp_server_stats *out);

/* ---- asynchronous client ---- */

/**
 * @brief Connect to @p addr on @p loop; `on_connect` reports the result
 * on a later iteration, never from inside this call.
 * @param loop The loop.
 * @param addr The address to connect to.
 * @param opts Options and callbacks (copied).
 * @param out Receives the pending connect (may be NULL if not needed);
 * valid until on_connect returns or nk_tcp_client_cancel().
 * @return 0 (then on_connect is called exactly once), or NK_EINVAL (NULL,
 * no on_connect, empty address, read_chunk 0 or over 1 GiB, bad connection
 * options as for nk_tcp_server_start()), -EMFILE, -ENFILE, -ENOMEM, -ENOBUFS,
 * -EAFNOSUPPORT (then nothing is called). Refusals and timeouts go to
 * on_connect.
 */
NK_API int nk_tcp_client_connect(nk_loop *loop, const nk_addr *addr,
                                 const nk_tcp_client_opts *opts,
                                 nk_tcp_client **out);

/** @brief Give up a pending connect; on_connect is not called. Safe from
 * any callback; NULL is ignored.
 * @param client The pending connect. */
NK_API void nk_tcp_client_cancel(nk_tcp_client *client);

/* ---- connection ---- */

/**
 * @brief Send @p len bytes (copied if they cannot be written at once).
 *
 * Writes directly when nothing is queued; queues the rest; the loop sends
 * it in order. When this fails with a system error the connection is
 * closing and on_close will report the same code.
 * @param conn The connection.
 * @param data The bytes.
 * @param len  How many.
 * @return 0; 1 when the queue is now above the high watermark (stop
 * producing until on_drain); NK_EINVAL (NULL, or @p len over PTRDIFF_MAX:
 * nothing is sent); NK_ECLOSED (closed, closing, or
 * after nk_tcp_conn_shutdown()); -EPIPE or -ECONNRESET (the peer is gone);
 * NK_EQUEUE_FULL (the hard cap: the connection closes); -ENOMEM (nothing
 * taken if nothing was written, otherwise the connection closes).
 */
NK_API int nk_tcp_conn_send(nk_tcp_conn *conn, const void *data, size_t len);

/**
 * @brief Half-close: once the queue is sent, shut down the writing side
 * (the peer reads EOF) and keep reading. When both sides have finished the
 * connection closes with reason NK_EOF.
 * @param conn The connection.
 * @return 0, NK_EINVAL, NK_ECLOSED.
 */
NK_API int nk_tcp_conn_shutdown(nk_tcp_conn *conn);

/**
 * @brief Graceful close: no more callbacks but on_close; the queue is
 * sent, the writing side shut down, and input discarded until the peer
 * closes, so the peer receives everything.
 *
 * The whole close is bounded by `linger_ms` from this call, whatever the
 * peer does (never reads, keeps sending): when it runs out, the connection
 * is reset and its memory released. on_close follows with reason 0 (all
 * sent), NK_EDROPPED (the deadline passed with data still queued or not
 * yet taken by the peer), or the error that stopped the flush.
 * Safe from any callback; closing twice does nothing.
 * @param conn The connection.
 */
NK_API void nk_tcp_conn_close(nk_tcp_conn *conn);

/**
 * @brief Abortive close: drop the queue and reset the connection (the peer
 * sees ECONNRESET). on_close follows with reason 0, or NK_EDROPPED if data
 * was still queued. Safe from any callback.
 * @param conn The connection.
 */
NK_API void nk_tcp_conn_abort(nk_tcp_conn *conn);

/**
 * @brief Pause or resume reading (application flow control, independent
 * of the watermarks).
 *
 * Pausing from inside the data callback stops further data callbacks until
 * resumed; what was already read (TCP: complete messages already decoded
 * in the buffer; UDP: the rest of a recvmmsg batch) is kept and delivered
 * first, in order, after resume; nothing is lost or reordered, and
 * counters add up. Held messages are delivered from the loop after the
 * resume (never from inside this call), even if the peer sends nothing
 * more; a peer's EOF read meanwhile comes after them, and also waits for
 * the resume.
 * @param conn The connection.
 * @param on   true to read, false to pause.
 * @return 0, NK_EINVAL, NK_ECLOSED.
 */
NK_API int nk_tcp_conn_set_reading(nk_tcp_conn *conn, bool on);

/** @brief Set the user data passed to this connection's callbacks.
 * @param conn The connection.
 * @param user The new user data. */
NK_API void nk_tcp_conn_set_user(nk_tcp_conn *conn, void *user);

/** @brief The connection's user data.
 * @param conn The connection.
 * @return The user data last set. */
NK_API void *nk_tcp_conn_user(const nk_tcp_conn *conn);

/** @brief The peer's address.
 *
 * Inside a server's on_open it is the address accept() returned, even if
 * the peer has already reset the connection: record it there to log it
 * later (idle connections do not keep it, to stay small).
 * @param conn The connection.
 * @param out  Receives the address.
 * @return 0, NK_EINVAL, NK_ECLOSED, -errno
 * (-ENOTCONN after a reset, outside on_open). */
NK_API int nk_tcp_conn_peer(const nk_tcp_conn *conn, nk_addr *out);

/** @brief The local address.
 * @param conn The connection.
 * @param out  Receives the address.
 * @return 0, NK_EINVAL, NK_ECLOSED, -errno. */
NK_API int nk_tcp_conn_local(const nk_tcp_conn *conn, nk_addr *out);

/** @brief Copy the connection's counters into @p out.
 * @param conn The connection.
 * @param out  Receives the counters. */
NK_API void nk_tcp_conn_get_stats(const nk_tcp_conn *conn,
                                  nk_tcp_conn_stats *out);

/** @brief The socket, for options: do not read, write or close it.
 * @param conn The connection.
 * @return The fd, or NK_ECLOSED. */
NK_API int nk_tcp_conn_fd(const nk_tcp_conn *conn);

/** @brief The loop the connection runs on.
 * @param conn The connection.
 * @return The loop. */
NK_API nk_loop *nk_tcp_conn_loop(const nk_tcp_conn *conn);

/* ---- blocking client ---- */

/**
 * @brief Connect, waiting at most @p timeout_ms (< 0: no limit).
 *
 * Blocking calls for simple programs; no loop needed. Each call retries
 * EINTR against a deadline on the monotonic clock. Not for loop callbacks.
 * @param addr       The address to connect to.
 * @param timeout_ms The longest wait in milliseconds; < 0: no limit.
 * @param out        Receives the connection (close it with
 *                   nk_tcp_sync_close()).
 * @return 0, NK_EINVAL, -ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH, -EMFILE,
 * -ENOMEM, or another -errno.
 */
NK_API int nk_tcp_sync_connect(const nk_addr *addr, int timeout_ms,
                               nk_tcp_sync **out);

/** @brief Send all @p len bytes within @p timeout_ms in total.
 * @param s          The connection.
 * @param buf        The bytes.
 * @param len        How many.
 * @param timeout_ms The longest wait in milliseconds; < 0: no limit.
 * @return 0, -ETIMEDOUT, -EPIPE, -ECONNRESET, NK_EINVAL (also for @p len
 * over PTRDIFF_MAX), -errno. SIGPIPE is never raised. */
NK_API int nk_tcp_sync_send_all(nk_tcp_sync *s, const void *buf, size_t len,
                                int timeout_ms);

/** @brief Receive what is available (at least 1 byte, at most @p cap,
 * clamped to INT_MAX), waiting at most @p timeout_ms.
 * @param s          The connection.
 * @param buf        Receives the bytes.
 * @param cap        Size of @p buf.
 * @param timeout_ms The longest wait in milliseconds; < 0: no limit.
 * @return Bytes received (> 0), NK_EOF, -ETIMEDOUT, -ECONNRESET, NK_EINVAL. */
NK_API int nk_tcp_sync_recv(nk_tcp_sync *s, void *buf, size_t cap,
                            int timeout_ms);

/** @brief Receive exactly @p len bytes within @p timeout_ms in total.
 * @param s          The connection.
 * @param buf        Receives the bytes.
 * @param len        How many.
 * @param timeout_ms The longest wait in milliseconds; < 0: no limit.
 * @return 0, NK_EOF (closed before the first byte), NK_EMIDFRAME (closed
 * after some), -ETIMEDOUT, -ECONNRESET, NK_EINVAL (also for @p len over
 * PTRDIFF_MAX). */
NK_API int nk_tcp_sync_recv_exact(nk_tcp_sync *s, void *buf, size_t len,
                                  int timeout_ms);

/**
 * @brief Receive one line ("\n" or "\r\n" ending, removed) into @p buf as
 * a NUL-terminated string, within @p timeout_ms.
 * A partial line stays buffered across a timeout, and bytes after the
 * line are kept for the next call (recv and recv_exact return them first).
 * @param s          The connection.
 * @param buf        Receives the line and a NUL.
 * @param cap        Size of @p buf.
 * @param timeout_ms The longest wait in milliseconds; < 0: no limit.
 * @return Its length; NK_ELINE_TOO_LONG (the line does not fit in @p cap - 1
 * bytes; it stays buffered, so a larger buffer can still take it), NK_EOF,
 * NK_EMIDFRAME (EOF after a partial line), -ETIMEDOUT, -ECONNRESET,
 * -ENOMEM, NK_EINVAL.
 */
NK_API int nk_tcp_sync_recv_line(nk_tcp_sync *s, char *buf, size_t cap,
                                 int timeout_ms);

/** @brief Shut down the writing side (the peer reads EOF).
 * @param s The connection.
 * @return 0, NK_EINVAL, -errno. */
NK_API int nk_tcp_sync_shutdown(nk_tcp_sync *s);

/** @brief The socket.
 * @param s The connection.
 * @return The fd, or NK_EINVAL. */
NK_API int nk_tcp_sync_fd(const nk_tcp_sync *s);

/** @brief Close and free. NULL is ignored.
 * @param s The connection. */
NK_API void nk_tcp_sync_close(nk_tcp_sync *s);

#ifdef __cplusplus
}
#endif
#endif
