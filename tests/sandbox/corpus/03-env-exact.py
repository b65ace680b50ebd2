#!/usr/bin/python3
"""Positive check: the environment is exactly PATH, HOME, TZ and LC_ALL with
the sandbox's values, whatever debate's caller had (the test sets
DEBATE_TEST_SECRET and other variables in debate's environment).
Expected: RESULT: exact
"""
EXPECTED = {
    b"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    b"HOME=/root",
    b"TZ=UTC",
    b"LC_ALL=C.UTF-8",
}

with open("/proc/self/environ", "rb") as f:
    env = {e for e in f.read().split(b"\0") if e}
# Names only: a leaked value must not end up in the test's log.
print("variables:", " ".join(sorted(e.split(b"=", 1)[0].decode("ascii", "replace") for e in env)))
extra = sorted(e.split(b"=", 1)[0].decode("ascii", "replace") for e in env - EXPECTED)
missing = sorted(e.split(b"=", 1)[0].decode("ascii", "replace") for e in EXPECTED - env)
if not extra and not missing:
    print("RESULT: exact", flush=True)
else:
    print(f"RESULT: extra={','.join(extra)};missing={','.join(missing)}", flush=True)
