#include "nkt_stream.h"

/* splitmix64's finaliser over (seed, block index): a counter-mode generator,
 * so any 8-byte block is computed directly. */
static uint64_t block(uint64_t seed, uint64_t index)
{
    uint64_t z = seed + (index + 1) * UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint8_t byte_at(uint64_t seed, uint64_t off)
{
    return (uint8_t)(block(seed, off / 8) >> (8 * (off % 8)));
}

void nkt_stream_fill(uint64_t seed, uint64_t offset, void *buf, size_t len)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = byte_at(seed, offset + i);
}

bool nkt_stream_check(uint64_t seed, uint64_t offset, const void *buf,
                      size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != byte_at(seed, offset + i))
            return false;
    }
    return true;
}
