/**
 * @file netkit/loop.h
 * @brief The event loop: file descriptor watchers, timers, signals,
 * deferred and cross-thread callbacks.
 *
 * One loop per thread. Every function here must be called from the thread
 * that runs the loop, except nk_loop_stop() and nk_loop_post(), which are
 * safe from any thread until nk_loop_free() is called (see there).
 *
 * Handles are opaque. Ownership, the rule for every handle of the library
 * (nk_io, nk_timer and nk_signal here; nk_tcp_server, nk_tcp_conn,
 * nk_tcp_client, nk_udp_endpoint and nk_udp_room in their headers): a
 * handle belongs to the application from the call that creates it until the
 * one call that ends it (its stop, close or free); a fired one-shot timer is
 * still a handle until stopped. nk_loop_free() returns NK_EBUSY and frees
 * nothing while any handle is alive. After the ending call the pointer is
 * invalid, as after free().
 *
 * Ending an nk_io, nk_timer or nk_signal (its stop) frees it at once; this
 * is safe from inside any callback, its own included, and no event for it
 * is delivered afterwards, even when its file descriptor number is reused
 * in the same iteration.
 *
 * | callback       | when it runs                           | event data        |
 * |----------------|----------------------------------------|-------------------|
 * | nk_io_cb       | fd readable and/or writable            | NK_READ/NK_WRITE  |
 * | nk_timer_cb    | deadline reached (monotonic clock)     | none              |
 * | nk_signal_cb   | a watched signal was delivered         | signal number     |
 * | nk_task_cb     | next iteration (defer) or soon (post)  | none              |
 */
#ifndef NETKIT_LOOP_H
#define NETKIT_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief An event loop (opaque). */
typedef struct nk_loop nk_loop;
/** @brief A file descriptor watcher (opaque). */
typedef struct nk_io nk_io;
/** @brief A one-shot or repeating timer (opaque). */
typedef struct nk_timer nk_timer;
/** @brief A signal watcher (opaque). */
typedef struct nk_signal nk_signal;

/** @brief Interest and event bits for nk_io. */
enum nk_io_events {
    NK_READ = 1,  /**< Readable, or the peer closed, or an error is pending. */
    NK_WRITE = 2, /**< Writable, or an error is pending. */
};

/** @brief How long nk_loop_run() runs. */
typedef enum nk_run_mode {
    /** Until nk_loop_stop(), or until nothing is left to wait for. */
    NK_RUN_DEFAULT = 0,
    /** One iteration, waiting for at least one event if none is ready. */
    NK_RUN_ONCE = 1,
    /** One iteration without waiting: handles what is ready now. */
    NK_RUN_NOWAIT = 2,
} nk_run_mode;

/**
 * @brief Called when the fd is ready.
 * @param io     The watcher.
 * @param events NK_READ and/or NK_WRITE, among those watched. Errors and
 *               hang-ups are reported as the watched bits, so the next read
 *               or write returns the error.
 * @param user   The pointer given to nk_io_start().
 */
typedef void (*nk_io_cb)(nk_io *io, unsigned events, void *user);
/** @brief Called when the timer's deadline is reached. */
typedef void (*nk_timer_cb)(nk_timer *timer, void *user);
/** @brief Called on the loop thread after @p signum was delivered. */
typedef void (*nk_signal_cb)(nk_signal *sig, int signum, void *user);
/** @brief A deferred or posted callback. */
typedef void (*nk_task_cb)(nk_loop *loop, void *user);

/** @brief Counters that describe a loop (see nk_loop_get_stats()). */
typedef struct nk_loop_stats {
    uint64_t iterations; /**< Iterations run so far (for "no spin" checks). */
    size_t ios;          /**< Active fd watchers, library-internal included. */
    size_t timers;       /**< Timers not stopped yet: armed ones
                              (library-internal included) and fired
                              one-shot ones. */
    size_t signals;      /**< Active signal watchers. */
    size_t pending;      /**< Deferred and posted callbacks not yet run. */
} nk_loop_stats;

/**
 * @brief Create a loop with the backend chosen at build time.
 * @param out Receives the loop.
 * @return 0, NK_EINVAL, -ENOMEM, -EMFILE or another -errno from the
 * backend's setup (epoll_create1, eventfd).
 */
NK_API int nk_loop_new(nk_loop **out);

