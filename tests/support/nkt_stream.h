/* Seeded byte streams: the byte at any offset is a function of (seed,
 * offset), so a receiver can check each chunk as it arrives without keeping
 * what came before. */
#ifndef NKT_STREAM_H
#define NKT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fill @buf with bytes [@offset, @offset + @len) of stream @seed. */
void nkt_stream_fill(uint64_t seed, uint64_t offset, void *buf, size_t len);

/* Are the @len bytes at @buf bytes [@offset, @offset + @len) of @seed? */
bool nkt_stream_check(uint64_t seed, uint64_t offset, const void *buf,
                      size_t len);

#endif
