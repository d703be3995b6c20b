/* The entry point of every cmocka suite: runs the suite, or some of its
 * tests, and tells meson what happened, a skip included.
 *
 *   test_SUITE              every test
 *   test_SUITE PATTERN...   the tests whose names match a PATTERN (* and ?)
 *   test_SUITE -x NAME...   every test but the named ones (patterns too)
 *
 * A test that can skip is registered in meson as a test of its own (run
 * with its name) and left out of the suite's entry with -x, so that its
 * skip shows in meson's results without hiding the suite's other tests.
 * A pattern or name that matches no test is an error, so a stale name in
 * tests/meson.build fails instead of running nothing. */
#ifndef NKT_MAIN_H
#define NKT_MAIN_H

#include <stddef.h>

struct CMUnitTest;

/* Exit status for meson: 1 if a test failed or the arguments select
 * nothing, else 77 (meson's "skipped") if a test called nkt_skip(), else
 * 0. */
int nkt_main(const char *group, const struct CMUnitTest *tests, size_t count,
             int (*setup)(void **), int (*teardown)(void **), int argc,
             char **argv);

#define nkt_run_tests(tests, setup, teardown, argc, argv)                     \
    nkt_main(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup,        \
             teardown, argc, argv)

/* Count a skip, print why ("skipped: " and the printf-style reason, which
 * scripts/test shows next to the skip), and end the test as skipped
 * (cmocka's skip()). The format must be a string literal. */
#define nkt_skip(...)                                                         \
    do {                                                                      \
        nkt_note_skip();                                                      \
        print_message("skipped: " __VA_ARGS__);                               \
        print_message("\n");                                                  \
        skip();                                                               \
    } while (0)

void nkt_note_skip(void);

#endif
