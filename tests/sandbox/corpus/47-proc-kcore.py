#!/usr/bin/python3
"""Read the host's physical memory through /proc/kcore. Nothing is read if it
opens: "opened" is the failure.
Expected: RESULT: EACCES, EPERM or ENOENT
"""
import errno
import os

try:
    fd = os.open("/proc/kcore", os.O_RDONLY)
    os.close(fd)
    res = "opened"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print("open /proc/kcore:", res)
print(f"RESULT: {res}", flush=True)
