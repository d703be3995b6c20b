/* Framing decoders: the same messages come out however the stream is cut
 * (whole, byte by byte, every 1- and 2-split, 10 000 random splits), every
 * decode reads a buffer that ends against a PROT_NONE page, and limits fail
 * with their specific codes without waiting for the announced size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "nkt_main.h"

#include "netkit.h"

/* ---- a buffer whose last byte sits just before an inaccessible page ---- */

static uint8_t *guard_base;
static size_t guard_size;

static void guard_setup(void)
{
    long page = sysconf(_SC_PAGESIZE);
    guard_size = (size_t)page * 16;
    guard_base = mmap(NULL, guard_size + (size_t)page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard_base != MAP_FAILED);
    assert_int_equal(mprotect(guard_base + guard_size, (size_t)page, PROT_NONE),
                     0);
}

static void guard_teardown(void)
{
    munmap(guard_base, guard_size + (size_t)sysconf(_SC_PAGESIZE));
}

/* Copy @len bytes so that they end at the guard page, and decode there. */
static ptrdiff_t guarded_decode(const nk_frame_opts *o, const uint8_t *bytes,
                                size_t len, nk_frame_msg *m)
{
    assert_true(len <= guard_size);
    uint8_t *at = guard_base + guard_size - len;
    if (len)
        memcpy(at, bytes, len);
    return nk_frame_decode(o, len ? at : NULL, len, m);
}

/* ---- stream simulation: chunks appended, messages decoded as they complete */

struct expect {
    const uint8_t *msgs[16];
    size_t lens[16];
    size_t count;
};

struct sim {
    const nk_frame_opts *o;
    const struct expect *want;
    uint8_t pending[4096];
    size_t plen;
    size_t seen;
};

static void sim_feed(struct sim *s, const uint8_t *chunk, size_t n)
{
    assert_true(s->plen + n <= sizeof s->pending);
    memcpy(s->pending + s->plen, chunk, n);
    s->plen += n;
    for (;;) {
        nk_frame_msg m;
        ptrdiff_t r = guarded_decode(s->o, s->pending, s->plen, &m);
        assert_true(r >= 0);
        if (r == 0)
            return;
        assert_true(s->seen < s->want->count);
        assert_int_equal(m.len, s->want->lens[s->seen]);
        if (m.len)
            assert_memory_equal(m.data, s->want->msgs[s->seen], m.len);
        s->seen++;
        memmove(s->pending, s->pending + r, s->plen - (size_t)r);
        s->plen -= (size_t)r;
    }
}

static void sim_check_done(const struct sim *s)
{
    assert_int_equal(s->seen, s->want->count);
    assert_int_equal(s->plen, 0);
}

/* Feed @stream cut at the sorted offsets @cuts (n of them). */
static void run_split(const nk_frame_opts *o, const struct expect *want,
                      const uint8_t *stream, size_t len, const size_t *cuts,
                      size_t n)
{
    struct sim s = {.o = o, .want = want};
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : len;
        sim_feed(&s, stream + at, end - at);
        at = end;
    }
    sim_check_done(&s);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void every_split(const nk_frame_opts *o, const struct expect *want,
                        const uint8_t *stream, size_t len)
{
    run_split(o, want, stream, len, NULL, 0); /* whole */
    {   /* byte by byte */
        struct sim s = {.o = o, .want = want};
        for (size_t i = 0; i < len; i++)
            sim_feed(&s, stream + i, 1);
        sim_check_done(&s);
    }
    for (size_t a = 0; a <= len; a++) { /* every 1-split */
        size_t cuts[1] = {a};
        run_split(o, want, stream, len, cuts, 1);
    }
    for (size_t a = 0; a <= len; a++) /* every 2-split */
        for (size_t b = a; b <= len; b++) {
            size_t cuts[2] = {a, b};
            run_split(o, want, stream, len, cuts, 2);
        }
    rng_state = 0x9e3779b97f4a7c15u; /* fixed seed: reproducible */
    for (int round = 0; round < 10000; round++) {
        size_t cuts[64];
        size_t n = 0, at = 0;
        while (n < 64) {
            at += 1 + (size_t)(rng() % 12);
            if (at >= len)
                break;
            cuts[n++] = at;
        }
        run_split(o, want, stream, len, cuts, n);
    }
}

