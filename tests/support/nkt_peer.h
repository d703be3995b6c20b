/* Plain POSIX peers for tests: blocking sockets with deadlines, written with
 * nothing from lib/ but nk_addr, so they check the library from outside. */
#ifndef NKT_PEER_H
#define NKT_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "netkit/addr.h"

/* Per-call budget of the helpers that take no timeout. */
#define NKT_PEER_TIMEOUT_MS 10000

/* Connect TCP to @a within NKT_PEER_TIMEOUT_MS: blocking, close-on-exec fd,
 * or -errno (-ETIMEDOUT, -ECONNREFUSED, ...). */
int nkt_tcp_connect(const nk_addr *a);

/* Send all @len bytes (MSG_NOSIGNAL): 0, -ETIMEDOUT if the peer stops
 * reading for NKT_PEER_TIMEOUT_MS, or -errno. */
int nkt_send_all(int fd, const void *buf, size_t len);

/* Read exactly @len bytes within @timeout_ms in total: 0, NK_EOF if the
 * stream ended first, -ETIMEDOUT, or -errno. */
int nkt_read_exact(int fd, void *buf, size_t len, int timeout_ms);

/* One read within @timeout_ms: bytes (> 0), 0 at EOF, -ETIMEDOUT, -errno. */
int nkt_read_some(int fd, void *buf, size_t len, int timeout_ms);

/* shutdown(SHUT_WR): 0 or -errno. */
int nkt_shutdown_wr(int fd);

/* Close with SO_LINGER {1, 0} so the peer gets a RST, not a FIN. */
void nkt_close_rst(int fd);

/* Wait for the end of the stream: 0 at EOF, -ECONNRESET on RST,
 * -ETIMEDOUT, -EPROTO if data came instead, or -errno. */
int nkt_expect_eof(int fd, int timeout_ms);

/* UDP socket bound to @bind_addr (NULL: loopback of @family, port 0):
 * blocking, close-on-exec fd, or -errno. */
int nkt_udp_socket(int family, const nk_addr *bind_addr);

/* sendto: bytes sent or -errno. */
int nkt_udp_sendto(int fd, const void *buf, size_t len, const nk_addr *to);

/* One datagram within @timeout_ms: its length (0 for an empty one, never
 * more than @len), -ETIMEDOUT or -errno. @from (may be NULL) gets the
 * source. */
int nkt_udp_recv(int fd, void *buf, size_t len, int timeout_ms,
                 nk_addr *from);

/* Local address of a socket (port read back after binding port 0):
 * 0 or -errno. */
int nkt_sock_name(int fd, nk_addr *out);

#endif
