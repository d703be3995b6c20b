/* The loop: run/stop, deferred and posted callbacks, fd watchers and their
 * dispatch. Timers are in loop_timer.c, signals in loop_signal.c, the
 * pollers in loop_epoll.c / loop_poll.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "netkit/error.h"
#include "netkit/loop.h"

#include "alloc.h"
#include "loop_impl.h"
#include "sock.h"

/* A posted callback; allocated by nk_loop_post(), freed after it ran. */
struct nk__post {
    struct nk__post *next;
    nk_task_cb cb;
    void *user;
};

/* A public deferred callback: the embedded task plus the user's callback. */
struct defer_node {
    struct nk__task task;
    nk_task_cb cb;
    void *user;
};

/* ---- time ---------------------------------------------------------- */

void nk__loop_read_clock(nk_loop *loop)
{
    loop->now = (uint64_t)nk__now_ms();
    loop->now_stale = false;
}

void nk_loop_update_time(nk_loop *loop)
{
    if (loop)
        nk__loop_read_clock(loop);
}

/* The clock is read after a wait only when a timer is waiting (timers
 * need it to fire on time; an iteration woken by one ready fd does not).
 * Otherwise the first caller of the iteration reads it here, so callers
 * still see the time of the current iteration. */
uint64_t nk__loop_now(nk_loop *loop)
{
    if (loop->now_stale)
        nk__loop_read_clock(loop);
    return loop->now;
}

uint64_t nk_loop_now(const nk_loop *loop)
{
    /* Every loop comes from nk_loop_new(): not a const object. */
    return loop ? nk__loop_now((nk_loop *)loop) : 0;
}


/* ---- fd watchers --------------------------------------------------- */

static int fd_claim(nk_loop *loop, nk_io *io)
{
    size_t fd = (size_t)io->fd;
    if (fd >= loop->fdtab_len) {
        size_t len = loop->fdtab_len ? loop->fdtab_len : 64;
        while (len <= fd)
            len *= 2;
        nk_io **t = nk__realloc(loop->fdtab, len * sizeof *t);
        if (!t)
            return -ENOMEM;
        memset(t + loop->fdtab_len, 0, (len - loop->fdtab_len) * sizeof *t);
        loop->fdtab = t;
        loop->fdtab_len = len;
    }
    if (loop->fdtab[fd])
        return -EEXIST;
    loop->fdtab[fd] = io;
    return 0;
}

/* nk__backend_update(), and the rebuild a failed removal calls for: the
 * fd was closed while watched (forbidden). If its file lives on through
 * another descriptor, so does an epoll registration, which would go on
 * reporting events carrying io after io is freed. Misuse only: the hot
 * path never comes here. */
static int backend_set(nk_loop *loop, nk_io *io, unsigned events)
{
    int r = nk__backend_update(loop->backend, io, events);
    if (r && !events) {
        nk__backend_rebuild(loop->backend, loop->fdtab, loop->fdtab_len);
        r = 0;
    }
    return r;
}

void nk__io_init(nk_io *io, nk_loop *loop, int fd, nk_io_cb cb, void *user)
{
    io->loop = loop;
    io->fd = fd;
    io->events = 0;
    io->installed = 0;
    io->cb = cb;
    io->user = user;
    io->active = false;
    io->allocated = false;
    io->slot = SIZE_MAX;
}

int nk__io_set(nk_io *io, unsigned events)
{
    nk_loop *loop = io->loop;
    bool fresh = !io->active;
    if (io->fd < 0 || (events & ~(unsigned)(NK_READ | NK_WRITE)))
        return NK_EINVAL;
    if (fresh) {
        int r = fd_claim(loop, io);
        if (r)
            return r;
        io->active = true;
        loop->ios++;
    }
    /* Level-triggered: the kernel is only told when the interest changes. */
    if (events != io->installed) {
        int r = backend_set(loop, io, events);
        if (r) {
            if (fresh) {
                loop->fdtab[io->fd] = NULL;
                io->active = false;
                loop->ios--;
            }
            return r;
        }
    }
    io->events = events;
    return 0;
}

void nk__io_stop(nk_io *io)
{
    if (!io->active)
        return;
    nk_loop *loop = io->loop;
    if (io->installed)
        (void)backend_set(loop, io, 0);
    nk__backend_invalidate(loop->backend, io);
    loop->fdtab[io->fd] = NULL;
    io->events = 0;
    io->active = false;
    loop->ios--;
}

