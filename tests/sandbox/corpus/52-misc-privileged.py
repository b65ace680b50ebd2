#!/usr/bin/python3
"""Other calls the filter refuses with EPERM, each made harmless: reboot with
bad magic numbers (EINVAL if allowed), swapon of a file that does not exist,
userfaultfd (a use-after-free exploitation aid; the fd is closed at once),
iopl(0) and ioperm(0, 0, 0) (no port access requested).
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
O_CLOEXEC = 0o2000000


def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    e = ctypes.get_errno()
    if r >= 0:
        if nr == 323:
            os.close(r)
        return "ok"
    return errno.errorcode.get(e, str(e))


res = {
    "reboot": call(169, 0, 0, 0, 0),
    "swapon": call(167, b"/mnt/build/no-such-swap-file", 0),
    "userfaultfd": call(323, O_CLOEXEC),
    "iopl": call(172, 0),
    "ioperm": call(173, 0, 0, 0),
}
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
