#!/usr/bin/python3
"""Set the host's clock: settimeofday and clock_settime(CLOCK_REALTIME) need
CAP_SYS_TIME in the host's user namespace. The time given is the time just
read, so even a broken sandbox would move the clock by microseconds only.
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_settimeofday, SYS_clock_settime, SYS_clock_gettime = 164, 227, 228
CLOCK_REALTIME = 0


class timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *args)
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


ts = timespec()
call(SYS_clock_gettime, ctypes.c_long(CLOCK_REALTIME), ctypes.byref(ts))
res = {"clock_settime": call(SYS_clock_settime, ctypes.c_long(CLOCK_REALTIME), ctypes.byref(ts))}
tv = timeval(ts.tv_sec, ts.tv_nsec // 1000)
res["settimeofday"] = call(SYS_settimeofday, ctypes.byref(tv), ctypes.c_void_p(None))
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
