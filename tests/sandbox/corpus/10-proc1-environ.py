#!/usr/bin/python3
"""Read /proc/1/environ (and every other process's): PID 1 is the sandbox's
own init, so none of them may carry debate's environment, where the test put
DEBATE_TEST_SECRET (nor any other DEBATE_ variable).
Expected: RESULT: no-secret
"""
import os

leaks = []
for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        cmd = "?"
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
        state = f"{len(env)} bytes"
    except OSError as e:
        env = b""
        state = f"unreadable ({e.strerror})"
    print(f"pid {pid} [{cmd}]: environ {state}")
    if b"DEBATE_TEST_SECRET" in env or b"DEBATE_" in env:
        leaks.append(pid)
if leaks:
    print("RESULT: leaked:" + ",".join(leaks), flush=True)
else:
    print("RESULT: no-secret", flush=True)
