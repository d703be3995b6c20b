/* Addresses: every bad input gets its own code, good inputs round-trip
 * through text, equality and hashing agree and fold IPv4-mapped IPv6 into
 * IPv4, and the hash depends on its key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nkt_main.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "netkit.h"
#include "siphash.h"

struct bad_case {
    const char *text;
    int code;
};

static const struct bad_case bad_cases[] = {
    {"", NK_EADDR_EMPTY},
    {"[::1", NK_EADDR_BRACKET},
    {"[fe80::1%lo:80", NK_EADDR_BRACKET},
    {"host:", NK_EADDR_NOPORT},
    {"1.2.3.4:", NK_EADDR_NOPORT},
    {"[::1]", NK_EADDR_NOPORT},
    {"[::1]:", NK_EADDR_NOPORT},
    {":70000", NK_EADDR_PORT},
    {":65536", NK_EADDR_PORT},
    {":123456", NK_EADDR_PORT},
    {":000080", NK_EADDR_PORT},
    {"1.2.3.4:0x50", NK_EADDR_PORT},
    {":-1", NK_EADDR_PORT},
    {":+80", NK_EADDR_PORT},
    {": 80", NK_EADDR_PORT},
    {":80 ", NK_EADDR_PORT},
    {"[::1]:8a", NK_EADDR_PORT},
    {"[fe80::1%bogus]:1", NK_EADDR_SCOPE},
    {"[fe80::1%]:1", NK_EADDR_SCOPE},
    {"[fe80::1%99999999999]:1", NK_EADDR_SCOPE},
    {"[fe80::1%abcdefghijklmnopqrstuvwxyz]:1", NK_EADDR_SCOPE},
    {"1.2.3.4", NK_EADDR_SYNTAX},
    {"localhost", NK_EADDR_SYNTAX},
    {"localhost:80", NK_EADDR_NAME},
    {"::1:80", NK_EADDR_SYNTAX},
    {"[1.2.3.4]:80", NK_EADDR_SYNTAX},
    {"[::1]x80", NK_EADDR_SYNTAX},
    {"[::1]]:80", NK_EADDR_SYNTAX},
    {"[]:80", NK_EADDR_SYNTAX},
    {"1.2.3.256:80", NK_EADDR_SYNTAX},
    {"1.2.3:80", NK_EADDR_SYNTAX},
    {"1.2.3.4%lo:80", NK_EADDR_SYNTAX},
    {"[::1%lo]:80x", NK_EADDR_PORT},
};

static void test_addr_parse_bad_inputs_give_their_exact_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        nk_addr a;
        memset(&a, 0xa5, sizeof a);
        nk_addr before = a;
        int rc = nk_addr_parse(bad_cases[i].text, &a);
        if (rc != bad_cases[i].code)
            print_error("case %zu \"%s\": got %s, want %s\n", i,
                        bad_cases[i].text, nk_err_name(rc),
                        nk_err_name(bad_cases[i].code));
        assert_int_equal(rc, bad_cases[i].code);
        assert_memory_equal(&a, &before, sizeof a); /* untouched */
        assert_string_not_equal(nk_strerror(rc), nk_strerror(12345678));
    }
}

/* A page whose end touches a PROT_NONE page: text copied there ends right
 * at the guard, so reading one byte past its NUL would crash. */
struct guard {
    char *base;
    size_t page;
};

static struct guard guard_open(void)
{
    struct guard g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.base = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.base != MAP_FAILED);
    assert_int_equal(mprotect(g.base + g.page, g.page, PROT_NONE), 0);
    return g;
}

static const char *guard_put(struct guard *g, const char *text, size_t len)
{
    char *dst = g->base + g->page - len - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
    return dst;
}

static void guard_close(struct guard *g)
{
    munmap(g->base, 2 * g->page);
}

