#!/usr/bin/env bash
# Instructions per message for one server under callgrind, by hand:
#   bench/cg_one.sh BUILD_DIR SERVER_PATH PROTO PORT "LOADGEN ARGS 1" "LOADGEN ARGS 2" [SERVER ARGS...]
# e.g. bench/cg_one.sh build bench/nk_tcp_upper tcp 34567 \
#        "tcp -c 1 -d 1 -s 64 -n 1000" "tcp -c 1 -d 1 -s 64 -n 6000"
# Prints (Ir2 - Ir1) / (msgs2 - msgs1); the second run's callgrind file is
# left as cg_one.PORT.2.out for callgrind_annotate.
set -u
B=$1 S=$2 P=$3 PORT=$4 A1=$5 A2=$6
shift 6
hex=$(printf ':%04X ' "$PORT")
state=0A; [ "$P" = udp ] && state=07
run() { # N ARGS -> "IR MSGS"
    local n=$1 args=$2 f=cg_one.$PORT.$1.out i line ir msgs
    shift 2
    rm -f "$f"
    valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$f" \
        "$B/$S" "$@" "127.0.0.1:$PORT" >/dev/null 2>cg_one.$PORT.$n.log &
    local pid=$!
    for i in $(seq 400); do
        awk -v h="$hex" -v s="$state" 'index($2 " ", h) && $4 == s { f = 1 } END { exit !f }' \
            /proc/net/"$P" && break
        sleep 0.05
    done
    line=$(timeout 300 "$B/bench/loadgen" $args "127.0.0.1:$PORT")
    kill -TERM "$pid"
    # A peer whose wait is restarted after the signal under valgrind ends
    # at its next wakeup: give it one (a connection or a datagram).
    for i in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
        (exec 3<>"/dev/$P/127.0.0.1/$PORT" && echo x >&3) 2>/dev/null
    done
    wait "$pid" 2>/dev/null
    msgs=$(sed -n 's/.* total_msgs=\([0-9]*\).*/\1/p' <<<"$line")
    ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
    echo "$ir $msgs"
}
read -r i1 m1 < <(run 1 "$A1" "$@")
read -r i2 m2 < <(run 2 "$A2" "$@")
awk -v a="$i1" -v b="$i2" -v n1="$m1" -v n2="$m2" \
    'BEGIN { printf "%.1f instructions/msg (ir1=%s msgs1=%s ir2=%s msgs2=%s)\n", (b - a) / (n2 - n1), a, n1, b, n2 }'
