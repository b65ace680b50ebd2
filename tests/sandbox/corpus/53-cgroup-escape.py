#!/usr/bin/python3
"""Escape or loosen the resource limits through cgroup file systems (mount is
allowed): mount cgroup v1 hierarchies and cgroup2 inside, then check that
release_agent (CVE-2022-0492: runs a program as host root) cannot be opened
for writing anywhere, nor the limits (memory, pids, cpu) of the cgroup at the
root of what the sandbox sees (its own; limits of cgroups below it are the
sandbox's business, a delegated subtree). Nothing is ever written. A refused
mount is fine too.
Expected: RESULT: contained
"""
import ctypes
import errno
import os

libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
ANYWHERE = ("release_agent",)
AT_ROOT = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.max", "memory.swap.max",
           "memory.high", "pids.max", "cpu.max", "cpu.cfs_quota_us", "cpuacct.usage")
writable = []


def check_tree(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            if name in ANYWHERE or (dirpath == root and name in AT_ROOT):
                path = os.path.join(dirpath, name)
                try:
                    fd = os.open(path, os.O_WRONLY)
                    os.close(fd)
                    writable.append(path)
                except OSError:
                    pass


for fstype, opts in (("cgroup", "memory"), ("cgroup", "pids"), ("cgroup", "cpu"), ("cgroup", "rdma"),
                     ("cgroup", "none,name=debate-escape"), ("cgroup2", None)):
    target = f"/tmp/cg-{fstype}-{(opts or 'v2').replace(',', '-').replace('=', '-')}"
    os.makedirs(target, exist_ok=True)
    ctypes.set_errno(0)
    r = libc.mount(fstype.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(0),
                   opts.encode() if opts else None)
    e = ctypes.get_errno()
    if r != 0:
        print(f"mount {fstype} {opts}: {errno.errorcode.get(e, e)}")
        continue
    print(f"mount {fstype} {opts}: mounted, holds {sorted(os.listdir(target))[:12]}")
    check_tree(target)
    libc.umount2(target.encode(), MNT_DETACH)
# A cgroup file system the sandbox itself may have mounted.
for root in ("/sys/fs/cgroup", "/proc/self/root/sys/fs/cgroup"):
    if os.path.isdir(root):
        check_tree(root)
for w in writable:
    print("writable:", w)
print("RESULT: " + ("contained" if not writable else "writable:" + ",".join(writable)), flush=True)
