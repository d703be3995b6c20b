/* Shared by the fuzz targets and by tests/test_fuzz_corpus.c: each target's
 * entry function, the invariant check, and input helpers.
 *
 * Every target is an ordinary function nk_fuzz_<name>(data, size) so the
 * corpus replay test can call all of them from one executable under any
 * compiler; the libFuzzer entry point LLVMFuzzerTestOneInput is compiled
 * only with -DNK_FUZZ_MAIN (the -Dfuzzing=true build). */
#ifndef NK_FUZZ_H
#define NK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int nk_fuzz_addr_parse(const uint8_t *data, size_t size);
int nk_fuzz_frame_line(const uint8_t *data, size_t size);
int nk_fuzz_frame_lenprefix(const uint8_t *data, size_t size);
int nk_fuzz_room_input(const uint8_t *data, size_t size);
int nk_fuzz_conn_stream(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message naming the broken invariant. abort() rather than
 * assert() so the check stays in every build type. */
#define NK_FUZZ_CHECK(cond)                                                  \
    do {                                                                     \
        if (!(cond))                                                         \
            nk_fuzz_fail(__FILE__, __LINE__, #cond);                         \
    } while (0)

_Noreturn void nk_fuzz_fail(const char *file, int line, const char *what);

/* Largest input the guarded copies hold; longer inputs are cut. */
#define NK_FUZZ_GUARDED_MAX 65536u

/* Independent guarded buffers: slot 0 is used by nk_fuzz_guarded() and
 * nk_fuzz_cstr(); targets may use the others. */
#define NK_FUZZ_GUARD_SLOTS 2

/* The end of slot @slot's NK_FUZZ_GUARDED_MAX readable bytes: the byte at
 * the returned address is on an inaccessible page. */
uint8_t *nk_fuzz_guard_end(unsigned slot);

/* A copy of @size bytes whose last byte sits just before an inaccessible
 * page, so a read past the end faults in every build, not only under
 * AddressSanitizer. Valid until the next call. @size is cut to
 * NK_FUZZ_GUARDED_MAX. */
const uint8_t *nk_fuzz_guarded(const uint8_t *data, size_t size);

/* The bytes as a NUL-terminated string, the NUL being the last readable
 * byte before the guard page. Valid until the next nk_fuzz_guarded() or
 * nk_fuzz_cstr() call. */
const char *nk_fuzz_cstr(const uint8_t *data, size_t size);

/* A reader that takes small numbers off the front of the input (split
 * points, read sizes, options) and yields 0 once it runs dry. */
struct nk_fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline unsigned nk_fuzz_u8(struct nk_fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static inline unsigned nk_fuzz_u16(struct nk_fuzz_in *in)
{
    unsigned hi = nk_fuzz_u8(in);
    return hi << 8 | nk_fuzz_u8(in);
}

#endif