/**
 * @brief Free the loop.
 *
 * Runs the close work still pending (handles closed but not yet freed)
 * first. Not from a callback of this loop.
 *
 * Other threads: an nk_loop_post() or nk_loop_stop() that began before this
 * call may still be inside it when its effect is seen (its callback ran, or
 * its stop ended nk_loop_run()); nk_loop_free() waits for such calls to
 * return before it frees anything, so once it has returned no thread that
 * called them before touches the loop. A post or stop that begins after
 * nk_loop_free() was called is a use after free, the caller's bug: free
 * the loop only once every other thread's last call is one whose effect was
 * seen, or once that thread was joined.
 * @param loop The loop.
 * @return 0, NK_EINVAL for NULL (nothing to free), or NK_EBUSY (and
 * nothing is freed) while a handle is alive, a fired one-shot timer
 * included (stop or close them first), or when called from a callback of
 * this loop.
 */
NK_API int nk_loop_free(nk_loop *loop);

/**
 * @brief Run the loop.
 * @param loop The loop.
 * @param mode NK_RUN_DEFAULT, NK_RUN_ONCE or NK_RUN_NOWAIT.
 * @return 0 when stopped or when nothing is left to wait for in
 * NK_RUN_DEFAULT; in NK_RUN_ONCE/NK_RUN_NOWAIT, 1 if active handles remain
 * and 0 otherwise; a negative code if the backend fails (for example
 * -ENOMEM), NK_EBUSY if called from inside one of its own callbacks.
 */
NK_API int nk_loop_run(nk_loop *loop, nk_run_mode mode);

/**
 * @brief Make nk_loop_run() return after the current iteration.
 *
 * Safe from any thread and from a signal-free context; wakes the loop if it
 * is waiting. A stop requested while the loop is not running makes the next
 * nk_loop_run() return after one iteration. From another thread, only
 * before nk_loop_free() is called (see there).
 * @param loop The loop.
 */
NK_API void nk_loop_stop(nk_loop *loop);

/**
 * @brief Run @p cb on the loop thread soon. Safe from any thread.
 *
 * Callbacks posted from one thread run in the order posted, each exactly
 * once, even if the loop is stopped and run again; nk_loop_free() drops
 * those never run. From another thread, only before nk_loop_free() is
 * called (see there).
 * @param loop The loop.
 * @param cb   The callback.
 * @param user Passed to @p cb.
 * @return 0, NK_EINVAL, -ENOMEM.
 */
NK_API int nk_loop_post(nk_loop *loop, nk_task_cb cb, void *user);

/**
 * @brief Run @p cb at the start of the next iteration. Loop thread only;
 * safe from callbacks.
 * @param loop The loop.
 * @param cb   The callback.
 * @param user Passed to @p cb.
 * @return 0, NK_EINVAL, -ENOMEM.
 */
NK_API int nk_loop_defer(nk_loop *loop, nk_task_cb cb, void *user);

/**
 * @brief The loop's cached time in milliseconds on the monotonic clock,
 * updated at the start of each iteration.
 * @param loop The loop.
 * @return The cached time in milliseconds.
 */
NK_API uint64_t nk_loop_now(const nk_loop *loop);

/**
 * @brief Refresh the cached time (for long callbacks).
 * @param loop The loop.
 */
NK_API void nk_loop_update_time(nk_loop *loop);

/**
 * @brief A file descriptor that becomes readable when the loop has events
 * to handle, for embedding in another program's loop: poll it there, then
 * call nk_loop_run(loop, NK_RUN_NOWAIT). Also wait no longer than
 * nk_loop_timeout() so timers fire on time.
 *
 * The fd stays the same for the loop's life, except in one case of misuse
 * (a watched fd closed before its watcher was stopped, while a dup keeps
 * its file open) met with no descriptor to spare: the loop then replaces
 * it, or, if even that fails, has none and its runs fail with -EBADF.
 * @param loop The loop.
 * @return The fd (owned by the loop; do not close it), NK_ENOTSUP with
 * the poll backend, which has no such descriptor, or -EBADF in the case
 * above.
 */
NK_API int nk_loop_fd(const nk_loop *loop);

/**
 * @brief How long the loop may wait before it has timed work, from now.
 *
 * Reads the clock: the answer counts the time spent outside nk_loop_run()
 * since its last iteration (nk_loop_now() is not changed).
 * @param loop The loop.
 * @return Milliseconds until the loop has timed work: 0 if it has work
 * now, -1 if it waits for fd events only.
 */
NK_API int nk_loop_timeout(const nk_loop *loop);

/**
 * @brief The backend in use.
 * @param loop The loop.
 * @return "epoll" or "poll", a constant string.
 */
NK_API const char *nk_loop_backend(const nk_loop *loop);

/**
 * @brief Fill @p out with the loop's counters.
 * @param loop The loop.
 * @param out  Receives the counters.
 */
NK_API void nk_loop_get_stats(const nk_loop *loop, nk_loop_stats *out);

