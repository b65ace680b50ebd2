#!/usr/bin/python3
"""clone3 cannot be filtered by its flags (they sit in memory), so the filter
answers ENOSYS and the C library falls back to clone. Harmless if allowed:
NULL arguments of size 0 (EINVAL from the kernel, no process made).
Expected: RESULT: ENOSYS
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_clone3 = 435

ctypes.set_errno(0)
r = libc.syscall(ctypes.c_long(SYS_clone3), ctypes.c_long(0), ctypes.c_long(0))
e = ctypes.get_errno()
res = f"returned-{r}" if r != -1 else errno.errorcode.get(e, str(e))
print("clone3(NULL, 0):", res)
print(f"RESULT: {res}", flush=True)
