#!/usr/bin/python3
"""TIOCSTI (push a character into a terminal's input) on a private pty made
the controlling terminal of a child in its own session, so that without the
filter the kernel would accept it (or refuse with EIO where
dev.tty.legacy_tiocsti=0): the filter must answer EPERM whatever the fd.
Also on stdin (/dev/null), where the kernel alone would say ENOTTY.
Harmless if allowed: the character lands in a pty nobody reads.
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


def ioctl(fd, req, arg):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_ioctl), ctypes.c_long(fd), ctypes.c_ulong(req), ctypes.c_void_p(arg))
    e = ctypes.get_errno()
    return "ok" if r == 0 else errno.errorcode.get(e, str(e))


def in_child(fn):
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            out = f"error:{e!r}"
        os.write(wfd, out.encode())
        os._exit(0)
    os.close(wfd)
    out = os.read(rfd, 4096).decode()
    os.waitpid(pid, 0)
    return out


def attack():
    try:
        master, slave = os.openpty()
    except OSError as e:
        return "no-pty:" + errno.errorcode.get(e.errno, str(e.errno))
    os.setsid()
    try:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        ctty = "ctty"
    except OSError as e:
        ctty = "no-ctty:" + errno.errorcode.get(e.errno, str(e.errno))
    c = ctypes.c_char(b"#")
    return f"{ioctl(slave, TIOCSTI, ctypes.addressof(c))} ({ctty})"


pty = in_child(attack)
c = ctypes.c_char(b"#")
stdin = ioctl(0, TIOCSTI, ctypes.addressof(c))
print(f"TIOCSTI on a private pty: {pty}; on stdin: {stdin}")
pty_errno = pty.split(" ")[0]
print("RESULT: " + (stdin if pty_errno == stdin else f"pty={pty_errno};stdin={stdin}"), flush=True)