int nk_io_start(nk_loop *loop, int fd, unsigned events, nk_io_cb cb,
                void *user, nk_io **out)
{
    if (!loop || fd < 0 || (events & ~(unsigned)(NK_READ | NK_WRITE)) || !cb
        || !out)
        return NK_EINVAL;
    nk_io *io = nk__malloc(sizeof *io);
    if (!io)
        return -ENOMEM;
    nk__io_init(io, loop, fd, cb, user);
    io->allocated = true;
    int r = nk__io_set(io, events);
    if (r) {
        nk__free(io);
        return r;
    }
    *out = io;
    return 0;
}

int nk_io_set(nk_io *io, unsigned events)
{
    if (!io || !io->active || (events & ~(unsigned)(NK_READ | NK_WRITE)))
        return NK_EINVAL;
    return nk__io_set(io, events);
}

unsigned nk_io_events(const nk_io *io)
{
    return io ? io->events : 0;
}

int nk_io_fd(const nk_io *io)
{
    return io ? io->fd : NK_EINVAL;
}

void nk_io_stop(nk_io *io)
{
    if (!io)
        return;
    nk__io_stop(io);
    if (io->allocated)
        nk__free(io);
}

/* ---- deferred tasks ------------------------------------------------ */

void nk__loop_defer_task(nk_loop *loop, struct nk__task *task, nk_task_cb cb,
                         void *user)
{
    if (task->queued)
        return;
    task->cb = cb;
    task->user = user;
    task->queued = true;
    task->epoch = loop->task_epoch;
    task->next = NULL;
    task->prev = loop->task_tail;
    if (loop->task_tail)
        loop->task_tail->next = task;
    else
        loop->task_head = task;
    loop->task_tail = task;
    loop->tasks++;
}

void nk__loop_cancel_task(nk_loop *loop, struct nk__task *task)
{
    if (!task->queued)
        return;
    if (task->prev)
        task->prev->next = task->next;
    else
        loop->task_head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        loop->task_tail = task->prev;
    task->next = task->prev = NULL;
    task->queued = false;
    loop->tasks--;
}

/* Runs the tasks queued before this call; those queued by them carry the
 * new epoch and wait for the next iteration, so a task that re-queues
 * itself cannot hold the loop here. */
static size_t run_tasks(nk_loop *loop)
{
    uint64_t epoch = loop->task_epoch++;
    struct nk__task *t;
    size_t ran = 0;
    while ((t = loop->task_head) && t->epoch == epoch) {
        nk__loop_cancel_task(loop, t);
        t->cb(loop, t->user);
        ran++;
    }
    return ran;
}

static void defer_trampoline(nk_loop *loop, void *arg)
{
    struct defer_node *d = arg;
    nk_task_cb cb = d->cb;
    void *user = d->user;
    nk__free(d);
    cb(loop, user);
}

int nk_loop_defer(nk_loop *loop, nk_task_cb cb, void *user)
{
    if (!loop || !cb)
        return NK_EINVAL;
    struct defer_node *d = nk__malloc(sizeof *d);
    if (!d)
        return -ENOMEM;
    d->cb = cb;
    d->user = user;
    d->task.queued = false;
    nk__loop_defer_task(loop, &d->task, defer_trampoline, d);
    return 0;
}

void nk__loop_ref(nk_loop *loop)
{
    loop->refs++;
}

void nk__loop_unref(nk_loop *loop)
{
    if (loop->refs)
        loop->refs--;
}

/* ---- cross-thread: wakeup, post, stop ------------------------------ */

static void wake(nk_loop *loop)
{
    ssize_t n;
#ifdef __linux__
    uint64_t one = 1;
    n = write(loop->wake_wfd, &one, sizeof one);
#else
    char one = 1;
    n = write(loop->wake_wfd, &one, 1);
#endif
    /* EAGAIN: the counter or pipe is full, so the loop is woken anyway. */
    (void)n;
}

static void wake_cb(nk_io *io, unsigned events, void *user)
{
    (void)events;
    (void)user;
    char buf[64];
    /* An eventfd is reset by one read; a pipe is drained, boundedly. */
    for (int i = 0; i < 16; i++) {
        if (read(io->fd, buf, sizeof buf) < (ssize_t)sizeof buf)
            break;
    }
}

/* A sender (nk_loop_post, nk_loop_stop) counts itself in before its first
 * access to the loop and out after its last. Its effect (a queued post, the
 * stop flag) is published before its wakeup write, so the owner may see it,
 * return from nk_loop_run() and call nk_loop_free() while the sender is
 * still inside the call: free waits for the count to drop to 0 before it
 * closes or frees anything a sender touches (libuv's async handles wait
 * for their senders the same way). The count is raised before the effect
 * is published, so an owner that saw the effect also sees the count. */
static void sender_enter(nk_loop *loop)
{
    atomic_fetch_add_explicit(&loop->senders, 1, memory_order_seq_cst);
}

static void sender_leave(nk_loop *loop)
{
    /* Release: the sender's reads of the loop happen before the free. */
    atomic_fetch_sub_explicit(&loop->senders, 1, memory_order_release);
}

