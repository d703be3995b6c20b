/* Room relay, one sendmmsg per message: the message headers for every
 * member are built once (only the payload changes), so each datagram costs
 * one recvmmsg slot and one sendmmsg to all other members. */
#include "peer.h"
#include "room.h"

#define BATCH 32
#define DGRAM 2048

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 8848);
    static struct room room;
    static struct mmsghdr out[ROOM_MAX];
    static char buf[BATCH][DGRAM];
    struct sockaddr_in from[BATCH];
    struct iovec iov[BATCH], oiov;
    struct mmsghdr in[BATCH];
    int built = 0;

    peer_signals();
    int fd = peer_socket(SOCK_DGRAM, &sa, 0);
    while (!peer_stop) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){buf[i], DGRAM};
            memset(&in[i], 0, sizeof in[i]);
            in[i].msg_hdr.msg_iov = &iov[i];
            in[i].msg_hdr.msg_iovlen = 1;
            in[i].msg_hdr.msg_name = &from[i];
            in[i].msg_hdr.msg_namelen = sizeof from[i];
        }
        int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
        for (int i = 0; i < n; i++) {
            if ((in[i].msg_hdr.msg_flags & MSG_TRUNC) || from[i].sin_family != AF_INET)
                continue;
            int me = room_member(&room, &from[i]);
            for (; built < room.n; built++) {
                out[built].msg_hdr.msg_name = &room.members[built];
                out[built].msg_hdr.msg_namelen = sizeof room.members[built];
                out[built].msg_hdr.msg_iov = &oiov;
                out[built].msg_hdr.msg_iovlen = 1;
            }
            oiov = (struct iovec){buf[i], in[i].msg_len};
            /* All members but the sender: the runs before and after it. */
            int lo = me < 0 ? room.n : me;
            for (int done = 0; done < lo;) {
                int r = sendmmsg(fd, out + done, (unsigned)(lo - done), MSG_NOSIGNAL);
                done += r > 0 ? r : 1; /* skip a destination that fails */
            }
            for (int done = lo + 1; done < room.n;) {
                int r = sendmmsg(fd, out + done, (unsigned)(room.n - done), MSG_NOSIGNAL);
                done += r > 0 ? r : 1; /* skip a destination that fails */
            }
        }
    }
    close(fd);
    return 0;
}
