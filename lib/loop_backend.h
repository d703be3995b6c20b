/* The interface each poller implements (loop_epoll.c, loop_poll.c); one is
 * compiled in, chosen by the meson option `backend`. */
#ifndef NK_LIB_LOOP_BACKEND_H
#define NK_LIB_LOOP_BACKEND_H

#include "loop_internal.h"

struct nk_backend; /* defined by the backend */

int nk__backend_init(nk_loop *loop, struct nk_backend **out);
void nk__backend_free(struct nk_backend *b);
const char *nk__backend_name(void);
/* Register, change or (events == 0) remove io's interest. A removal fails
 * only if io's fd was closed (or its number reused) while watched; io is
 * unregistered (installed 0) all the same, and the caller must then call
 * nk__backend_rebuild(). */
int nk__backend_update(struct nk_backend *b, nk_io *io, unsigned events);
/* Drop every registration and make them again from @ios (n entries, NULL
 * or watchers; those with nothing installed are skipped): the only way to
 * drop a registration whose fd number is gone. One that cannot be made
 * again is left uninstalled, for the next nk__io_set() to retry. */
void nk__backend_rebuild(struct nk_backend *b, nk_io *const *ios, size_t n);
/* Wait up to timeout_ms (-1: forever), then, if @read_clock, read the
 * clock (nk__loop_read_clock) before dispatching to each ready watcher
 * (nk__io_dispatch). Returns the number dispatched or a -errno (EINTR is
 * not an error: 0). */
int nk__backend_poll(struct nk_backend *b, int timeout_ms, bool read_clock);
/* Forget events already fetched for io in the current batch. */
void nk__backend_invalidate(struct nk_backend *b, nk_io *io);
/* The fd for nk_loop_fd(), or NK_ENOTSUP. */
int nk__backend_fd(const struct nk_backend *b);

/* A bit a backend may add to io->installed: the fd stays registered but
 * is no longer polled (poll: it was closed while watched). The next
 * nk__io_set() then differs from installed, so it reaches
 * nk__backend_update(), which polls the fd again; nk__io_stop() removes it
 * as usual. */
#define NK__IO_MUTED 0x100u

/* Implemented by loop.c: read the clock into the loop's time. */
void nk__loop_read_clock(nk_loop *loop);

/* Delivers fetched events to io, for the backends' dispatch loops: only
 * those still watched, since interest may have shrunk since the fetch. */
static inline void nk__io_dispatch(nk_io *io, unsigned events)
{
    events &= io->events;
    if (events)
        io->cb(io, events, io->user);
}

#endif
