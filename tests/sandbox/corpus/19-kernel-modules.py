#!/usr/bin/python3
"""Load or unload kernel modules. Harmless if allowed: init_module gets a NULL
image of length 0 (EFAULT/EINVAL from the kernel), finit_module an invalid fd
(EBADF), delete_module a module name that does not exist (ENOENT).
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_init_module, SYS_delete_module, SYS_finit_module = 175, 176, 313
O_NONBLOCK = 0o4000


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


res = {
    "init_module": syscall(SYS_init_module, 0, 0, b""),
    "finit_module": syscall(SYS_finit_module, -1, b"", 0),
    "delete_module": syscall(SYS_delete_module, b"debate_no_such_module", O_NONBLOCK),
}
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
