#!/usr/bin/python3
"""Positive check of the network namespace: the only interface is lo, it is
up, and a server on the sandbox's own loopback is reachable.
Expected: RESULT: lo-only-up
"""
import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1

with open("/proc/net/dev") as f:
    names = sorted(line.split(":", 1)[0].strip() for line in f.read().splitlines()[2:] if ":" in line)
print("interfaces:", " ".join(names))

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    ifr = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
    up = bool(struct.unpack("16sH14x", ifr)[1] & IFF_UP)
except OSError as e:
    print("SIOCGIFFLAGS lo:", e)
    up = False
s.close()

loopback = False
try:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=5)
    conn, _ = srv.accept()
    c.sendall(b"ping")
    loopback = conn.recv(4) == b"ping"
    for x in (c, conn, srv):
        x.close()
except OSError as e:
    print("loopback:", e)

if names == ["lo"] and up and loopback:
    print("RESULT: lo-only-up", flush=True)
else:
    print(f"RESULT: interfaces={','.join(names)};up={up};loopback={loopback}", flush=True)
