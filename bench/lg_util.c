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

static uint64_t stat_cpu_ns(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');
    unsigned long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                     &ut, &st) != 2)
        return 0;
    return (uint64_t)(ut + st) * (1000000000u / (uint64_t)sysconf(_SC_CLK_TCK));
}

uint64_t lg_srv_cpu_ns(pid_t pid)
{
    char path[64];
    if (pid <= 0)
        return 0;
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
    return any ? sum : stat_cpu_ns(pid);
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
