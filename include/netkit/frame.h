/**
 * @file netkit/frame.h
 * @brief Pure message decoders for byte streams: raw chunks, lines, and
 * 32-bit length-prefixed frames.
 *
 * TCP is a byte stream: one read may hold half a message or several
 * messages glued together. A decoder looks at the bytes received so far and
 * says where the first message ends. It does no I/O and allocates nothing;
 * the message it reports points into the caller's buffer.
 *
 * | kind              | a message is                   | limit        | error                |
 * |-------------------|--------------------------------|--------------|----------------------|
 * | NK_FRAME_RAW      | whatever bytes are there       | none         | none                 |
 * | NK_FRAME_LINE     | bytes up to "\n" (or "\r\n")   | `max_line`   | NK_ELINE_TOO_LONG    |
 * | NK_FRAME_LENGTH32 | u32 big-endian length + payload| `max_frame`  | NK_EFRAME_TOO_LARGE  |
 *
 * Lines: the message excludes the "\n", and a "\r" just before it is
 * stripped too, so "a\r\n" and "a\n" both give "a"; a lone "\r" elsewhere
 * is an ordinary byte. `max_line` counts the bytes of the message (without
 * the terminator); the error comes as soon as more than `max_line` bytes
 * without a "\n" are present, not when the "\n" finally arrives.
 *
 * Length-prefixed: a zero length is an empty message. A length above
 * `max_frame` fails as soon as the 4 prefix bytes are present, so an
 * announced size is never waited for nor allocated.
 */
#ifndef NETKIT_FRAME_H
#define NETKIT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "netkit/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief How a byte stream is cut into messages. */
typedef enum nk_frame_kind {
    NK_FRAME_RAW = 0,      /**< Deliver bytes as they arrive. */
    NK_FRAME_LINE = 1,     /**< "\n"-terminated lines ("\r\n" accepted). */
    NK_FRAME_LENGTH32 = 2, /**< 4-byte big-endian length, then payload. */
} nk_frame_kind;

/** @brief Decoder choice and limits. Start from NK_FRAME_OPTS_INIT. */
typedef struct nk_frame_opts {
    nk_frame_kind kind; /**< Default NK_FRAME_RAW. */
    size_t max_line;    /**< NK_FRAME_LINE: longest line, default 8192. */
    size_t max_frame;   /**< NK_FRAME_LENGTH32: largest payload, default 1 MiB. */
} nk_frame_opts;

/** @brief Defaults: raw bytes; 8 KiB lines; 1 MiB frames. */
#define NK_FRAME_OPTS_INIT                                                    \
    {                                                                         \
        .kind = NK_FRAME_RAW, .max_line = 8192, .max_frame = 1048576          \
    }

/** @brief One decoded message: a view into the caller's buffer. */
typedef struct nk_frame_msg {
    const uint8_t *data; /**< First byte (never NULL when a message is found); not NUL-terminated. */
    size_t len;          /**< Length; 0 is a valid (empty) message. */
} nk_frame_msg;

/**
 * @brief Find the first message in @p buf.
 *
 * Pure: reads at most @p len bytes of @p buf (for lines, at most
 * `max_line + 2`), no allocation, no I/O. Safe from any thread and callback.
 * @param opts Decoder and limits (NULL means NK_FRAME_OPTS_INIT).
 * @param buf  Bytes received so far (may be NULL when @p len is 0).
 * @param len  How many.
 * @param out  Receives the message on success; untouched otherwise.
 * @return The number of bytes the message takes in @p buf (prefix or
 * terminator included, always > 0); 0 if more bytes are needed; or a
 * negative code: NK_ELINE_TOO_LONG, NK_EFRAME_TOO_LARGE, NK_EINVAL (NULL
 * @p out, NULL @p buf with @p len > 0, unknown kind). An error is final for
 * the stream: the bytes after it cannot be resynchronised.
 */
NK_API ptrdiff_t nk_frame_decode(const nk_frame_opts *opts, const void *buf,
                                 size_t len, nk_frame_msg *out);

/**
 * @brief Write the 4-byte big-endian length prefix for a payload of @p len
 * bytes into @p out.
 * @param len The payload length.
 * @param out Receives the 4 bytes.
 * @return 0, or NK_EFRAME_TOO_LARGE if @p len does not fit in 32 bits,
 * NK_EINVAL for NULL @p out. Safe from any thread.
 */
NK_API int nk_frame_length32_prefix(size_t len, uint8_t out[4]);

#ifdef __cplusplus
}
#endif
#endif
