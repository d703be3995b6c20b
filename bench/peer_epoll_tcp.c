/* The floor: uppercase echo on a bare level-triggered epoll loop. One
 * shared read buffer; a connection owns memory only while the kernel would
 * not take all of a reply (then it stops reading until that is written). */
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include "peer.h"
#include "upper.h"

#define BUF_SIZE 65536

struct pending {
    size_t len, off;
    char data[];
};

static struct pending **pend; /* indexed by fd; NULL when nothing waits */
static int npend;

static void conn_close(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (fd < npend) {
        free(pend[fd]);
        pend[fd] = NULL;
    }
}

static void set_events(int ep, int fd, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
}

static void on_accept(int ep, int lfd)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fd >= npend) {
            int n = fd * 2 + 64;
            pend = realloc(pend, (size_t)n * sizeof *pend);
            if (!pend)
                peer_die("realloc");
            memset(pend + npend, 0, (size_t)(n - npend) * sizeof *pend);
            npend = n;
        }
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
}

static void on_read(int ep, int fd, char *buf)
{
    ssize_t n = recv(fd, buf, BUF_SIZE, 0);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            conn_close(ep, fd);
        return;
    }
    upper_buf(buf, (size_t)n);
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN) {
            conn_close(ep, fd);
            return;
        }
        w = 0;
    }
    if (w < n) {
        struct pending *p = malloc(sizeof *p + (size_t)(n - w));
        if (!p)
            peer_die("malloc");
        p->len = (size_t)(n - w);
        p->off = 0;
        memcpy(p->data, buf + w, p->len);
        pend[fd] = p;
        set_events(ep, fd, EPOLLOUT);
    }
}

static void on_write(int ep, int fd)
{
    struct pending *p = pend[fd];
    ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN)
            conn_close(ep, fd);
        return;
    }
    p->off += (size_t)w;
    if (p->off == p->len) {
        free(p);
        pend[fd] = NULL;
        set_events(ep, fd, EPOLLIN);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 9999);
    static char buf[BUF_SIZE];
    struct epoll_event evs[256];

    peer_signals();
    int lfd = peer_socket(SOCK_STREAM, &sa, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    while (!peer_stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_accept(ep, lfd);
            else if (fd < npend && pend[fd])
                on_write(ep, fd);
            else
                on_read(ep, fd, buf);
        }
    }
    close(ep);
    close(lfd);
    return 0;
}
