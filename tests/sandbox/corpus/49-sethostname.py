#!/usr/bin/python3
"""Change the host name: allowed, but only in the sandbox's own UTS namespace
(the test compares the host's name before and after). Refuses to try if it
is not in a UTS namespace other than the host's (argv[1] is the host's
/proc/self/ns/uts link) or not in a user namespace.
Expected: RESULT: private
"""
import errno
import os
import socket
import sys

with open("/proc/self/uid_map") as f:
    uid_map = f.read().split()
if os.readlink("/proc/self/ns/uts") == (sys.argv[1:] or [""])[0] or uid_map[:2] == ["0", "0"]:
    print("RESULT: not-isolated", flush=True)
    sys.exit(0)
print("host name inside:", socket.gethostname())
try:
    socket.sethostname("debate-sandbox-evil-host")
except OSError as e:
    print("sethostname:", e)
    print(f"RESULT: {errno.errorcode.get(e.errno, e.errno)}", flush=True)
    sys.exit(0)
now = socket.gethostname()
print("host name inside after sethostname:", now)
print("RESULT: " + ("private" if now == "debate-sandbox-evil-host" else f"unchanged:{now}"), flush=True)
