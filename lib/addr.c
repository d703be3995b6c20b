/* Addresses: parse `HOST:PORT`, `[IPV6%ZONE]:PORT` and `:PORT`, resolve
 * names, format, compare and hash. The parser is pure apart from the
 * interface-name lookup for a named %zone: it allocates nothing and reads
 * only the caller's string, so it can be fuzzed directly. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>

#include "netkit/addr.h"
#include "netkit/error.h"
#include "siphash.h"

/* The pieces of the text, as views into the caller's string. */
struct addr_text {
    const char *host;   /* host, without brackets and zone */
    size_t host_len;
    const char *zone;   /* after '%', or NULL */
    size_t zone_len;
    const char *port;   /* after the separating ':' */
    bool bracketed;     /* host was written as [v6] */
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Decimal 0..65535, digits only: no sign, space, or 0x. Leading zeros are
 * accepted ("080" is 80), but at most 5 digits so no overflow is possible. */
static int parse_port(const char *s, int *port)
{
    if (*s == '\0')
        return NK_EADDR_NOPORT;
    long v = 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (!is_digit(s[n]) || n >= 5)
            return NK_EADDR_PORT;
        v = v * 10 + (s[n] - '0');
    }
    if (v > 65535)
        return NK_EADDR_PORT;
    *port = (int)v;
    return 0;
}

/* Split @text into host, zone and port without touching anything else. */
static int split_text(const char *text, struct addr_text *t)
{
    memset(t, 0, sizeof *t);
    if (*text == '\0')
        return NK_EADDR_EMPTY;

    if (*text == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return NK_EADDR_BRACKET;
        const char *inner = text + 1;
        size_t inner_len = (size_t)(close - inner);
        if (inner_len > NK_ADDR_HOST_MAX)
            return NK_EADDR_HOSTLEN;
        const char *pct = memchr(inner, '%', inner_len);
        t->host = inner;
        t->host_len = pct != NULL ? (size_t)(pct - inner) : inner_len;
        if (pct != NULL) {
            t->zone = pct + 1;
            t->zone_len = (size_t)(close - t->zone);
        }
        t->bracketed = true;
        if (close[1] == '\0')
            return NK_EADDR_NOPORT;
        if (close[1] != ':')
            return NK_EADDR_SYNTAX;
        t->port = close + 2;
        return 0;
    }

    const char *colon = strrchr(text, ':');
    size_t host_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
    if (host_len > NK_ADDR_HOST_MAX)
        return NK_EADDR_HOSTLEN;
    if (colon == NULL)
        return NK_EADDR_SYNTAX;
    /* A second ':' means an unbracketed IPv6 address: ambiguous. */
    if (memchr(text, ':', host_len) != NULL)
        return NK_EADDR_SYNTAX;
    if (memchr(text, ']', host_len) != NULL || memchr(text, '%', host_len))
        return NK_EADDR_SYNTAX;
    t->host = text;
    t->host_len = host_len;
    t->port = colon + 1;
    return 0;
}

/* Interface index of a zone: decimal, or an interface name. */
static int parse_zone(const char *zone, size_t len, uint32_t *scope)
{
    char name[IF_NAMESIZE];
    if (len == 0 || len >= sizeof name)
        return NK_EADDR_SCOPE;
    memcpy(name, zone, len);
    name[len] = '\0';

    bool numeric = true;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(name[i])) {
            numeric = false;
            break;
        }
        v = v * 10 + (unsigned long)(name[i] - '0');
        if (v > UINT32_MAX)
            return NK_EADDR_SCOPE;
    }
    if (numeric) {
        *scope = (uint32_t)v;
        return 0;
    }
    unsigned idx = if_nametoindex(name);
    if (idx == 0)
        return NK_EADDR_SCOPE;
    *scope = idx;
    return 0;
}

/* Numeric host to address. Returns 0, NK_EADDR_SYNTAX (not numeric; may be
 * a name) or NK_EADDR_SCOPE. */
