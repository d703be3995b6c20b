/* The epoll backend (Linux), level-triggered.
 *
 * Each registration carries its nk_io in epoll_data, so dispatch is one
 * load per event. The fetched batch stays in the backend while it is
 * dispatched: a watcher stopped by an earlier callback has its entries
 * cleared (nk__backend_invalidate), so neither it nor a new watcher on a
 * reused fd number sees a stale event.
 *
 * A registration outlives its watcher only if the watched number was
 * closed before the watcher stopped while a dup keeps the file open: the
 * kernel can no longer find it by number. The set is then rebuilt
 * (nk__backend_rebuild), off the hot path, which stays one load per
 * event. */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "netkit/error.h"

#include "alloc.h"
#include "loop_backend.h"

#define NK_EPOLL_EVENTS 1024

struct nk_backend {
    nk_loop *loop;
    int epfd;
    int n;     /* entries fetched by the last epoll_wait */
    int index; /* entry being dispatched */
    struct epoll_event events[NK_EPOLL_EVENTS];
};

int nk__backend_init(nk_loop *loop, struct nk_backend **out)
{
    struct nk_backend *b = nk__malloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        int r = -errno;
        nk__free(b);
        return r;
    }
    b->loop = loop;
    b->n = 0;
    b->index = 0;
    *out = b;
    return 0;
}

void nk__backend_free(struct nk_backend *b)
{
    if (!b)
        return;
    close(b->epfd);
    nk__free(b);
}

const char *nk__backend_name(void)
{
    return "epoll";
}

static int ctl(int epfd, int op, nk_io *io, unsigned events)
{
    struct epoll_event ev = {0};
    ev.events = ((events & NK_READ) ? EPOLLIN : 0u)
        | ((events & NK_WRITE) ? EPOLLOUT : 0u);
    ev.data.ptr = io;
    return epoll_ctl(epfd, op, io->fd, &ev) < 0 ? -errno : 0;
}

int nk__backend_update(struct nk_backend *b, nk_io *io, unsigned events)
{
    if (events == io->installed)
        return 0;
    int op = !io->installed ? EPOLL_CTL_ADD
        : !events           ? EPOLL_CTL_DEL
                            : EPOLL_CTL_MOD;
    int r = ctl(b->epfd, op, io, events);
    /* A failed DEL (EBADF, ENOENT) means the number was closed first: the
     * registration went with the file if that was its last descriptor, or
     * stays, unreachable by number, if a dup keeps the file open. The
     * caller rebuilds the set; io is out of it either way. */
    if (r && op != EPOLL_CTL_DEL)
        return r;
    io->installed = events;
    return r;
}

/* A new instance takes the old one's number (dup3), so nk_loop_fd() does
 * not change; closing the old one drops every registration it had. Out of
 * descriptors, the old one is closed first to free one (nk_loop_fd() may
 * then change); if even that fails, waits fail with EBADF: an unusable
 * loop, never an event for a freed watcher. */
void nk__backend_rebuild(struct nk_backend *b, nk_io *const *ios, size_t n)
{
    int fresh = epoll_create1(EPOLL_CLOEXEC);
    if (fresh < 0) {
        close(b->epfd);
        b->epfd = fresh = epoll_create1(EPOLL_CLOEXEC);
        if (fresh < 0)
            return;
    }
    for (size_t i = 0; i < n; i++) {
        nk_io *io = ios[i];
        if (io && io->installed
            && ctl(fresh, EPOLL_CTL_ADD, io, io->installed))
            io->installed = 0;
    }
    if (fresh == b->epfd)
        return;
    if (dup3(fresh, b->epfd, O_CLOEXEC) < 0) {
        close(b->epfd);
        b->epfd = fresh;
    } else {
        close(fresh);
    }
}

static unsigned to_nk(uint32_t e)
{
    /* Errors and hang-ups wake both directions: the next read or write
     * returns the error. */
    if (e == EPOLLIN)
        return NK_READ; /* the common case, in one test */
    unsigned r = 0;
    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP))
        r |= NK_READ;
    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        r |= NK_WRITE;
    return r;
}

int nk__backend_poll(struct nk_backend *b, int timeout_ms, bool read_clock)
{
    int n = epoll_wait(b->epfd, b->events, NK_EPOLL_EVENTS, timeout_ms);
    int err = n < 0 ? errno : 0; /* errno is a call away: only on failure */
    if (read_clock)
        nk__loop_read_clock(b->loop);
    if (n < 0)
        return err == EINTR ? 0 : -err;
    b->n = n;
    for (b->index = 0; b->index < n; b->index++) {
        nk_io *io = b->events[b->index].data.ptr;
        if (io)
            nk__io_dispatch(io, to_nk(b->events[b->index].events));
    }
    b->n = 0;
    b->index = 0;
    return n;
}

void nk__backend_invalidate(struct nk_backend *b, nk_io *io)
{
    /* Only entries after the current one can still be dispatched; an fd
     * appears at most once per batch. */
    for (int i = b->index + 1; i < b->n; i++) {
        if (b->events[i].data.ptr == io) {
            b->events[i].data.ptr = NULL;
            break;
        }
    }
}

int nk__backend_fd(const struct nk_backend *b)
{
    return b->epfd >= 0 ? b->epfd : -EBADF;
}
