#include <fnmatch.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nkt_main.h"

static int skipped;

void nkt_note_skip(void)
{
    skipped++;
}

static bool matches_any(char **pats, int npats, const char *name)
{
    for (int i = 0; i < npats; i++) {
        if (fnmatch(pats[i], name, 0) == 0)
            return true;
    }
    return false;
}

/* Every pattern must name a test: a stale one would select nothing. */
static bool all_match_a_test(const char *prog, char **pats, int npats,
                             const struct CMUnitTest *tests, size_t count)
{
    for (int i = 0; i < npats; i++) {
        size_t t = 0;
        while (t < count && fnmatch(pats[i], tests[t].name, 0) != 0)
            t++;
        if (t == count) {
            fprintf(stderr, "%s: no test matches '%s'\n", prog, pats[i]);
            return false;
        }
    }
    return true;
}

int nkt_main(const char *group, const struct CMUnitTest *tests, size_t count,
             int (*setup)(void **), int (*teardown)(void **), int argc,
             char **argv)
{
    /* cmocka 1.1.5 takes one filter and one skip pattern, so the tests are
     * selected here and the group runs over the selection. */
    bool exclude = argc > 1 && strcmp(argv[1], "-x") == 0;
    char **pats = argv + (exclude ? 2 : 1);
    int npats = argc > 1 ? argc - (exclude ? 2 : 1) : 0;
    if (!all_match_a_test(argv[0], pats, npats, tests, count))
        return 1;
    struct CMUnitTest *run = calloc(count, sizeof *run);
    if (run == NULL)
        return 1;
    size_t n = 0;
    for (size_t t = 0; t < count; t++) {
        if (npats == 0 || matches_any(pats, npats, tests[t].name) != exclude)
            run[n++] = tests[t];
    }
    int failed = n == 0 ? 0
                        : _cmocka_run_group_tests(group, run, n, setup,
                                                  teardown);
    free(run);
    if (failed != 0)
        return 1;
    return skipped > 0 ? 77 : 0;
}
