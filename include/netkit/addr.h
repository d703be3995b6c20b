/**
 * @file netkit/addr.h
 * @brief IPv4 and IPv6 socket addresses: parse, resolve, format, compare, hash.
 *
 * Accepted text forms:
 * | form              | example              | meaning                         |
 * |-------------------|----------------------|---------------------------------|
 * | `IPV4:PORT`       | `127.0.0.1:9999`     | IPv4 address                    |
 * | `[IPV6]:PORT`     | `[::1]:9999`         | IPv6 address                    |
 * | `[IPV6%ZONE]:PORT`| `[fe80::1%eth0]:80`  | link-local with interface       |
 * | `NAME:PORT`       | `localhost:9999`     | resolved by nk_addr_resolve()   |
 * | `:PORT`           | `:9999`              | every IPv4 interface (0.0.0.0)  |
 *
 * The port is decimal digits only (no sign, space or `0x`), at most five of
 * them, 0 to 65535 (0 asks the system to choose when binding).
 * nk_addr_parse() never blocks: its only system call is the interface-name
 * lookup (if_nametoindex()) for a named `%zone`; a numeric zone (`%2`) needs
 * none. nk_addr_resolve() may block in getaddrinfo() for names.
 */
#ifndef NETKIT_ADDR_H
#define NETKIT_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Longest text nk_addr_format() writes, with its NUL. */
#define NK_ADDR_STRLEN 80

/** @brief Longest host name nk_addr_parse() and nk_addr_resolve() accept. */
#define NK_ADDR_HOST_MAX 253

/**
 * @brief An IPv4 or IPv6 socket address, held by value.
 *
 * A plain struct: copy it, keep it on the stack, compare it with
 * nk_addr_equal(). `len` is the length of the sockaddr in use, 0 when empty.
 */
typedef struct nk_addr {
    /** The address as the socket API sees it. */
    union {
        struct sockaddr sa;       /**< Generic view, for system calls. */
        struct sockaddr_in v4;    /**< When `sa.sa_family == AF_INET`. */
        struct sockaddr_in6 v6;   /**< When `sa.sa_family == AF_INET6`. */
    } u;
    socklen_t len; /**< sizeof the member in use, 0 for an empty address. */
} nk_addr;

/**
 * @brief Parse a numeric address: `IPV4:PORT`, `[IPV6]:PORT` or `:PORT`.
 *
 * No allocation, no blocking; the only system call is if_nametoindex()
 * for a named `%zone`. Names are not resolved: `nk_addr_parse("localhost:80")`
 * returns NK_EADDR_SYNTAX; a name must go through nk_addr_resolve().
 * @param text NUL-terminated text.
 * @param out  Receives the address; untouched on failure.
 * @return 0, or NK_EINVAL (NULL argument), NK_EADDR_EMPTY, NK_EADDR_SYNTAX,
 * NK_EADDR_BRACKET (`[::1`), NK_EADDR_NOPORT (`host:`, `[::1]`),
 * NK_EADDR_PORT (`:70000`, `:0x50`), NK_EADDR_HOSTLEN, NK_EADDR_SCOPE
 * (unknown `%zone`). Safe from any thread and callback.
 */
NK_API int nk_addr_parse(const char *text, nk_addr *out);

/**
 * @brief Parse like nk_addr_parse(), resolving a host name with
 * getaddrinfo() when the host is not numeric.
 *
 * Blocks while the name is resolved: call it before starting a loop, or
 * from a thread that may block.
 * @param text   `HOST:PORT`, `[IPV6]:PORT` or `:PORT`.
 * @param family AF_UNSPEC (first result), AF_INET or AF_INET6.
 * @param out    Receives the address; untouched on failure.
 * With AF_INET6, `:PORT` means `[::]:PORT`. A host whose last label is
 * all digits (or `0x` and hex) but is not a dotted quad, such as `127.1`
 * or `0x7f000001`, gives NK_EADDR_SYNTAX instead of inet_aton()'s legacy
 * reading.
 * @return 0, any code of nk_addr_parse() except for names, NK_ERESOLVE when
 * the name has no address, NK_EADDR_FAMILY for a bad @p family or a numeric
 * address of the other family, -ENOMEM.
 */
NK_API int nk_addr_resolve(const char *text, int family, nk_addr *out);

/**
 * @brief Build an address from a socket API address (IPv4 or IPv6).
 * @param out Receives the address.
 * @param sa  A struct sockaddr_in or sockaddr_in6.
 * @param len The length of @p sa.
 * @return 0, NK_EINVAL (NULL or short @p len), NK_EADDR_FAMILY.
 */
NK_API int nk_addr_from_sockaddr(nk_addr *out, const struct sockaddr *sa,
                                 socklen_t len);

/**
 * @brief Format as `1.2.3.4:80` or `[::1]:80` (with `%zone` when set).
 * @param addr The address.
 * @param buf  Receives NUL-terminated text; NK_ADDR_STRLEN bytes always fit.
 * @param size The size of @p buf in bytes.
 * @return The length written (without the NUL), NK_ENOSPACE if @p size is
 * too small (buf then holds an empty string when size > 0), NK_EINVAL for
 * NULL or an empty address.
 */
NK_API int nk_addr_format(const nk_addr *addr, char *buf, size_t size);

/**
 * @brief The port.
 * @param addr The address.
 * @return The port in host byte order, or -1 for an empty or NULL address.
 */
NK_API int nk_addr_port(const nk_addr *addr);

/**
 * @brief Change the port.
 * @param addr The address.
 * @param port The new port, 0 to 65535.
 * @return 0, NK_EINVAL (NULL or empty address), NK_EADDR_PORT (out of range).
 */
NK_API int nk_addr_set_port(nk_addr *addr, int port);

/**
 * @brief The address family.
 * @param addr The address.
 * @return AF_INET, AF_INET6, or 0 for an empty or NULL address.
 */
NK_API int nk_addr_family(const nk_addr *addr);

/**
 * @brief Turn an IPv4-mapped IPv6 address (<tt>\::ffff:1.2.3.4</tt>)
 * into plain IPv4, so one host has one key whichever socket it came
 * through. Other addresses are left as they are.
 * @param addr The address, changed in place; NULL is ignored.
 */
NK_API void nk_addr_normalize(nk_addr *addr);

/**
 * @brief Same host and port? IPv4-mapped IPv6 equals its IPv4 form;
 * the IPv6 scope is compared, flow info is not. NULLs are equal only to
 * each other.
 * @param a One address.
 * @param b The other address.
 * @return true if they are the same host and port.
 */
NK_API bool nk_addr_equal(const nk_addr *a, const nk_addr *b);

/**
 * @brief A keyed hash of the address (SipHash-2-4 of the normalized host
 * and port), consistent with nk_addr_equal().
 *
 * With a secret key per table, an outsider cannot choose addresses that
 * collide. Safe from any thread.
 * @param addr The address.
 * @param key 16 bytes of secret key (NULL hashes with an all-zero key).
 * @return The 64-bit hash.
 */
NK_API uint64_t nk_addr_hash(const nk_addr *addr, const uint8_t key[16]);

#ifdef __cplusplus
}
#endif
#endif
