/**
 * @file netkit/udp.h
 * @brief UDP endpoints: send and receive datagrams, one by one or in
 * batches, on a loop or with blocking calls.
 *
 * An endpoint is one datagram socket, bound (nk_udp_endpoint_bind(), port 0
 * allowed) or connected to one peer (nk_udp_endpoint_connect()). IPv4 and
 * IPv6: an endpoint bound to `[::]` is dual-stack, and IPv4 senders reaching
 * it are reported as plain IPv4 addresses (<tt>\::ffff:1.2.3.4</tt> becomes
 * `1.2.3.4`), so one host has one address whichever way it came.
 *
 * On a loop, the receive callback runs once per datagram. The endpoint
 * reads up to `recv_batch` datagrams per system call (recvmmsg() where the
 * system has it) and at most `max_per_wakeup` per readiness, so one busy
 * endpoint cannot starve the rest of the loop.
 *
 * | event (nk_udp_recv_event) | when                         | fields set           |
 * |---------------------------|------------------------------|----------------------|
 * | datagram, `error == 0`    | one datagram arrived         | from, data, len, size, truncated |
 * | error, `error < 0`        | the system reported an error | error, from (the destination it concerns, when known, else NULL) |
 *
 * A datagram larger than `max_datagram` is delivered with its first
 * `max_datagram` bytes, `truncated` set and `size` its real size: it is
 * never passed on as if it were whole. A zero-length datagram is delivered
 * with `len == 0`. Errors that UDP reports late (an ICMP "port unreachable"
 * after a send to a closed port) come as an error event, `-ECONNREFUSED`:
 * on a connected endpoint always, on an unconnected one when
 * `recv_errors` is set (Linux), with `from` naming the destination that
 * refused.
 *
 * Ownership: an endpoint belongs to the application from the call that
 * creates it until nk_udp_endpoint_close(), the rule of every handle (see
 * netkit/loop.h): after the close the pointer is invalid, as after free().
 * A second close while the first is still pending (the endpoint closed from
 * inside its own callback, freed when that returns) is a harmless no-op,
 * and the other calls on it return NK_ECLOSED until the callback returns.
 */
#ifndef NETKIT_UDP_H
#define NETKIT_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/addr.h"
#include "netkit/export.h"
#include "netkit/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A UDP socket (opaque). */
typedef struct nk_udp_endpoint nk_udp_endpoint;

/** @brief Largest payload of one IPv4 UDP datagram (65535 - 20 - 8). */
#define NK_UDP_MAX_IPV4 65507
/** @brief Largest payload of one IPv6 UDP datagram without jumbograms. */
#define NK_UDP_MAX_IPV6 65527

/** @brief Endpoint options. Start from NK_UDP_ENDPOINT_OPTS_INIT. */
typedef struct nk_udp_endpoint_opts {
    /** Receive buffer per datagram, bytes (1 to 65536). Larger datagrams
     * are delivered truncated and flagged. Default 65536: nothing is
     * truncated. */
    size_t max_datagram;
    /** Datagrams per receive system call (1 to 1024). Default 32. The
     * endpoint reserves recv_batch x max_datagram bytes of buffer (2 MiB by
     * default; pages are touched only as datagrams fill them): lower
     * either for many small endpoints. */
    unsigned recv_batch;
    /** Datagrams per send system call in nk_udp_endpoint_send_batch()
     * (1 to 1024). Default 256. */
    unsigned send_batch;
    /** Datagrams handled per loop wakeup at most. Default 64. */
    unsigned max_per_wakeup;
    /** IPV6_V6ONLY for an IPv6 endpoint: -1 system default, 0 dual-stack,
     * 1 IPv6 only. Default 0 (dual-stack). */
    int v6only;
    /** SO_REUSEADDR. Default false: a second endpoint on a bound port is an
     * error (-EADDRINUSE), not a silent sharer. */
    bool reuseaddr;
    /** SO_REUSEPORT (load balancing between sockets). Default false. */
    bool reuseport;
    /** SO_BROADCAST: allow sending to broadcast addresses. Default false. */
    bool broadcast;
    /** Report ICMP errors on an unconnected endpoint as error events naming
     * the destination (Linux IP_RECVERR; ignored elsewhere). Default false. */
    bool recv_errors;
    /** SO_SNDBUF / SO_RCVBUF in bytes, 0 = system default. */
    int sndbuf;
    int rcvbuf; /**< See sndbuf. */
} nk_udp_endpoint_opts;

