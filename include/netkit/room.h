/**
 * @file netkit/room.h
 * @brief A UDP room: a relay that forwards every datagram it receives to
 * every member, as in a group chat.
 *
 * Any datagram from a new source address makes that source a member, keyed
 * by its whole address (IP and port; IPv4-mapped IPv6 equals IPv4). Every
 * datagram is relayed to all members, the sender included unless
 * `echo_sender` is false. The defaults keep the simplest clients working:
 * a client that sends `register` and then only listens is a member, and
 * `register` is relayed like any other text.
 *
 * What the room does with each datagram, in order:
 * | datagram                              | effect                                   |
 * |---------------------------------------|------------------------------------------|
 * | from the room's own address           | dropped (NK_ROOM_DROP_SELF)              |
 * | truncated, or over `max_datagram`     | dropped (NK_ROOM_DROP_OVERSIZE); a newcomer does not join |
 * | from a newcomer, room full            | dropped (NK_ROOM_DROP_FULL), `rejected` counted; members are never evicted for a stranger |
 * | from a newcomer                       | joins (on_join), then as below           |
 * | from a sender a hook removed          | dropped (NK_ROOM_DROP_HOOK): never relayed, never shown to on_message |
 * | equal to `leave_message`              | the member leaves (on_leave), not relayed|
 * | over the member's rate limit          | dropped (NK_ROOM_DROP_RATE)              |
 * | empty                                 | refreshes the member, not relayed (NK_ROOM_DROP_EMPTY) unless `relay_empty` |
 * | a hello or cookie reply (see below)   | consumed, not relayed                    |
 * | anything else                         | on_message, then relayed                 |
 *
 * Members that send nothing for `member_ttl_ms` leave (reason
 * NK_ROOM_LEAVE_TTL), driven by a loop timer. A member whose deliveries
 * come back refused (ICMP port unreachable) `unreachable_limit` times
 * without sending anything in between leaves (NK_ROOM_LEAVE_UNREACHABLE);
 * the others are not affected.
 *
 * Validated mode (`validate`): a forged datagram can make a victim's
 * address a member, and every later message would then be sent to the
 * victim. With validation on, a newcomer is sent at most `amplification`
 * times the bytes it has sent (3, as QUIC does), until it proves that it
 * receives at its address by echoing a cookie the room sends it
 * (nk_udp_room_client_handle() answers it). Clients that cannot answer (the
 * plain text clients) stay within that budget, so validation is off by
 * default; the open room's exposure is bounded by the time-to-live, the
 * member cap and the rate limit.
 *
 * Fan-out sends one batch per group of `fanout_batch` members
 * (sendmmsg() where the system has it), not one system call per member.
 *
 * Hooks run between the room's own steps, never in the middle of one: a
 * hook may remove members (any number, the sender and the newcomer
 * included) or close the room. Every join and leave is reported once, in
 * order, and the counters equal the events; after a close no hook runs.
 *
 * Ownership: a room belongs to the application from nk_udp_room_open()
 * until nk_udp_room_close(), the rule of every handle (see netkit/loop.h):
 * after the close the pointer is invalid, as after free(). A second close
 * while the first is still pending (the room closed from one of its own
 * hooks, freed when the hook returns) is a harmless no-op, and the other
 * calls on it return NK_ECLOSED until the hook returns.
 */
#ifndef NETKIT_ROOM_H
#define NETKIT_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/addr.h"
#include "netkit/export.h"
#include "netkit/loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A relay room (opaque). */
typedef struct nk_udp_room nk_udp_room;

/** @brief Why a member left. */
typedef enum nk_room_leave_reason {
    NK_ROOM_LEAVE_TTL = 1,     /**< Silent for member_ttl_ms. */
    NK_ROOM_LEAVE_MESSAGE,     /**< Sent the leave message. */
    NK_ROOM_LEAVE_UNREACHABLE, /**< Deliveries refused repeatedly (ICMP). */
    NK_ROOM_LEAVE_REMOVED,     /**< nk_udp_room_remove(). */
} nk_room_leave_reason;

