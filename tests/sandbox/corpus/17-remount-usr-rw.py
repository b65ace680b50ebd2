#!/usr/bin/python3
"""Make /usr writable: remount the (host-locked, read-only) bind mount without
MS_RDONLY, remount its superblock, and bind it elsewhere then remount that
copy read-write. Each must fail with EPERM; a file written into /usr
afterwards must fail too (marker name unique, the test looks for it).
Refuses to try outside a user namespace or in the host's mount namespace
(argv[1] is the host's /proc/self/ns/mnt link).
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
MNT_DETACH = 2


def mount(src, target, fstype, flags, data=None):
    ctypes.set_errno(0)
    r = libc.mount(src, target, fstype, ctypes.c_ulong(flags), data)
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


with open("/proc/self/uid_map") as f:
    if os.readlink("/proc/self/ns/mnt") == (sys.argv[1:] or [""])[0] or f.read().split()[:2] == ["0", "0"]:
        print("RESULT: not-isolated", flush=True)
        sys.exit(0)

res = {}
res["bind-remount rw"] = mount(None, b"/usr", None, MS_REMOUNT | MS_BIND)
res["bind-remount rw,nosuid,nodev"] = mount(None, b"/usr", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
res["superblock remount rw"] = mount(None, b"/usr", None, MS_REMOUNT)
os.makedirs("/tmp/usr-copy", exist_ok=True)
bound = mount(b"/usr", b"/tmp/usr-copy", None, MS_BIND)
print("bind /usr to /tmp/usr-copy:", bound)
if bound == "ok":
    res["copy remount rw"] = mount(None, b"/tmp/usr-copy", None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
    libc.umount2(b"/tmp/usr-copy", MNT_DETACH)
try:
    with open("/usr/.debate-sandbox-rw-marker", "w") as f:
        f.write("escaped\n")
    write = "wrote"
except OSError as e:
    write = errno.errorcode.get(e.errno, str(e.errno))
for k, v in res.items():
    print(f"{k}: {v}")
print("write into /usr afterwards:", write)
if set(res.values()) == {"EPERM"} and write in ("EROFS", "EACCES"):
    print("RESULT: EPERM", flush=True)
else:
    print("RESULT: " + ";".join(f"{k.replace(' ', '_')}={v}" for k, v in res.items()) + f";write={write}",
          flush=True)
