/* Many datagrams per system call: recvmmsg()/sendmmsg() where the system
 * has them (Linux), one recvmsg()/sendmsg() per datagram elsewhere. Kept
 * apart so the batch calls are one seam that tests can wrap. */
#ifndef NK_LIB_UDP_BATCH_H
#define NK_LIB_UDP_BATCH_H

#include <sys/socket.h>

#if !defined(__linux__)
struct mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
#endif

/* Receive up to @n datagrams without waiting (@flags adds to MSG_DONTWAIT):
 * the count received (>= 1), or -errno (-EAGAIN when none is waiting).
 * EINTR is retried. */
int nk__udp_recv_batch(int fd, struct mmsghdr *msgs, unsigned n, int flags);

/* Send up to @n datagrams without waiting, with MSG_NOSIGNAL: the count the
 * system took (>= 1; fewer than @n when it stopped part-way), or the -errno
 * of the first datagram, which was not sent. EINTR is retried. */
int nk__udp_send_batch(int fd, struct mmsghdr *msgs, unsigned n);

#endif
