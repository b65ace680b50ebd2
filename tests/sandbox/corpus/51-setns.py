#!/usr/bin/python3
"""Join other namespaces with setns (the way out of a mount namespace through
an fd of another one): refused by the filter. The namespaces tried are the
sandbox's own (PID 1's and this process's), so an unfiltered call would not
leave the sandbox.
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_setns = 308

res = {}
for path in ("/proc/1/ns/mnt", "/proc/self/ns/mnt", "/proc/self/ns/user", "/proc/self/ns/net"):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        res[path] = "open-" + errno.errorcode.get(e.errno, str(e.errno))
        continue
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_setns), ctypes.c_long(fd), ctypes.c_long(0))
    e = ctypes.get_errno()
    res[path] = "joined" if r == 0 else errno.errorcode.get(e, str(e))
    os.close(fd)
print(res)
vals = {v for v in res.values() if not v.startswith("open-")}
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
