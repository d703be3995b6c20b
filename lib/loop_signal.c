/* Signal watchers. Linux: one signalfd per loop carries the mask of every
 * watched signal; the signals are blocked in the calling thread, so no
 * handler runs and no system call is interrupted. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/signalfd.h>
#endif

#include "netkit/error.h"

#include "alloc.h"
#include "loop_impl.h"

struct nk_signal {
    nk_loop *loop;
    int signum;
    bool was_blocked; /* blocked before we blocked it: leave it so */
    nk_signal_cb cb;
    void *user;
};

#ifdef __linux__

static void sigfd_cb(nk_io *io, unsigned events, void *user)
{
    (void)io;
    (void)events;
    nk_loop *loop = user;
    struct signalfd_siginfo si[16];
    /* Bounded: at most 4 reads per readiness; the rest waits for the next
     * iteration (level-triggered). */
    for (int round = 0; round < 4 && loop->sigfd >= 0; round++) {
        ssize_t n = read(loop->sigfd, si, sizeof si);
        if (n < (ssize_t)sizeof si[0])
            return;
        size_t count = (size_t)n / sizeof si[0];
        for (size_t i = 0; i < count; i++) {
            int signo = (int)si[i].ssi_signo;
            /* A callback may stop any watcher: look each one up again. */
            nk_signal *s = signo > 0 && signo < NSIG ? loop->sigs[signo] : NULL;
            if (s)
                s->cb(s, signo, s->user);
        }
    }
}

/* Discard deliveries of signum still pending, so unblocking it does not
 * run its default action (which would end the process for SIGTERM). */
static void discard_pending(int signum)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signum);
    struct timespec zero = {0, 0};
    for (int i = 0; i < 64; i++) {
        sigset_t pending;
        if (sigpending(&pending) < 0 || !sigismember(&pending, signum))
            return;
        if (sigtimedwait(&one, NULL, &zero) < 0)
            return;
    }
}

static void unblock(const nk_signal *s)
{
    if (s->was_blocked)
        return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, s->signum);
    discard_pending(s->signum);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

int nk_signal_start(nk_loop *loop, int signum, nk_signal_cb cb, void *user,
                    nk_signal **out)
{
    if (!loop || !cb || !out || signum <= 0 || signum >= NSIG
        || signum == SIGKILL || signum == SIGSTOP)
        return NK_EINVAL;
#ifdef SIGRTMIN
    /* The C library reserves the numbers below SIGRTMIN for its threads. */
    if (signum > 31 && signum < SIGRTMIN)
        return NK_EINVAL;
#endif
    if (loop->sigs[signum])
        return -EEXIST;
    nk_signal *s = nk__malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->signum = signum;
    s->cb = cb;
    s->user = user;

    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, signum);
    int r = pthread_sigmask(SIG_BLOCK, &one, &old);
    if (r) {
        nk__free(s);
        return -r;
    }
    s->was_blocked = sigismember(&old, signum) == 1;

    sigset_t mask = loop->sigmask;
    sigaddset(&mask, signum);
    int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        goto fail;
    }
    if (loop->sigfd < 0) {
        nk__io_init(&loop->sig_io, loop, fd, sigfd_cb, loop);
        r = nk__io_set(&loop->sig_io, NK_READ);
        if (r) {
            close(fd);
            goto fail;
        }
        loop->sigfd = fd;
        loop->internal_ios++;
    }
    loop->sigmask = mask;
    loop->sigs[signum] = s;
    loop->signals++;
    *out = s;
    return 0;

fail:
    if (!s->was_blocked)
        pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    nk__free(s);
    return r;
}

void nk_signal_stop(nk_signal *s)
{
    if (!s)
        return;
    nk_loop *loop = s->loop;
    loop->sigs[s->signum] = NULL;
    loop->signals--;
    sigdelset(&loop->sigmask, s->signum);
    if (!loop->signals) {
        nk__io_stop(&loop->sig_io);
        loop->internal_ios--;
        close(loop->sigfd);
        loop->sigfd = -1;
    } else {
        /* Shrinking the mask of an existing signalfd cannot fail for
         * lack of memory; if it fails anyway, the extra signal is
         * ignored on read. */
        (void)signalfd(loop->sigfd, &loop->sigmask, 0);
    }
    unblock(s);
    nk__free(s);
}

#else /* !__linux__ */

int nk_signal_start(nk_loop *loop, int signum, nk_signal_cb cb, void *user,
                    nk_signal **out)
{
    (void)loop;
    (void)signum;
    (void)cb;
    (void)user;
    (void)out;
    return NK_ENOTSUP;
}

void nk_signal_stop(nk_signal *s)
{
    (void)s;
}

#endif