/* A sender's stay is short and never waits on the loop thread (the post
 * lock is held for a few instructions, the wakeup write does not block),
 * so yielding until it has left is bounded by that. */
static void wait_for_senders(nk_loop *loop)
{
    while (atomic_load_explicit(&loop->senders, memory_order_acquire))
        sched_yield();
}

int nk_loop_post(nk_loop *loop, nk_task_cb cb, void *user)
{
    if (!loop || !cb)
        return NK_EINVAL;
    struct nk__post *p = nk__malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    sender_enter(loop);
    p->next = NULL;
    p->cb = cb;
    p->user = user;
    pthread_mutex_lock(&loop->post_lock);
    bool was_empty = !loop->post_head;
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    atomic_fetch_add(&loop->posted, 1);
    pthread_mutex_unlock(&loop->post_lock);
    /* Only the post that makes the queue non-empty needs to wake the loop:
     * the loop takes the whole queue at once after each wait. */
    if (was_empty)
        wake(loop);
    sender_leave(loop);
    return 0;
}

static void drain_posted(nk_loop *loop)
{
    if (!atomic_load_explicit(&loop->posted, memory_order_relaxed))
        return;
    pthread_mutex_lock(&loop->post_lock);
    struct nk__post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        struct nk__post *next = p->next;
        nk_task_cb cb = p->cb;
        void *user = p->user;
        nk__free(p);
        atomic_fetch_sub(&loop->posted, 1);
        cb(loop, user);
        p = next;
    }
}

void nk_loop_stop(nk_loop *loop)
{
    if (!loop)
        return;
    sender_enter(loop);
    if (!atomic_exchange(&loop->stop, true))
        wake(loop);
    sender_leave(loop);
}

/* ---- create / free ------------------------------------------------- */

static int wake_open(nk_loop *loop)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    loop->wake_rfd = loop->wake_wfd = fd;
#else
    int p[2];
    if (pipe(p) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
    }
    loop->wake_rfd = p[0];
    loop->wake_wfd = p[1];
#endif
    return 0;
}

static void wake_close(nk_loop *loop)
{
    if (loop->wake_wfd >= 0 && loop->wake_wfd != loop->wake_rfd)
        close(loop->wake_wfd);
    if (loop->wake_rfd >= 0)
        close(loop->wake_rfd);
    loop->wake_rfd = loop->wake_wfd = -1;
}

int nk_loop_new(nk_loop **out)
{
    if (!out)
        return NK_EINVAL;
    nk_loop *loop = nk__calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->wake_rfd = loop->wake_wfd = -1;
    loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    atomic_init(&loop->posted, 0);
    atomic_init(&loop->stop, false);
    atomic_init(&loop->senders, 0);
    int r = pthread_mutex_init(&loop->post_lock, NULL);
    if (r) {
        nk__free(loop);
        return -r;
    }
    r = nk__backend_init(loop, &loop->backend);
    if (r)
        goto fail_mutex;
    r = wake_open(loop);
    if (r)
        goto fail_backend;
    nk__io_init(&loop->wake_io, loop, loop->wake_rfd, wake_cb, NULL);
    r = nk__io_set(&loop->wake_io, NK_READ);
    if (r)
        goto fail_wake;
    loop->internal_ios++;
    nk_loop_update_time(loop);
    *out = loop;
    return 0;

fail_wake:
    wake_close(loop);
fail_backend:
    nk__backend_free(loop->backend);
fail_mutex:
    pthread_mutex_destroy(&loop->post_lock);
    nk__free(loop->fdtab);
    nk__free(loop);
    return r;
}

static size_t user_ios(const nk_loop *loop)
{
    return loop->ios - loop->internal_ios;
}

int nk_loop_free(nk_loop *loop)
{
    if (!loop)
        return NK_EINVAL;
    if (loop->running)
        return NK_EBUSY;
    /* Close work first: freeing a handle may queue more, so a few rounds.
     * Marked running meanwhile, so that a task calling nk_loop_free() or
     * nk_loop_run() is refused instead of freeing the loop under this
     * call; the time is marked stale, so a timer started there reads the
     * clock as outside a run. */
    loop->running = true;
    loop->now_stale = true;
    for (int i = 0; i < 64 && loop->tasks; i++)
        run_tasks(loop);
    loop->running = false;
    /* A reference is held by an object that still points at the loop. */
    if (user_ios(loop) || loop->heap_len || loop->fired_timers
        || loop->signals || loop->tasks || loop->refs)
        return NK_EBUSY;
    wait_for_senders(loop);
    nk__io_stop(&loop->wake_io);
    loop->internal_ios--;
    wake_close(loop);
    struct nk__post *p = loop->post_head;
    while (p) {
        struct nk__post *next = p->next;
        nk__free(p);
        p = next;
    }
    nk__backend_free(loop->backend);
    pthread_mutex_destroy(&loop->post_lock);
    nk__free(loop->fdtab);
    nk__free(loop);
    return 0;
}