static int parse_numeric_host(const struct addr_text *t, int port,
                              nk_addr *out)
{
    char buf[INET6_ADDRSTRLEN];
    nk_addr a;
    memset(&a, 0, sizeof a);

    if (t->host_len >= sizeof buf)
        return NK_EADDR_SYNTAX;
    memcpy(buf, t->host, t->host_len);
    buf[t->host_len] = '\0';

    if (t->bracketed) {
        if (inet_pton(AF_INET6, buf, &a.u.v6.sin6_addr) != 1)
            return NK_EADDR_SYNTAX;
        if (t->zone != NULL) {
            uint32_t scope = 0;
            int rc = parse_zone(t->zone, t->zone_len, &scope);
            if (rc < 0)
                return rc;
            a.u.v6.sin6_scope_id = scope;
        }
        a.u.v6.sin6_family = AF_INET6;
        a.u.v6.sin6_port = htons((uint16_t)port);
        a.len = sizeof a.u.v6;
    } else {
        if (t->host_len == 0) {
            a.u.v4.sin_addr.s_addr = htonl(INADDR_ANY);
        } else if (inet_pton(AF_INET, buf, &a.u.v4.sin_addr) != 1) {
            return NK_EADDR_SYNTAX;
        }
        a.u.v4.sin_family = AF_INET;
        a.u.v4.sin_port = htons((uint16_t)port);
        a.len = sizeof a.u.v4;
    }
    *out = a;
    return 0;
}

/* Is the last label all digits, or 0x and hex digits? No DNS name ends
 * like that (RFC 3696 section 2), but getaddrinfo() would read such text
 * with inet_aton()'s legacy rules ("127.1" is 127.0.0.1, "0x7f000001"
 * too): refuse it rather than guess. */
