#!/usr/bin/python3
"""ptrace a host process (a sleeping process of the test, host PID in argv[1]):
the PID does not exist in the sandbox's PID namespace, and ptrace is refused
by the filter anyway. PTRACE_TRACEME (in a throwaway child) is refused too, and
process_vm_readv of the host PID fails.
Expected: RESULT: EPERM or ESRCH
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def syscall(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    e = ctypes.get_errno()
    return r, (errno.errorcode.get(e, str(e)) if r == -1 else None)


SYS_ptrace, SYS_process_vm_readv = 101, 310
PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_DETACH, PTRACE_SEIZE = 0, 16, 17, 0x4206

pid = int(sys.argv[1])
r, attach = syscall(SYS_ptrace, PTRACE_ATTACH, pid, 0, 0)
if r == 0:
    syscall(SYS_ptrace, PTRACE_DETACH, pid, 0, 0)
    attach = "attached"
r, seize = syscall(SYS_ptrace, PTRACE_SEIZE, pid, 0, 0)
if r == 0:
    syscall(SYS_ptrace, PTRACE_DETACH, pid, 0, 0)
    seize = "seized"

buf = ctypes.create_string_buffer(64)
local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = (ctypes.c_void_p * 2)(0x400000, 64)
r, vm = syscall(SYS_process_vm_readv, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0)
vm = vm or "read"

rfd, wfd = os.pipe()
child = os.fork()
if child == 0:
    r, e = syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0)
    os.write(wfd, (e or "traced").encode())
    os._exit(0)
os.close(wfd)
traceme = os.read(rfd, 64).decode()
os.waitpid(child, 0)

print(f"PTRACE_ATTACH {pid}: {attach}; PTRACE_SEIZE: {seize}; process_vm_readv: {vm}; PTRACE_TRACEME: {traceme}")
if attach == seize and vm in ("EPERM", "ESRCH") and traceme in ("EPERM", "ENOSYS"):
    print(f"RESULT: {attach}", flush=True)
else:
    print(f"RESULT: attach={attach};seize={seize};vm={vm};traceme={traceme}", flush=True)
