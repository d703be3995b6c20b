/* The tutorial's one transformation, shared by the uppercase servers (and
 * by the benchmark's servers, so every server measured does the same work):
 * ASCII a-z become A-Z; every other byte (digits, UTF-8, NUL, "\r") comes
 * back unchanged.
 *
 * It works on eight or sixteen bytes at a time rather than byte by byte,
 * so that the uppercasing costs little next to the networking around it. */
#ifndef NK_EXAMPLE_UPPER_H
#define NK_EXAMPLE_UPPER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* For each byte of @w in 'a'..'z', clear bit 0x20. The per-byte sums never
 * carry into the next byte: each byte's high bit is masked off first, and
 * 0x7f + 0x1f < 0x100. */
static inline uint64_t upper_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t low7 = w & (ones * 0x7f);
    uint64_t ge_a = low7 + ones * (0x80 - 'a');
    uint64_t gt_z = low7 + ones * (0x80 - 'z' - 1);
    uint64_t lower = ge_a & ~gt_z & ~w & (ones * 0x80);
    return w ^ (lower >> 2);
}

/* Copy @n bytes from @src to @dst uppercased; @dst may be @src (servers
 * whose library hands them read-only data copy, the others work in place:
 * the same loop either way). */
static inline void upper_copy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t i = 0;
#if defined(__GNUC__) || defined(__clang__)
    /* Sixteen bytes at a time where the compiler has vector types: a byte
     * is lowercase when (byte - 'a') < 26 as an unsigned byte. */
    typedef unsigned char v16 __attribute__((vector_size(16)));
    for (; i + 16 <= n; i += 16) {
        v16 v;
        memcpy(&v, s + i, 16);
        v16 lower = (v16)((v16)(v - (unsigned char)'a') < (unsigned char)26);
        v ^= lower & (unsigned char)0x20;
        memcpy(d + i, &v, 16);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        w = upper_word(w);
        memcpy(d + i, &w, 8);
    }
    for (; i < n; i++)
        d[i] = (s[i] >= 'a' && s[i] <= 'z') ? (unsigned char)(s[i] ^ 0x20)
                                             : s[i];
}

/* Uppercase @n bytes of @buf in place. */
static inline void upper_buf(void *buf, size_t n)
{
    upper_copy(buf, buf, n);
}

#endif
