/* Fuzz target for nk_addr_parse() and nk_addr_format().
 *
 * Input: the text to parse (up to its first NUL), copied so its NUL ends
 * on a guard page. An input whose first byte is 0 instead describes a raw
 * sockaddr for nk_addr_from_sockaddr(), which fuzzes the formatter.
 *
 * Invariants:
 * - success: the family matches the form ('[' gives IPv6), the port is the
 *   number after the last ':', format succeeds (and reports NK_ENOSPACE
 *   with an empty string when one byte short), the formatted text parses
 *   back to an equal address with an equal hash, and formatting is stable.
 * - failure: the code is one of the documented ones, has a sentence and a
 *   name, and the output address is untouched; NK_EADDR_NAME (a host name)
 *   only for unbracketed text with a port.
 * - parsing is deterministic, and never reads past the NUL. */
#include <stdbool.h>
#include <string.h>

#include <arpa/inet.h>

#include "fuzz.h"
#include "netkit/addr.h"
#include "netkit/error.h"

static const uint8_t hash_key[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                     9, 10, 11, 12, 13, 14, 15, 16};

static bool documented_parse_error(int rc)
{
    switch (rc) {
    case NK_EINVAL:
    case NK_EADDR_EMPTY:
    case NK_EADDR_SYNTAX:
    case NK_EADDR_BRACKET:
    case NK_EADDR_NOPORT:
    case NK_EADDR_PORT:
    case NK_EADDR_HOSTLEN:
    case NK_EADDR_SCOPE:
    case NK_EADDR_NAME:
        return true;
    default:
        return false;
    }
}

static void check_error_text(int rc)
{
    const char *s = nk_strerror(rc);
    NK_FUZZ_CHECK(s != NULL && s[0] != '\0');
    NK_FUZZ_CHECK(strcmp(s, "unknown error code") != 0);
    NK_FUZZ_CHECK(strcmp(nk_err_name(rc), "UNKNOWN") != 0);
}

/* Format, reparse, compare: the round trip every valid address must make. */
static void check_round_trip(const nk_addr *a)
{
    char buf[NK_ADDR_STRLEN];
    memset(buf, 'x', sizeof buf);
    int n = nk_addr_format(a, buf, sizeof buf);
    NK_FUZZ_CHECK(n > 0 && n < NK_ADDR_STRLEN);
    NK_FUZZ_CHECK(strlen(buf) == (size_t)n);

    /* One byte short: NK_ENOSPACE and an empty string. */
    char small[NK_ADDR_STRLEN];
    memset(small, 'x', sizeof small);
    NK_FUZZ_CHECK(nk_addr_format(a, small, (size_t)n) == NK_ENOSPACE);
    NK_FUZZ_CHECK(small[0] == '\0');
    NK_FUZZ_CHECK(nk_addr_format(a, small, (size_t)n + 1) == n);
    NK_FUZZ_CHECK(strcmp(small, buf) == 0);

    nk_addr b;
    int rc = nk_addr_parse(nk_fuzz_cstr((const uint8_t *)buf, (size_t)n), &b);
    NK_FUZZ_CHECK(rc == 0);
    NK_FUZZ_CHECK(nk_addr_equal(a, &b));
    NK_FUZZ_CHECK(nk_addr_equal(&b, a));
    NK_FUZZ_CHECK(nk_addr_hash(a, hash_key) == nk_addr_hash(&b, hash_key));
    NK_FUZZ_CHECK(nk_addr_hash(a, NULL) == nk_addr_hash(&b, NULL));
    NK_FUZZ_CHECK(nk_addr_port(a) == nk_addr_port(&b));

    /* The formatted text is canonical: formatting again gives it back. */
    char again[NK_ADDR_STRLEN];
    NK_FUZZ_CHECK(nk_addr_format(&b, again, sizeof again) == n);
    NK_FUZZ_CHECK(strcmp(again, buf) == 0);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    const char *text = nk_fuzz_cstr(data, size);
    size_t len = strlen(text);

    nk_addr a, before;
    memset(&a, 0xA5, sizeof a);
    before = a;
    int rc = nk_addr_parse(text, &a);

    nk_addr a2;
    NK_FUZZ_CHECK(nk_addr_parse(text, &a2) == rc);

    if (rc != 0) {
        NK_FUZZ_CHECK(documented_parse_error(rc));
        NK_FUZZ_CHECK(rc != NK_EINVAL); /* only for NULL arguments */
        NK_FUZZ_CHECK(memcmp(&a, &before, sizeof a) == 0);
        NK_FUZZ_CHECK(len > 0 || rc == NK_EADDR_EMPTY);
        /* A name is unbracketed, with a port after its last ':'. */
        NK_FUZZ_CHECK(rc != NK_EADDR_NAME ||
                      (text[0] != '[' && strrchr(text, ':') != NULL &&
                       strrchr(text, ':')[1] != '\0'));
        check_error_text(rc);
        return;
    }

    NK_FUZZ_CHECK(nk_addr_equal(&a, &a2));
    int family = nk_addr_family(&a);
    NK_FUZZ_CHECK(family == (text[0] == '[' ? AF_INET6 : AF_INET));
    NK_FUZZ_CHECK(a.len == (family == AF_INET ? sizeof a.u.v4
                                              : sizeof a.u.v6));

    /* The port is the decimal number after the last ':'. */
    const char *colon = strrchr(text, ':');
    NK_FUZZ_CHECK(colon != NULL && colon[1] != '\0');
    long port = 0;
    for (const char *p = colon + 1; *p != '\0'; p++) {
        NK_FUZZ_CHECK(*p >= '0' && *p <= '9');
        port = port * 10 + (*p - '0');
        NK_FUZZ_CHECK(port <= 65535);
    }
    NK_FUZZ_CHECK(nk_addr_port(&a) == port);

    check_round_trip(&a);
}

