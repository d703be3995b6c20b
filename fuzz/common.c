/* Helpers shared by the fuzz targets: invariant failure and guard-page
 * copies of the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

void nk_fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

/* One mapping per slot and process: NK_FUZZ_GUARDED_MAX readable bytes
 * followed by a PROT_NONE page. */
uint8_t *nk_fuzz_guard_end(unsigned slot)
{
    static uint8_t *ends[NK_FUZZ_GUARD_SLOTS];
    if (slot >= NK_FUZZ_GUARD_SLOTS)
        nk_fuzz_fail(__FILE__, __LINE__, "guard slot out of range");
    uint8_t *end = ends[slot];
    if (end != NULL)
        return end;
    long page = sysconf(_SC_PAGESIZE);
    size_t pg = page > 0 ? (size_t)page : 4096u;
    size_t body = (NK_FUZZ_GUARDED_MAX + pg - 1) / pg * pg;
    uint8_t *map = mmap(NULL, body + pg, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        nk_fuzz_fail(__FILE__, __LINE__, "mmap of the guarded buffer");
    if (mprotect(map + body, pg, PROT_NONE) != 0)
        nk_fuzz_fail(__FILE__, __LINE__, "mprotect of the guard page");
    end = map + body;
    ends[slot] = end;
    return end;
}

const uint8_t *nk_fuzz_guarded(const uint8_t *data, size_t size)
{
    if (size > NK_FUZZ_GUARDED_MAX)
        size = NK_FUZZ_GUARDED_MAX;
    uint8_t *dst = nk_fuzz_guard_end(0) - size;
    if (size > 0)
        memcpy(dst, data, size);
    return dst;
}

const char *nk_fuzz_cstr(const uint8_t *data, size_t size)
{
    if (size > NK_FUZZ_GUARDED_MAX - 1)
        size = NK_FUZZ_GUARDED_MAX - 1;
    char *dst = (char *)nk_fuzz_guard_end(0) - size - 1;
    if (size > 0)
        memcpy(dst, data, size);
    dst[size] = '\0';
    return dst;
}
