#!/usr/bin/python3
"""Connect to an abstract unix socket a host process listens on (name in
argv[1], without the leading NUL): abstract names belong to the network
namespace, so the sandbox does not see it.
Expected: RESULT: ECONNREFUSED
"""
import errno
import socket
import sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect("\0" + sys.argv[1])
    s.sendall(b"escaped\n")
    res = "connected"
except socket.timeout:
    res = "timeout"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print(f"connect @{sys.argv[1]}: {res}")
print(f"RESULT: {res}", flush=True)
