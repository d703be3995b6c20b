/* The entry point of every cmocka suite: runs the suite (or the tests whose
 * names match argv[1], a cmocka pattern with * and ?) and tells meson what
 * happened, a skip included. */
#ifndef NKT_MAIN_H
#define NKT_MAIN_H

#include <stddef.h>

struct CMUnitTest;

/* Exit status for meson: 1 if a test failed, else 77 (meson's "skipped")
 * if a test called nkt_skip(), else 0. */
int nkt_main(const char *group, const struct CMUnitTest *tests, size_t count,
             int (*setup)(void **), int (*teardown)(void **), int argc,
             char **argv);

#define nkt_run_tests(tests, setup, teardown, argc, argv)                     \
    nkt_main(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup,        \
             teardown, argc, argv)

/* Count a skip, print why, and end the test as skipped (cmocka's skip()). */
#define nkt_skip(...)                                                         \
    do {                                                                      \
        nkt_note_skip();                                                      \
        print_message("skipped: " __VA_ARGS__);                               \
        print_message("\n");                                                  \
        skip();                                                               \
    } while (0)

void nkt_note_skip(void);

#endif
