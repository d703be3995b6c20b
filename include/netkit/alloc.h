/**
 * @file netkit/alloc.h
 * @brief Replace the allocator the library uses for all of its memory.
 */
#ifndef NETKIT_ALLOC_H
#define NETKIT_ALLOC_H

#include <stddef.h>

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief malloc()-like: may return NULL, which the library reports as -ENOMEM. */
typedef void *(*nk_malloc_fn)(size_t size);
/** @brief realloc()-like. */
typedef void *(*nk_realloc_fn)(void *ptr, size_t size);
/** @brief free()-like; given NULL sometimes. */
typedef void (*nk_free_fn)(void *ptr);

/**
 * @brief Use these functions for every allocation the library makes.
 *
 * Call before any other libnetkit call, while no memory from the previous
 * allocator is held. Not thread-safe. Passing three NULLs restores the C
 * library's allocator.
 * @param malloc_fn  Allocates, as malloc().
 * @param realloc_fn Resizes, as realloc().
 * @param free_fn    Frees, as free().
 * @return 0, or NK_EINVAL if only some of the three are NULL.
 */
NK_API int nk_set_allocator(nk_malloc_fn malloc_fn, nk_realloc_fn realloc_fn,
                            nk_free_fn free_fn);

#ifdef __cplusplus
}
#endif
#endif
