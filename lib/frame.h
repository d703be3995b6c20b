/* Internal: the framing options check shared by the decoder and the TCP
 * connection, so a connection refuses at creation what the decoder would
 * refuse on its first message. */
#ifndef NK_LIB_FRAME_H
#define NK_LIB_FRAME_H

#include "netkit/frame.h"

/* 0, or NK_EINVAL for an unknown kind or a zero limit for the kind in use
 * (the other kind's limit is not looked at). */
int nk__frame_opts_check(const nk_frame_opts *o);

#endif