/* Byte 0 is 0; byte 1 picks the family and length; the rest fill the
 * sockaddr. */
static void fuzz_sockaddr(const uint8_t *data, size_t size)
{
    struct nk_fuzz_in in = {data + 1, size - 1};
    unsigned sel = nk_fuzz_u8(&in);
    struct sockaddr_in6 ss;
    memset(&ss, 0, sizeof ss);
    size_t fill = in.left < sizeof ss ? in.left : sizeof ss;
    memcpy(&ss, in.p, fill);

    struct sockaddr *sa = (struct sockaddr *)&ss;
    socklen_t len;
    switch (sel & 3) {
    case 0:
        sa->sa_family = AF_INET;
        len = sizeof(struct sockaddr_in);
        break;
    case 1:
        sa->sa_family = AF_INET6;
        len = sizeof(struct sockaddr_in6);
        break;
    case 2: /* a short length for the family */
        sa->sa_family = (sel & 4) ? AF_INET6 : AF_INET;
        len = (socklen_t)(sel >> 3);
        break;
    default: /* whatever family the bytes say */
        len = sizeof ss;
        break;
    }

    nk_addr a, before;
    memset(&a, 0x5A, sizeof a);
    before = a;
    int rc = nk_addr_from_sockaddr(&a, sa, len);
    if (rc != 0) {
        NK_FUZZ_CHECK(rc == NK_EINVAL || rc == NK_EADDR_FAMILY);
        NK_FUZZ_CHECK(memcmp(&a, &before, sizeof a) == 0);
        check_error_text(rc);
        return;
    }
    NK_FUZZ_CHECK(nk_addr_family(&a) == sa->sa_family);
    check_round_trip(&a);

    /* A normalized copy is equal and hashes alike. */
    nk_addr n = a;
    nk_addr_normalize(&n);
    NK_FUZZ_CHECK(nk_addr_equal(&a, &n));
    NK_FUZZ_CHECK(nk_addr_hash(&a, hash_key) == nk_addr_hash(&n, hash_key));
}

int nk_fuzz_addr_parse(const uint8_t *data, size_t size)
{
    if (size > 0 && data[0] == 0)
        fuzz_sockaddr(data, size);
    else
        fuzz_text(data, size);
    return 0;
}

#ifdef NK_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return nk_fuzz_addr_parse(data, size);
}
#endif
