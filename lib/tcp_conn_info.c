/* The connection's accessors: user data, addresses, counters, fd and
 * loop. Kept apart from tcp_conn.c, which holds its behaviour. */
#include <string.h>

#include "netkit/error.h"
#include "sock.h"
#include "tcp_conn_impl.h"

void nk_tcp_conn_set_user(nk_tcp_conn *c, void *user)
{
    if (c)
        c->user = user;
}

void *nk_tcp_conn_user(const nk_tcp_conn *c)
{
    return c ? c->user : NULL;
}

int nk_tcp_conn_peer(const nk_tcp_conn *c, nk_addr *out)
{
    if (!c || !out)
        return NK_EINVAL;
    if (c->flags & C_DEAD)
        return NK_ECLOSED;
    /* While on_open runs, the address accept() gave: a peer that reset
     * before we accepted has none left to ask getpeername() about. */
    if (c == c->cfg->opening && c->cfg->opening_peer.len != 0) {
        *out = c->cfg->opening_peer;
        return 0;
    }
    return nk__sock_peer(c->io.fd, out);
}

int nk_tcp_conn_local(const nk_tcp_conn *c, nk_addr *out)
{
    if (!c || !out)
        return NK_EINVAL;
    if (c->flags & C_DEAD)
        return NK_ECLOSED;
    return nk__sock_name(c->io.fd, out);
}

void nk_tcp_conn_get_stats(const nk_tcp_conn *c, nk_tcp_conn_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->bytes_in = c->bytes_in;
    out->bytes_out = c->bytes_out;
    out->queued = nk__conn_queued(c);
    out->peak_queued = c->peak_queued;
    out->buffered = nk__conn_buffered(c);
    out->reading_paused = (c->flags & C_PAUSED_WM) != 0;
}

int nk_tcp_conn_fd(const nk_tcp_conn *c)
{
    if (!c)
        return NK_EINVAL;
    return (c->flags & C_DEAD) ? NK_ECLOSED : c->io.fd;
}

nk_loop *nk_tcp_conn_loop(const nk_tcp_conn *c)
{
    return c ? c->cfg->loop : NULL;
}