static bool is_parse_code(int rc)
{
    return rc == 0 || rc == NK_EADDR_EMPTY || rc == NK_EADDR_SYNTAX ||
           rc == NK_EADDR_BRACKET || rc == NK_EADDR_NOPORT ||
           rc == NK_EADDR_PORT || rc == NK_EADDR_HOSTLEN ||
           rc == NK_EADDR_SCOPE || rc == NK_EADDR_NAME;
}

/* Whatever parses must format and parse back to the same address. */
static void check_parse_result(const char *text)
{
    nk_addr a, b;
    int rc = nk_addr_parse(text, &a);
    if (!is_parse_code(rc))
        print_error("\"%s\" gave %d\n", text, rc);
    assert_true(is_parse_code(rc));
    if (rc == 0) {
        char buf[NK_ADDR_STRLEN];
        assert_true(nk_addr_format(&a, buf, sizeof buf) > 0);
        assert_int_equal(nk_addr_parse(buf, &b), 0);
        assert_true(nk_addr_equal(&a, &b));
    }
}

static const char *const sample_texts[] = {
    "127.0.0.1:9999", ":9999", "[::1]:80", "[fe80::1%lo]:80",
    "[fe80::1%7]:1", "[::ffff:1.2.3.4]:7", "1.2.3.4:0x50", "[::1",
    "host:", ":70000", "[fe80::1%bogus]:1", "localhost:80",
};

static void test_addr_parse_reads_no_byte_past_the_nul(void **state)
{
    (void)state;
    struct guard g = guard_open();
    /* every prefix of every sample, ending against the guard page */
    for (size_t i = 0; i < sizeof sample_texts / sizeof *sample_texts; i++) {
        size_t len = strlen(sample_texts[i]);
        for (size_t cut = 0; cut <= len; cut++)
            check_parse_result(guard_put(&g, sample_texts[i], cut));
    }
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        nk_addr a;
        const char *t =
            guard_put(&g, bad_cases[i].text, strlen(bad_cases[i].text));
        assert_int_equal(nk_addr_parse(t, &a), bad_cases[i].code);
    }
    guard_close(&g);
}

/* Random strings over the characters the grammar cares about (fixed seed):
 * only documented codes come back, and every success round-trips. */
static void test_addr_parse_random_inputs_give_documented_codes(void **state)
{
    (void)state;
    static const char alphabet[] = "[]:%.0123456789abcdefx-+ lo";
    struct guard g = guard_open();
    uint64_t x = UINT64_C(0x2545f4914f6cdd1d);
    int successes = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char text[48];
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t len = (size_t)(x % sizeof text);
        for (size_t k = 0; k < len; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text[k] = alphabet[x % (sizeof alphabet - 1)];
        }
        /* bias toward the shapes that can succeed */
        if (iter % 3 == 0 && len > 2)
            text[0] = '[';
        if (iter % 4 == 0 && len > 4)
            text[len - 3] = ':';
        const char *t = guard_put(&g, text, len);
        nk_addr a;
        if (nk_addr_parse(t, &a) == 0)
            successes++;
        check_parse_result(t);
    }
    assert_true(successes > 0); /* the generator does reach valid text */
    guard_close(&g);
}

static void test_addr_parse_long_host_is_hostlen(void **state)
{
    (void)state;
    char text[400];
    memset(text, 'a', 300);
    strcpy(text + 300, ":80");
    nk_addr a;
    assert_int_equal(nk_addr_parse(text, &a), NK_EADDR_HOSTLEN);
    assert_int_equal(nk_addr_resolve(text, AF_UNSPEC, &a), NK_EADDR_HOSTLEN);
    text[300] = '\0'; /* no port at all: the length is still the problem */
    assert_int_equal(nk_addr_parse(text, &a), NK_EADDR_HOSTLEN);
    text[0] = '[';
    strcpy(text + 300, "]:80");
    assert_int_equal(nk_addr_parse(text, &a), NK_EADDR_HOSTLEN);
    /* 253 characters is the limit, not an error (a name, so NAME) */
    memset(text, 'a', 253);
    strcpy(text + 253, ":80");
    assert_int_equal(nk_addr_parse(text, &a), NK_EADDR_NAME);
}

