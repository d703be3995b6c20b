/* C3 of the reliability matrix, room fan-out accounting, shared by the
 * load suite's C3 tests and its soak mode. */
#ifndef MATRIX_FANOUT_H
#define MATRIX_FANOUT_H

#include <stddef.h>

/* 100 members each send @rounds sequence-numbered datagrams through a
 * room; receivers have @rcvbuf bytes of receive buffer. Asserts (cmocka)
 * that no (sender, receiver) pair sees a duplicate and that the losses
 * equal the room's drop counters plus the receivers' own drop counters. */
void c3_run(size_t rounds, int rcvbuf);

#endif
