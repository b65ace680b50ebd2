#!/usr/bin/python3
"""Open /proc/sysrq-trigger for writing (one write reboots the host). Nothing
is ever written: "opened" is the failure.
Expected: RESULT: EACCES, EROFS, EPERM or ENOENT
"""
import errno
import os

try:
    fd = os.open("/proc/sysrq-trigger", os.O_WRONLY)
    os.close(fd)
    res = "opened"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print("open /proc/sysrq-trigger for writing:", res)
print(f"RESULT: {res}", flush=True)