/* A host name where a numeric address is needed gets its own code, whose
 * sentence points to nk_addr_resolve(); text that nk_addr_resolve() would
 * refuse too keeps the code of what is wrong with it. */
static void test_addr_parse_host_name_says_resolve_it(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"localhost:80", NK_EADDR_NAME},
        {"example.com:443", NK_EADDR_NAME},
        {"my_host.local.:1", NK_EADDR_NAME},    /* trailing dot: FQDN */
        {"a-b:0", NK_EADDR_NAME},
        {"xn--bcher-kva.example:65535", NK_EADDR_NAME},
        {"localhost", NK_EADDR_SYNTAX},         /* no port: resolve fails too */
        {"localhost:", NK_EADDR_NOPORT},
        {"localhost:http", NK_EADDR_PORT},
        {"[localhost]:80", NK_EADDR_SYNTAX},    /* brackets hold IPv6 only */
        {"a b:80", NK_EADDR_SYNTAX},            /* not a name's characters */
        {"..:80", NK_EADDR_SYNTAX},             /* empty labels */
        {".a:80", NK_EADDR_SYNTAX},
        {"1.2.3:80", NK_EADDR_SYNTAX},          /* numeric last label */
        {"0x7f000001:80", NK_EADDR_SYNTAX},
        {"host.123:80", NK_EADDR_SYNTAX},
        {"1.2.3.4.:80", NK_EADDR_SYNTAX},
        {".:80", NK_EADDR_SYNTAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nk_addr a;
        memset(&a, 0xa5, sizeof a);
        nk_addr before = a;
        int rc = nk_addr_parse(cases[i].text, &a);
        if (rc != cases[i].code)
            print_error("\"%s\": got %s, want %s\n", cases[i].text,
                        nk_err_name(rc), nk_err_name(cases[i].code));
        assert_int_equal(rc, cases[i].code);
        assert_memory_equal(&a, &before, sizeof a); /* untouched */
    }
    assert_non_null(strstr(nk_strerror(NK_EADDR_NAME), "nk_addr_resolve()"));
    assert_string_equal(nk_err_name(NK_EADDR_NAME), "NK_EADDR_NAME");
}

static void test_addr_null_arguments_are_rejected(void **state)
{
    (void)state;
    nk_addr a;
    char buf[NK_ADDR_STRLEN];
    uint8_t key[16] = {0};
    assert_int_equal(nk_addr_parse("127.0.0.1:1", &a), 0);
    assert_int_equal(nk_addr_parse(NULL, &a), NK_EINVAL);
    assert_int_equal(nk_addr_parse("1.2.3.4:5", NULL), NK_EINVAL);
    assert_int_equal(nk_addr_resolve(NULL, AF_UNSPEC, &a), NK_EINVAL);
    assert_int_equal(nk_addr_resolve("1.2.3.4:5", AF_UNSPEC, NULL), NK_EINVAL);
    assert_int_equal(nk_addr_from_sockaddr(NULL, &a.u.sa, a.len), NK_EINVAL);
    assert_int_equal(nk_addr_from_sockaddr(&a, NULL, 16), NK_EINVAL);
    assert_int_equal(nk_addr_format(NULL, buf, sizeof buf), NK_EINVAL);
    assert_int_equal(nk_addr_format(&a, NULL, 10), NK_EINVAL);
    assert_int_equal(nk_addr_port(NULL), -1);
    assert_int_equal(nk_addr_set_port(NULL, 1), NK_EINVAL);
    assert_int_equal(nk_addr_family(NULL), 0);
    nk_addr_normalize(NULL);
    assert_true(nk_addr_equal(NULL, NULL));
    assert_false(nk_addr_equal(&a, NULL));
    assert_false(nk_addr_equal(NULL, &a));
    assert_int_equal(nk_addr_hash(NULL, key), nk_addr_hash(NULL, key));

    nk_addr empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(nk_addr_port(&empty), -1);
    assert_int_equal(nk_addr_family(&empty), 0);
    assert_int_equal(nk_addr_set_port(&empty, 1), NK_EINVAL);
    assert_int_equal(nk_addr_format(&empty, buf, sizeof buf), NK_EINVAL);
    assert_string_equal(buf, "");
}

