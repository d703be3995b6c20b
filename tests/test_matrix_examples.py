#!/usr/bin/env python3
"""B16: SIGTERM and SIGINT to tcp_upper_server and udp_room_server with
clients attached. Each server must exit 0 before the deadline; the TCP
clients must see a graceful end of stream (FIN after every reply, never a
reset); the room's members must have received every relay sent before the
signal.

usage: test_matrix_examples.py TCP_UPPER_SERVER UDP_ROOM_SERVER
"""
import os
import select
import signal
import socket
import subprocess
import sys
import time

DEADLINE = 5.0
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def read_line(stream, timeout=DEADLINE):
    end = time.monotonic() + timeout
    line = b""
    while time.monotonic() < end:
        r, _, _ = select.select([stream], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        ch = os.read(stream.fileno(), 1)
        if not ch:
            break
        line += ch
        if ch == b"\n":
            break
    return line.decode(errors="replace")


def start(exe, *args):
    p = subprocess.Popen([exe, *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    line = read_line(p.stdout)
    if "listening on 127.0.0.1:" not in line:
        p.kill()
        p.wait()
        raise SystemExit("%s did not start: %r" % (exe, line))
    return p, int(line.split("127.0.0.1:")[1].split()[0])


def wait_exit(p, t0):
    """Exit status, or None if the deadline passed (then it is killed)."""
    try:
        rc = p.wait(timeout=max(0.1, DEADLINE - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None
    return rc


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def tcp_case(exe, sig):
    name = signal.Signals(sig).name
    srv, port = start(exe, "127.0.0.1:0")
    clients = []
    for i in range(3):
        c = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        clients.append(c)
    # Two clients have had a reply; the third is attached but silent.
    for i, c in enumerate(clients[:2]):
        msg = b"client %d says hi" % i
        c.sendall(msg)
        check(recv_exact(c, len(msg)) == msg.upper(),
              "tcp %s: client %d served before the signal" % (name, i))
    # Wait until the server has accepted all three (it logs each).
    accepted = False
    end = time.monotonic() + DEADLINE
    while not accepted and time.monotonic() < end:
        line = read_line(srv.stderr, end - time.monotonic())
        if not line:
            break
        accepted = "(3 connected)" in line
    check(accepted, "tcp %s: the server accepted all 3 clients" % name)
    t0 = time.monotonic()
    os.kill(srv.pid, sig)
    for i, c in enumerate(clients):
        try:
            end = c.recv(1)
            graceful = end == b""
        except ConnectionResetError:
            graceful = False
        except socket.timeout:
            graceful = False
        check(graceful, "tcp %s: client %d sees a graceful EOF (no reset)"
              % (name, i))
        c.close()
    rc = wait_exit(srv, t0)
    elapsed = time.monotonic() - t0
    check(rc == 0, "tcp %s: server exits 0 (got %r) in %.2f s < %.0f s"
          % (name, rc, elapsed, DEADLINE))
    out = srv.stdout.read().decode(errors="replace")
    check("stopped after 3 connections" in out,
          "tcp %s: server reports its 3 connections (%r)" % (name, out.strip()))
    srv.stderr.close()
    srv.stdout.close()


def udp_case(exe, sig):
    name = signal.Signals(sig).name
    srv, port = start(exe, "127.0.0.1:0")
    room = ("127.0.0.1", port)
    members = []
    for i in range(3):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(DEADLINE)
        s.sendto(b"register", room)
        members.append(s)
    # Each register is relayed to the members known so far (itself
    # included): member i gets 3 - i of them.
    for i, s in enumerate(members):
        got = [s.recv(2048) for _ in range(3 - i)]
        check(all(g == b"register" for g in got),
              "udp %s: member %d got its relays" % (name, i))
    members[0].sendto(b"last words", room)
    for i, s in enumerate(members):
        check(s.recv(2048) == b"last words",
              "udp %s: member %d got the last message" % (name, i))
    t0 = time.monotonic()
    os.kill(srv.pid, sig)
    rc = wait_exit(srv, t0)
    elapsed = time.monotonic() - t0
    check(rc == 0, "udp %s: room server exits 0 (got %r) in %.2f s < %.0f s"
          % (name, rc, elapsed, DEADLINE))
    err = srv.stderr.read().decode(errors="replace")
    check("stopped:" in err,
          "udp %s: room server reports its counters on exit" % name)
    for s in members:
        s.close()
    srv.stdout.close()
    srv.stderr.close()


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    tcp_exe, udp_exe = sys.argv[1], sys.argv[2]
    for sig in (signal.SIGTERM, signal.SIGINT):
        tcp_case(tcp_exe, sig)
        udp_case(udp_exe, sig)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
