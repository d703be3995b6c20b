/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012): a keyed 64-bit hash, so table keys chosen by a remote peer cannot
 * be made to collide without knowing the key. */
#ifndef NK_LIB_SIPHASH_H
#define NK_LIB_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of @len bytes at @data under the 16-byte @key. */
uint64_t nk__siphash24(const void *data, size_t len, const uint8_t key[16]);

#endif
