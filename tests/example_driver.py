"""What the example drivers (test_examples_*.py) share: a check that
records failures, and reading one line from a pipe with a deadline."""
import os
import select
import time

DEADLINE = 10.0
failures = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what, flush=True)
    if not cond:
        failures.append(what)


def read_line(stream, timeout=DEADLINE):
    """One line from a pipe within the timeout, or None."""
    end = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            return buf.decode() if buf else None
        buf += chunk
    return buf.decode().rstrip("\n")
