#!/usr/bin/python3
"""Make a nested user namespace (the door to a fresh set of capabilities):
unshare(CLONE_NEWUSER) and clone(CLONE_NEWUSER) are refused by the filter.
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os
import signal

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_clone, SYS_unshare = 56, 272
CLONE_NEWUSER = 0x10000000


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    e = ctypes.get_errno()
    return r, (errno.errorcode.get(e, str(e)) if r == -1 else None)


r, unshare = syscall(SYS_unshare, CLONE_NEWUSER)
unshare = unshare or "unshared"
r, clone = syscall(SYS_clone, CLONE_NEWUSER | signal.SIGCHLD, 0, 0, 0, 0)
if r == 0:
    os._exit(0)             # the child, in a new user namespace: leave at once
if r > 0:
    os.waitpid(r, 0)
    clone = "cloned"
print(f"unshare(CLONE_NEWUSER): {unshare}; clone(CLONE_NEWUSER): {clone}")
print("RESULT: " + (unshare if unshare == clone else f"unshare={unshare};clone={clone}"), flush=True)