/* ---- lines ---- */

static void test_line_stream_same_messages_for_every_split(void **state)
{
    (void)state;
    /* "\r\n" and "\n" endings, an empty line, a lone "\r" inside a line,
     * a NUL byte, and a line of exactly max_line bytes. */
    static const uint8_t stream[] = "hello\r\n\nab\rc\nx\0y\n0123456789\r\nlast\n";
    size_t len = sizeof stream - 1;
    struct expect want = {.count = 6};
    const char *m[] = {"hello", "", "ab\rc", "x\0y", "0123456789", "last"};
    size_t l[] = {5, 0, 4, 3, 10, 4};
    for (int i = 0; i < 6; i++) {
        want.msgs[i] = (const uint8_t *)m[i];
        want.lens[i] = l[i];
    }
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    o.kind = NK_FRAME_LINE;
    o.max_line = 10;
    every_split(&o, &want, stream, len);
}

static void test_line_too_long_fails_before_newline(void **state)
{
    (void)state;
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    o.kind = NK_FRAME_LINE;
    o.max_line = 4;
    nk_frame_msg m;
    static const struct {
        const char *in;
        ptrdiff_t want;
    } cases[] = {
        {"abcd", 0},                  /* exactly max, no newline yet */
        {"abcd\r", 0},                /* may still be "abcd\r\n" */
        {"abcde", NK_ELINE_TOO_LONG}, /* over the limit: fail now */
        {"abcd\rx", NK_ELINE_TOO_LONG},
        {"abcd\n", 5},
        {"abcd\r\n", 6},
        {"abcde\n", NK_ELINE_TOO_LONG},
        {"abcde\r\n", NK_ELINE_TOO_LONG},
        {"\n", 1},
        {"\r\n", 2},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ptrdiff_t r = guarded_decode(&o, (const uint8_t *)cases[i].in,
                                     strlen(cases[i].in), &m);
        assert_int_equal(r, cases[i].want);
    }
    /* 1 MiB without a newline fails after looking at a bounded window. */
    size_t big = 1 << 20;
    uint8_t *a = malloc(big);
    assert_non_null(a);
    memset(a, 'A', big);
    o.max_line = 1024;
    assert_int_equal(nk_frame_decode(&o, a, big, &m), NK_ELINE_TOO_LONG);
    free(a);
}

/* A zero limit for the kind in use is what a struct zeroed instead of
 * started from NK_FRAME_OPTS_INIT holds: it would refuse every non-empty
 * message, so it is refused before any byte is looked at. The other kind's
 * limit is not used, so its zero is fine. */
