#!/usr/bin/env python3
"""Turn scripts/bench's raw result lines into the markdown report."""
import statistics
import sys

# scenario prefix -> (metric, label, higher_is_better, cpu scale, cpu label)
METRICS = [
    ("tcp_1x1", "p99_us", "latency p99 (us)", False),
    ("tcp_idle", "kib_per_conn", "KiB per idle connection (Private_Dirty)", False),
    ("tcp_64x4KiB", "mb_per_s", "MB/s", True),
    ("tcp_", "msgs_per_s", "messages/s", True),
    ("udp_", "msgs_per_s", "replies/s", True),
    ("room_", "deliveries_per_s", "deliveries/s", True),
    ("cg_", "ir_per_msg", "user-space instructions per message (callgrind)", False),
    ("syscalls_", "syscalls_per_msg", "system calls per message (perf)", False),
]


def metric_for(sc):
    if sc.startswith("cg_room"):
        return "ir_per_msg", "user-space instructions per delivery (callgrind)", False
    if sc.startswith("cg_udp"):
        return "ir_per_msg", "user-space instructions per datagram echoed (callgrind)", False
    if sc.startswith("syscalls_room"):
        return "syscalls_per_msg", "system calls per delivery (perf)", False
    if sc.startswith("room_") and sc.endswith("_rate"):
        return "srv_cpu_ns_per_msg", "server CPU us per 1000 deliveries", False
    for prefix, key, label, higher in METRICS:
        if sc.startswith(prefix):
            return key, label, higher
    return "msgs_per_s", "messages/s", True


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def median_of(runs, sc, name, key):
    vals = [num(r.get(key)) for r in runs.get(sc, {}).get(name, [])]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


# (text, scenario, metric, other server or None for an absolute bound, op, bound)
TARGETS = [
    ("TCP 64x8x64B messages/s >= 0.97x epoll loop", "tcp_64x8x64B", "msgs_per_s", "epoll", ">=", 0.97),
    ("TCP 64x8x64B messages/s >= 1.10x libuv", "tcp_64x8x64B", "msgs_per_s", "libuv", ">=", 1.10),
    ("TCP 64x8x64B messages/s >= 1.10x libevent", "tcp_64x8x64B", "msgs_per_s", "libevent", ">=", 1.10),
    ("TCP 64x8x64B server CPU/message <= 1.05x epoll loop", "tcp_64x8x64B", "srv_cpu_ns_per_msg", "epoll", "<=", 1.05),
    ("TCP 1x1x64B latency p99 <= 1.05x epoll loop", "tcp_1x1x64B", "p99_us", "epoll", "<=", 1.05),
    ("instructions/message depth 8 <= 1.2x epoll loop", "cg_depth8", "ir_per_msg", "epoll", "<=", 1.2),
    ("instructions/message depth 1 <= 1.2x epoll loop", "cg_depth1", "ir_per_msg", "epoll", "<=", 1.2),
    ("UDP echo replies/s >= 0.95x recvmmsg/sendmmsg loop", "udp_8x32x64B", "msgs_per_s", "mmsg", ">=", 0.95),
    ("room 64 deliveries/s >= 0.95x one-sendmmsg relay", "room_64_sat", "deliveries_per_s", "mmsg", ">=", 0.95),
    ("room 256 deliveries/s >= 0.95x one-sendmmsg relay", "room_256_sat", "deliveries_per_s", "mmsg", ">=", 0.95),
    ("room 64 CPU/delivery (fixed rate) <= 0.9x per-member sendto relay", "room_64_rate", "srv_cpu_ns_per_msg", "sendto", "<=", 0.9),
    ("room 256 CPU/delivery (fixed rate) <= 0.9x per-member sendto relay", "room_256_rate", "srv_cpu_ns_per_msg", "sendto", "<=", 0.9),
    ("room 64 zero loss at the fixed rate", "room_64_rate", "loss_pct", None, "<=", 0.0),
    ("room 256 zero loss at the fixed rate", "room_256_rate", "loss_pct", None, "<=", 0.0),
]


def targets(runs):
    idle = next((sc for sc in runs if sc.startswith("tcp_idle")), None)
    rows = list(TARGETS)
    if idle:
        rows.append(("idle connections: <= 0.25 KiB each", idle, "kib_per_conn", None, "<=", 0.25))
    out = []
    for text, sc, key, other, op, bound in rows:
        mine = median_of(runs, sc, "libnetkit", key)
        if mine is None:
            continue
        if other is None:
            value, shown = mine, fmt(mine)
        else:
            theirs = median_of(runs, sc, other, key)
            if not theirs:
                continue
            value = mine / theirs
            shown = f"{value:.3f}x ({fmt(mine)} vs {fmt(theirs)})"
        ok = value >= bound if op == ">=" else value <= bound
        out.append(f"| {text} | {shown} | {'yes' if ok else '**no**'} |")
    if out:
        print("## Targets (libnetkit's ratios from this run)\n")
        print("| target | measured | holds |")
        print("|---|---|---|")
        print("\n".join(out))
        print()