/**
 * @brief Watch @p fd for @p events (NK_READ | NK_WRITE; 0 is allowed and
 * watches nothing until nk_io_set()).
 *
 * The caller keeps owning the fd: stop the watcher before closing it. If
 * it is closed first anyway, the poll backend tells the watcher once (as
 * its watched bits: the next read or write fails with EBADF) and then skips
 * the fd until nk_io_set(); with either backend nothing of the watcher
 * remains once it is stopped, even if a dup keeps the file open.
 * @param loop   The loop.
 * @param fd     The file descriptor to watch.
 * @param events NK_READ and/or NK_WRITE, or 0.
 * @param cb     Called when the fd is ready.
 * @param user   Passed to @p cb.
 * @param out    Receives the watcher.
 * @return 0, NK_EINVAL (NULL, negative fd, unknown bits), -EEXIST (fd
 * already watched on this loop), -ENOMEM, -EPERM (epoll: fd is a regular
 * file) or another -errno from the backend.
 */
NK_API int nk_io_start(nk_loop *loop, int fd, unsigned events, nk_io_cb cb,
                       void *user, nk_io **out);

/**
 * @brief Change what the watcher waits for. Safe from any callback.
 * @param io     The watcher.
 * @param events NK_READ and/or NK_WRITE, or 0.
 * @return 0, NK_EINVAL, or a -errno from the backend.
 */
NK_API int nk_io_set(nk_io *io, unsigned events);

/**
 * @brief The events the watcher waits for.
 * @param io The watcher.
 * @return NK_READ and/or NK_WRITE, or 0.
 */
NK_API unsigned nk_io_events(const nk_io *io);

/**
 * @brief The watched fd.
 * @param io The watcher.
 * @return The file descriptor given to nk_io_start().
 */
NK_API int nk_io_fd(const nk_io *io);

/**
 * @brief Stop watching and free the watcher (the fd stays open). Safe from
 * any callback, the watcher's own included; @p io is invalid afterwards.
 * NULL is ignored.
 * @param io The watcher.
 */
NK_API void nk_io_stop(nk_io *io);

/**
 * @brief Start a timer that fires after @p timeout_ms, then every
 * @p repeat_ms if that is not 0.
 *
 * Timers fire in deadline order, never early; equal deadlines fire in
 * start order. Insert and stop cost O(log n).
 * @param loop       The loop.
 * @param timeout_ms Milliseconds until the first firing.
 * @param repeat_ms  Period after that, or 0 for a one-shot timer.
 * @param cb         Called when the timer fires.
 * @param user       Passed to @p cb.
 * @param out        Receives the timer.
 * @return 0, NK_EINVAL, -ENOMEM.
 */
NK_API int nk_timer_start(nk_loop *loop, uint64_t timeout_ms,
                          uint64_t repeat_ms, nk_timer_cb cb, void *user,
                          nk_timer **out);

/**
 * @brief Re-arm a timer (running or fired one-shot) with a new timeout and
 * repeat. Safe from any callback, the timer's own included.
 * @param timer      The timer.
 * @param timeout_ms Milliseconds until the next firing.
 * @param repeat_ms  Period after that, or 0 for a one-shot timer.
 * @return 0, NK_EINVAL.
 */
NK_API int nk_timer_restart(nk_timer *timer, uint64_t timeout_ms,
                            uint64_t repeat_ms);

/**
 * @brief Stop and free the timer. Safe from any callback, the timer's own
 * included. A one-shot timer that fired is not freed by firing: stop it
 * (until then nk_loop_free() returns NK_EBUSY), or re-arm it.
 * NULL is ignored.
 * @param timer The timer.
 */
NK_API void nk_timer_stop(nk_timer *timer);

/**
 * @brief Call @p cb on the loop thread when @p signum is delivered.
 *
 * Linux: the signal is blocked in the calling thread and read through a
 * signalfd, so no handler runs and no system call is interrupted. Start
 * watchers before creating threads so they inherit the mask; several
 * deliveries before the loop runs may be merged into one call.
 * @param loop   The loop.
 * @param signum The signal number (SIGINT, SIGTERM, ...).
 * @param cb     Called on the loop thread after each delivery.
 * @param user   Passed to @p cb.
 * @param out    Receives the watcher.
 * @return 0, NK_EINVAL (bad signal number, SIGKILL, SIGSTOP), -EEXIST
 * (already watched on this loop), -ENOMEM, or a -errno.
 */
NK_API int nk_signal_start(nk_loop *loop, int signum, nk_signal_cb cb,
                           void *user, nk_signal **out);

/**
 * @brief Stop watching and free; the signal is unblocked again.
 * Safe from any callback. NULL is ignored.
 * @param sig The watcher.
 */
NK_API void nk_signal_stop(nk_signal *sig);

#ifdef __cplusplus
}
#endif
#endif
