#!/usr/bin/python3
"""The kernel keyring (not namespaced: keys of the host's users live there):
keyctl, add_key and request_key are refused. Harmless if allowed: a key added
to this process's own keyring dies with it.
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_add_key, SYS_request_key, SYS_keyctl = 248, 249, 250
KEYCTL_GET_KEYRING_ID = 0
KEY_SPEC_PROCESS_KEYRING, KEY_SPEC_SESSION_KEYRING = -2, -3


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    e = ctypes.get_errno()
    return "ok" if r >= 0 else errno.errorcode.get(e, str(e))


res = {
    "keyctl": syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
    "add_key": syscall(SYS_add_key, b"user", b"debate-sandbox-test", b"x", 1, KEY_SPEC_PROCESS_KEYRING),
    "request_key": syscall(SYS_request_key, b"user", b"debate-sandbox-test", 0, 0),
}
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