struct good_case {
    const char *text;
    int family;
    int port;
    const char *formatted;
};

static const struct good_case good_cases[] = {
    {"127.0.0.1:9999", AF_INET, 9999, "127.0.0.1:9999"},
    {":9999", AF_INET, 9999, "0.0.0.0:9999"},
    {":0", AF_INET, 0, "0.0.0.0:0"},
    {"1.2.3.4:65535", AF_INET, 65535, "1.2.3.4:65535"},
    {"1.2.3.4:080", AF_INET, 80, "1.2.3.4:80"},
    {"[::1]:80", AF_INET6, 80, "[::1]:80"},
    {"[::]:1", AF_INET6, 1, "[::]:1"},
    {"[2001:DB8::1]:443", AF_INET6, 443, "[2001:db8::1]:443"},
    {"[::ffff:1.2.3.4]:7", AF_INET6, 7, "[::ffff:1.2.3.4]:7"},
};

static void test_addr_parse_format_parse_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_cases / sizeof *good_cases; i++) {
        const struct good_case *c = &good_cases[i];
        nk_addr a, b;
        char buf[NK_ADDR_STRLEN];
        assert_int_equal(nk_addr_parse(c->text, &a), 0);
        assert_int_equal(nk_addr_family(&a), c->family);
        assert_int_equal(nk_addr_port(&a), c->port);
        assert_int_equal(a.len, c->family == AF_INET ? sizeof a.u.v4
                                                     : sizeof a.u.v6);
        int n = nk_addr_format(&a, buf, sizeof buf);
        assert_int_equal(n, (int)strlen(c->formatted));
        assert_string_equal(buf, c->formatted);
        assert_int_equal(nk_addr_parse(buf, &b), 0);
        assert_true(nk_addr_equal(&a, &b));
        assert_memory_equal(&a, &b, sizeof a);
    }
}

static void test_addr_scope_by_name_and_number_round_trips(void **state)
{
    (void)state;
    unsigned lo = if_nametoindex("lo");
    assert_int_not_equal(lo, 0);
    nk_addr a, b;
    char buf[NK_ADDR_STRLEN];

    assert_int_equal(nk_addr_parse("[fe80::1%lo]:80", &a), 0);
    assert_int_equal(a.u.v6.sin6_scope_id, lo);
    assert_int_equal(nk_addr_format(&a, buf, sizeof buf),
                     (int)strlen("[fe80::1%lo]:80"));
    assert_string_equal(buf, "[fe80::1%lo]:80");
    assert_int_equal(nk_addr_parse(buf, &b), 0);
    assert_true(nk_addr_equal(&a, &b));

    char text[64];
    snprintf(text, sizeof text, "[fe80::1%%%u]:80", lo);
    assert_int_equal(nk_addr_parse(text, &b), 0);
    assert_true(nk_addr_equal(&a, &b));

    /* An index with no interface formats as a number and parses back. */
    assert_int_equal(nk_addr_parse("[fe80::1%4000000000]:5", &a), 0);
    assert_int_equal(a.u.v6.sin6_scope_id, 4000000000u);
    assert_true(nk_addr_format(&a, buf, sizeof buf) > 0);
    assert_string_equal(buf, "[fe80::1%4000000000]:5");
    assert_int_equal(nk_addr_parse(buf, &b), 0);
    assert_true(nk_addr_equal(&a, &b));

    /* The scope takes part in equality. */
    assert_int_equal(nk_addr_parse("[fe80::1%1]:5", &b), 0);
    assert_false(nk_addr_equal(&a, &b));
}

