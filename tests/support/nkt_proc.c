#include "nkt_proc.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/syscall.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nkt_main.h"

_Noreturn void nkt_child_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: child check failed: %s\n", file, line, expr);
    fflush(stderr);
    _exit(100);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int decode(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -ECHILD;
}

/* Wait for @pid until @deadline: its status, or -ETIMEDOUT. A pidfd makes
 * the wait an event; without one (old kernels) poll waitpid in 5 ms steps. */
static int wait_child(pid_t pid, long long deadline)
{
#ifdef SYS_pidfd_open
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
#else
    int pfd = -1;
#endif
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (pfd >= 0)
                close(pfd);
            return decode(status);
        }
        if (r < 0 && errno != EINTR) {
            if (pfd >= 0)
                close(pfd);
            return -errno;
        }
        long long left = deadline - now_ms();
        if (left <= 0)
            break;
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN};
            poll(&p, 1, (int)left);
        } else {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (pfd >= 0)
        close(pfd);
    return -ETIMEDOUT;
}

/* Valgrind emulates RLIMIT_NOFILE in user space (it takes the descriptor
 * from the kernel, then closes it and reports EMFILE), so a test of the
 * library at the descriptor limit would test valgrind instead. */
bool nkt_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p != NULL && strstr(p, "vgpreload") != NULL;
}

int nkt_child(void (*fn)(void *), void *arg, const struct rlimit *nofile,
              bool sigpipe_default, int timeout_ms)
{
    if (nofile != NULL && nkt_under_valgrind()) {
        nkt_skip("RLIMIT_NOFILE is emulated under valgrind");
    }
    fflush(NULL); /* or buffered output would be written twice */
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        signal(SIGPIPE, sigpipe_default ? SIG_DFL : SIG_IGN);
        if (nofile != NULL && setrlimit(RLIMIT_NOFILE, nofile) < 0)
            nkt_child_fail(__FILE__, __LINE__, "setrlimit(RLIMIT_NOFILE)");
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    int rc = wait_child(pid, now_ms() + timeout_ms);
    if (rc == -ETIMEDOUT) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    return rc;
}

int nkt_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}
