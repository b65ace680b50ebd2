#!/usr/bin/python3
"""Open host-wide kernel settings in /proc/sys for writing (core_pattern runs a
program as host root on every crash; modprobe likewise). They belong to host
root, which is unmapped inside. Nothing is ever written: "opened" is the
failure.
Expected: RESULT: blocked
"""
import errno
import os

res = {}
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe", "/proc/sys/vm/drop_caches",
             "/proc/sys/kernel/panic", "/proc/sys/fs/binfmt_misc/register", "/proc/sys/kernel/hostname"):
    try:
        fd = os.open(path, os.O_WRONLY)
        os.close(fd)
        res[path] = "opened"
    except OSError as e:
        res[path] = errno.errorcode.get(e.errno, str(e.errno))
print(res)
bad = [k for k, v in res.items() if v not in ("EACCES", "EROFS", "EPERM", "ENOENT")]
print("RESULT: " + ("blocked" if not bad else "opened:" + ",".join(bad)), flush=True)
