/* The load generator's shared pieces. It uses no part of libnetkit (plain
 * nonblocking sockets and epoll) so that it measures every server alike,
 * and it batches its own I/O so that it is not the bottleneck. */
#ifndef BENCH_LG_H
#define BENCH_LG_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum lg_mode { LG_TCP, LG_UDP, LG_ROOM, LG_IDLE };

struct lg_opts {
    enum lg_mode mode;
    struct sockaddr_in addr;
    int conns;          /* tcp: connections; udp: sockets; idle: connections */
    int size;           /* bytes per message */
    int depth;          /* tcp: pipeline depth; udp/room: window */
    double secs;        /* measured duration (after warmup) */
    double warmup;      /* seconds before measuring */
    uint64_t count;     /* tcp: fixed message count instead of duration */
    int receivers;      /* room */
    int senders;        /* room */
    double rate;        /* room: messages/s over all senders, 0 = window */
    int timeout_ms;     /* udp/room: a datagram not back by then is lost */
    pid_t pid;          /* server pid, for CPU and memory from /proc */
    int src_ips;        /* idle: spread sources over 127.0.0.2.. */
};

/* Pattern streams: pat holds lowercase-heavy text, upat the same uppercased;
 * both are doubled so any slice of up to LG_PATLEN bytes is contiguous. */
#define LG_PATLEN 131071
extern char lg_pat[2 * LG_PATLEN];
extern char lg_upat[2 * LG_PATLEN];

uint64_t lg_now_ns(void);
void lg_die(const char *fmt, ...);

/* Latency histogram in nanoseconds, about 1.5% resolution. */
#define LG_HIST_BUCKETS (128 + 58 * 64)
struct lg_hist {
    uint64_t n;
    uint64_t b[LG_HIST_BUCKETS];
};
void lg_hist_add(struct lg_hist *h, uint64_t ns);
uint64_t lg_hist_pct(const struct lg_hist *h, double q);

/* Server CPU time: ns from /proc/PID/task/T/schedstat summed over threads
 * (utime+stime from /proc/PID/stat when schedstat is missing), and the
 * user and system clock ticks from /proc/PID/stat, for the user share. */
struct lg_cpu {
    uint64_t ns;
    unsigned long user_ticks, sys_ticks;
    uint64_t self_ns; /* the load generator's own CPU time */
};
struct lg_cpu lg_srv_cpu(pid_t pid);
/* Add srv_cpu_ns_per_msg and srv_user_pct for @msgs between @a and @b, and
 * how busy the server and the load generator were over those @secs (both
 * well under 100% means the machine's other work held them back). */
void lg_result_cpu(const struct lg_opts *o, const struct lg_cpu *a, const struct lg_cpu *b,
                   double msgs, double secs);
/* Server memory in KiB: Private_Dirty and Rss from smaps_rollup. */
bool lg_srv_mem_kib(pid_t pid, long *priv_dirty, long *rss);

/* Print the one result line: "result mode=... key=value ...". */
void lg_result_begin(const char *mode, const struct lg_opts *o);
void lg_result_kv(const char *key, const char *fmt, ...);
void lg_result_end(void);
void lg_result_latency(const struct lg_hist *h);

int lg_run_tcp(const struct lg_opts *o);
int lg_run_udp(const struct lg_opts *o);
int lg_run_room(const struct lg_opts *o);
int lg_run_idle(const struct lg_opts *o);

#endif
