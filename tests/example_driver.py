"""What the example drivers (test_examples_*.py) share: a check that
records failures, a skip that says why, running the tests the command line
selects, and reading one line from a pipe with a deadline."""
import fnmatch
import os
import select
import sys
import time

DEADLINE = 10.0
failures = []


class Skipped(Exception):
    """Raised by skip(): this test cannot run here."""


def skip(reason):
    """End the running test as skipped, saying why."""
    raise Skipped(reason)


def run_tests(tests, selection):
    """Run the test functions that selection (the arguments after the
    driver's own) picks, as the cmocka suites do: none given, every test;
    PATTERN..., the tests whose names match one; -x NAME..., all but those.
    Then exit as meson expects: 1 if a check failed or a name matches no
    test, else 77 if a test skipped, else 0. Each test that can skip runs
    as a meson test of its own (tests/meson.build)."""
    exclude = selection[:1] == ["-x"]
    pats = selection[1:] if exclude else selection
    names = [t.__name__ for t in tests]
    for p in pats:
        if not fnmatch.filter(names, p):
            sys.exit("no test matches %r" % p)
    skipped = 0
    for t in tests:
        picked = any(fnmatch.fnmatchcase(t.__name__, p) for p in pats)
        if pats and picked == exclude:
            continue
        try:
            t()
        except Skipped as e:
            print("skipped: %s" % e, flush=True)
            skipped += 1
    print("%d failed, %d skipped" % (len(failures), skipped))
    sys.exit(1 if failures else 77 if skipped else 0)


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
