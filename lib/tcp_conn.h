/* The buffered connection shared by tcp_server and tcp_client.
 *
 * Connections of one server share one configuration block (options, the
 * read buffer every connection reads into, the list of closed connections
 * waiting for their on_close). A client's connection has a block of its
 * own. Keeping all of that out of the connection keeps an idle connection
 * small: its watcher, its timer, and a few counters. */
#ifndef NK_LIB_TCP_CONN_H
#define NK_LIB_TCP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop_internal.h"
#include "netkit/tcp.h"

struct nk__tcp_cfg;

/* Told of every connection freed (server statistics), before on_close. */
typedef void (*nk__tcp_closed_fn)(struct nk__tcp_cfg *cfg, int reason);
/* Frees the owner once it is dying and no connection is left. */
typedef void (*nk__tcp_release_fn)(struct nk__tcp_cfg *cfg);

struct nk__tcp_cfg {
    nk_loop *loop;
    nk_tcp_conn_opts opts;
    uint8_t *scratch;      /* every read lands here first */
    size_t scratch_size;
    /* Raw framing, an on_data, no idle timeout: a read goes to on_data
     * as it is (conn_io's fast path). */
    bool quick_read;
    nk_tcp_conn *live;     /* open (or closing) connections */
    nk_tcp_conn *closed;   /* finished: on_close pending, oldest first */
    nk_tcp_conn *closed_tail;
    size_t active;         /* connections not finished */
    size_t allocated;      /* connections not freed */
    uint64_t read_pauses;
    struct nk__task task;  /* runs on_close and frees closed connections */
    bool dying;            /* owner gone: release when allocated == 0 */
    nk__tcp_closed_fn on_closed;
    nk__tcp_release_fn release;
    void *owner;
    /* The connection whose on_open runs, and its address from accept():
     * kept here, not per connection, so idle connections stay small. */
    nk_tcp_conn *opening;
    nk_addr opening_peer;
};

/* Set up @cfg (copies @opts; scratch is provided by the caller). */
void nk__tcp_cfg_init(struct nk__tcp_cfg *cfg, nk_loop *loop,
                      const nk_tcp_conn_opts *opts);
/* The largest read buffer (read_chunk) a server or client accepts: a
 * bigger one is a mistake (SIZE_MAX would wrap the allocation's size), not
 * a need. */
#define NK__TCP_READ_CHUNK_MAX ((size_t)1 << 30)

/* Check connection options: 0 or NK_EINVAL. */
int nk__tcp_conn_opts_check(const nk_tcp_conn_opts *opts);

/* Wrap the connected, nonblocking socket @fd and start reading. NULL on
 * -ENOMEM or a loop failure (*err); the caller then still owns @fd. */
nk_tcp_conn *nk__tcp_conn_new(struct nk__tcp_cfg *cfg, int fd, int *err);

/* Close every connection of @cfg at once (reason 0). */
void nk__tcp_cfg_close_all(struct nk__tcp_cfg *cfg);

/* Mark @cfg dying; its release runs (deferred) once no connection is left. */
void nk__tcp_cfg_retire(struct nk__tcp_cfg *cfg);

#endif
