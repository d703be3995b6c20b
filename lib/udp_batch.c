/* Batched datagram system calls with a portable fallback. */
#include "udp_batch.h"

#include <errno.h>
#include <stddef.h>

int nk__udp_recv_batch(int fd, struct mmsghdr *msgs, unsigned n, int flags)
{
#if defined(__linux__)
    for (;;) {
        int r = recvmmsg(fd, msgs, n, flags | MSG_DONTWAIT, NULL);
        if (r >= 0)
            return r > 0 ? r : -EAGAIN;
        if (errno != EINTR)
            return -errno;
    }
#else
    unsigned i = 0;
    while (i < n) {
        ssize_t r = recvmsg(fd, &msgs[i].msg_hdr, flags | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (i > 0)
                break;
            return -errno;
        }
        msgs[i++].msg_len = (unsigned)r;
    }
    return (int)i;
#endif
}

int nk__udp_send_batch(int fd, struct mmsghdr *msgs, unsigned n)
{
#if defined(__linux__)
    for (;;) {
        int r = sendmmsg(fd, msgs, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r > 0)
            return r;
        if (r == 0)
            return -EAGAIN;
        if (errno != EINTR)
            return -errno;
    }
#else
    unsigned i = 0;
    while (i < n) {
        ssize_t r = sendmsg(fd, &msgs[i].msg_hdr, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (i > 0)
                break;
            return -errno;
        }
        msgs[i++].msg_len = (unsigned)r;
    }
    return (int)i;
#endif
}
