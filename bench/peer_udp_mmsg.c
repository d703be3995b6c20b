/* UDP uppercase echo, batched: recvmmsg up to 64 datagrams, uppercase them,
 * answer them all with one sendmmsg. Truncated datagrams are dropped.
 * `--epoll` waits in epoll_wait on a nonblocking socket instead of blocking
 * in recvmmsg, as any event-loop server must (a socket in an epoll set
 * costs the kernel a wakeup attempt per datagram sent). */
#include <sys/epoll.h>

#include "peer.h"
#include "upper.h"

#define BATCH 64
#define DGRAM 2048

int main(int argc, char **argv)
{
    int use_epoll = argc > 1 && strcmp(argv[1], "--epoll") == 0;
    if (use_epoll) {
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    struct sockaddr_in sa = peer_addr(argc, argv, 8888);
    static char buf[BATCH][DGRAM];
    struct sockaddr_storage from[BATCH];
    struct iovec iov[BATCH], oiov[BATCH];
    struct mmsghdr in[BATCH], out[BATCH];

    peer_signals();
    int fd = peer_socket(SOCK_DGRAM, &sa, use_epoll);
    int ep = -1;
    if (use_epoll) {
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0)
            peer_die("epoll");
    }
    while (!peer_stop) {
        if (use_epoll) {
            struct epoll_event e;
            if (epoll_wait(ep, &e, 1, -1) <= 0)
                continue;
        }
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){buf[i], DGRAM};
            memset(&in[i], 0, sizeof in[i]);
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &from[i];
            in[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(fd, in, BATCH, use_epoll ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (in[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue;
            upper_buf(buf[i], in[i].msg_len);
            oiov[k] = (struct iovec){buf[i], in[i].msg_len};
            memset(&out[k], 0, sizeof out[k]);
            out[k].msg_hdr.msg_iov = &oiov[k];
            out[k].msg_hdr.msg_iovlen = 1;
            out[k].msg_hdr.msg_name = &from[i];
            out[k].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
            k++;
        }
        for (int done = 0; done < k;) {
            int r = sendmmsg(fd, out + done, (unsigned)(k - done), MSG_NOSIGNAL);
            done += r > 0 ? r : 1; /* UDP: a datagram refused is lost */
        }
    }
    if (ep >= 0)
        close(ep);
    close(fd);
    return 0;
}
