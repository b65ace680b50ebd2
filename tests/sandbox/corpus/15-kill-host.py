#!/usr/bin/python3
"""Signal a host process by PID (a sleeping process of the test, argv[1]):
it does not exist in the sandbox's PID namespace. The test checks it is
still alive afterwards.
Expected: RESULT: ESRCH
"""
import errno
import os
import signal
import sys

pid = int(sys.argv[1])
results = []
for sig in (0, signal.SIGTERM, signal.SIGKILL):
    try:
        os.kill(pid, sig)
        results.append("sent")
    except OSError as e:
        results.append(errno.errorcode.get(e.errno, str(e.errno)))
# The whole process group of that PID, too.
try:
    os.kill(-pid, signal.SIGTERM)
    results.append("sent")
except OSError as e:
    results.append(errno.errorcode.get(e.errno, str(e.errno)))
print(f"kill {pid} with 0, TERM, KILL, and its group: {results}")
print("RESULT: " + (results[0] if len(set(results)) == 1 else "mixed:" + ",".join(results)), flush=True)
