#!/usr/bin/env python3
"""The UDP examples driven through their command lines, against each other
and against independent peers written like the seed's Python programs.

usage: test_examples_udp.py UPPER_SERVER UPPER_CLIENT CHAT_CLIENT
       ROOM_SERVER SENDER RECEIVER BOUNDARIES
       [PATTERN... | -x NAME...]  (which tests: see run_tests)
Every wait has a deadline; processes started here are ended by their pid.
"""
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from example_driver import DEADLINE, check, read_line, run_tests

(UPPER_SERVER, UPPER_CLIENT, CHAT, ROOM, SENDER, RECEIVER,
 BOUNDARIES) = sys.argv[1:8]


def read_until(stream, needle, timeout=DEADLINE):
    """Lines until one contains needle; all lines read, or None on timeout."""
    end = time.monotonic() + timeout
    lines = []
    while True:
        line = read_line(stream, max(0.0, end - time.monotonic()))
        if line is None:
            return None
        lines.append(line)
        if needle in line:
            return lines


def start_server(exe, *args):
    p = subprocess.Popen([exe, *args, "127.0.0.1:0"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = read_line(p.stdout)
    if not line or "listening on 127.0.0.1:" not in line:
        stop(p, signal.SIGKILL)
        raise SystemExit("server did not start: %r" % line)
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return p, port


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        os.kill(p.pid, sig)
    try:
        return p.wait(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return None


def run(args, stdin_text="", timeout=DEADLINE):
    """Run to completion: (exit status, stdout, stderr)."""
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(stdin_text.encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out.decode(), err.decode()
    return p.returncode, out.decode(), err.decode()


def seed_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(DEADLINE)
    return s


def test_usage():
    for exe in (UPPER_SERVER, UPPER_CLIENT, CHAT, ROOM, SENDER, RECEIVER,
                BOUNDARIES):
        name = os.path.basename(exe)
        rc, out, _ = run([exe, "--help"])
        check(rc == 0 and out.startswith("usage: " + name),
              name + " --help: usage on stdout, exit 0")
        rc, _, err = run([exe, "--bogus"])
        check(rc == 2 and "usage:" in err, name + " --bogus: exit 2")
    for args in ([ROOM, "--max-members", "0"], [ROOM, "--member-ttl", "x"],
                 [ROOM, "--rate-limit", "-5"], [ROOM, "--leave", ""],
                 [RECEIVER, "--count", "-1"], [CHAT, "--linger", "soon"],
                 [UPPER_CLIENT, "--timeout", "1e3"], [SENDER, "[::1"],
                 [UPPER_SERVER, "a:b:c"], [BOUNDARIES, "extra"]):
        rc, _, _ = run(args)
        check(rc == 2, " ".join(os.path.basename(a) for a in args) +
              ": exit 2")


def test_boundaries():
    rc, out, err = run([BOUNDARIES])
    check(rc == 0, "udp_boundaries exits 0 by itself")
    check('receive 1: 3 bytes "one"' in out and
          'receive 2: 3 bytes "two"' in out and
          'receive 3: 5 bytes "three"' in out,
          "udp_boundaries: three sends, three datagrams")
    check('read 1: 11 bytes "onetwothree"' in out,
          "udp_boundaries: three TCP sends, one read")
    check("NK_ETRUNC: kept 16 of 100 bytes" in out,
          "udp_boundaries: truncation reported with the real size")


def test_upper():
    srv, port = start_server(UPPER_SERVER)
    addr = "127.0.0.1:%d" % port
    rc, out, err = run([UPPER_CLIENT, addr], "hello\n\nMixed case 123\n")
    check(rc == 0 and out == "HELLO\nMIXED CASE 123\n",
          "udp_upper_client prints each uppercased reply (%r)" % out)
    lines = read_until(srv.stdout, "said: Mixed case 123")
    check(lines is not None and "said: hello" in lines[0],
          "udp_upper_server prints sender and text per datagram")
    # A seed-style client: one datagram, one uppercased reply.
    s = seed_socket()
    s.sendto(b"seed client", ("127.0.0.1", port))
    data, _ = s.recvfrom(1024)
    check(data == b"SEED CLIENT", "seed-style client gets the reply")
    s.close()
    check(stop(srv, signal.SIGINT) == 0, "udp_upper_server exits 0 on SIGINT")


def test_control_bytes_stay_on_one_line():
    # A datagram with a newline, a NUL and a terminal escape must not forge
    # a second log line, be cut at the NUL, or reach the terminal raw.
    nasty = b"two\nlines\x00and \x1b[2J"
    shown = "two\\nlines\\x00and \\x1b[2J"
    srv, port = start_server(UPPER_SERVER)
    s = seed_socket()
    s.sendto(nasty, ("127.0.0.1", port))
    check(s.recvfrom(1024)[0] == nasty.upper(),
          "udp_upper_server replies with the bytes as they came")
    line = read_line(srv.stdout)
    check(line is not None and line.endswith(" said: " + shown),
          "udp_upper_server logs the datagram as one escaped line (%r)" % line)
    s.sendto(b"line from nc\n", ("127.0.0.1", port))
    check(s.recvfrom(1024)[0] == b"LINE FROM NC\n", "nc-style line answered")
    line = read_line(srv.stdout)
    check(line is not None and line.endswith(" said: line from nc"),
          "udp_upper_server: a final newline ends the line (%r)" % line)
    check(stop(srv) == 0, "udp_upper_server exits 0")
    s.close()
    room, port = start_server(ROOM)
    r = subprocess.Popen([RECEIVER, "--count", "2", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(read_line(r.stdout) == "register", "receiver registered")
    s = seed_socket()
    s.sendto(nasty, ("127.0.0.1", port))
    check(read_line(r.stdout) == shown,
          "udp_receiver shows the message as one escaped line")
    check(r.wait(timeout=DEADLINE) == 0, "receiver exits 0 after --count 2")
    r.stdout.close()
    r.stderr.close()
    check(stop(room) == 0, "udp_room_server exits 0")
    out = room.stdout.read().decode().splitlines()
    check(out[-1].endswith(": " + shown),
          "udp_room_server logs the message as one escaped line")
    s.close()


def test_quiet():
    # --quiet: the same service, no line per message, the summary still.
    for exe in (UPPER_SERVER, ROOM):
        rc, out, _ = run([exe, "--help"])
        check("[--quiet]" in out,
              os.path.basename(exe) + " --help lists --quiet")
    srv, port = start_server(UPPER_SERVER, "--quiet")
    s = seed_socket()
    for i in range(3):
        s.sendto(b"quiet %d" % i, ("127.0.0.1", port))
        check(s.recvfrom(1024)[0] == b"QUIET %d" % i,
              "udp_upper_server --quiet replies to datagram %d" % i)
    check(stop(srv) == 0, "udp_upper_server --quiet exits 0")
    out = srv.stdout.read().decode()
    check("said:" not in out and "stopped after 3 datagrams" in out,
          "udp_upper_server --quiet: no line per datagram, all counted (%r)"
          % out)
    s.close()

    room, port = start_server(ROOM, "--quiet")
    a, b = seed_socket(), seed_socket()
    a.sendto(b"a-in", ("127.0.0.1", port))
    check(a.recvfrom(1024)[0] == b"a-in", "room --quiet: echoed to the sender")
    b.sendto(b"b-in", ("127.0.0.1", port))
    check(a.recvfrom(1024)[0] == b"b-in" and b.recvfrom(1024)[0] == b"b-in",
          "room --quiet: relayed to every member")
    check(stop(room) == 0, "udp_room_server --quiet exits 0")
    out = room.stdout.read().decode()
    err = room.stderr.read().decode()
    check(out == "", "udp_room_server --quiet: no line per message (%r)" % out)
    check(err.count("join 127.0.0.1:") == 2 and
          "2 messages in, 2 relayed" in err,
          "udp_room_server --quiet: joins and the summary on stderr")
    a.close()
    b.close()


def test_upper_client_timeout():
    silent = seed_socket()  # bound, never replies
    port = silent.getsockname()[1]
    t0 = time.monotonic()
    rc, out, err = run([UPPER_CLIENT, "--timeout", "100",
                        "127.0.0.1:%d" % port], "a\nb\n")
    check(rc == 1 and err.count("no reply within 100 ms") == 2 and out == "",
          "udp_upper_client: each lost reply is reported, it goes on, exit 1")
    check(time.monotonic() - t0 < 5, "udp_upper_client: timeouts are honoured")
    silent.close()
    # Nobody on the port at all: a clear error, not a hang.
    rc, out, err = run([UPPER_CLIENT, "--timeout", "2000",
                        "127.0.0.1:%d" % port], "x\n")
    check(rc == 1 and "no server at" in err,
          "udp_upper_client: closed port reported as no server, exit 1")


def test_room_clients_without_a_room():
    s = seed_socket()
    port = s.getsockname()[1]
    s.close()  # nobody on that port: ICMP port unreachable
    addr = "127.0.0.1:%d" % port
    rc, _, err = run([SENDER, addr], "a\nb\n")
    check(rc == 1 and "no room at" in err,
          "udp_sender: exit 1 when the room is not reachable (%r)" % rc)
    rc, _, err = run([CHAT, "--linger", "100", addr], "a\nb\n")
    check(rc == 1 and "room not reachable" in err,
          "udp_chat_client: exit 1 when the room is not reachable (%r)" % rc)


def test_room_tour():
    room, port = start_server(ROOM)
    addr = "127.0.0.1:%d" % port
    r1 = subprocess.Popen([RECEIVER, "--count", "4", addr],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(read_line(r1.stdout) == "register", "receiver 1 sees its register")
    r2 = subprocess.Popen([RECEIVER, "--count", "3", addr],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(read_line(r2.stdout) == "register", "receiver 2 sees its register")
    check(read_line(r1.stdout) == "register",
          "receiver 1 sees receiver 2's register")
    rc, _, _ = run([SENDER, addr], "hello\nworld\n")
    check(rc == 0, "udp_sender exits 0 at end of input")
    check(read_line(r1.stdout) == "hello" and read_line(r1.stdout) == "world",
          "receiver 1 gets the sender's lines")
    check(read_line(r2.stdout) == "hello" and read_line(r2.stdout) == "world",
          "receiver 2 gets the sender's lines")
    check(r1.wait(timeout=DEADLINE) == 0 and r2.wait(timeout=DEADLINE) == 0,
          "receivers exit 0 after --count lines")
    r1.stdout.close()
    r2.stdout.close()
    r1.stderr.close()
    r2.stderr.close()

    # The seed's own programs, unchanged: a receiver that registers and
    # listens, a sender that never reads, and the chat client's pattern.
    seed_rx = seed_socket()
    seed_rx.sendto(b"register", ("127.0.0.1", port))
    check(seed_rx.recvfrom(1024)[0] == b"register",
          "seed receiver: its register is relayed back")
    seed_tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    seed_tx.sendto("from the seed sender".encode("utf-8"), ("127.0.0.1", port))
    check(seed_rx.recvfrom(1024)[0] == b"from the seed sender",
          "seed receiver gets the seed sender's line")
    chat = seed_socket()
    chat.sendto(b"seed chat", ("127.0.0.1", port))
    check(chat.recvfrom(1024)[0] == b"seed chat",
          "seed chat client gets its own line back")
    check(seed_rx.recvfrom(1024)[0] == b"seed chat",
          "seed receiver gets the chat line")

    # The chat client prints what others say while its input is still open.
    c = subprocess.Popen([CHAT, "--linger", "300", addr],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    c.stdin.write(b"typed line\n")
    c.stdin.flush()
    check(read_line(c.stdout) == "typed line", "chat client sees its line")
    check(seed_rx.recvfrom(1024)[0] == b"typed line",
          "seed receiver gets the chat client's line")
    chat.sendto(b"while typing", ("127.0.0.1", port))
    check(read_line(c.stdout) == "while typing",
          "chat client prints others' messages before its input ends")
    c.stdin.close()
    check(c.wait(timeout=DEADLINE) == 0, "chat client exits 0 after linger")
    c.stdout.close()
    c.stderr.close()

    check(stop(room, signal.SIGTERM) == 0,
          "udp_room_server exits 0 on SIGTERM with members attached")
    out = room.stdout.read().decode()
    err = room.stderr.read().decode()
    check(": hello" in out and
          ": from the seed sender" in out,
          "udp_room_server prints each message with its sender")
    check(err.count("join 127.0.0.1:") >= 6,
          "udp_room_server reports joins on stderr")
    for s in (seed_rx, seed_tx, chat):
        s.close()


def test_clients_against_the_seed_room():
    # The seed's room, as written: keyed by port, relays every datagram to
    # everyone, joins and keepalives included. Our clients must not show
    # those as messages.
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    addr = "127.0.0.1:%d" % port
    seen = []
    two_joined = threading.Event()

    def seed_room():
        clients = {}
        while True:
            msg, a = server.recvfrom(1024)
            if msg == b"quit":
                return
            seen.append(msg)
            if len(seen) == 2:
                two_joined.set()
            clients[a[1]] = a
            for c in clients:
                server.sendto(msg, clients[c])

    t = threading.Thread(target=seed_room, daemon=True)
    t.start()
    r = subprocess.Popen([RECEIVER, "--count", "2", addr],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(read_line(r.stdout) == "register", "receiver: its register")
    c = subprocess.Popen([CHAT, "--linger", "300", addr],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    check(two_joined.wait(DEADLINE), "chat client joined the seed room")
    rc, _, _ = run([SENDER, addr], "hello seed room\n")
    check(rc == 0, "udp_sender exits 0 against the seed room")
    check(read_line(c.stdout) == "hello seed room",
          "chat client: the first line shown is the message, no join noise")
    check(read_line(r.stdout) == "hello seed room",
          "receiver: no join noise, then the message")
    check(r.wait(timeout=DEADLINE) == 0, "receiver exits 0 after --count 2")
    c.stdin.close()
    check(c.wait(timeout=DEADLINE) == 0, "chat client exits 0")
    for p in (r, c):
        p.stdout.close()
        p.stderr.close()
    quit_sock = seed_socket()
    quit_sock.sendto(b"quit", ("127.0.0.1", port))
    t.join(DEADLINE)
    quit_sock.close()
    server.close()


def test_room_options():
    room, port = start_server(ROOM, "--no-echo-sender", "--max-members", "2")
    a, b, x = seed_socket(), seed_socket(), seed_socket()
    a.sendto(b"a-in", ("127.0.0.1", port))
    b.sendto(b"b-in", ("127.0.0.1", port))
    check(a.recvfrom(1024)[0] == b"b-in", "--no-echo-sender: others get it")
    x.sendto(b"stranger", ("127.0.0.1", port))
    a.sendto(b"still here", ("127.0.0.1", port))
    check(b.recvfrom(1024)[0] == b"still here",
          "--max-members 2: members still served, stranger not relayed")
    a.settimeout(0.2)
    try:
        a.recvfrom(1024)
        got = True
    except socket.timeout:
        got = False
    check(not got, "--no-echo-sender: the sender gets nothing back")
    check(stop(room, signal.SIGINT) == 0, "udp_room_server exits 0 on SIGINT")
    err = room.stderr.read().decode()
    check("1 newcomers refused" in err, "refused newcomer counted")
    for s in (a, b, x):
        s.close()

    room, port = start_server(ROOM, "--leave", "bye", "--rate-limit", "1")
    a = seed_socket()
    a.sendto(b"first", ("127.0.0.1", port))
    check(a.recvfrom(1024)[0] == b"first", "rate limit: the first is relayed")
    a.sendto(b"second", ("127.0.0.1", port))  # over 1 per second
    a.sendto(b"bye", ("127.0.0.1", port))
    lines = read_until(room.stderr, "said leave", timeout=5)
    check(lines is not None, "--leave bye: the member leaves")
    check(stop(room) == 0, "udp_room_server exits 0")
    out = room.stdout.read().decode()
    check(": first" in out and ": second" not in out,
          "--rate-limit 1: the second message in a second is not relayed")
    a.close()

    room, port = start_server(ROOM, "--member-ttl", "1")
    m = seed_socket()
    m.sendto(b"x", ("127.0.0.1", port))
    m.recvfrom(1024)
    lines = read_until(room.stderr, "silent too long", timeout=5)
    check(lines is not None, "--member-ttl 1: a silent member leaves")
    check(stop(room) == 0, "udp_room_server exits 0")
    m.close()


def test_room_validated():
    room, port = start_server(ROOM, "--validate")
    addr = "127.0.0.1:%d" % port
    r = subprocess.Popen([RECEIVER, "--count", "1", addr],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # The receiver answers the room's challenge, then gets messages in full.
    end = time.monotonic() + DEADLINE
    got = None
    while got is None and time.monotonic() < end:
        run([SENDER, addr], "validated hello\n")
        rd = select.select([r.stdout], [], [], 0.2)[0]
        if rd:
            got = read_line(r.stdout)
    check(got == "validated hello",
          "--validate: receiver completes the handshake and is served")
    check(r.wait(timeout=DEADLINE) == 0, "receiver exits 0")
    r.stdout.close()
    r.stderr.close()
    # A silent forged joiner gets at most 3x what it sent: nothing here.
    victim = seed_socket()
    victim.sendto(b"j", ("127.0.0.1", port))
    victim.settimeout(0.2)
    run([SENDER, addr], "a line the victim must not get\n")
    got = []
    try:
        while True:
            got.append(victim.recvfrom(1024)[0])
    except socket.timeout:
        pass
    check(sum(len(g) for g in got) <= 3,
          "--validate: unvalidated address gets at most 3 bytes per byte")
    check(stop(room) == 0, "validated room exits 0")
    victim.close()


run_tests([test_usage, test_boundaries, test_upper, test_quiet,
           test_upper_client_timeout,
           test_control_bytes_stay_on_one_line,
           test_room_clients_without_a_room, test_room_tour,
           test_clients_against_the_seed_room, test_room_options,
           test_room_validated], sys.argv[8:])
print("all passed")