/** @brief Why a received datagram was not relayed. */
typedef enum nk_room_drop_reason {
    NK_ROOM_DROP_EMPTY = 0, /**< Zero-length (it still refreshes the member). */
    NK_ROOM_DROP_OVERSIZE,  /**< Truncated or larger than max_datagram. */
    NK_ROOM_DROP_FULL,      /**< A newcomer while the room is full. */
    NK_ROOM_DROP_RATE,      /**< Over the sender's rate limit. */
    NK_ROOM_DROP_HOOK,      /**< on_message said so, or a hook (on_join,
                                 on_leave, on_message) removed the sender
                                 before the relay. */
    NK_ROOM_DROP_SELF,      /**< Came from the room's own address. */
    NK_ROOM_DROP_COOKIE,    /**< A cookie reply that does not verify. */
    NK_ROOM_DROP_COUNT      /**< Number of reasons (array size). */
} nk_room_drop_reason;

/** @brief Room options. Start from NK_UDP_ROOM_OPTS_INIT. */
typedef struct nk_udp_room_opts {
    /** Relay a message to its sender too (as the classic chat room does).
     * Default true. */
    bool echo_sender;
    /** Most members at once (1 to 1048576). Default 1024. */
    size_t max_members;
    /** A member silent this long leaves; 0 never. Default 1800000 (30 min):
     * long enough for a classic listen-only client (which sends once, then
     * only receives) to stay through a session, while a forged or vanished
     * address is not relayed to for ever. */
    uint32_t member_ttl_ms;
    /** Largest datagram relayed (1 to 65507); larger ones are dropped and
     * counted. Default 65507. */
    size_t max_datagram;
    /** Relay zero-length datagrams. Default false (they only refresh). */
    bool relay_empty;
    /** A text that makes its sender leave (e.g. "leave"), compared exactly,
     * a trailing newline ignored; NULL for none. Copied; at most 63 bytes.
     * Default NULL. */
    const char *leave_message;
    /** Datagrams per second each member may send; 0 for no limit.
     * Default 10000: far above a chat's or a voice stream's rate, and low
     * enough that a forged datagram that makes two rooms (or any two
     * relays) members of each other cannot keep them bouncing it for ever:
     * the bounce outruns the limit within a fraction of a second and is
     * dropped. */
    uint32_t rate_limit;
    /** Burst the rate limit allows (bucket size); 0 means rate_limit.
     * Default 0. */
    uint32_t rate_burst;
    /** Validated mode (see the file comment). Default false. */
    bool validate;
    /** Byte budget multiple for unvalidated members (1 or more). Default
     * 3. */
    unsigned amplification;
    /** Refused deliveries before a member is dropped; 0 never. Default 3. */
    unsigned unreachable_limit;
    /** Members per send system call in a fan-out (1 to 1024). Default 256. */
    unsigned fanout_batch;
    /** SO_RCVBUF / SO_SNDBUF of the room's socket, 0 = system default. */
    int rcvbuf;
    int sndbuf; /**< See rcvbuf. */
} nk_udp_room_opts;

/** @brief Default room options. */
#define NK_UDP_ROOM_OPTS_INIT                                                 \
    {                                                                         \
        .echo_sender = true, .max_members = 1024, .member_ttl_ms = 1800000,   \
        .max_datagram = 65507, .relay_empty = false, .leave_message = NULL,   \
        .rate_limit = 10000, .rate_burst = 0, .validate = false,              \
        .amplification = 3, .unreachable_limit = 3, .fanout_batch = 256,      \
        .rcvbuf = 0, .sndbuf = 0                                              \
    }

/** @brief A member joined or left. */
typedef struct nk_udp_room_member_event {
    const nk_addr *addr;         /**< The member (valid during the call). */
    nk_room_leave_reason reason; /**< For on_leave; 0 for on_join. */
    bool validated;              /**< It has echoed a cookie. */
    size_t members;              /**< Members after the change. */
} nk_udp_room_member_event;

/** @brief A message about to be relayed; the hook may rewrite it. */
typedef struct nk_udp_room_message {
    const nk_addr *from; /**< The sender (a member). */
    const void *data;    /**< The bytes (not NUL-terminated: use `len`); point it elsewhere to rewrite. */
    size_t len;          /**< Their length (at most max_datagram). */
} nk_udp_room_message;

