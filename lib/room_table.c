/* The room's member table: open addressing with linear probing over a
 * power-of-two array at most half full, storing member indexes.
 *
 * Sources choose their own addresses, so an unkeyed hash would let a
 * sender pick thousands that land in one probe chain and make every
 * lookup a scan. The hash is SipHash keyed with a secret drawn per table
 * (nk_addr_hash), so collisions cannot be chosen from outside. Deletion
 * shifts later entries back instead of leaving tombstones, so chains never
 * grow with churn. */
#include "room_core.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "netkit/error.h"

static int fill_random(uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = getrandom(buf + got, len - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    return 0;
}

int nk__room_table_init(struct nk__room_table *t, size_t max_entries,
                        const uint8_t key[16])
{
    if (t == NULL || max_entries == 0 || max_entries > ((size_t)1 << 30))
        return NK_EINVAL;
    memset(t, 0, sizeof *t);
    size_t cap = 8;
    while (cap < 2 * max_entries)
        cap <<= 1;
    if (key != NULL) {
        memcpy(t->key, key, sizeof t->key);
    } else {
        int rc = fill_random(t->key, sizeof t->key);
        if (rc < 0)
            return rc;
    }
    t->slots = nk__malloc(cap * sizeof *t->slots);
    if (t->slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        t->slots[i].value = NK__ROOM_NONE;
    t->mask = cap - 1;
    return 0;
}

void nk__room_table_free(struct nk__room_table *t)
{
    if (t == NULL)
        return;
    nk__free(t->slots);
    t->slots = NULL;
}

uint64_t nk__room_table_hash(const struct nk__room_table *t, const nk_addr *a)
{
    return nk_addr_hash(a, t->key);
}

static void note_probe(struct nk__room_table *t, uint32_t n)
{
    t->probes += n;
    if (n > t->max_probe)
        t->max_probe = n;
}

/* Slot holding @a, or SIZE_MAX. */
static size_t find_slot(struct nk__room_table *t, const nk_addr *a,
                        nk__room_key_fn key, const void *ctx)
{
    uint32_t h = (uint32_t)nk__room_table_hash(t, a);
    size_t i = h & t->mask;
    for (uint32_t n = 1;; n++, i = (i + 1) & t->mask) {
        const struct nk__room_slot *s = &t->slots[i];
        if (s->value == NK__ROOM_NONE) {
            note_probe(t, n);
            return SIZE_MAX;
        }
        if (s->hash == h && nk_addr_equal(key(ctx, s->value), a)) {
            note_probe(t, n);
            return i;
        }
        if (n > t->mask) { /* never: the table is at most half full */
            note_probe(t, n);
            return SIZE_MAX;
        }
    }
}

uint32_t nk__room_table_find(struct nk__room_table *t, const nk_addr *a,
                             nk__room_key_fn key, const void *ctx)
{
    size_t i = find_slot(t, a, key, ctx);
    return i == SIZE_MAX ? NK__ROOM_NONE : t->slots[i].value;
}

void nk__room_table_insert(struct nk__room_table *t, const nk_addr *a,
                           uint32_t value)
{
    uint32_t h = (uint32_t)nk__room_table_hash(t, a);
    size_t i = h & t->mask;
    uint32_t n = 1;
    while (t->slots[i].value != NK__ROOM_NONE) {
        i = (i + 1) & t->mask;
        n++;
    }
    note_probe(t, n);
    t->slots[i].value = value;
    t->slots[i].hash = h;
}

void nk__room_table_remove(struct nk__room_table *t, const nk_addr *a,
                           nk__room_key_fn key, const void *ctx)
{
    size_t hole = find_slot(t, a, key, ctx);
    if (hole == SIZE_MAX)
        return;
    /* Backward shift: move each later entry of the run into the hole if
     * its home slot is not between the hole and where it sits. */
    size_t j = hole;
    for (;;) {
        j = (j + 1) & t->mask;
        struct nk__room_slot *s = &t->slots[j];
        if (s->value == NK__ROOM_NONE)
            break;
        size_t home = s->hash & t->mask;
        size_t dist_j = (j - home) & t->mask;
        size_t dist_hole = (j - hole) & t->mask;
        if (dist_j >= dist_hole) {
            t->slots[hole] = *s;
            hole = j;
        }
    }
    t->slots[hole].value = NK__ROOM_NONE;
    t->slots[hole].hash = 0;
}

void nk__room_table_set(struct nk__room_table *t, const nk_addr *a,
                        uint32_t value, nk__room_key_fn key, const void *ctx)
{
    size_t i = find_slot(t, a, key, ctx);
    if (i != SIZE_MAX)
        t->slots[i].value = value;
}

size_t nk__room_table_bytes(const struct nk__room_table *t)
{
    return (t->mask + 1) * sizeof *t->slots;
}
