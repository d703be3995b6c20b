/**
 * @file netkit/error.h
 * @brief Error codes and their sentences.
 *
 * Every libnetkit function that can fail returns `int`: 0 (or a count) on
 * success, a negative code on failure. System failures are passed through
 * as the negated errno (`-ECONNRESET`, `-EMFILE`, ...). The library's own
 * codes are below -4095, a range errno never reaches, so the two cannot
 * collide. nk_strerror() turns any code into a sentence.
 */
#ifndef NETKIT_ERROR_H
#define NETKIT_ERROR_H

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief The library's own codes: X(NAME, value, sentence).
 *
 * One table yields the enum, nk_strerror() and nk_err_name(), so no code
 * can lack its sentence.
 */
#define NK_ERROR_MAP(X)                                                        \
    X(NK_EADDR_EMPTY, -4100, "address is empty")                              \
    X(NK_EADDR_SYNTAX, -4101, "address is not a valid HOST:PORT or [IPV6]:PORT") \
    X(NK_EADDR_BRACKET, -4102, "IPv6 address is missing its closing ']'")     \
    X(NK_EADDR_NOPORT, -4103, "address has no port after ':'")                \
    X(NK_EADDR_PORT, -4104, "port is not a decimal number from 0 to 65535")  \
    X(NK_EADDR_HOSTLEN, -4105, "host name is longer than 253 characters")     \
    X(NK_EADDR_SCOPE, -4106, "IPv6 scope (%zone) names no interface")         \
    X(NK_EADDR_FAMILY, -4107, "address family is not IPv4 or IPv6")           \
    X(NK_ERESOLVE, -4108, "host name could not be resolved")                  \
    X(NK_ENOSPACE, -4109, "output buffer is too small")                       \
    X(NK_EINVAL, -4110, "invalid argument")                                   \
    X(NK_ETRUNC, -4111, "datagram was larger than the buffer: truncated")     \
    X(NK_EOF, -4112, "connection closed by the peer")                         \
    X(NK_EMIDFRAME, -4113, "peer closed the connection in the middle of a message") \
    X(NK_EFRAME_TOO_LARGE, -4114, "message is larger than the maximum frame size") \
    X(NK_ELINE_TOO_LONG, -4115, "line is longer than the maximum line length") \
    X(NK_EQUEUE_FULL, -4116, "write queue is over its hard limit")            \
    X(NK_ECLOSED, -4117, "handle is closed or closing")                       \
    X(NK_ENOTSUP, -4119, "operation is not supported here")                   \
    X(NK_EBUSY, -4120, "handle is busy")                                      \
    X(NK_ERATE, -4121, "rate limit exceeded")                                 \
    X(NK_EFULL, -4122, "table is full")                                       \
    X(NK_EDROPPED, -4123, "connection closed with unsent data: queued bytes were dropped") \
    X(NK_EADDR_NAME, -4124, "address is a host name, not numeric: resolve it with nk_addr_resolve()")

/** @brief The library's own error codes (see NK_ERROR_MAP for each sentence). */
enum nk_error {
#define NK_ERROR_ENUM_(name, value, text) name = (value),
    NK_ERROR_MAP(NK_ERROR_ENUM_)
#undef NK_ERROR_ENUM_
};

/**
 * @brief A sentence for any code: 0, a library code, a negated errno, or an
 * unknown value.
 * @param code The code a libnetkit function returned.
 * @return A constant string owned by the library; never NULL, never
 * allocated. Safe from any thread and any callback.
 */
NK_API const char *nk_strerror(int code);

/**
 * @brief The symbolic name of a code ("NK_EOF", "ECONNRESET", "OK"), or
 * "UNKNOWN" for an unknown one.
 * @param code The code a libnetkit function returned.
 * @return A constant string owned by the library. Safe from any thread.
 */
NK_API const char *nk_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif
