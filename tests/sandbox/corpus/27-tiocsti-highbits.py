#!/usr/bin/python3
"""TIOCSTI with high bits set in the request number: the kernel takes the
request as a 32-bit unsigned int, so (1<<32)|TIOCSTI and
0xffffffff00000000|TIOCSTI ARE TIOCSTI to it (the CVE-2019-10063 bypass of
filters that compare all 64 bits): they must be refused with EPERM. Bit 31
(0x80000000|TIOCSTI) makes another, unknown request: EPERM or ENOTTY.
Done on a private pty that is the controlling terminal of a child in its own
session, so an unfiltered call would really inject (harmlessly, into a pty
nobody reads).
Expected: RESULT: EPERM
"""
import ctypes
import errno
import fcntl
import os
import termios

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_ioctl = 16
TIOCSTI = 0x5412
HIGH = {"1<<32": (1 << 32) | TIOCSTI, "0xffffffff<<32": 0xFFFFFFFF00000000 | TIOCSTI}
BIT31 = 0x80000000 | TIOCSTI


def ioctl(fd, req, arg):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_ioctl), ctypes.c_long(fd), ctypes.c_ulong(req), ctypes.c_void_p(arg))
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


def attack():
    master, slave = os.openpty()
    os.setsid()
    try:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    except OSError:
        pass
    c = ctypes.c_char(b"#")
    out = [f"{k}={ioctl(slave, v, ctypes.addressof(c))}" for k, v in HIGH.items()]
    out.append(f"bit31={ioctl(slave, BIT31, ctypes.addressof(c))}")
    return ";".join(out)


rfd, wfd = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        res = attack()
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        res = f"error:{e!r}"
    os.write(wfd, res.encode())
    os._exit(0)
os.close(wfd)
res = os.read(rfd, 4096).decode()
os.waitpid(pid, 0)
print("TIOCSTI with high bits on a private pty:", res)
parts = dict(p.split("=", 1) for p in res.split(";") if "=" in p)
high_ok = all(parts.get(k) == "EPERM" for k in HIGH)
print("RESULT: " + ("EPERM" if high_ok and parts.get("bit31") in ("EPERM", "ENOTTY") else res), flush=True)
