#!/usr/bin/python3
"""Resolve real names with getaddrinfo: no name server, no network.
Expected: RESULT: no-dns
"""
import socket

try:
    with open("/etc/resolv.conf") as f:
        servers = [l for l in f if l.strip().startswith("nameserver")]
except OSError as e:
    servers = []
    print("/etc/resolv.conf:", e)
print("name servers:", servers)

resolved = []
for name in ("deb.debian.org", "example.com"):
    try:
        infos = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
        resolved.append(f"{name}={infos[0][4][0]}")
    except socket.gaierror as e:
        print(f"{name}: {e}")
if resolved:
    print("RESULT: resolved:" + ",".join(resolved), flush=True)
elif servers:
    print("RESULT: name-servers-configured", flush=True)
else:
    print("RESULT: no-dns", flush=True)
