/* The allocator seam: one place to count or fail allocations. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netkit/alloc.h"
#include "netkit/error.h"

#include "alloc.h"

static nk_malloc_fn malloc_fn = malloc;
static nk_realloc_fn realloc_fn = realloc;
static nk_free_fn free_fn = free;

int nk_set_allocator(nk_malloc_fn m, nk_realloc_fn r, nk_free_fn f)
{
    if (!m && !r && !f) {
        malloc_fn = malloc;
        realloc_fn = realloc;
        free_fn = free;
        return 0;
    }
    if (!m || !r || !f)
        return NK_EINVAL;
    malloc_fn = m;
    realloc_fn = r;
    free_fn = f;
    return 0;
}

void *nk__malloc(size_t size)
{
    return malloc_fn(size ? size : 1);
}

void *nk__calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = nk__malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *nk__realloc(void *ptr, size_t size)
{
    return realloc_fn(ptr, size ? size : 1);
}

void nk__free(void *ptr)
{
    if (ptr)
        free_fn(ptr);
}
