/* Internal loop API for lib/: watchers and timers embedded in other
 * objects (a connection holds its nk_io and nk_timer by value, so it costs
 * no extra allocation), and tasks that never fail to queue.
 *
 * The public nk_io_start()/nk_timer_start() allocate one of these and call
 * the nk__ functions below. */
#ifndef NK_LIB_LOOP_INTERNAL_H
#define NK_LIB_LOOP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/loop.h"

struct nk_io {
    nk_loop *loop;
    int fd;
    unsigned events;    /* what the owner wants (NK_READ | NK_WRITE) */
    unsigned installed; /* what the backend has registered (NK__IO_MUTED) */
    nk_io_cb cb;
    void *user;
    bool active;        /* counted in the loop's stats and registered */
    bool allocated;     /* made by nk_io_start(): nk_io_stop() frees it */
    size_t slot;        /* backend bookkeeping (poll: index in pollfd array) */
};

/* A node of the loop's timer heap, embedded in each timer so that starting
 * a timer never allocates (and so never fails). */
struct nk__heap_node {
    struct nk__heap_node *left;
    struct nk__heap_node *right;
    struct nk__heap_node *parent;
};

struct nk_timer {
    nk_loop *loop;
    uint64_t deadline;  /* loop time (ms) */
    uint64_t repeat;    /* ms, 0 for one-shot */
    uint64_t seq;       /* start order, breaks deadline ties */
    size_t heap_index;  /* SIZE_MAX when not in the heap */
    struct nk__heap_node node;
    nk_timer_cb cb;
    void *user;
    bool allocated;
};

/* A callback queued for the next iteration. Embedded in the object that
 * owns it, so queueing cannot fail (closing must never fail for lack of
 * memory). */
struct nk__task {
    struct nk__task *next;
    nk_task_cb cb;
    void *user;
    bool queued;
    struct nk__task *prev;  /* doubly linked: cancelling is O(1) */
    uint64_t epoch;         /* the task run that may run it */
};

/* Watchers embedded in another object. The first nk__io_set() starts the
 * watcher: from then on it counts as active (it keeps nk_loop_run() alive
 * and nk_loop_free() busy) until nk__io_stop(); it fails with -EEXIST if
 * another watcher has the fd, NK_EINVAL for a negative fd. nk__io_set()
 * with events == 0 unregisters the fd but keeps the watcher usable. nk__io_stop() is
 * idempotent; after it, no event for this watcher is dispatched, even one
 * already fetched in the current iteration. */
void nk__io_init(nk_io *io, nk_loop *loop, int fd, nk_io_cb cb, void *user);
int nk__io_set(nk_io *io, unsigned events);
void nk__io_stop(nk_io *io);

/* Timers embedded in another object. nk__timer_start() re-arms a running
 * timer; nk__timer_stop() is idempotent. */
void nk__timer_init(nk_timer *t, nk_loop *loop, nk_timer_cb cb, void *user);
void nk__timer_start(nk_timer *t, uint64_t timeout_ms, uint64_t repeat_ms);
void nk__timer_stop(nk_timer *t);
bool nk__timer_active(const nk_timer *t);

/* Queue @task (once: queueing a queued task does nothing) to run at the
 * start of the next iteration. Used to free closed handles outside the
 * callbacks that closed them. A queued task keeps the loop alive. */
void nk__loop_defer_task(nk_loop *loop, struct nk__task *task, nk_task_cb cb,
                         void *user);
/* Remove a queued task (for an owner freed before it ran). */
void nk__loop_cancel_task(nk_loop *loop, struct nk__task *task);

/* nk_loop_now() for lib/: no NULL check, no call through the exported
 * symbol (it runs once or twice per message for activity stamps). */
uint64_t nk__loop_now(nk_loop *loop);

/* Objects built on the loop that hold no active watcher but must keep
 * nk_loop_run(NK_RUN_DEFAULT) from returning add a reference. */
void nk__loop_ref(nk_loop *loop);
void nk__loop_unref(nk_loop *loop);

#endif
