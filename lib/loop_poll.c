/* The poll(2) backend: portable, O(n) per wait.
 *
 * Watchers with interest sit in a dense pollfd array; io->slot is the
 * index. Removal moves the last entry into the hole, along with its
 * revents (its own events from the same poll). A watcher added during
 * dispatch gets revents 0, so a reused fd number never inherits an event. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>

#include "netkit/error.h"

#include "alloc.h"
#include "loop_backend.h"

struct nk_backend {
    nk_loop *loop;
    struct pollfd *fds;
    nk_io **ios;
    size_t n;
    size_t cap;
};

int nk__backend_init(nk_loop *loop, struct nk_backend **out)
{
    struct nk_backend *b = nk__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->loop = loop;
    *out = b;
    return 0;
}

void nk__backend_free(struct nk_backend *b)
{
    if (!b)
        return;
    nk__free(b->fds);
    nk__free(b->ios);
    nk__free(b);
}

const char *nk__backend_name(void)
{
    return "poll";
}

static short to_poll(unsigned events)
{
    return (short)(((events & NK_READ) ? POLLIN : 0)
                   | ((events & NK_WRITE) ? POLLOUT : 0));
}

static int grow(struct nk_backend *b)
{
    size_t cap = b->cap ? b->cap * 2 : 64;
    struct pollfd *fds = nk__realloc(b->fds, cap * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    b->fds = fds;
    nk_io **ios = nk__realloc(b->ios, cap * sizeof *ios);
    if (!ios)
        return -ENOMEM; /* fds kept its larger size: harmless */
    b->ios = ios;
    b->cap = cap;
    return 0;
}

int nk__backend_update(struct nk_backend *b, nk_io *io, unsigned events)
{
    if (events == io->installed)
        return 0;
    if (!io->installed) {
        if (b->n == b->cap) {
            int r = grow(b);
            if (r)
                return r;
        }
        size_t i = b->n++;
        b->fds[i].fd = io->fd;
        b->fds[i].events = to_poll(events);
        b->fds[i].revents = 0;
        b->ios[i] = io;
        io->slot = i;
    } else if (events) {
        b->fds[io->slot].fd = io->fd; /* polled again if it was muted */
        b->fds[io->slot].events = to_poll(events);
    } else {
        size_t i = io->slot;
        size_t last = --b->n;
        if (i != last) {
            b->fds[i] = b->fds[last];
            b->ios[i] = b->ios[last];
            b->ios[i]->slot = i;
        }
        io->slot = SIZE_MAX;
    }
    io->installed = events;
    return 0;
}

static unsigned to_nk(short e)
{
    unsigned r = 0;
    if (e & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
        r |= NK_READ;
    if (e & (POLLOUT | POLLERR | POLLHUP | POLLNVAL))
        r |= NK_WRITE;
    return r;
}

/* The watcher's fd was closed while watched (the header forbids it): poll
 * would answer POLLNVAL at once on every call, a spin. It is reported to
 * the watcher this once, then skipped (poll ignores a negative fd) until
 * nk_io_set() or nk_io_stop(). */
static void mute(struct nk_backend *b, size_t i)
{
    b->fds[i].fd = -1;
    b->ios[i]->installed |= NK__IO_MUTED;
}

int nk__backend_poll(struct nk_backend *b, int timeout_ms, bool read_clock)
{
    int n = poll(b->fds, (nfds_t)b->n, timeout_ms);
    int err = errno;
    if (read_clock)
        nk__loop_read_clock(b->loop);
    if (n < 0)
        return err == EINTR ? 0 : -err;
    int dispatched = 0;
    /* b->n may shrink or grow under the callbacks; entries moved into
     * visited slots wait for the next poll (level-triggered: not lost). */
    for (size_t i = 0; i < b->n && dispatched < n; i++) {
        short re = b->fds[i].revents;
        if (!re)
            continue;
        b->fds[i].revents = 0;
        dispatched++;
        if (re & POLLNVAL)
            mute(b, i);
        nk__io_dispatch(b->ios[i], to_nk(re));
    }
    return dispatched;
}

void nk__backend_rebuild(struct nk_backend *b, nk_io *const *ios, size_t n)
{
    /* Never needed: removing a pollfd entry cannot fail. */
    (void)b;
    (void)ios;
    (void)n;
}

void nk__backend_invalidate(struct nk_backend *b, nk_io *io)
{
    /* Stopping removes the entry, and with it its revents. */
    if (io->installed && io->slot < b->n && b->ios[io->slot] == io)
        b->fds[io->slot].revents = 0;
}

int nk__backend_fd(const struct nk_backend *b)
{
    (void)b;
    return NK_ENOTSUP;
}
