#!/usr/bin/python3
"""perf_event_open (kernel attack surface, side channels). Harmless if allowed:
the attribute pointer is NULL (EFAULT).
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_perf_event_open = 298

ctypes.set_errno(0)
r = libc.syscall(ctypes.c_long(SYS_perf_event_open), ctypes.c_long(0), ctypes.c_long(0),
                 ctypes.c_long(-1), ctypes.c_long(-1), ctypes.c_long(0))
e = ctypes.get_errno()
res = "opened" if r >= 0 else errno.errorcode.get(e, str(e))
print("perf_event_open(NULL, 0, -1, -1, 0):", res)
print(f"RESULT: {res}", flush=True)
