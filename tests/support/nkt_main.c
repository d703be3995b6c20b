#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nkt_main.h"

static int skipped;

void nkt_note_skip(void)
{
    skipped++;
}

int nkt_main(const char *group, const struct CMUnitTest *tests, size_t count,
             int (*setup)(void **), int (*teardown)(void **), int argc,
             char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    int failed = _cmocka_run_group_tests(group, tests, count, setup, teardown);
    if (failed != 0)
        return 1;
    return skipped > 0 ? 77 : 0;
}