static void test_addr_format_reports_small_buffer(void **state)
{
    (void)state;
    nk_addr a;
    char buf[NK_ADDR_STRLEN];
    assert_int_equal(nk_addr_parse("10.20.30.40:5000", &a), 0);
    int need = (int)strlen("10.20.30.40:5000");
    memset(buf, 'x', sizeof buf);
    assert_int_equal(nk_addr_format(&a, buf, (size_t)need), NK_ENOSPACE);
    assert_string_equal(buf, "");
    assert_int_equal(nk_addr_format(&a, buf, 1), NK_ENOSPACE);
    assert_string_equal(buf, "");
    buf[0] = 'x';
    assert_int_equal(nk_addr_format(&a, buf, 0), NK_ENOSPACE);
    assert_int_equal(buf[0], 'x'); /* size 0: nothing written */
    assert_int_equal(nk_addr_format(&a, buf, (size_t)need + 1), need);
    assert_string_equal(buf, "10.20.30.40:5000");

    /* The longest form fits in NK_ADDR_STRLEN. */
    assert_int_equal(
        nk_addr_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                      "%4294967295]:65535",
                      &a),
        0);
    int n = nk_addr_format(&a, buf, sizeof buf);
    assert_true(n > 0 && n < NK_ADDR_STRLEN);
}

static void test_addr_set_port_checks_range(void **state)
{
    (void)state;
    nk_addr a;
    assert_int_equal(nk_addr_parse("[::1]:1", &a), 0);
    assert_int_equal(nk_addr_set_port(&a, 65535), 0);
    assert_int_equal(nk_addr_port(&a), 65535);
    assert_int_equal(nk_addr_set_port(&a, 65536), NK_EADDR_PORT);
    assert_int_equal(nk_addr_set_port(&a, -1), NK_EADDR_PORT);
    assert_int_equal(nk_addr_port(&a), 65535);
    assert_int_equal(nk_addr_set_port(&a, 0), 0);
    assert_int_equal(nk_addr_port(&a), 0);
}

static void test_addr_from_sockaddr_checks_family_and_length(void **state)
{
    (void)state;
    nk_addr a, b;
    assert_int_equal(nk_addr_parse("1.2.3.4:5", &a), 0);
    assert_int_equal(nk_addr_from_sockaddr(&b, &a.u.sa, a.len), 0);
    assert_true(nk_addr_equal(&a, &b));
    assert_int_equal(nk_addr_from_sockaddr(&b, &a.u.sa, a.len - 1),
                     NK_EINVAL);
    assert_int_equal(nk_addr_parse("[::1]:5", &a), 0);
    assert_int_equal(nk_addr_from_sockaddr(&b, &a.u.sa, sizeof a.u.v4),
                     NK_EINVAL);
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    assert_int_equal(nk_addr_from_sockaddr(&b, (struct sockaddr *)&un,
                                           sizeof un),
                     NK_EADDR_FAMILY);
}

