#!/usr/bin/python3
"""Load an eBPF program or make a map (a large kernel attack surface). Harmless
if allowed: the attribute pointer is NULL with size 0.
Expected: RESULT: EPERM
"""
import ctypes
import errno

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_bpf = 321
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_BTF_LOAD = 0, 5, 18


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    e = ctypes.get_errno()
    return "ok" if r >= 0 else errno.errorcode.get(e, str(e))


res = {name: syscall(SYS_bpf, cmd, 0, 0)
       for name, cmd in (("BPF_MAP_CREATE", BPF_MAP_CREATE), ("BPF_PROG_LOAD", BPF_PROG_LOAD),
                         ("BPF_BTF_LOAD", BPF_BTF_LOAD))}
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
