/* The layout of nk_loop, shared by loop.c, loop_timer.c and loop_signal.c
 * only. Other lib/ files use the functions of loop_internal.h. */
#ifndef NK_LIB_LOOP_IMPL_H
#define NK_LIB_LOOP_IMPL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop_backend.h"

#ifndef NSIG
#define NSIG 65
#endif

struct nk__post; /* a posted callback, loop.c */

struct nk_loop {
    struct nk_backend *backend;
    uint64_t now;             /* cached monotonic time, ms */
    bool now_stale;           /* now not read since the last wait */
    uint64_t iterations;
    bool running;             /* inside nk_loop_run() */

    size_t ios;               /* active watchers, internal ones included */
    size_t internal_ios;      /* the loop's own: wakeup and signalfd */
    size_t signals;
    size_t refs;

    /* fd -> active watcher, to refuse a second watcher on one fd. */
    nk_io **fdtab;
    size_t fdtab_len;

    /* Timers: an intrusive binary min-heap ordered by (deadline, seq). */
    struct nk__heap_node *heap_min;
    size_t heap_len;
    uint64_t timer_seq;
    size_t fired_timers;      /* public one-shots fired and not yet stopped */

    /* Deferred tasks, FIFO. */
    struct nk__task *task_head;
    struct nk__task *task_tail;
    size_t tasks;
    uint64_t task_epoch;

    /* Cross-thread: posted callbacks and stop. */
    pthread_mutex_t post_lock;
    struct nk__post *post_head;
    struct nk__post *post_tail;
    atomic_size_t posted;
    atomic_bool stop;
    atomic_uint senders;      /* threads inside nk_loop_post/stop */
    int wake_rfd;
    int wake_wfd;             /* == wake_rfd for an eventfd */
    nk_io wake_io;

    /* Signals (loop_signal.c). */
    int sigfd;
    nk_io sig_io;
    sigset_t sigmask;
    nk_signal *sigs[NSIG];
};

/* loop_timer.c */
/* Fires the due timers; returns how many fired. */
size_t nk__timers_run(nk_loop *loop);
/* The earliest deadline, or UINT64_MAX with no timer (inline: read on
 * every iteration). */
static inline uint64_t nk__timers_first(const nk_loop *loop)
{
    const struct nk__heap_node *n = loop->heap_min;
    if (!n)
        return UINT64_MAX;
    return ((const nk_timer *)(const void *)((const char *)n
                                             - offsetof(nk_timer, node)))
        ->deadline;
}

#endif
