/* An application's view of libnetkit: only the installed headers and
 * library, found through pkg-config, CMake or a meson subproject. Strict
 * C11 (-std=c11 -pedantic): the public headers must not need extensions. */
#include <netkit.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

static void on_timer(nk_timer *timer, void *user)
{
    *(int *)user += 1;
    nk_timer_stop(timer);
}

/* A loop that runs one timer and ends because nothing is left to wait for:
 * the loop's eventfd, threads and clock work in this link mode. */
static int run_loop(void)
{
    nk_loop *loop = NULL;
    nk_timer *timer = NULL;
    int fired = 0;

    if (nk_loop_new(&loop) != 0)
        return fail("nk_loop_new failed");
    if (nk_timer_start(loop, 1, 0, on_timer, &fired, &timer) != 0)
        return fail("nk_timer_start failed");
    if (nk_loop_run(loop, NK_RUN_DEFAULT) != 0 || fired != 1)
        return fail("the timer did not fire exactly once");
    if (nk_loop_free(loop) != 0)
        return fail("nk_loop_free failed");
    return 0;
}

int main(void)
{
    nk_addr addr;
    char text[NK_ADDR_STRLEN];

    if (nk_version() != NK_VERSION_HEX)
        return fail("the headers and the library have different versions");
    if (nk_addr_parse("127.0.0.1:8080", &addr) != 0)
        return fail("nk_addr_parse failed");
    if (nk_addr_format(&addr, text, sizeof text) != 14
        || strcmp(text, "127.0.0.1:8080") != 0)
        return fail("nk_addr_format gave the wrong text");
    if (nk_addr_parse("[::1", &addr) != NK_EADDR_BRACKET)
        return fail("nk_addr_parse accepted a bad address");
    if (strcmp(nk_err_name(NK_EOF), "NK_EOF") != 0)
        return fail("nk_err_name(NK_EOF) is wrong");
    if (run_loop() != 0)
        return 1;
    printf("libnetkit %s\n", nk_version_string());
    return 0;
}
