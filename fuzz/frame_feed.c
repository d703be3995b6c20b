/* Chunked feeding of the frame decoders, with every call checked. */
#include <stdlib.h>
#include <string.h>

#include "frame_feed.h"
#include "fuzz.h"
#include "netkit/error.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The contract of one nk_frame_decode() call on @buf[0..len). */
static void check_decode(const nk_frame_opts *o, const uint8_t *buf,
                         size_t len, ptrdiff_t rc, const nk_frame_msg *m,
                         const nk_frame_msg *untouched)
{
    if (rc <= 0)
        NK_FUZZ_CHECK(memcmp(m, untouched, sizeof *m) == 0);
    if (o->kind == NK_FRAME_LINE) {
        const uint8_t *nl = len ? memchr(buf, '\n', len) : NULL;
        if (rc > 0) {
            size_t end = (size_t)rc - 1;
            NK_FUZZ_CHECK((size_t)rc <= len && nl == buf + end);
            NK_FUZZ_CHECK(m->data == buf && m->len <= o->max_line);
            bool cr = end > 0 && buf[end - 1] == '\r';
            NK_FUZZ_CHECK(m->len == end - (cr ? 1 : 0));
        } else if (rc == 0) {
            /* Waiting: no "\n" yet, and not over the limit (a trailing
             * "\r" may still begin the terminator). */
            NK_FUZZ_CHECK(nl == NULL);
            size_t body = len - (len > 0 && buf[len - 1] == '\r' ? 1 : 0);
            NK_FUZZ_CHECK(body <= o->max_line);
        } else {
            NK_FUZZ_CHECK(rc == NK_ELINE_TOO_LONG);
            /* Too long: the first line's body, or the bytes so far, exceed
             * the limit. */
            size_t end = nl != NULL ? (size_t)(nl - buf) : len;
            size_t body = end - (end > 0 && buf[end - 1] == '\r' ? 1 : 0);
            NK_FUZZ_CHECK(body > o->max_line);
        }
    } else {
        if (rc > 0) {
            NK_FUZZ_CHECK(len >= 4 && m->data == buf + 4);
            NK_FUZZ_CHECK(m->len == be32(buf) && m->len <= o->max_frame);
            NK_FUZZ_CHECK((size_t)rc == m->len + 4 && (size_t)rc <= len);
        } else if (rc == 0) {
            NK_FUZZ_CHECK(len < 4 || (be32(buf) <= o->max_frame &&
                                      len - 4 < be32(buf)));
        } else {
            NK_FUZZ_CHECK(rc == NK_EFRAME_TOO_LARGE);
            NK_FUZZ_CHECK(len >= 4 && be32(buf) > o->max_frame);
        }
    }
}

void nk_fuzz_frames_feed(const nk_frame_opts *o, const uint8_t *stream,
                         size_t len, const struct nk_fuzz_chunks *chunks,
                         struct nk_fuzz_frames *out)
{
    if (len > NK_FUZZ_GUARDED_MAX)
        len = NK_FUZZ_GUARDED_MAX;
    memset(out, 0, sizeof *out);
    /* Each message takes at least one stream byte. */
    out->bytes = malloc(len + 1);
    out->lens = malloc((len + 1) * sizeof *out->lens);
    NK_FUZZ_CHECK(out->bytes != NULL && out->lens != NULL);

    /* Pending bytes sit at the end of a guarded slot, so the decoder
     * faults if it reads past them. */
    uint8_t *end = nk_fuzz_guard_end(1);
    size_t pending = 0, fed = 0, chunk_no = 0;
    while (fed < len && out->error == 0) {
        size_t n = len - fed;
        if (chunks != NULL && chunks->bytewise)
            n = 1;
        else if (chunks != NULL && chunk_no < chunks->n)
            n = chunks->sizes[chunk_no] < n ? chunks->sizes[chunk_no] : n;
        chunk_no++;
        memmove(end - pending - n, end - pending, pending);
        memcpy(end - n, stream + fed, n);
        pending += n;
        fed += n;

        for (;;) {
            const uint8_t *buf = end - pending;
            nk_frame_msg m, before;
            memset(&m, 0xC3, sizeof m);
            before = m;
            ptrdiff_t rc = nk_frame_decode(o, buf, pending, &m);
            check_decode(o, buf, pending, rc, &m, &before);
            if (rc < 0) {
                out->error = (int)rc;
                break;
            }
            if (rc == 0)
                break;
            memcpy(out->bytes + out->nbytes, m.data, m.len);
            out->nbytes += m.len;
            out->lens[out->count++] = m.len;
            out->consumed += (size_t)rc;
            pending -= (size_t)rc;
        }
    }
    NK_FUZZ_CHECK(out->error != 0 || out->consumed + pending == len);
}