/** @brief Called when a member joins or leaves. */
typedef void (*nk_udp_room_member_cb)(nk_udp_room *room,
                                      const nk_udp_room_member_event *ev,
                                      void *user);

/** @brief What on_message decides. */
enum nk_room_verdict {
    NK_ROOM_RELAY = 0, /**< Relay msg (as possibly rewritten). */
    NK_ROOM_DROP = 1,  /**< Do not relay (counted as NK_ROOM_DROP_HOOK). */
};

/**
 * @brief Called before a message is relayed. Set msg->data / msg->len to
 * relay something else (the bytes must stay valid until the hook returns
 * and the relay is done: the room sends before calling anything else).
 * @return NK_ROOM_RELAY or NK_ROOM_DROP.
 */
typedef int (*nk_udp_room_message_cb)(nk_udp_room *room,
                                      nk_udp_room_message *msg, void *user);

/** @brief The application's hooks; any may be NULL. */
typedef struct nk_udp_room_hooks {
    nk_udp_room_member_cb on_join;     /**< A member joined. */
    nk_udp_room_member_cb on_leave;    /**< A member left (not at close). */
    nk_udp_room_message_cb on_message; /**< Filter or rewrite a message. */
} nk_udp_room_hooks;

/** @brief Counters of a room (see nk_udp_room_get_stats()). */
typedef struct nk_udp_room_stats {
    size_t members;          /**< Members now. */
    size_t members_peak;     /**< Most members at once. */
    size_t unvalidated;      /**< Members that have not echoed a cookie
                                  (in an open room, every member: nothing
                                  proves their addresses). */
    uint64_t joins;          /**< Members added. */
    uint64_t leaves;         /**< Members removed (all reasons). */
    uint64_t expirations;    /**< ... of which for the time-to-live. */
    uint64_t evictions;      /**< ... of which for being unreachable. */
    uint64_t rejected;       /**< Newcomers refused: room full. */
    uint64_t messages_in;    /**< Datagrams received. */
    uint64_t bytes_in;       /**< Their bytes (real sizes). */
    uint64_t relayed;        /**< Messages relayed. */
    uint64_t deliveries_out; /**< Datagrams sent to members. */
    uint64_t bytes_out;      /**< Their bytes. */
    uint64_t truncations;    /**< Datagrams that arrived truncated. */
    uint64_t drops[NK_ROOM_DROP_COUNT]; /**< Not relayed, by reason. */
    uint64_t delivery_drops; /**< Deliveries lost for lack of socket buffer
                                  (-EAGAIN, -ENOBUFS). */
    uint64_t send_errors;    /**< Deliveries that failed otherwise. */
    uint64_t unreachable;    /**< Refusals (ICMP) reported for members. */
    uint64_t budget_skips;   /**< Deliveries withheld from unvalidated
                                  members over their byte budget. */
    uint64_t challenges;     /**< Cookies sent (validated mode). */
    uint64_t validations;    /**< Members that echoed a valid cookie. */
    uint64_t table_probes;   /**< Member-table slots examined in total. */
    uint32_t table_max_probe;/**< Longest probe sequence seen. */
    size_t memory;           /**< Bytes held by the room's tables. */
} nk_udp_room_stats;

/** @brief What the room knows of one member. */
typedef struct nk_udp_room_member_info {
    uint64_t bytes_in;   /**< Bytes it sent to the room. */
    uint64_t bytes_out;  /**< Bytes the room sent to it. */
    uint64_t idle_ms;    /**< Since its last datagram. */
    bool validated;      /**< It has echoed a cookie. */
} nk_udp_room_member_info;

/**
 * @brief Open a room bound to @p bind_addr (port 0 allowed; read it back
 * with nk_udp_room_local_addr()). An IPv6 wildcard is dual-stack.
 * @param loop      The loop the room runs on.
 * @param bind_addr The local address.
 * @param opts  Options (copied), NULL for the defaults.
 * @param hooks Hooks (copied), NULL for none.
 * @param user  Passed to the hooks.
 * @param out   Receives the room.
 * @return 0, NK_EINVAL (NULL, option out of range; nothing is allocated
 * then), -ENOMEM, or any code of nk_udp_endpoint_bind(). Loop thread only.
 */
