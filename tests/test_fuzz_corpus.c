/* Fuzz corpus replay: every committed file under fuzz/corpus/<target>/ goes
 * through that target's entry function (which aborts on any broken
 * invariant), whole and cut short, so the corpus protects every build and
 * compiler, not only the clang libFuzzer build. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "nkt_main.h"

#include "fuzz.h"

#ifndef NK_FUZZ_CORPUS_DIR
#error "NK_FUZZ_CORPUS_DIR must name fuzz/corpus"
#endif

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Files up to this size are also replayed cut at every length, which
 * covers the states a stream passes through on its way to the full file. */
#define PREFIX_REPLAY_MAX 512

struct target {
    const char *name;
    fuzz_fn fn;
    bool prefixes; /* cheap enough to replay every prefix */
};

static const struct target targets[] = {
    {"addr_parse", nk_fuzz_addr_parse, true},
    {"frame_line", nk_fuzz_frame_line, true},
    {"frame_lenprefix", nk_fuzz_frame_lenprefix, true},
    {"room_input", nk_fuzz_room_input, true},
    /* A loop and a socketpair per input: whole files only. */
    {"conn_stream", nk_fuzz_conn_stream, false},
};

#define N_TARGETS (sizeof targets / sizeof *targets)

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *size = n;
    return buf;
}

/* Replays one target's directory; returns how many files it replayed. */
static size_t replay(const struct target *t)
{
    char dir[4096];
    int w = snprintf(dir, sizeof dir, "%s/%s", NK_FUZZ_CORPUS_DIR, t->name);
    assert_true(w > 0 && (size_t)w < sizeof dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[8192];
        w = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        assert_true(w > 0 && (size_t)w < sizeof path);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (!S_ISREG(st.st_mode))
            continue;
        size_t size = 0;
        uint8_t *data = read_file(path, &size);
        assert_non_null(data);
        /* The message says which file to look at if a check aborts. */
        print_message("replay %s/%s (%zu bytes)\n", t->name, e->d_name, size);
        assert_int_equal(t->fn(data, size), 0);
        if (t->prefixes && size <= PREFIX_REPLAY_MAX)
            for (size_t n = 0; n < size; n++)
                assert_int_equal(t->fn(data, n), 0);
        free(data);
        files++;
    }
    closedir(d);
    return files;
}

static void replay_named(const char *name)
{
    for (size_t i = 0; i < N_TARGETS; i++) {
        if (strcmp(targets[i].name, name) == 0) {
            /* A handful of seeds at least, tricky cases included. */
            assert_true(replay(&targets[i]) >= 5);
            return;
        }
    }
    fail_msg("no fuzz target named %s", name);
}

static void test_addr_parse_corpus_replays_clean(void **state)
{
    (void)state;
    replay_named("addr_parse");
}

static void test_frame_line_corpus_replays_clean(void **state)
{
    (void)state;
    replay_named("frame_line");
}

static void test_frame_lenprefix_corpus_replays_clean(void **state)
{
    (void)state;
    replay_named("frame_lenprefix");
}

static void test_room_input_corpus_replays_clean(void **state)
{
    (void)state;
    replay_named("room_input");
}

static void test_conn_stream_corpus_replays_clean(void **state)
{
    (void)state;
    replay_named("conn_stream");
}

/* A corpus directory without a target here would silently never run. */
static void test_every_corpus_directory_has_a_target(void **state)
{
    (void)state;
    DIR *d = opendir(NK_FUZZ_CORPUS_DIR);
    assert_non_null(d);
    size_t dirs = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        bool known = false;
        for (size_t i = 0; i < N_TARGETS; i++)
            known = known || strcmp(targets[i].name, e->d_name) == 0;
        if (!known)
            fail_msg("fuzz/corpus/%s has no replay target", e->d_name);
        dirs++;
    }
    closedir(d);
    assert_int_equal(dirs, N_TARGETS);
}

/* The helpers the targets rely on: a guarded copy really ends on an
 * inaccessible page, and the reader yields 0 once dry. */
static void test_guarded_copy_ends_at_the_guard_page(void **state)
{
    (void)state;
    const uint8_t bytes[3] = {'a', 'b', 'c'};
    const uint8_t *g = nk_fuzz_guarded(bytes, sizeof bytes);
    assert_memory_equal(g, bytes, sizeof bytes);
    assert_ptr_equal(g + sizeof bytes, nk_fuzz_guard_end(0));
    const char *s = nk_fuzz_cstr(bytes, sizeof bytes);
    assert_string_equal(s, "abc");
    assert_ptr_equal(s + 4, (const char *)nk_fuzz_guard_end(0));

    struct nk_fuzz_in in = {bytes, 2};
    assert_int_equal(nk_fuzz_u16(&in), 'a' << 8 | 'b');
    assert_int_equal(nk_fuzz_u8(&in), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guarded_copy_ends_at_the_guard_page),
        cmocka_unit_test(test_every_corpus_directory_has_a_target),
        cmocka_unit_test(test_addr_parse_corpus_replays_clean),
        cmocka_unit_test(test_frame_line_corpus_replays_clean),
        cmocka_unit_test(test_frame_lenprefix_corpus_replays_clean),
        cmocka_unit_test(test_room_input_corpus_replays_clean),
        cmocka_unit_test(test_conn_stream_corpus_replays_clean),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
