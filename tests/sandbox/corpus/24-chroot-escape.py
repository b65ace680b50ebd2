#!/usr/bin/python3
"""The classic chroot escapes: chroot into a subdirectory while keeping the
working directory (or an fd) outside it, climb with "..", chroot("."). The
sandbox's root must be the real root of its mount namespace (pivot_root, not
chroot), so climbing ends at the sandbox's root: the host's /etc/shadow is
still absent and the host's /root (a canary file the test made, named in
argv[1]) is still invisible.
Expected: RESULT: contained
"""
import errno
import os
import sys

canary = sys.argv[1]


def probe(where):
    try:
        open("/etc/shadow", "rb").close()
        shadow = "readable"
    except OSError as e:
        shadow = errno.errorcode.get(e.errno, str(e.errno))
    seen = os.path.lexists("/root/" + canary) or os.path.lexists("/proc/1/root/root/" + canary)
    print(f"{where}: /etc/shadow {shadow}, host canary visible: {seen}, / holds {sorted(os.listdir('/'))}")
    return shadow in ("ENOENT",) and not seen


ok = probe("before")
os.makedirs("/mnt/build/jail/inner", exist_ok=True)
outside = os.open("/", os.O_RDONLY | os.O_DIRECTORY)

# 1: chroot into a subdirectory, cwd stays outside, climb, chroot(".").
os.chdir("/mnt/build")
try:
    os.chroot("jail")
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    ok = probe("after the cwd escape") and ok
except OSError as e:
    print("cwd escape: chroot refused:", errno.errorcode.get(e.errno, e.errno))

# 2: chroot deeper, fchdir to an fd opened outside, climb, chroot(".").
try:
    os.chroot("/mnt/build/jail/inner")
    os.fchdir(outside)
    for _ in range(64):
        os.chdir("..")
    os.chroot(".")
    ok = probe("after the fd escape") and ok
except OSError as e:
    print("fd escape: chroot refused:", errno.errorcode.get(e.errno, e.errno))

# 3: through /proc/1/root (the sandbox's init: its root is the sandbox's).
try:
    open("/proc/1/root/etc/shadow", "rb").close()
    print("/proc/1/root/etc/shadow readable")
    ok = False
except OSError as e:
    print("/proc/1/root/etc/shadow:", errno.errorcode.get(e.errno, e.errno))
print("RESULT: " + ("contained" if ok else "escaped"), flush=True)