static bool looks_numeric(const char *host, size_t len)
{
    size_t start = len;
    while (start > 0 && host[start - 1] != '.')
        start--;
    const char *l = host + start;
    size_t n = len - start;
    if (n == 0)
        return false;
    size_t i = 0;
    bool hex = n > 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X');
    if (hex)
        i = 2;
    for (; i < n; i++) {
        char c = l[i];
        bool ok = is_digit(c) ||
                  (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
        if (!ok)
            return false;
    }
    return true;
}

/* The text's host part and its port: what parse and resolve share. */
static int split_host_port(const char *text, struct addr_text *t, int *port)
{
    int rc = split_text(text, t);
    return rc < 0 ? rc : parse_port(t->port, port);
}

/* Letters, digits, '-' and '_' in labels between dots (a final dot, as in
 * "localhost.", is allowed), the last label not numeric: what
 * nk_addr_resolve() would look up. */
static bool looks_like_name(const char *host, size_t len)
{
    size_t body = len > 0 && host[len - 1] == '.' ? len - 1 : len;
    if (body == 0 || looks_numeric(host, body))
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        char lower = (char)(c | 0x20);
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (is_digit(c) || (lower >= 'a' && lower <= 'z') ||
                   c == '-' || c == '_') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

int nk_addr_parse(const char *text, nk_addr *out)
{
    if (text == NULL || out == NULL)
        return NK_EINVAL;
    struct addr_text t;
    int port = 0;
    int rc = split_host_port(text, &t, &port);
    if (rc < 0)
        return rc;
    rc = parse_numeric_host(&t, port, out);
    /* A name is not a typo: say which call takes it. */
    if (rc == NK_EADDR_SYNTAX && !t.bracketed &&
        looks_like_name(t.host, t.host_len))
        return NK_EADDR_NAME;
    return rc;
}

static int resolve_name(const struct addr_text *t, int port, int family,
                        nk_addr *out)
{
    if (looks_numeric(t->host, t->host_len))
        return NK_EADDR_SYNTAX;
    char name[NK_ADDR_HOST_MAX + 1];
    memcpy(name, t->host, t->host_len);
    name[t->host_len] = '\0';

    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM; /* one entry per address, not per type */
    hints.ai_flags = AI_ADDRCONFIG;

    struct addrinfo *res = NULL;
    int gai = getaddrinfo(name, NULL, &hints, &res);
    if (gai == EAI_ADDRFAMILY || gai == EAI_NONAME || gai == EAI_NODATA) {
        /* AI_ADDRCONFIG hides loopback-only families on hosts with no
         * configured address; retry without it before giving up. */
        hints.ai_flags = 0;
        gai = getaddrinfo(name, NULL, &hints, &res);
    }
    if (gai != 0) {
        if (gai == EAI_MEMORY)
            return -ENOMEM;
        if (gai == EAI_SYSTEM && errno != 0)
            return -errno;
        return NK_ERESOLVE;
    }
    int rc = NK_ERESOLVE;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        nk_addr a;
        if (nk_addr_from_sockaddr(&a, ai->ai_addr, ai->ai_addrlen) == 0) {
            nk_addr_set_port(&a, port);
            *out = a;
            rc = 0;
            break;
        }
    }
    freeaddrinfo(res);
    return rc;
}

int nk_addr_resolve(const char *text, int family, nk_addr *out)
{
    if (text == NULL || out == NULL)
        return NK_EINVAL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return NK_EADDR_FAMILY;
    struct addr_text t;
    int port = 0;
    int rc = split_host_port(text, &t, &port);
    if (rc < 0)
        return rc;

    /* `:PORT` asks for every interface of the requested family. */
    if (t.host_len == 0 && !t.bracketed && family == AF_INET6) {
        nk_addr a;
        memset(&a, 0, sizeof a);
        a.u.v6.sin6_family = AF_INET6;
        a.u.v6.sin6_addr = in6addr_any;
        a.u.v6.sin6_port = htons((uint16_t)port);
        a.len = sizeof a.u.v6;
        *out = a;
        return 0;
    }

    nk_addr a;
    rc = parse_numeric_host(&t, port, &a);
    if (rc == 0) {
        if (family != AF_UNSPEC && nk_addr_family(&a) != family)
            return NK_EADDR_FAMILY;
        *out = a;
        return 0;
    }
    if (rc != NK_EADDR_SYNTAX || t.bracketed)
        return rc;
    return resolve_name(&t, port, family, out);
}

int nk_addr_from_sockaddr(nk_addr *out, const struct sockaddr *sa,
                          socklen_t len)
{
    if (out == NULL || sa == NULL || len < (socklen_t)sizeof(sa_family_t))
        return NK_EINVAL;
    nk_addr a;
    memset(&a, 0, sizeof a);
    if (sa->sa_family == AF_INET) {
        if (len < (socklen_t)sizeof a.u.v4)
            return NK_EINVAL;
        memcpy(&a.u.v4, sa, sizeof a.u.v4);
        a.len = sizeof a.u.v4;
    } else if (sa->sa_family == AF_INET6) {
        if (len < (socklen_t)sizeof a.u.v6)
            return NK_EINVAL;
        memcpy(&a.u.v6, sa, sizeof a.u.v6);
        a.len = sizeof a.u.v6;
    } else {
        return NK_EADDR_FAMILY;
    }
    *out = a;
    return 0;
}

int nk_addr_family(const nk_addr *addr)
{
    if (addr == NULL || addr->len == 0)
        return 0;
    int f = addr->u.sa.sa_family;
    return f == AF_INET || f == AF_INET6 ? f : 0;
}

int nk_addr_port(const nk_addr *addr)
{
    switch (nk_addr_family(addr)) {
    case AF_INET:
        return ntohs(addr->u.v4.sin_port);
    case AF_INET6:
        return ntohs(addr->u.v6.sin6_port);
    default:
        return -1;
    }
}

int nk_addr_set_port(nk_addr *addr, int port)
{
    int f = nk_addr_family(addr);
    if (f == 0)
        return NK_EINVAL;
    if (port < 0 || port > 65535)
        return NK_EADDR_PORT;
    if (f == AF_INET)
        addr->u.v4.sin_port = htons((uint16_t)port);
    else
        addr->u.v6.sin6_port = htons((uint16_t)port);
    return 0;
}

int nk_addr_format(const nk_addr *addr, char *buf, size_t size)
{
    if (buf == NULL)
        return NK_EINVAL;
    if (size > 0)
        buf[0] = '\0';
    int f = nk_addr_family(addr);
    if (f == 0)
        return NK_EINVAL;

    char host[INET6_ADDRSTRLEN];
    char text[NK_ADDR_STRLEN];
    int n;
    if (f == AF_INET) {
        if (inet_ntop(AF_INET, &addr->u.v4.sin_addr, host, sizeof host) ==
            NULL)
            return NK_EINVAL;
        n = snprintf(text, sizeof text, "%s:%u", host,
                     (unsigned)ntohs(addr->u.v4.sin_port));
    } else {
        if (inet_ntop(AF_INET6, &addr->u.v6.sin6_addr, host, sizeof host) ==
            NULL)
            return NK_EINVAL;
        uint32_t scope = addr->u.v6.sin6_scope_id;
        unsigned port = ntohs(addr->u.v6.sin6_port);
        if (scope == 0) {
            n = snprintf(text, sizeof text, "[%s]:%u", host, port);
        } else {
            /* The name when the interface exists, so the text parses back
             * on this host; the number otherwise. */
            char ifname[IF_NAMESIZE];
            if (if_indextoname(scope, ifname) != NULL)
                n = snprintf(text, sizeof text, "[%s%%%s]:%u", host, ifname,
                             port);
            else
                n = snprintf(text, sizeof text, "[%s%%%lu]:%u", host,
                             (unsigned long)scope, port);
        }
    }
    if (n < 0 || (size_t)n >= sizeof text)
        return NK_EINVAL;
    if ((size_t)n >= size)
        return NK_ENOSPACE;
    memcpy(buf, text, (size_t)n + 1);
    return n;
}

void nk_addr_normalize(nk_addr *addr)
{
    if (nk_addr_family(addr) != AF_INET6 ||
        !IN6_IS_ADDR_V4MAPPED(&addr->u.v6.sin6_addr))
        return;
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    v4.sin_port = addr->u.v6.sin6_port;
    memcpy(&v4.sin_addr, &addr->u.v6.sin6_addr.s6_addr[12], 4);
    memset(&addr->u, 0, sizeof addr->u);
    addr->u.v4 = v4;
    addr->len = sizeof v4;
}

/* The bytes that identify an address: family, port, host, and the scope for
 * IPv6. Equality and hashing both use this, so they cannot disagree. */
static size_t addr_key(const nk_addr *in, uint8_t key[32])
{
    nk_addr a = *in;
    nk_addr_normalize(&a);
    size_t n = 0;
    int f = nk_addr_family(&a);
    key[n++] = (uint8_t)(f == AF_INET ? 4 : f == AF_INET6 ? 6 : 0);
    if (f == AF_INET) {
        memcpy(key + n, &a.u.v4.sin_port, 2);
        n += 2;
        memcpy(key + n, &a.u.v4.sin_addr, 4);
        n += 4;
    } else if (f == AF_INET6) {
        memcpy(key + n, &a.u.v6.sin6_port, 2);
        n += 2;
        memcpy(key + n, &a.u.v6.sin6_addr, 16);
        n += 16;
        memcpy(key + n, &a.u.v6.sin6_scope_id, 4);
        n += 4;
    }
    return n;
}

bool nk_addr_equal(const nk_addr *a, const nk_addr *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    uint8_t ka[32], kb[32];
    size_t na = addr_key(a, ka);
    size_t nb = addr_key(b, kb);
    return na == nb && memcmp(ka, kb, na) == 0;
}

uint64_t nk_addr_hash(const nk_addr *addr, const uint8_t key[16])
{
    static const uint8_t zero_key[16];
    if (key == NULL)
        key = zero_key;
    uint8_t k[32];
    size_t n = addr != NULL ? addr_key(addr, k) : 0;
    return nk__siphash24(k, n, key);
}
