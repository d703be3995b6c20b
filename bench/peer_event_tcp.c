/* Uppercase echo on libevent, the usual bufferevent way: uppercase the
 * input buffer in place (evbuffer_peek) and move it whole to the output
 * buffer, with no copy. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/tcp.h>

#include "peer.h"
#include "upper.h"

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16], *vp = v;
    int n = evbuffer_peek(in, -1, NULL, v, 16);
    if (n > 16) {
        vp = malloc((size_t)n * sizeof *vp);
        if (!vp)
            peer_die("malloc");
        n = evbuffer_peek(in, -1, NULL, vp, n);
    }
    for (int i = 0; i < n; i++)
        upper_buf(vp[i].iov_base, vp[i].iov_len);
    if (vp != v)
        free(vp);
    bufferevent_write_buffer(bev, in);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)sa;
    (void)salen;
    (void)arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
                                                     BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = peer_addr(argc, argv, 9999);
    struct event_base *base = event_base_new();

    signal(SIGPIPE, SIG_IGN);
    struct evconnlistener *l = evconnlistener_new_bind(
        base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        SOMAXCONN, (struct sockaddr *)&sa, sizeof sa);
    if (!l)
        peer_die("listen");
    struct event *si = evsignal_new(base, SIGINT, on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(si, NULL);
    event_add(st, NULL);
    event_base_dispatch(base);
    event_free(si);
    event_free(st);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
