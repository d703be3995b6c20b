/* What every example shares: command-line conventions and clean shutdown.
 *
 * Every example is `NAME [--help] [options] [HOST:PORT]`: --help prints the
 * usage on stdout and exits 0; a bad option or address prints it on stderr
 * and exits 2. Output is line-buffered so each line appears at once, even in
 * a pipe. */
#ifndef NK_EXAMPLE_H
#define NK_EXAMPLE_H

#include <stdbool.h>
#include <stdio.h>

#include "netkit.h"

/* Exit status for bad command lines, as getopt-style tools use. */
#define EX_USAGE_STATUS 2

/* Print "usage: <usage>" and exit: 0 on stdout when asked (--help),
 * EX_USAGE_STATUS on stderr otherwise. */
_Noreturn void ex_usage(const char *usage, bool asked);

/* Make stdout and stderr line-buffered. */
void ex_setup_output(void);

/* Parse a decimal number in [min, max]; false on anything else. */
bool ex_parse_number(const char *text, long min, long max, long *out);

/* Read the optional HOST:PORT operand after the options (argv[optind]),
 * defaulting to def_text; names are resolved. On a bad or extra operand,
 * says why on stderr and returns false. */
bool ex_parse_address(int argc, char **argv, int optind, const char *def_text,
                      nk_addr *out);

/* For programs whose only option is --help: handle it and read the
 * optional HOST:PORT operand as ex_parse_address() does (def_text NULL:
 * no operand allowed). Prints the usage and exits on anything else. */
void ex_parse_help_and_address(int argc, char **argv, const char *usage,
                               const char *def_text, nk_addr *out);

/* Stop @loop on SIGINT or SIGTERM, so servers exit 0 after cleaning up.
 * Returns 0 or a negative code. */
int ex_stop_on_signals(nk_loop *loop);

/* Stop the watchers ex_stop_on_signals() started, before nk_loop_free(). */
void ex_release_signals(void);

/* Write @len bytes received from the network as text on @f: control
 * bytes (NUL, newline, escape, ...) are written as \n, \r, \t or \xHH, so
 * one datagram stays one line and cannot drive the terminal; other bytes
 * (UTF-8 included) are written as they are. One final "\n" or "\r\n" (what
 * nc and socat send with each line) is the end of that line: not shown. */
void ex_put_text(FILE *f, const void *data, size_t len);

/* True for what room clients send to join or stay members and that says
 * nothing: the empty datagram and the room hello. A room that relays
 * everything (the seed's) passes other clients' ones on: not to be shown. */
bool ex_room_noise(const void *data, size_t len);

/* Format an address into a static buffer for logging (one thread only). */
const char *ex_addr_str(const nk_addr *addr);

#endif
