#include "nkt_alloc.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "netkit/alloc.h"

/* Each block is preceded by a header holding its size, padded so the user
 * part keeps malloc's alignment. */
union header {
    size_t size;
    max_align_t align;
};

static atomic_long count;
static atomic_long fail_at; /* count value that fails, 0 = none */
static atomic_size_t live;

/* Count one allocation; true if this one must fail. */
static int next_fails(void)
{
    long n = atomic_fetch_add(&count, 1) + 1;
    long f = atomic_load(&fail_at);
    if (f != 0 && n == f) {
        atomic_store(&fail_at, 0);
        return 1;
    }
    return 0;
}

static void *t_malloc(size_t size)
{
    if (next_fails())
        return NULL;
    union header *h = malloc(sizeof *h + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    atomic_fetch_add(&live, size);
    return h + 1;
}

static void t_free(void *p)
{
    if (p == NULL)
        return;
    union header *h = (union header *)p - 1;
    atomic_fetch_sub(&live, h->size);
    free(h);
}

static void *t_realloc(void *p, size_t size)
{
    if (p == NULL)
        return t_malloc(size);
    if (next_fails())
        return NULL; /* the old block stays valid, as with realloc() */
    union header *h = (union header *)p - 1;
    size_t old = h->size;
    union header *n = realloc(h, sizeof *n + size);
    if (n == NULL)
        return NULL;
    n->size = size;
    atomic_fetch_sub(&live, old);
    atomic_fetch_add(&live, size);
    return n + 1;
}

void nkt_alloc_install(void)
{
    nk_set_allocator(t_malloc, t_realloc, t_free);
}

void nkt_alloc_fail_at(long n)
{
    atomic_store(&fail_at, n > 0 ? atomic_load(&count) + n : 0);
}

long nkt_alloc_count(void)
{
    return atomic_load(&count);
}

size_t nkt_alloc_live_bytes(void)
{
    return atomic_load(&live);
}

void nkt_alloc_reset(void)
{
    atomic_store(&count, 0);
    atomic_store(&fail_at, 0);
}