static void test_zero_limit_of_the_kind_in_use_is_einval(void **state)
{
    (void)state;
    static const struct {
        nk_frame_kind kind;
        size_t max_line, max_frame;
        const char *in;
        size_t len;
        ptrdiff_t want;
    } cases[] = {
        {NK_FRAME_LINE, 0, 1048576, "\n", 1, NK_EINVAL},
        {NK_FRAME_LINE, 0, 1048576, "", 0, NK_EINVAL},
        {NK_FRAME_LINE, 0, 0, "a\n", 2, NK_EINVAL},
        {NK_FRAME_LINE, 1, 0, "\n", 1, 1},
        {NK_FRAME_LENGTH32, 8192, 0, "\0\0\0\0", 4, NK_EINVAL},
        {NK_FRAME_LENGTH32, 8192, 0, "", 0, NK_EINVAL},
        {NK_FRAME_LENGTH32, 0, 1, "\0\0\0\0", 4, 4},
        {NK_FRAME_RAW, 0, 0, "x", 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nk_frame_opts o = {.kind = cases[i].kind,
                           .max_line = cases[i].max_line,
                           .max_frame = cases[i].max_frame};
        nk_frame_msg m, before;
        memset(&m, 0xa5, sizeof m);
        before = m;
        ptrdiff_t r = guarded_decode(&o, (const uint8_t *)cases[i].in,
                                     cases[i].len, &m);
        if (r != cases[i].want)
            print_error("case %zu: got %td, want %td\n", i, r, cases[i].want);
        assert_int_equal(r, cases[i].want);
        if (r < 0)
            assert_memory_equal(&m, &before, sizeof m); /* untouched */
    }
}

/* ---- length prefix ---- */

static size_t put_frame(uint8_t *out, const void *payload, size_t n)
{
    assert_int_equal(nk_frame_length32_prefix(n, out), 0);
    if (n)
        memcpy(out + 4, payload, n);
    return n + 4;
}

static void test_length32_stream_same_messages_for_every_split(void **state)
{
    (void)state;
    uint8_t stream[256];
    size_t len = 0;
    struct expect want = {.count = 5};
    static const uint8_t bin[] = {0, 255, '\n', '\r', 0, 1};
    const void *m[] = {"abc", "", bin, "z", "0123456789ABCDEF"};
    size_t l[] = {3, 0, sizeof bin, 1, 16};
    for (int i = 0; i < 5; i++) {
        want.msgs[i] = m[i];
        want.lens[i] = l[i];
        len += put_frame(stream + len, m[i], l[i]);
    }
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    o.kind = NK_FRAME_LENGTH32;
    o.max_frame = 16;
    every_split(&o, &want, stream, len);
}

static void test_length32_oversized_prefix_fails_on_prefix_alone(void **state)
{
    (void)state;
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    o.kind = NK_FRAME_LENGTH32;
    o.max_frame = 100;
    nk_frame_msg m;
    static const struct {
        uint8_t in[4];
        size_t len;
        ptrdiff_t want;
    } cases[] = {
        {{0xff, 0xff, 0xff, 0xff}, 4, NK_EFRAME_TOO_LARGE},
        {{0x7f, 0xff, 0xff, 0xff}, 4, NK_EFRAME_TOO_LARGE},
        {{0, 0, 0, 101}, 4, NK_EFRAME_TOO_LARGE}, /* max + 1 */
        {{0, 0, 0, 100}, 4, 0},                   /* max: wait for it */
        {{0, 0, 0, 0}, 4, 4},                     /* empty message */
        {{0xff, 0xff, 0xff}, 3, 0},               /* prefix incomplete */
        {{0}, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(guarded_decode(&o, cases[i].in, cases[i].len, &m),
                         cases[i].want);
    assert_int_equal(guarded_decode(&o, cases[4].in, 4, &m), 4);
    assert_int_equal(m.len, 0);
    assert_non_null(m.data);
}

static void test_raw_delivers_all_bytes_at_once(void **state)
{
    (void)state;
    nk_frame_msg m;
    assert_int_equal(guarded_decode(NULL, (const uint8_t *)"abc", 3, &m), 3);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.data, "abc", 3);
    assert_int_equal(guarded_decode(NULL, NULL, 0, &m), 0);
}

static void test_bad_arguments_give_einval(void **state)
{
    (void)state;
    nk_frame_msg m;
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    assert_int_equal(nk_frame_decode(&o, "a", 1, NULL), NK_EINVAL);
    assert_int_equal(nk_frame_decode(&o, NULL, 1, &m), NK_EINVAL);
    o.kind = (nk_frame_kind)7;
    assert_int_equal(nk_frame_decode(&o, "a", 1, &m), NK_EINVAL);
    assert_int_equal(nk_frame_length32_prefix(1, NULL), NK_EINVAL);
#if SIZE_MAX > UINT32_MAX
    uint8_t p[4];
    assert_int_equal(nk_frame_length32_prefix((size_t)UINT32_MAX + 1, p),
                     NK_EFRAME_TOO_LARGE);
#endif
}

static int setup(void **state)
{
    (void)state;
    guard_setup();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    guard_teardown();
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_stream_same_messages_for_every_split),
        cmocka_unit_test(test_line_too_long_fails_before_newline),
        cmocka_unit_test(test_zero_limit_of_the_kind_in_use_is_einval),
        cmocka_unit_test(test_length32_stream_same_messages_for_every_split),
        cmocka_unit_test(test_length32_oversized_prefix_fails_on_prefix_alone),
        cmocka_unit_test(test_raw_delivers_all_bytes_at_once),
        cmocka_unit_test(test_bad_arguments_give_einval),
    };
    return nkt_run_tests(tests, setup, teardown, argc, argv);
}
