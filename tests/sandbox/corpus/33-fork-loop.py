#!/usr/bin/python3
"""A fork bomb that looks bounded but is real for any sane --pids: fork
sleeping children until 1500 exist, retrying forever when fork fails, so the
sandbox's process limit must stop it. On a broken sandbox it ends by itself
(1500 children, RLIMIT_NPROC as a seat belt, children killed before exit).
Expected: exit 125, "process limit of N reached"
"""
import os
import resource
import signal
import time

resource.setrlimit(resource.RLIMIT_NPROC, (2048, 2048))
children = []
while len(children) < 1500:
    try:
        pid = os.fork()
    except OSError:
        time.sleep(0.005)
        continue
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
print("RESULT: forked-1500", flush=True)
