/* Internal allocation wrappers: every allocation in lib/ goes through these,
 * so nk_set_allocator() (and the tests' failing allocator) sees all of it. */
#ifndef NK_LIB_ALLOC_H
#define NK_LIB_ALLOC_H

#include <stddef.h>

void *nk__malloc(size_t size);
void *nk__calloc(size_t count, size_t size);
void *nk__realloc(void *ptr, size_t size);
void nk__free(void *ptr);

#endif
