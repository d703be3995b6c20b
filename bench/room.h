/* The room peers' member table: open addressing on (IPv4 address, port),
 * capped; members never expire here (runs are short). */
#ifndef BENCH_ROOM_H
#define BENCH_ROOM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define ROOM_MAX 4096
#define ROOM_SLOTS (2 * ROOM_MAX)

struct room {
    int n;
    struct sockaddr_in members[ROOM_MAX];
    int16_t slot[ROOM_SLOTS]; /* index + 1 into members, 0 = empty */
};

static inline uint32_t room_hash(const struct sockaddr_in *a)
{
    uint64_t k = ((uint64_t)a->sin_addr.s_addr << 16) | a->sin_port;
    k *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(k >> 40);
}

/* Index of @a in the table, adding it when new; -1 when the table is full. */
static inline int room_member(struct room *r, const struct sockaddr_in *a)
{
    uint32_t h = room_hash(a) % ROOM_SLOTS;
    for (;; h = (h + 1) % ROOM_SLOTS) {
        int i = r->slot[h] - 1;
        if (i < 0)
            break;
        if (r->members[i].sin_addr.s_addr == a->sin_addr.s_addr &&
            r->members[i].sin_port == a->sin_port)
            return i;
    }
    if (r->n == ROOM_MAX)
        return -1;
    r->members[r->n] = *a;
    r->slot[h] = (int16_t)(r->n + 1);
    return r->n++;
}

#endif