NK_API int nk_udp_room_open(nk_loop *loop, const nk_addr *bind_addr,
                            const nk_udp_room_opts *opts,
                            const nk_udp_room_hooks *hooks, void *user,
                            nk_udp_room **out);

/**
 * @brief Close the room and free it. Safe from any hook (the room is freed
 * when the hook returns; nothing more is relayed). No hook runs afterwards:
 * no on_leave for the members still in the room, nor for those removed in
 * the same dispatch and not yet reported. NULL is ignored. This call ends
 * the handle (see the ownership rule above): a second call while the first
 * is pending does nothing.
 * @param room The room.
 */
NK_API void nk_udp_room_close(nk_udp_room *room);

/**
 * @brief The room's local address.
 * @param room The room.
 * @param out  Receives the address.
 * @return 0, NK_EINVAL, or a -errno.
 */
NK_API int nk_udp_room_local_addr(const nk_udp_room *room, nk_addr *out);

/**
 * @brief Fill @p out with the room's counters.
 * @param room The room.
 * @param out  Receives the counters.
 */
NK_API void nk_udp_room_get_stats(const nk_udp_room *room,
                                  nk_udp_room_stats *out);

/**
 * @brief What the room knows of @p member.
 * @param room   The room.
 * @param member The member's address.
 * @param out    Receives what the room knows.
 * @return 0, NK_EINVAL (NULL, or not a member), NK_ECLOSED (closed from
 * a hook, not yet freed).
 */
NK_API int nk_udp_room_member(const nk_udp_room *room, const nk_addr *member,
                              nk_udp_room_member_info *out);

/**
 * @brief Remove a member (on_leave with NK_ROOM_LEAVE_REMOVED). Safe from
 * hooks: from a hook, its on_leave runs after the hook returns, before the
 * room handles another datagram; otherwise before this call returns. A datagram from a
 * sender removed before its relay is not relayed.
 * @param room   The room.
 * @param member The member's address.
 * @return 0, NK_EINVAL (NULL, or not a member), NK_ECLOSED (closed from a
 * hook, not yet freed).
 */
NK_API int nk_udp_room_remove(nk_udp_room *room, const nk_addr *member);

/** @brief Length of the join datagram nk_udp_room_client_hello() writes. */
#define NK_ROOM_HELLO_LEN 32
/** @brief Length of a room's challenge and of the answer to it. */
#define NK_ROOM_COOKIE_MSG_LEN 24

/**
 * @brief Write a join datagram: a room makes its sender a member without
 * relaying it, and in validated mode answers with its challenge (the
 * datagram is large enough to pay for it). Optional in an open room.
 * @param buf  Receives the datagram.
 * @param size Size of @p buf: at least NK_ROOM_HELLO_LEN.
 * @return NK_ROOM_HELLO_LEN, or NK_ENOSPACE / NK_EINVAL.
 */
NK_API int nk_udp_room_client_hello(void *buf, size_t size);

/**
 * @brief Client side of validation: recognise a room's challenge among the
 * datagrams received from the room and write the answer.
 *
 * Call it on each datagram from the room; when it returns a positive
 * length, send @p reply (that many bytes) to the room and do not show the
 * datagram to the user. Pure: no I/O, safe from any thread.
 * @param data       A datagram received from the room.
 * @param len        Its length.
 * @param reply      Receives the answer.
 * @param reply_size Size of @p reply.
 * @return The answer's length (> 0) for a challenge, 0 for an ordinary
 * message, NK_ENOSPACE if @p reply_size is below NK_ROOM_COOKIE_MSG_LEN,
 * NK_EINVAL for NULL.
 */
NK_API int nk_udp_room_client_handle(const void *data, size_t len,
                                     void *reply, size_t reply_size);

#ifdef __cplusplus
}
#endif
#endif
