/* A counting, failing allocator for tests, installed with
 * nk_set_allocator(). Once installed it stays installed for the process:
 * blocks carry a header, so they must not reach the system free(). */
#ifndef NKT_ALLOC_H
#define NKT_ALLOC_H

#include <stddef.h>

/* Route the library's allocations through the counting allocator. */
void nkt_alloc_install(void);

/* Fail the @n-th allocation (malloc or realloc) from now, once; 0 = never. */
void nkt_alloc_fail_at(long n);

/* Allocations (malloc and realloc, failed ones included) since the last
 * reset. */
long nkt_alloc_count(void);

/* Bytes in blocks allocated and not yet freed. */
size_t nkt_alloc_live_bytes(void);

/* Zero the count and cancel a pending failure (live bytes are kept: they
 * describe blocks that still exist). */
void nkt_alloc_reset(void);

#endif
