#!/usr/bin/python3
"""Replace the running kernel. Harmless if allowed: kexec_load gets no
segments, kexec_file_load invalid fds (EBADF), and neither is followed by a
reboot.
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_kexec_load, SYS_kexec_file_load = 246, 320


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


res = {
    "kexec_load": syscall(SYS_kexec_load, 0, 0, 0, 0),
    "kexec_file_load": syscall(SYS_kexec_file_load, -1, -1, 0, 0, 0),
}
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
