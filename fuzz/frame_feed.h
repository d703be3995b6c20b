/* Feeds a byte stream to nk_frame_decode() the way a connection does (in
 * chunks, keeping what is not yet a message) and records the messages, so
 * fuzz targets can compare feedings. Every decode call is checked against
 * the contract in netkit/frame.h. */
#ifndef NK_FUZZ_FRAME_FEED_H
#define NK_FUZZ_FRAME_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netkit/frame.h"

struct nk_fuzz_frames {
    uint8_t *bytes;   /* message payloads, one after another */
    size_t nbytes;
    size_t *lens;     /* each message's length */
    size_t count;
    int error;        /* 0, or the decoder's error (final) */
    size_t consumed;  /* stream bytes taken by the messages */
};

/* Chunk sizes for nk_fuzz_frames_feed(): @n sizes, then the rest of the
 * stream in one chunk; or one byte at a time when @bytewise. */
struct nk_fuzz_chunks {
    const uint8_t *sizes;
    size_t n;
    bool bytewise;
};

/* Decode @stream (at most NK_FUZZ_GUARDED_MAX bytes) fed as @chunks say
 * (NULL: whole). @out must be released with nk_fuzz_frames_free(). */
void nk_fuzz_frames_feed(const nk_frame_opts *o, const uint8_t *stream,
                         size_t len, const struct nk_fuzz_chunks *chunks,
                         struct nk_fuzz_frames *out);

bool nk_fuzz_frames_equal(const struct nk_fuzz_frames *a,
                          const struct nk_fuzz_frames *b);

/* Check @f against @stream with an independent reading of the format:
 * the messages, re-encoded, are exactly the consumed bytes. */
void nk_fuzz_frames_check_stream(const nk_frame_opts *o,
                                 const uint8_t *stream, size_t len,
                                 const struct nk_fuzz_frames *f);

void nk_fuzz_frames_free(struct nk_fuzz_frames *f);

/* Limits from one input byte: small (0..63), medium (multiples of 64),
 * the default, or SIZE_MAX (the overflow guards). 0 (bytes 0 and 64) is
 * a limit the library refuses with NK_EINVAL. */
size_t nk_fuzz_frame_limit(unsigned byte, size_t dflt);

/* The frame targets' whole body: byte 0 the limit, byte 1 the number of
 * chunk sizes that follow (0..31), then the stream. Feeds it whole, in
 * those chunks, and one byte at a time, and requires equal results; a
 * zero limit must give NK_EINVAL for any bytes. */
int nk_fuzz_frame_target(nk_frame_kind kind, const uint8_t *data,
                         size_t size);

#endif