/** @brief Default endpoint options. */
#define NK_UDP_ENDPOINT_OPTS_INIT                                             \
    {                                                                         \
        .max_datagram = 65536, .recv_batch = 32, .send_batch = 256,           \
        .max_per_wakeup = 64, .v6only = 0, .reuseaddr = false,                \
        .reuseport = false, .broadcast = false, .recv_errors = false,         \
        .sndbuf = 0, .rcvbuf = 0                                              \
    }

/** @brief One received datagram, or an error (see the table above). */
typedef struct nk_udp_recv_event {
    /** 0 for a datagram; a negative code for an asynchronous error. */
    int error;
    /** Sender (normalized: IPv4-mapped becomes IPv4); for an error, the
     * destination it concerns, or NULL when unknown. */
    const nk_addr *from;
    /** The bytes received (valid during the callback only; not
     * NUL-terminated: use `len`). */
    const void *data;
    /** Bytes in @c data (at most max_datagram). */
    size_t len;
    /** The datagram's real size; greater than @c len when truncated. */
    size_t size;
    /** The datagram was larger than max_datagram: @c data is its start. */
    bool truncated;
} nk_udp_recv_event;

/**
 * @brief Called once per datagram or error, on the loop thread.
 *
 * The endpoint may be closed from here: that is a close, not a loss; the
 * datagrams it had read and not yet delivered are discarded with it, and no
 * callback runs afterwards. It may be paused from here
 * (nk_udp_endpoint_set_receiving()): see there what happens to the rest of
 * the batch.
 */
typedef void (*nk_udp_recv_cb)(nk_udp_endpoint *ep, const nk_udp_recv_event *ev,
                               void *user);

/** @brief What a blocking nk_udp_endpoint_recv() got. */
typedef struct nk_udp_recv_info {
    size_t len;     /**< Bytes stored in the caller's buffer. */
    size_t size;    /**< Real size of the datagram. */
    bool truncated; /**< size > len: the buffer was too small. */
} nk_udp_recv_info;

/** @brief One datagram of a batch send. */
typedef struct nk_udp_msg {
    const void *data;  /**< Payload (copied by the system during the call). */
    size_t len;        /**< Payload bytes (0 allowed). */
    const nk_addr *to; /**< Destination; NULL on a connected endpoint. */
    int result;        /**< Out: bytes sent, or a negative code. */
} nk_udp_msg;

/** @brief Counters of an endpoint (see nk_udp_endpoint_get_stats()). */
typedef struct nk_udp_endpoint_stats {
    uint64_t datagrams_in;  /**< Datagrams received (truncated included). */
    uint64_t bytes_in;      /**< Payload bytes received (stored part). */
    uint64_t truncated;     /**< Datagrams larger than max_datagram. */
    uint64_t datagrams_out; /**< Datagrams the system accepted for sending. */
    uint64_t bytes_out;     /**< Their payload bytes. */
    uint64_t send_drops;    /**< Sends refused for lack of buffer space
                                 (-EAGAIN, -ENOBUFS): the datagram is dropped,
                                 as the network would. */
    uint64_t send_errors;   /**< Sends failed for other reasons. */
    uint64_t async_errors;  /**< Asynchronous errors reported (ICMP). */
    uint64_t recv_calls;    /**< Receive system calls made. */
    uint64_t send_calls;    /**< Send system calls made. */
} nk_udp_endpoint_stats;

/**
 * @brief Open an endpoint bound to @p bind_addr (port 0: the system picks;
 * read it back with nk_udp_endpoint_local_addr()).
 *
 * With a @p loop and a @p cb, datagrams are delivered to @p cb as they
 * arrive. With @p loop NULL (or @p cb NULL), use nk_udp_endpoint_recv().
 * @param loop      The loop, or NULL for blocking use only.
 * @param bind_addr Local address; `[::]` is dual-stack unless opts say not.
 * @param opts      Options (copied), NULL for the defaults.
 * @param cb        Receive callback, or NULL.
 * @param user      Passed to @p cb.
 * @param out       Receives the endpoint.
 * @return 0, NK_EINVAL (NULL address or out, option out of range),
 * -EADDRINUSE, -EACCES, -EADDRNOTAVAIL, -EMFILE, -ENOMEM, or another -errno.
 * Loop thread only; may be called from callbacks.
 */
