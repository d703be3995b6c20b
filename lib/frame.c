/* Pure framing decoders (see netkit/frame.h): no I/O, no allocation, and
 * never a read past buf[len - 1], so they can be fed every split of a
 * stream and fuzzed. */
#include <stdint.h>
#include <string.h>

#include "frame.h"
#include "netkit/error.h"

static ptrdiff_t decode_line(const nk_frame_opts *o, const uint8_t *buf,
                             size_t len, nk_frame_msg *out)
{
    /* A line of max_line bytes may still be followed by "\r\n": look no
     * further than that, so a stream without "\n" costs bounded work. */
    size_t window = o->max_line + 2;
    if (window < o->max_line) /* overflow: max_line near SIZE_MAX */
        window = SIZE_MAX;
    size_t scan = len < window ? len : window;
    const uint8_t *nl = scan ? memchr(buf, '\n', scan) : NULL;
    if (nl == NULL) {
        /* Bytes so far, less a trailing "\r" that may start "\r\n". */
        size_t body = len;
        if (body > 0 && buf[body - 1] == '\r')
            body--;
        return body > o->max_line ? NK_ELINE_TOO_LONG : 0;
    }
    size_t end = (size_t)(nl - buf);
    size_t body = end;
    if (body > 0 && buf[body - 1] == '\r')
        body--;
    if (body > o->max_line)
        return NK_ELINE_TOO_LONG;
    out->data = buf;
    out->len = body;
    return (ptrdiff_t)(end + 1);
}

static ptrdiff_t decode_length32(const nk_frame_opts *o, const uint8_t *buf,
                                 size_t len, nk_frame_msg *out)
{
    if (len < 4)
        return 0;
    uint32_t n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
                 (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
    /* Checked on the prefix alone: the announced size is never awaited. */
    if (n > o->max_frame || (uint64_t)n + 4 > (uint64_t)PTRDIFF_MAX)
        return NK_EFRAME_TOO_LARGE;
    if (len - 4 < n)
        return 0;
    out->data = buf + 4;
    out->len = n;
    return (ptrdiff_t)n + 4;
}

int nk__frame_opts_check(const nk_frame_opts *o)
{
    /* A zero limit is what a struct zeroed instead of started from
     * NK_FRAME_OPTS_INIT holds; as a limit it would refuse every non-empty
     * message, so it is refused as a mistake instead. */
    switch (o->kind) {
    case NK_FRAME_RAW:
        return 0;
    case NK_FRAME_LINE:
        return o->max_line > 0 ? 0 : NK_EINVAL;
    case NK_FRAME_LENGTH32:
        return o->max_frame > 0 ? 0 : NK_EINVAL;
    }
    return NK_EINVAL;
}

ptrdiff_t nk_frame_decode(const nk_frame_opts *opts, const void *buf,
                          size_t len, nk_frame_msg *out)
{
    static const nk_frame_opts defaults = NK_FRAME_OPTS_INIT;
    const nk_frame_opts *o = opts ? opts : &defaults;
    const uint8_t *b = buf;
    if (out == NULL || (b == NULL && len > 0) || nk__frame_opts_check(o) < 0)
        return NK_EINVAL;
    switch (o->kind) {
    case NK_FRAME_RAW:
        if (len == 0)
            return 0;
        if (len > (size_t)PTRDIFF_MAX)
            len = (size_t)PTRDIFF_MAX;
        out->data = b;
        out->len = len;
        return (ptrdiff_t)len;
    case NK_FRAME_LINE:
        return decode_line(o, b, len, out);
    case NK_FRAME_LENGTH32:
        return decode_length32(o, b, len, out);
    }
    return NK_EINVAL; /* unreachable: the check refused any other kind */
}

int nk_frame_length32_prefix(size_t len, uint8_t out[4])
{
    if (out == NULL)
        return NK_EINVAL;
    if ((uint64_t)len > UINT32_MAX)
        return NK_EFRAME_TOO_LARGE;
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 0;
}
