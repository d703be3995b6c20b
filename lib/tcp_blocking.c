/* The blocking client: connect, send all, receive some / exactly N / a
 * line, each bounded by a deadline on the monotonic clock. The socket is
 * nonblocking underneath and every wait is a poll() that retries EINTR
 * against the time left (nk__wait_fd), so a signal never cuts a call short
 * and never stretches its deadline. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <poll.h>

#include "alloc.h"
#include "netkit/error.h"
#include "netkit/tcp.h"
#include "sock.h"

#define SYNC_BUF 4096

struct nk_tcp_sync {
    int fd;
    /* Bytes read ahead by recv_line: a partial line stays here across a
     * timeout, and what follows a line is returned by the next call. */
    uint8_t *buf;
    size_t head, len, cap;
};

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : nk__now_ms() + timeout_ms;
}

/* Milliseconds left before @deadline (-1: none), 0 once it has passed. */
static int left_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - nk__now_ms();
    if (left <= 0)
        return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int wait_for(int fd, short ev, int64_t deadline)
{
    int left = left_ms(deadline);
    if (left == 0)
        return -ETIMEDOUT;
    int r = nk__wait_fd(fd, ev, left);
    return r == 1 ? 0 : r;
}

int nk_tcp_sync_connect(const nk_addr *addr, int timeout_ms, nk_tcp_sync **out)
{
    if (!addr || !out || addr->len == 0)
        return NK_EINVAL;
    int64_t deadline = deadline_of(timeout_ms);
    nk_tcp_sync *s = nk__malloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    struct nk__sock_opts so = NK__SOCK_OPTS_INIT;
    so.reuseaddr = false;
    so.nodelay = true;
    int fd = -1;
    int r = nk__tcp_connect(addr, &so, &fd);
    if (r == 1) {
        r = wait_for(fd, POLLOUT, deadline);
        if (r == 0)
            r = nk__sock_error(fd);
    }
    if (r < 0) {
        if (fd >= 0 && r != NK_EINVAL)
            close(fd);
        nk__free(s);
        return r;
    }
    s->fd = fd;
    s->buf = NULL;
    s->head = s->len = s->cap = 0;
    *out = s;
    return 0;
}

int nk_tcp_sync_send_all(nk_tcp_sync *s, const void *buf, size_t len,
                         int timeout_ms)
{
    if (!s || (!buf && len) || len > PTRDIFF_MAX)
        return NK_EINVAL;
    int64_t deadline = deadline_of(timeout_ms);
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = nk__send(s->fd, p, len);
        if (n == -EAGAIN) {
            int r = wait_for(s->fd, POLLOUT, deadline);
            if (r)
                return r;
            continue;
        }
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One read of at most @cap bytes: buffered bytes first, then the socket. */
static int read_some(nk_tcp_sync *s, uint8_t *dst, size_t cap,
                     int64_t deadline)
{
    if (cap > INT_MAX)
        cap = INT_MAX;
    if (s->len > s->head) {
        size_t n = s->len - s->head;
        if (n > cap)
            n = cap;
        memcpy(dst, s->buf + s->head, n);
        s->head += n;
        return (int)n;
    }
    for (;;) {
        ssize_t n = nk__recv(s->fd, dst, cap);
        if (n > 0)
            return (int)n;
        if (n == 0)
            return NK_EOF;
        if (n != -EAGAIN)
            return (int)n;
        int r = wait_for(s->fd, POLLIN, deadline);
        if (r)
            return r;
    }
}

int nk_tcp_sync_recv(nk_tcp_sync *s, void *buf, size_t cap, int timeout_ms)
{
    if (!s || !buf || cap == 0)
        return NK_EINVAL;
    return read_some(s, buf, cap, deadline_of(timeout_ms));
}

int nk_tcp_sync_recv_exact(nk_tcp_sync *s, void *buf, size_t len,
                           int timeout_ms)
{
    if (!s || (!buf && len) || len > PTRDIFF_MAX)
        return NK_EINVAL;
    int64_t deadline = deadline_of(timeout_ms);
    uint8_t *p = buf;
    size_t got = 0;
    while (got < len) {
        int n = read_some(s, p + got, len - got, deadline);
        if (n == NK_EOF)
            return got ? NK_EMIDFRAME : NK_EOF;
        if (n < 0)
            return n;
        got += (size_t)n;
    }
    return 0;
}

/* Make room for at least one more byte after the buffered ones. */
static int make_room(nk_tcp_sync *s)
{
    if (s->head > 0) {
        memmove(s->buf, s->buf + s->head, s->len - s->head);
        s->len -= s->head;
        s->head = 0;
    }
    if (s->len < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : SYNC_BUF;
    uint8_t *nb = nk__realloc(s->buf, cap);
    if (!nb)
        return -ENOMEM;
    s->buf = nb;
    s->cap = cap;
    return 0;
}

int nk_tcp_sync_recv_line(nk_tcp_sync *s, char *buf, size_t cap,
                          int timeout_ms)
{
    if (!s || !buf || cap == 0)
        return NK_EINVAL;
    if (cap > INT_MAX)
        cap = INT_MAX;
    int64_t deadline = deadline_of(timeout_ms);
    size_t scanned = 0; /* bytes already known to hold no "\n" */
    for (;;) {
        const uint8_t *start = s->buf + s->head;
        size_t avail = s->len - s->head;
        const uint8_t *nl =
            avail > scanned ? memchr(start + scanned, '\n', avail - scanned)
                            : NULL;
        if (nl) {
            size_t take = (size_t)(nl - start) + 1;
            size_t body = take - 1;
            if (body > 0 && start[body - 1] == '\r')
                body--;
            if (body > cap - 1)
                return NK_ELINE_TOO_LONG;
            memcpy(buf, start, body);
            buf[body] = '\0';
            s->head += take;
            return (int)body;
        }
        scanned = avail;
        /* A trailing "\r" may still be the start of "\r\n". */
        size_t body = avail;
        if (body > 0 && start[body - 1] == '\r')
            body--;
        if (body > cap - 1)
            return NK_ELINE_TOO_LONG;
        int r = make_room(s);
        if (r)
            return r;
        ssize_t n = nk__recv(s->fd, s->buf + s->len, s->cap - s->len);
        if (n > 0) {
            s->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return avail ? NK_EMIDFRAME : NK_EOF;
        if (n != -EAGAIN)
            return (int)n;
        r = wait_for(s->fd, POLLIN, deadline);
        if (r)
            return r;
    }
}

int nk_tcp_sync_shutdown(nk_tcp_sync *s)
{
    if (!s)
        return NK_EINVAL;
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

int nk_tcp_sync_fd(const nk_tcp_sync *s)
{
    return s ? s->fd : NK_EINVAL;
}

void nk_tcp_sync_close(nk_tcp_sync *s)
{
    if (!s)
        return;
    close(s->fd);
    nk__free(s->buf);
    nk__free(s);
}