NK_API int nk_udp_endpoint_bind(nk_loop *loop, const nk_addr *bind_addr,
                                const nk_udp_endpoint_opts *opts,
                                nk_udp_recv_cb cb, void *user,
                                nk_udp_endpoint **out);

/**
 * @brief Open an endpoint connected to @p peer: bound to an ephemeral port
 * of the peer's family, sending to @p peer by default and receiving only
 * from it. An ICMP "port unreachable" comes back as -ECONNREFUSED (error
 * event, or from nk_udp_endpoint_recv() and the next send).
 * @param loop The loop, or NULL for blocking use only.
 * @param peer The peer's address.
 * @param opts Options (copied), NULL for the defaults.
 * @param cb   Receive callback, or NULL.
 * @param user Passed to @p cb.
 * @param out  Receives the endpoint.
 * @return As nk_udp_endpoint_bind(), plus -ENETUNREACH and similar from
 * connect().
 */
NK_API int nk_udp_endpoint_connect(nk_loop *loop, const nk_addr *peer,
                                   const nk_udp_endpoint_opts *opts,
                                   nk_udp_recv_cb cb, void *user,
                                   nk_udp_endpoint **out);

/**
 * @brief Close the socket and free the endpoint. Safe from any callback,
 * the endpoint's own included (it is then freed after the callback
 * returns); no callback runs afterwards. NULL is ignored. This call ends
 * the handle (see the ownership rule above): a second call while the first
 * is pending does nothing; after that the pointer must not be used.
 * @param ep The endpoint.
 */
NK_API void nk_udp_endpoint_close(nk_udp_endpoint *ep);

/**
 * @brief Send one datagram now (the system copies it before returning).
 * @param ep   The endpoint.
 * @param data The datagram's bytes.
 * @param len  Its length (0 sends an empty datagram).
 * @param to Destination; NULL on a connected endpoint. An IPv4 address is
 *           mapped for a dual-stack IPv6 endpoint.
 * @return @p len, or: -EMSGSIZE (larger than the family allows, e.g.
 * 65508 bytes to IPv4), -EAGAIN/-ENOBUFS (no buffer space: dropped and
 * counted in send_drops; never queued), -ECONNREFUSED (a connected peer
 * refused an earlier datagram), -EDESTADDRREQ (no @p to, not connected),
 * -EAFNOSUPPORT (IPv6 destination from an IPv4 endpoint), NK_EINVAL,
 * NK_ECLOSED, or another -errno. Never blocks. Loop thread only; safe from
 * callbacks.
 */
NK_API int nk_udp_endpoint_send_to(nk_udp_endpoint *ep, const void *data,
                                   size_t len, const nk_addr *to);

/**
 * @brief Send many datagrams with as few system calls as the system allows
 * (sendmmsg(), up to `send_batch` per call).
 *
 * Every message gets its own `result`: bytes sent or a negative code
 * (as nk_udp_endpoint_send_to()). When the system stops part-way through a
 * batch, sending resumes at the first unsent datagram; a datagram that
 * fails is reported in its `result` and counted, never silently lost. A
 * refusal left over from an earlier datagram (-ECONNREFUSED from a late
 * ICMP error) is retried once, since it concerns another destination.
 * @param ep    The endpoint.
 * @param msgs  The datagrams; each one's `result` is set.
 * @param count How many.
 * @return The number of datagrams sent (result >= 0), or NK_EINVAL (NULL
 * @p ep, NULL @p msgs with a count, @p count over INT_MAX) / NK_ECLOSED
 * (then no result is set). Never blocks.
 */
NK_API int nk_udp_endpoint_send_batch(nk_udp_endpoint *ep, nk_udp_msg *msgs,
                                      size_t count);

