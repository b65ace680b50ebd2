#!/usr/bin/python3
"""Push keystrokes into the caller's terminal through /dev/tty: the hook has no
controlling terminal (new session, stdin /dev/null) and /dev/tty is not even
in the sandbox's /dev. If it opened, nothing is injected: "opened" is the
failure.
Expected: RESULT: ENOENT, ENXIO or EIO
"""
import errno
import os

try:
    fd = os.open("/dev/tty", os.O_RDWR)
    os.close(fd)
    res = "opened"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print("open /dev/tty:", res)
print(f"RESULT: {res}", flush=True)
