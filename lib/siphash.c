/* SipHash-2-4, written from the paper's description: four 64-bit words of
 * state initialised from the key and four constants, two SipRounds per
 * 8-byte message word, the final word padded with the length in its top
 * byte, then 0xff folded into v2 and four finalisation rounds. Words are read
 * little-endian whatever the host order. */
#include "siphash.h"

static inline uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

struct sip_state {
    uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = rotl(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = rotl(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = rotl(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = rotl(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = rotl(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = rotl(s->v2, 32);
}

static inline void sip_absorb(struct sip_state *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    sip_round(s);
    s->v0 ^= m;
}

uint64_t nk__siphash24(const void *data, size_t len, const uint8_t key[16])
{
    const uint8_t *p = data;
    uint64_t k0 = load_le64(key);
    uint64_t k1 = load_le64(key + 8);
    struct sip_state s = {
        .v0 = k0 ^ UINT64_C(0x736f6d6570736575), /* "somepseu" */
        .v1 = k1 ^ UINT64_C(0x646f72616e646f6d), /* "dorandom" */
        .v2 = k0 ^ UINT64_C(0x6c7967656e657261), /* "lygenera" */
        .v3 = k1 ^ UINT64_C(0x7465646279746573), /* "tedbytes" */
    };

    size_t whole = len - (len % 8);
    for (size_t i = 0; i < whole; i += 8)
        sip_absorb(&s, load_le64(p + i));

    /* Last word: the 0..7 remaining bytes, length mod 256 in the top byte. */
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    sip_absorb(&s, last);

    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
