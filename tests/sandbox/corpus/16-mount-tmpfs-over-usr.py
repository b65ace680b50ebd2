#!/usr/bin/python3
"""mount(2) is allowed, but only in the sandbox's own mount namespace: mount a
tmpfs over /usr, write a marker into it, check the sandbox now sees the empty
tmpfs, unmount it. The test checks the host's /usr has no marker and no such
mount. Refuses to try if it is not in a mount namespace other than the host's
(argv[1] is the host's /proc/self/ns/mnt link) or not in a user namespace.
Expected: RESULT: private-mount
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
MARK = "/usr/.debate-sandbox-mount-marker"

with open("/proc/self/uid_map") as f:
    uid_map = f.read().split()
if os.readlink("/proc/self/ns/mnt") == (sys.argv[1:] or [""])[0] or uid_map[:2] == ["0", "0"]:
    print("RESULT: not-isolated", flush=True)
    sys.exit(0)

ctypes.set_errno(0)
if libc.mount(b"debate-evil-usr", b"/usr", b"tmpfs", 0, b"size=1m,mode=0755") != 0:
    e = ctypes.get_errno()
    print(f"mount tmpfs on /usr: {os.strerror(e)}")
    print(f"RESULT: {errno.errorcode.get(e, str(e))}", flush=True)
    sys.exit(0)
with open(MARK, "w") as f:
    f.write("written inside the sandbox\n")
listing = os.listdir("/usr")
print("/usr after the mount:", listing)
covered = listing == [os.path.basename(MARK)]
ctypes.set_errno(0)
unmounted = libc.umount2(b"/usr", MNT_DETACH) == 0
print("unmounted:", unmounted, os.strerror(ctypes.get_errno()) if not unmounted else "")
restored = os.path.isdir("/usr/bin") and not os.path.exists(MARK)
print("RESULT: " + ("private-mount" if covered and unmounted and restored
                    else f"covered={covered};unmounted={unmounted};restored={restored}"), flush=True)
