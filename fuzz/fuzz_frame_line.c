/* Fuzz target for the line decoder (NK_FRAME_LINE) of
 * nk_frame_decode().
 *
 * Input: byte 0 picks the limit (small, medium, default or SIZE_MAX), byte
 * 1 the number of chunk sizes that follow (0..31), then the stream; the
 * stream is fed whole, in those chunks (the rest in one), and one byte at
 * a time, so the split space is fuzzed with the bytes.
 *
 * Invariants: every feeding gives the same messages, error and consumed
 * count; no message is longer than the limit; each call follows the
 * contract of netkit/frame.h (return value, untouched output on 0 or
 * error, the documented error code exactly when the limit is exceeded);
 * the messages, re-encoded, are exactly the consumed bytes; no read past
 * the bytes given (they end on a guard page); a zero limit is NK_EINVAL. */
#include "frame_feed.h"
#include "fuzz.h"

int nk_fuzz_frame_line(const uint8_t *data, size_t size)
{
    return nk_fuzz_frame_target(NK_FRAME_LINE, data, size);
}

#ifdef NK_FUZZ_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return nk_fuzz_frame_line(data, size);
}
#endif
