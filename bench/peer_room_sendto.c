/* Room relay, one system call per delivery: recvfrom a datagram, register
 * its source, sendto every other member. */
#include "peer.h"
#include "room.h"

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 8848);
    static struct room room;
    char buf[65536];

    peer_signals();
    int fd = peer_socket(SOCK_DGRAM, &sa, 0);
    while (!peer_stop) {
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&from, &flen);
        if (n < 0 || (size_t)n > sizeof buf || from.sin_family != AF_INET)
            continue;
        int me = room_member(&room, &from);
        for (int i = 0; i < room.n; i++) {
            if (i != me)
                sendto(fd, buf, (size_t)n, MSG_NOSIGNAL,
                       (struct sockaddr *)&room.members[i], sizeof room.members[i]);
        }
    }
    close(fd);
    return 0;
}
