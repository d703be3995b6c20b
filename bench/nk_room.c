/* Room relay on libnetkit's nk_udp_room, set up as the peer relays are:
 * not echoing to the sender, room for 4096 members, no expiry during a run,
 * no per-member rate limit (one load generator sender exceeds the default
 * 10 000 datagrams a second, and the peers have none). Everything else
 * (validation off, batched fan-out) is the library's default. */
#include "nk_common.h"

int main(int argc, char **argv)
{
    nk_addr addr;
    nk_udp_room *room;
    nk_loop *loop = nk_bench_setup(argc, argv, "127.0.0.1:8848", &addr);
    nk_udp_room_opts opts = NK_UDP_ROOM_OPTS_INIT;
    opts.echo_sender = false;
    opts.max_members = 4096;
    opts.member_ttl_ms = 0;
    opts.rate_limit = 0;
    nk_bench_check(nk_udp_room_open(loop, &addr, &opts, NULL, NULL, &room), "room");
    nk_bench_check(nk_loop_run(loop, NK_RUN_DEFAULT), "loop");
    return 0;
}
