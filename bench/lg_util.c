/* Load generator: clock, histogram, /proc readings and the result line. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lg.h"

char lg_pat[2 * LG_PATLEN];
char lg_upat[2 * LG_PATLEN];

uint64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void lg_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int hist_index(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v); /* >= 7 */
    return 128 + (e - 7) * 64 + (int)((v >> (e - 6)) & 63);
}

static uint64_t hist_value(int i)
{
    if (i < 128)
        return (uint64_t)i;
    int e = (i - 128) / 64 + 7;
    uint64_t sub = (uint64_t)((i - 128) % 64);
    uint64_t lo = (64 + sub) << (e - 6);
    return lo + ((1ull << (e - 6)) >> 1); /* middle of the bucket */
}

void lg_hist_add(struct lg_hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->n++;
}

uint64_t lg_hist_pct(const struct lg_hist *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (int i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen > want)
            return hist_value(i);
    }
    return hist_value(LG_HIST_BUCKETS - 1);
}

static bool stat_ticks(pid_t pid, unsigned long *ut, unsigned long *st)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');
    /* fields after the command: state(3) ... utime(14) stime(15) */
    return p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                       ut, st) == 2;
}

static uint64_t schedstat_ns(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t sum = 0;
    bool any = false;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p2[600];
        unsigned long long ns;
        snprintf(p2, sizeof p2, "%s/%s/schedstat", path, de->d_name);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += ns;
            any = true;
        }
        fclose(f);
    }
    closedir(d);
    return any ? sum : 0;
}

struct lg_cpu lg_srv_cpu(pid_t pid)
{
    struct lg_cpu c = {0, 0, 0, 0};
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        c.self_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (pid <= 0)
        return c;
    stat_ticks(pid, &c.user_ticks, &c.sys_ticks);
    c.ns = schedstat_ns(pid);
    if (c.ns == 0)
        c.ns = (uint64_t)(c.user_ticks + c.sys_ticks) *
               (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
    return c;
}

void lg_result_cpu(const struct lg_opts *o, const struct lg_cpu *a, const struct lg_cpu *b,
                   double msgs, double secs)
{
    if (secs > 0 && b->self_ns > a->self_ns)
        lg_result_kv("lg_busy_pct", "%.0f", (double)(b->self_ns - a->self_ns) / secs / 1e7);
    if (o->pid <= 0 || b->ns <= a->ns || msgs <= 0)
        return;
    if (secs > 0)
        lg_result_kv("srv_busy_pct", "%.0f", (double)(b->ns - a->ns) / secs / 1e7);
    lg_result_kv("srv_cpu_ns_per_msg", "%.1f", (double)(b->ns - a->ns) / msgs);
    unsigned long u = b->user_ticks - a->user_ticks, s = b->sys_ticks - a->sys_ticks;
    if (u + s > 0)
        lg_result_kv("srv_user_pct", "%.1f", 100.0 * (double)u / (double)(u + s));
}

bool lg_srv_mem_kib(pid_t pid, long *priv_dirty, long *rss)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    *priv_dirty = *rss = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "Private_Dirty: %ld", priv_dirty);
        sscanf(line, "Rss: %ld", rss);
    }
    fclose(f);
    return *priv_dirty >= 0 && *rss >= 0;
}

void lg_result_begin(const char *mode, const struct lg_opts *o)
{
    (void)o;
    printf("result mode=%s", mode);
}

void lg_result_kv(const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf(" %s=", key);
    vprintf(fmt, ap);
    va_end(ap);
}

void lg_result_end(void)
{
    putchar('\n');
    fflush(stdout);
}

void lg_result_latency(const struct lg_hist *h)
{
    lg_result_kv("p50_us", "%.1f", (double)lg_hist_pct(h, 0.50) / 1e3);
    lg_result_kv("p99_us", "%.1f", (double)lg_hist_pct(h, 0.99) / 1e3);
    lg_result_kv("p999_us", "%.1f", (double)lg_hist_pct(h, 0.999) / 1e3);
}
