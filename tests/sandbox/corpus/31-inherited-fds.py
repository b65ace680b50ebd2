#!/usr/bin/python3
"""Descriptors inherited from debate's caller (the test passes an open host
file to debate): only 0, 1 and 2 reach the hook. The descriptor the listing
itself opens is closed again by the time it is examined, so it drops out.
Expected: RESULT: fds=0,1,2
"""
import os

fds = []
for name in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{name}")
    except FileNotFoundError:
        continue                 # the directory descriptor listdir used
    fds.append(int(name))
    print(f"fd {name} -> {target}")
print("RESULT: fds=" + ",".join(str(fd) for fd in sorted(fds)), flush=True)
