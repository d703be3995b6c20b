/* UDP uppercase echo, the plain way: one recvfrom and one sendto per
 * datagram on a blocking socket. A truncated datagram is dropped, not
 * echoed in part. */
#include "peer.h"
#include "upper.h"

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 8888);
    char buf[65536];

    peer_signals();
    int fd = peer_socket(SOCK_DGRAM, &sa, 0);
    while (!peer_stop) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from, &flen);
        if (n < 0 || (size_t)n > sizeof buf)
            continue;
        upper_buf(buf, (size_t)n);
        sendto(fd, buf, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&from, flen);
    }
    close(fd);
    return 0;
}