static void test_addr_resolve_localhost_gives_loopback(void **state)
{
    (void)state;
    nk_addr a;
    /* A machine without /etc/hosts (a bare chroot) may have no name for
     * localhost at all: then there is nothing to compare against. */
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", NULL, NULL, &res) != 0) {
        nkt_skip("this system does not resolve \"localhost\"");
    }
    freeaddrinfo(res);
    assert_int_equal(nk_addr_resolve("localhost:80", AF_UNSPEC, &a), 0);
    assert_int_equal(nk_addr_port(&a), 80);
    if (nk_addr_family(&a) == AF_INET)
        assert_int_equal(ntohl(a.u.v4.sin_addr.s_addr) >> 24, 127);
    else
        assert_true(IN6_IS_ADDR_LOOPBACK(&a.u.v6.sin6_addr));

    assert_int_equal(nk_addr_resolve("localhost:8080", AF_INET, &a), 0);
    assert_int_equal(nk_addr_family(&a), AF_INET);
    assert_int_equal(ntohl(a.u.v4.sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(nk_addr_port(&a), 8080);
}

static void test_addr_resolve_numeric_and_errors(void **state)
{
    (void)state;
    nk_addr a, b;
    assert_int_equal(nk_addr_resolve("1.2.3.4:5", AF_UNSPEC, &a), 0);
    assert_int_equal(nk_addr_parse("1.2.3.4:5", &b), 0);
    assert_true(nk_addr_equal(&a, &b));
    assert_int_equal(nk_addr_resolve("1.2.3.4:5", AF_INET6, &a),
                     NK_EADDR_FAMILY);
    assert_int_equal(nk_addr_resolve("[::1]:5", AF_INET, &a),
                     NK_EADDR_FAMILY);
    assert_int_equal(nk_addr_resolve("1.2.3.4:5", AF_UNIX, &a),
                     NK_EADDR_FAMILY);
    assert_int_equal(nk_addr_resolve(":5", AF_INET6, &a), 0);
    assert_int_equal(nk_addr_family(&a), AF_INET6);
    assert_true(IN6_IS_ADDR_UNSPECIFIED(&a.u.v6.sin6_addr));
    assert_int_equal(nk_addr_port(&a), 5);
    assert_int_equal(nk_addr_resolve("localhost:", AF_UNSPEC, &a),
                     NK_EADDR_NOPORT);
    assert_int_equal(nk_addr_resolve("[::1", AF_UNSPEC, &a),
                     NK_EADDR_BRACKET);
    assert_int_equal(nk_addr_resolve("[nosuch]:1", AF_UNSPEC, &a),
                     NK_EADDR_SYNTAX);
    /* Not dotted quads, not names: no legacy inet_aton() reading. */
    assert_int_equal(nk_addr_resolve("127.1:80", AF_UNSPEC, &a),
                     NK_EADDR_SYNTAX);
    assert_int_equal(nk_addr_resolve("0x7f000001:80", AF_UNSPEC, &a),
                     NK_EADDR_SYNTAX);
    assert_int_equal(nk_addr_resolve("1.2.3.256:80", AF_UNSPEC, &a),
                     NK_EADDR_SYNTAX);
    assert_int_equal(nk_addr_resolve("2130706433:80", AF_UNSPEC, &a),
                     NK_EADDR_SYNTAX);
    /* RFC 6761: .invalid never resolves. */
    assert_int_equal(nk_addr_resolve("no-such-host.invalid:80", AF_UNSPEC, &a),
                     NK_ERESOLVE);
}

static void test_addr_v4_mapped_equals_v4_and_hashes_alike(void **state)
{
    (void)state;
    const uint8_t key[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                             9, 10, 11, 12, 13, 14, 15, 16};
    nk_addr v4, mapped, other_port, other_host;
    assert_int_equal(nk_addr_parse("1.2.3.4:80", &v4), 0);
    assert_int_equal(nk_addr_parse("[::ffff:1.2.3.4]:80", &mapped), 0);
    assert_int_equal(nk_addr_parse("1.2.3.4:81", &other_port), 0);
    assert_int_equal(nk_addr_parse("[::1.2.3.4]:80", &other_host), 0);

    assert_true(nk_addr_equal(&v4, &mapped));
    assert_true(nk_addr_equal(&mapped, &v4));
    assert_int_equal(nk_addr_hash(&v4, key), nk_addr_hash(&mapped, key));
    assert_false(nk_addr_equal(&v4, &other_port));
    assert_int_not_equal(nk_addr_hash(&v4, key),
                         nk_addr_hash(&other_port, key));
    /* ::1.2.3.4 (v4-compatible, deprecated) is not v4-mapped */
    assert_false(nk_addr_equal(&v4, &other_host));

    /* Flow info is not part of the identity. */
    nk_addr flow = mapped;
    flow.u.v6.sin6_flowinfo = htonl(0x12345);
    assert_true(nk_addr_equal(&flow, &v4));
    assert_int_equal(nk_addr_hash(&flow, key), nk_addr_hash(&v4, key));

    nk_addr_normalize(&mapped);
    assert_int_equal(nk_addr_family(&mapped), AF_INET);
    assert_int_equal(mapped.len, sizeof mapped.u.v4);
    assert_memory_equal(&mapped, &v4, sizeof v4);

    nk_addr v6;
    assert_int_equal(nk_addr_parse("[::1]:80", &v6), 0);
    nk_addr copy = v6;
    nk_addr_normalize(&v6);
    assert_memory_equal(&copy, &v6, sizeof v6);
}

static void test_addr_hash_depends_on_key(void **state)
{
    (void)state;
    uint8_t k1[16], k2[16];
    for (int i = 0; i < 16; i++) {
        k1[i] = (uint8_t)i;
        k2[i] = (uint8_t)(i * 7 + 1);
    }
    const char *texts[] = {"127.0.0.1:1", "127.0.0.1:2", "[::1]:1",
                           ":0", "[fe80::1%1]:9"};
    uint64_t h1[5];
    for (int i = 0; i < 5; i++) {
        nk_addr a;
        assert_int_equal(nk_addr_parse(texts[i], &a), 0);
        h1[i] = nk_addr_hash(&a, k1);
        assert_int_equal(h1[i], nk_addr_hash(&a, k1)); /* deterministic */
        assert_int_not_equal(h1[i], nk_addr_hash(&a, k2));
        for (int j = 0; j < i; j++)
            assert_int_not_equal(h1[i], h1[j]);
    }
}

/* Reference vectors (SipHash authors' vectors.h): key 00..0f, message
 * 00..n-1, output as little-endian bytes. */
static void test_siphash24_matches_reference_vectors(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        uint8_t out[8];
    } vectors[] = {
        {0, {0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72}},
        {1, {0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74}},
        {7, {0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab}},
        {8, {0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93}},
        {15, {0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1}},
        {16, {0xdb, 0x9b, 0xc2, 0x57, 0x7f, 0xcc, 0x2a, 0x3f}},
        {63, {0x72, 0x45, 0x06, 0xeb, 0x4c, 0x32, 0x8a, 0x95}},
    };
    uint8_t key[16], msg[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    for (size_t v = 0; v < sizeof vectors / sizeof *vectors; v++) {
        uint64_t h = nk__siphash24(msg, vectors[v].len, key);
        uint64_t want = 0;
        for (int b = 7; b >= 0; b--)
            want = (want << 8) | vectors[v].out[b];
        assert_int_equal(h, want);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse_bad_inputs_give_their_exact_code),
        cmocka_unit_test(test_addr_parse_long_host_is_hostlen),
        cmocka_unit_test(test_addr_parse_host_name_says_resolve_it),
        cmocka_unit_test(test_addr_parse_reads_no_byte_past_the_nul),
        cmocka_unit_test(test_addr_parse_random_inputs_give_documented_codes),
        cmocka_unit_test(test_addr_null_arguments_are_rejected),
        cmocka_unit_test(test_addr_parse_format_parse_round_trips),
        cmocka_unit_test(test_addr_scope_by_name_and_number_round_trips),
        cmocka_unit_test(test_addr_format_reports_small_buffer),
        cmocka_unit_test(test_addr_set_port_checks_range),
        cmocka_unit_test(test_addr_from_sockaddr_checks_family_and_length),
        cmocka_unit_test(test_addr_resolve_localhost_gives_loopback),
        cmocka_unit_test(test_addr_resolve_numeric_and_errors),
        cmocka_unit_test(test_addr_v4_mapped_equals_v4_and_hashes_alike),
        cmocka_unit_test(test_addr_hash_depends_on_key),
        cmocka_unit_test(test_siphash24_matches_reference_vectors),
    };
    return nkt_run_tests(tests, NULL, NULL, argc, argv);
}
