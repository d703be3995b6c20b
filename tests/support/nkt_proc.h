/* Child processes for tests that change process-wide state (rlimits, signal
 * dispositions) or may crash: the parent survives and sees the result. */
#ifndef NKT_PROC_H
#define NKT_PROC_H

#include <stdbool.h>
#include <sys/resource.h>

/* Run fn(arg) in a forked child with RLIMIT_NOFILE set to *nofile (if not
 * NULL) and SIGPIPE at SIG_DFL (@sigpipe_default) or SIG_IGN; the child
 * exits 0 when fn returns. A watchdog kills the child (by its pid) after
 * @timeout_ms. Returns the exit status, 128 + signal if it was killed by a
 * signal, -ETIMEDOUT after the watchdog fired, or -errno if fork failed.
 * Inside fn use NKT_CHILD_ASSERT, not cmocka's asserts (their longjmp
 * would go back into the parent's copy of the runner). */
int nkt_child(void (*fn)(void *), void *arg, const struct rlimit *nofile,
              bool sigpipe_default, int timeout_ms);

/* Report a failed check on stderr and end the child with status 100. */
_Noreturn void nkt_child_fail(const char *file, int line, const char *expr);

#define NKT_CHILD_ASSERT(cond)                                                \
    do {                                                                      \
        if (!(cond))                                                          \
            nkt_child_fail(__FILE__, __LINE__, #cond);                        \
    } while (0)

/* Running under valgrind? It emulates RLIMIT_NOFILE (a test at the
 * descriptor limit would test valgrind, not the library: skip it) and
 * slows everything down some fifty times. */
bool nkt_under_valgrind(void);

/* Open descriptors of this process (from /proc/self/fd), or -errno. */
int nkt_fd_count(void);

#endif