bool nk_fuzz_frames_equal(const struct nk_fuzz_frames *a,
                          const struct nk_fuzz_frames *b)
{
    return a->count == b->count && a->nbytes == b->nbytes &&
           a->error == b->error && a->consumed == b->consumed &&
           memcmp(a->lens, b->lens, a->count * sizeof *a->lens) == 0 &&
           memcmp(a->bytes, b->bytes, a->nbytes) == 0;
}

void nk_fuzz_frames_check_stream(const nk_frame_opts *o,
                                 const uint8_t *stream, size_t len,
                                 const struct nk_fuzz_frames *f)
{
    size_t pos = 0, off = 0;
    for (size_t i = 0; i < f->count; i++) {
        const uint8_t *msg = f->bytes + off;
        size_t n = f->lens[i];
        if (o->kind == NK_FRAME_LINE) {
            NK_FUZZ_CHECK(n <= o->max_line && pos + n < len);
            NK_FUZZ_CHECK(memcmp(stream + pos, msg, n) == 0);
            NK_FUZZ_CHECK(memchr(msg, '\n', n) == NULL);
            if (stream[pos + n] == '\n') {
                NK_FUZZ_CHECK(n == 0 || msg[n - 1] != '\r');
                pos += n + 1;
            } else {
                NK_FUZZ_CHECK(pos + n + 1 < len);
                NK_FUZZ_CHECK(stream[pos + n] == '\r' &&
                              stream[pos + n + 1] == '\n');
                pos += n + 2;
            }
        } else {
            uint8_t prefix[4];
            NK_FUZZ_CHECK(nk_frame_length32_prefix(n, prefix) == 0);
            NK_FUZZ_CHECK(n <= o->max_frame && pos + 4 + n <= len);
            NK_FUZZ_CHECK(memcmp(stream + pos, prefix, 4) == 0);
            NK_FUZZ_CHECK(memcmp(stream + pos + 4, msg, n) == 0);
            pos += 4 + n;
        }
        off += n;
    }
    NK_FUZZ_CHECK(pos == f->consumed && off == f->nbytes);
}

void nk_fuzz_frames_free(struct nk_fuzz_frames *f)
{
    free(f->bytes);
    free(f->lens);
    memset(f, 0, sizeof *f);
}

size_t nk_fuzz_frame_limit(unsigned byte, size_t dflt)
{
    switch (byte >> 6) {
    case 0:
        return byte & 63u;
    case 1:
        return (size_t)(byte & 63u) * 64u;
    case 2:
        return dflt;
    default:
        return SIZE_MAX;
    }
}

int nk_fuzz_frame_target(nk_frame_kind kind, const uint8_t *data,
                         size_t size)
{
    struct nk_fuzz_in in = {data, size};
    nk_frame_opts o = NK_FRAME_OPTS_INIT;
    o.kind = kind;
    unsigned limit = nk_fuzz_u8(&in);
    if (kind == NK_FRAME_LINE)
        o.max_line = nk_fuzz_frame_limit(limit, o.max_line);
    else
        o.max_frame = nk_fuzz_frame_limit(limit, o.max_frame);
    if ((kind == NK_FRAME_LINE ? o.max_line : o.max_frame) == 0) {
        /* A zero limit is refused whatever the bytes, output untouched. */
        nk_frame_msg m, before;
        memset(&m, 0xa5, sizeof m);
        before = m;
        NK_FUZZ_CHECK(nk_frame_decode(&o, in.p, in.left, &m) == NK_EINVAL);
        NK_FUZZ_CHECK(memcmp(&m, &before, sizeof m) == 0);
        return 0;
    }
    struct nk_fuzz_chunks split = {NULL, nk_fuzz_u8(&in) & 31u, false};
    if (split.n > in.left)
        split.n = in.left;
    split.sizes = in.p;
    in.p += split.n;
    in.left -= split.n;
    const uint8_t *stream = in.p;
    size_t len = in.left;

    struct nk_fuzz_frames whole, cut, bytewise;
    nk_fuzz_frames_feed(&o, stream, len, NULL, &whole);
    nk_fuzz_frames_check_stream(&o, stream, len, &whole);
    nk_fuzz_frames_feed(&o, stream, len, &split, &cut);
    NK_FUZZ_CHECK(nk_fuzz_frames_equal(&whole, &cut));
    if (len <= 4096) {
        struct nk_fuzz_chunks one = {NULL, 0, true};
        nk_fuzz_frames_feed(&o, stream, len, &one, &bytewise);
        NK_FUZZ_CHECK(nk_fuzz_frames_equal(&whole, &bytewise));
        nk_fuzz_frames_free(&bytewise);
    }
    nk_fuzz_frames_free(&whole);
    nk_fuzz_frames_free(&cut);
    return 0;
}