/* ---- run ----------------------------------------------------------- */

static bool alive(const nk_loop *loop)
{
    return user_ios(loop) || loop->heap_len || loop->signals || loop->tasks
        || loop->refs
        || atomic_load_explicit(&loop->posted, memory_order_relaxed);
}

/* Milliseconds from @now until the loop has timed work. */
static int next_timeout(const nk_loop *loop, uint64_t now)
{
    if (loop->tasks || atomic_load_explicit(&loop->stop, memory_order_relaxed))
        return 0;
    if (!loop->heap_min)
        return -1;
    uint64_t next = nk__timers_first(loop);
    if (next <= now)
        return 0;
    uint64_t d = next - now;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* Outside nk_loop_run() the cached time is that of the last iteration: an
 * embedding program may have polled other things since, so the clock is
 * read (the loop's time is left alone, as its callbacks see it). */
int nk_loop_timeout(const nk_loop *loop)
{
    return loop ? next_timeout(loop, (uint64_t)nk__now_ms()) : 0;
}

static int iterate(nk_loop *loop, nk_run_mode mode)
{
    loop->iterations++;
    /* Each step costs one test when it has nothing to do, so an iteration
     * woken for one ready fd is little more than the wait and a call. */
    size_t ran = loop->task_head ? run_tasks(loop) : 0;
    /* Timers are only entered when the first one is due. */
    if (loop->heap_min && nk__timers_first(loop) <= loop->now)
        ran += nk__timers_run(loop);
    int timeout = 0;
    /* ONCE waits only if nothing has run yet in this iteration. */
    if (mode == NK_RUN_DEFAULT || (mode == NK_RUN_ONCE && !ran)) {
        /* DEFAULT checked alive() just before this call: only tasks and
         * timers that ran since can have changed it. */
        /* A timer is waiting: loop->now was read after the last wait or
         * when the timer started, never later than the real time. */
        if ((mode == NK_RUN_DEFAULT && !ran) || alive(loop))
            timeout = next_timeout(loop, loop->now);
    }
    /* With a timer waiting, the backend reads the clock when the wait
     * ends, before dispatch: that one read of the iteration serves the I/O
     * callbacks and the next iteration's timers. Without one, the clock is
     * read only if a callback asks for the time (or starts a timer). */
    bool timers = loop->heap_min != NULL;
    loop->now_stale = !timers;
    int r = nk__backend_poll(loop->backend, timeout, timers);
    drain_posted(loop);
    if (r < 0)
        return r;
    /* ONCE promises progress: if the wait ended on a timer's deadline,
     * fire it now rather than in an iteration that may never come. */
    if (mode == NK_RUN_ONCE && !ran && !r)
        nk__timers_run(loop);
    return 0;
}

int nk_loop_run(nk_loop *loop, nk_run_mode mode)
{
    if (!loop || (mode != NK_RUN_DEFAULT && mode != NK_RUN_ONCE
                  && mode != NK_RUN_NOWAIT))
        return NK_EINVAL;
    if (loop->running)
        return NK_EBUSY;
    loop->running = true;
    nk_loop_update_time(loop);
    int r = 0;
    for (;;) {
        if (mode == NK_RUN_DEFAULT && !alive(loop)
            && !atomic_load(&loop->stop))
            break;
        r = iterate(loop, mode);
        if (r < 0)
            break;
        if (atomic_load(&loop->stop)) {
            /* Posts made before the stop run before run() returns. */
            drain_posted(loop);
            atomic_store(&loop->stop, false);
            break;
        }
        if (mode != NK_RUN_DEFAULT)
            break;
    }
    loop->running = false;
    if (r < 0)
        return r;
    return mode == NK_RUN_DEFAULT ? 0 : alive(loop) ? 1 : 0;
}

int nk_loop_fd(const nk_loop *loop)
{
    if (!loop)
        return NK_EINVAL;
    return nk__backend_fd(loop->backend);
}

const char *nk_loop_backend(const nk_loop *loop)
{
    (void)loop;
    return nk__backend_name();
}

void nk_loop_get_stats(const nk_loop *loop, nk_loop_stats *out)
{
    if (!loop || !out)
        return;
    out->iterations = loop->iterations;
    out->ios = user_ios(loop);
    out->timers = loop->heap_len + loop->fired_timers;
    out->signals = loop->signals;
    out->pending = loop->tasks
        + atomic_load_explicit(&loop->posted, memory_order_relaxed);
}