/**
 * @brief Receive one datagram, waiting up to @p timeout_ms (-1: forever,
 * 0: do not wait). Works with or without a loop; on a loop, datagrams
 * taken here are not given to the callback, and datagrams kept by a pause
 * (see nk_udp_endpoint_set_receiving()) come first.
 * @param ep         The endpoint.
 * @param buf,len    Where to store it.
 * @param timeout_ms The longest wait in milliseconds (-1: forever, 0: none).
 * @param from     Receives the sender (normalized), or NULL.
 * @param info     Receives sizes and the truncated flag, or NULL.
 * @return Bytes stored (0 for an empty datagram), or NK_ETRUNC (the
 * datagram was larger than @p len: @p buf holds its start, @p info its
 * real size), -ETIMEDOUT, -ECONNREFUSED (connected endpoint: the peer's
 * port is closed), NK_EINVAL (NULL @p ep, NULL @p buf with a length,
 * @p len over INT_MAX, @p timeout_ms below -1), NK_ECLOSED, or another
 * -errno. Blocks the
 * calling thread; do not call it from a loop callback with a timeout.
 */
NK_API int nk_udp_endpoint_recv(nk_udp_endpoint *ep, void *buf, size_t len,
                                int timeout_ms, nk_addr *from,
                                nk_udp_recv_info *info);

/**
 * @brief Pause (false) or resume (true) delivery to the receive callback.
 * Datagrams wait in the socket's buffer meanwhile. Safe from callbacks.
 *
 * Pausing from inside the receive callback stops further callbacks until
 * resumed; the rest of the batch already read (one recvmmsg() call) is kept
 * and delivered first, in order, after the resume, even if nothing new
 * arrives: nothing is lost or reordered, and the counters count each
 * datagram once, when it is delivered. Asynchronous errors wait too.
 * @param ep The endpoint.
 * @param on true to deliver, false to pause.
 * @return 0, NK_EINVAL (no loop or callback), NK_ECLOSED.
 */
NK_API int nk_udp_endpoint_set_receiving(nk_udp_endpoint *ep, bool on);

/**
 * @brief The local address (with the port the system chose).
 * @param ep  The endpoint.
 * @param out Receives the address.
 * @return 0, NK_EINVAL, or a -errno.
 */
NK_API int nk_udp_endpoint_local_addr(const nk_udp_endpoint *ep, nk_addr *out);

/**
 * @brief The connected peer's address.
 * @param ep  The endpoint.
 * @param out Receives the address.
 * @return 0, NK_EINVAL (NULL, or the endpoint is not connected),
 * NK_ECLOSED.
 */
NK_API int nk_udp_endpoint_peer_addr(const nk_udp_endpoint *ep, nk_addr *out);

/**
 * @brief The socket, for options the library does not wrap. Do not close
 * it or read from it while a loop delivers its datagrams.
 * @param ep The endpoint.
 * @return The fd, owned by the endpoint; NK_EINVAL for NULL, NK_ECLOSED
 * once closed (from inside its own callback).
 */
NK_API int nk_udp_endpoint_fd(const nk_udp_endpoint *ep);

/**
 * @brief The endpoint's loop.
 * @param ep The endpoint.
 * @return The loop given at creation, or NULL.
 */
NK_API nk_loop *nk_udp_endpoint_loop(const nk_udp_endpoint *ep);

/**
 * @brief Fill @p out with the endpoint's counters.
 * @param ep  The endpoint.
 * @param out Receives the counters.
 */
NK_API void nk_udp_endpoint_get_stats(const nk_udp_endpoint *ep,
                                      nk_udp_endpoint_stats *out);

/**
 * @brief Join (@p join true) or leave a multicast group on the default
 * interface (@p ifindex 0) or a given one.
 * @param ep      The endpoint.
 * @param group   The multicast group's address.
 * @param ifindex The interface index, 0 for the default.
 * @param join    true to join, false to leave.
 * @return 0, NK_EINVAL (not a multicast address, family differs from
 * the endpoint's, or @p ifindex over INT_MAX), NK_ECLOSED, or a -errno from
 * setsockopt().
 */
NK_API int nk_udp_endpoint_multicast(nk_udp_endpoint *ep, const nk_addr *group,
                                     unsigned ifindex, bool join);

#ifdef __cplusplus
}
#endif
#endif
