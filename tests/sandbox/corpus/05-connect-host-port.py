#!/usr/bin/python3
"""Connect to a TCP server the test runs on the host's 127.0.0.1 (port in
argv[1]): the sandbox's 127.0.0.1 is its own loopback, where nothing listens.
Expected: RESULT: ECONNREFUSED
"""
import errno
import socket
import sys

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(("127.0.0.1", port))
    s.sendall(b"escaped\n")
    print("RESULT: connected", flush=True)
except socket.timeout:
    print("RESULT: timeout", flush=True)
except OSError as e:
    print(f"connect 127.0.0.1:{port}: {e}")
    print(f"RESULT: {errno.errorcode.get(e.errno, e.errno)}", flush=True)
