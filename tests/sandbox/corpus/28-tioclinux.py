#!/usr/bin/python3
"""TIOCLINUX (virtual-console requests: selection paste, console read) is
refused by the filter, also with high bits in the request number. Made on a
private pty (a pty is not a virtual console, so an unfiltered kernel answers
ENOTTY/EINVAL; subcode 12, TIOCL_GETFGCONSOLE, only reads).
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_ioctl = 16
TIOCLINUX = 0x541C


def ioctl(fd, req, arg):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_ioctl), ctypes.c_long(fd), ctypes.c_ulong(req), ctypes.c_void_p(arg))
    e = ctypes.get_errno()
    return "ok" if r >= 0 else errno.errorcode.get(e, str(e))


try:
    master, slave = os.openpty()
    fd, what = slave, "pty"
except OSError as e:
    print("openpty:", e)
    fd, what = 0, "stdin"
res = {}
for name, req in (("plain", TIOCLINUX), ("1<<32", (1 << 32) | TIOCLINUX)):
    sub = ctypes.create_string_buffer(b"\x0c\x00")
    res[name] = ioctl(fd, req, ctypes.addressof(sub))
print(f"TIOCLINUX on {what}: {res}")
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
