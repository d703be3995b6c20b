/* udp_room_server: the seed's section-3/4 group-chat relay, rebuilt on
 * libnetkit's udp_room.
 *
 * The seed's relay keys members by port alone (two hosts with one port
 * collide), relays for ever to everyone it ever heard from, and has no
 * limit. This one keys members by their whole address, drops members that
 * stay silent for --member-ttl seconds, caps the room at --max-members
 * (a newcomer to a full room is refused and counted; members are never
 * pushed out by strangers), drops members whose port is gone, and can ask
 * newcomers to prove their address (--validate) so it cannot be used to
 * flood a forged address. --rate-limit caps what one member may send per
 * second, and --leave names a text that makes its sender leave. Every
 * message is relayed to every member, the sender too unless
 * --no-echo-sender; the seed's own clients, `register` included, work
 * against it unchanged. Messages go to stdout with their sender (--quiet:
 * not at all, for runs under load), joins and leaves to stderr: those
 * come once per member, not per message, and are what an operator
 * watches.
 *
 * usage: udp_room_server [--no-echo-sender] [--max-members N]
 *        [--member-ttl SEC] [--validate] [--rate-limit N] [--leave TEXT]
 *        [--quiet] [HOST:PORT]   (127.0.0.1:8848)
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "example.h"

static const char *usage_text =
    "udp_room_server [--help] [--no-echo-sender] [--max-members N] "
    "[--member-ttl SEC] [--validate] [--rate-limit N] [--leave TEXT] "
    "[--quiet] [HOST:PORT]";

static const char *reason_text(nk_room_leave_reason r)
{
    switch (r) {
    case NK_ROOM_LEAVE_TTL: return "silent too long";
    case NK_ROOM_LEAVE_MESSAGE: return "said leave";
    case NK_ROOM_LEAVE_UNREACHABLE: return "unreachable";
    case NK_ROOM_LEAVE_REMOVED: return "removed";
    }
    return "?";
}

static void on_join(nk_udp_room *room, const nk_udp_room_member_event *ev,
                    void *user)
{
    (void)room;
    (void)user;
    fprintf(stderr, "join %s (%zu member%s)\n", ex_addr_str(ev->addr),
            ev->members, ev->members == 1 ? "" : "s");
}

static void on_leave(nk_udp_room *room, const nk_udp_room_member_event *ev,
                     void *user)
{
    (void)room;
    (void)user;
    fprintf(stderr, "leave %s: %s (%zu member%s)\n", ex_addr_str(ev->addr),
            reason_text(ev->reason), ev->members, ev->members == 1 ? "" : "s");
}

/* Called before each relay: here it only logs; returning NK_ROOM_DROP
 * would filter, and pointing msg->data elsewhere would rewrite. */
static int on_message(nk_udp_room *room, nk_udp_room_message *msg, void *user)
{
    (void)room;
    (void)user;
    printf("%s: ", ex_addr_str(msg->from));
    ex_put_text(stdout, msg->data, msg->len); /* one message, one line */
    putchar('\n');
    return NK_ROOM_RELAY;
}

int main(int argc, char **argv)
{
    ex_setup_output();
    nk_udp_room_opts opts = NK_UDP_ROOM_OPTS_INIT;
    bool quiet = false; /* no line per message */
    long n;
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"no-echo-sender", no_argument, NULL, 'e'},
        {"max-members", required_argument, NULL, 'm'},
        {"member-ttl", required_argument, NULL, 't'},
        {"validate", no_argument, NULL, 'v'},
        {"rate-limit", required_argument, NULL, 'r'},
        {"leave", required_argument, NULL, 'l'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (opt == 'h')
            ex_usage(usage_text, true);
        else if (opt == 'e')
            opts.echo_sender = false;
        else if (opt == 'v')
            opts.validate = true;
        else if (opt == 'q')
            quiet = true;
        else if (opt == 'm' && ex_parse_number(optarg, 1, 1048576, &n))
            opts.max_members = (size_t)n;
        else if (opt == 't' && ex_parse_number(optarg, 0, 86400, &n))
            opts.member_ttl_ms = (uint32_t)n * 1000; /* 0: never expire */
        else if (opt == 'r' && ex_parse_number(optarg, 0, 1000000, &n))
            opts.rate_limit = (uint32_t)n; /* per second per member; 0: off */
        else if (opt == 'l' && optarg[0] != '\0' && strlen(optarg) < 64)
            opts.leave_message = optarg;
        else
            ex_usage(usage_text, false);
    }
    nk_addr addr;
    if (!ex_parse_address(argc, argv, optind, "127.0.0.1:8848", &addr))
        ex_usage(usage_text, false);

    nk_loop *loop;
    int rc = nk_loop_new(&loop);
    if (rc < 0) {
        fprintf(stderr, "udp_room_server: %s\n", nk_strerror(rc));
        return 1;
    }
    /* Quiet: no message hook at all, so the room relays without a call. */
    nk_udp_room_hooks hooks = {.on_join = on_join, .on_leave = on_leave,
                               .on_message = quiet ? NULL : on_message};
    nk_udp_room *room;
    rc = nk_udp_room_open(loop, &addr, &opts, &hooks, NULL, &room);
    if (rc < 0) {
        fprintf(stderr, "udp_room_server: cannot open %s: %s\n",
                ex_addr_str(&addr), nk_strerror(rc));
        nk_loop_free(loop);
        return 1;
    }
    nk_udp_room_local_addr(room, &addr);
    if ((rc = ex_stop_on_signals(loop)) < 0) {
        fprintf(stderr, "udp_room_server: %s\n", nk_strerror(rc));
        return 1;
    }
    printf("listening on %s (%s room, at most %zu members)\n",
           ex_addr_str(&addr), opts.validate ? "validated" : "open",
           opts.max_members);

    rc = nk_loop_run(loop, NK_RUN_DEFAULT); /* until SIGINT or SIGTERM */

    ex_release_signals();
    nk_udp_room_stats st;
    nk_udp_room_get_stats(room, &st);
    nk_udp_room_close(room);
    nk_loop_free(loop);
    unsigned long long dropped = 0;
    for (int i = 0; i < NK_ROOM_DROP_COUNT; i++)
        dropped += st.drops[i];
    fprintf(stderr, "stopped: %llu messages in, %llu relayed, %llu deliveries, "
            "%llu dropped, %llu newcomers refused, %zu members\n",
            (unsigned long long)st.messages_in,
            (unsigned long long)st.relayed,
            (unsigned long long)st.deliveries_out, dropped,
            (unsigned long long)st.rejected, st.members);
    return rc < 0 ? 1 : 0;
}
