/* Error codes: every code has a sentence and a name; library codes never
 * collide with errno; unknown codes still get a constant sentence. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nkt_main.h"

#include "netkit.h"

static const int library_codes[] = {
#define X(name, value, text) name,
    NK_ERROR_MAP(X)
#undef X
};

static void test_library_codes_are_below_errno_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof library_codes / sizeof *library_codes; i++)
        assert_true(library_codes[i] < -4095);
}

static void test_every_library_code_has_sentence_and_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof library_codes / sizeof *library_codes; i++) {
        int c = library_codes[i];
        assert_non_null(nk_strerror(c));
        assert_string_not_equal(nk_strerror(c), "unknown error code");
        assert_int_equal(strncmp(nk_err_name(c), "NK_E", 4), 0);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(c, library_codes[j]);
    }
    assert_string_equal(nk_err_name(NK_EOF), "NK_EOF");
}

static void test_errno_codes_pass_through(void **state)
{
    (void)state;
    assert_string_equal(nk_err_name(-ECONNRESET), "ECONNRESET");
    assert_string_equal(nk_strerror(-ECONNRESET), "Connection reset by peer");
    assert_string_equal(nk_err_name(0), "OK");
    assert_string_equal(nk_strerror(0), "success");
}

static void test_unknown_codes_get_constant_sentence(void **state)
{
    (void)state;
    static const int unknown[] = {1, 42, -4096, -4099, -9999, INT32_MIN,
                                  INT32_MAX, -3000};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        const char *a = nk_strerror(unknown[i]);
        assert_string_equal(a, "unknown error code");
        assert_ptr_equal(a, nk_strerror(unknown[i]));
        assert_string_equal(nk_err_name(unknown[i]), "UNKNOWN");
    }
}

static void test_version_matches_macros(void **state)
{
    (void)state;
    assert_int_equal(nk_version(), NK_VERSION_HEX);
    assert_string_equal(nk_version_string(), NK_PROJECT_VERSION);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_codes_are_below_errno_range),
        cmocka_unit_test(test_every_library_code_has_sentence_and_name),
        cmocka_unit_test(test_errno_codes_pass_through),
        cmocka_unit_test(test_unknown_codes_get_constant_sentence),
        cmocka_unit_test(test_version_matches_macros),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