def main(path):
    runs, cmds, meta, order = {}, {}, {}, []
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "run" and len(parts) >= 5:
            sc, name = parts[1], parts[2]
            kv = dict(p.split("=", 1) for p in parts[5:] if "=" in p)
            runs.setdefault(sc, {}).setdefault(name, []).append(kv)
            if sc not in order:
                order.append(sc)
        elif parts[0] == "cmd":
            cmds.setdefault(parts[1], []).append((parts[2], " ".join(parts[3:])))
        else:
            meta[parts[0]] = " ".join(parts[1:])

    print("# libnetkit benchmark results\n")
    print(f"- date: {meta.get('date', '?')}")
    print(f"- machine: {meta.get('machine', '?')}")
    if "load" in meta:
        print(f"- load average at the start (the machine is shared): {meta['load']}")
    print(f"- command: `{meta.get('command', 'scripts/bench')}`")
    print("- rerun: `scripts/setup bench && scripts/bench` (`--smoke` for a quick "
          "correctness check, `--help` for options)\n")
    print("Servers: `libnetkit` is the bench server on the public API doing the "
          "peers' exact job (bench/nk_*.c); `nk_example` is the shipped example "
          "(its own uppercasing and logging included); `epoll`, `libuv`, "
          "`libevent`, `mmsg`, `plain`, `sendto` are the peers (bench/peer_*.c). "
          "Server on CPU 0, load generator on CPU 1, a fresh server per run, "
          "servers alternating within each round.\n")
    targets(runs)
    print("Median over rounds with the min-max range; ratio = server / libnetkit "
          "(for /s metrics above 1 means faster than libnetkit; for costs, "
          "above 1 means it costs more). CPU = server CPU time over the "
          "measured interval, from /proc/PID/task/*/schedstat (user-space "
          "share from utime/stime in /proc/PID/stat).\n")
    for sc in order:
        key, label, higher = metric_for(sc)
        servers = runs[sc]
        base = "libnetkit" if "libnetkit" in servers else next(
            (n for n in servers if n.startswith("nk")), None)
        def med(name, k):
            vals = [num(r.get(k)) for r in servers.get(name, [])]
            vals = [v for v in vals if v is not None]
            return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)
        scale = 1.0
        if key == "srv_cpu_ns_per_msg" and sc.startswith("room_"):
            scale = 1.0  # ns per delivery == us per 1000 deliveries
        bm = med(base, key)[0] if base else None
        bc = med(base, "srv_cpu_ns_per_msg")[0] if base else None
        print(f"### {sc}: {label} ({'higher' if higher else 'lower'} is better)\n")
        print("| server | median | min-max | ratio | CPU ns/msg | CPU ratio | notes |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name in servers:
            m, lo, hi = med(name, key)
            c = med(name, "srv_cpu_ns_per_msg")[0]
            ratio = (m / bm) if (m is not None and bm) else None
            cratio = (c / bc) if (c is not None and bc) else None
            notes = []
            for extra, lab in (("p50_us", "p50 us"), ("p999_us", "p999 us"),
                               ("msgs_per_s", "msg/s"), ("loss_pct", "loss %"),
                               ("rss_kib_per_conn", "RSS KiB/conn"),
                               ("srv_user_pct", "server user-space CPU %"),
                               ("srv_busy_pct", "server busy %"),
                               ("lg_busy_pct", "loadgen busy %")):
                if extra != key:
                    v = med(name, extra)[0]
                    if v is not None:
                        notes.append(f"{lab} {fmt(v)}")
            errs = sum(int(num(r.get("errors")) or 0) for r in servers[name])
            if errs:
                notes.append(f"**{errs} failed run(s)**")
            mm = f"{fmt(lo)}-{fmt(hi)}" if lo is not None else "-"
            print(f"| {name} | {fmt(m * scale if m is not None else None)} | {mm} | "
                  f"{fmt(ratio)} | {fmt(c)} | {fmt(cratio)} | {', '.join(notes)} |")
        print()
    print("## Commands\n")
    print("Each run starts a fresh server (PORT and PID vary per run).\n")
    print("```")
    for sc in order:
        for name, text in cmds.get(sc, []):
            print(f"{sc} {name}: {text}")
    print("```")


if __name__ == "__main__":
    main(sys.argv[1])
