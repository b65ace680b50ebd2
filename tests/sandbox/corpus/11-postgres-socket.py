#!/usr/bin/python3
"""Reach the host's PostgreSQL through its unix socket: no host /run, /var
or /tmp in the sandbox.
Expected: RESULT: ENOENT
"""
import errno
import os
import socket

results = {}
for path in ("/var/run/postgresql/.s.PGSQL.5432", "/run/postgresql/.s.PGSQL.5432",
             "/run/postgresql", "/var/run/postgresql", "/tmp/.s.PGSQL.5432"):
    try:
        os.stat(path)
        results[path] = "exists"
    except OSError as e:
        results[path] = errno.errorcode.get(e.errno, str(e.errno))
for path in ("/var/run/postgresql/.s.PGSQL.5432", "/run/postgresql/.s.PGSQL.5432"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        results["connect " + path] = "connected"
    except OSError as e:
        results["connect " + path] = errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()
for k, v in results.items():
    print(f"{k}: {v}")
values = set(results.values())
print("RESULT: " + (values.pop() if len(values) == 1 else "mixed:" + ",".join(sorted(values))), flush=True)
