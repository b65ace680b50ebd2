#!/usr/bin/python3
"""Connect to addresses outside the machine: with only lo, there is no route.
IPv6 may be unreachable or not configured at all; both are fine.
Expected: RESULT: ENETUNREACH
"""
import errno
import socket


def attempt(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(addr)
        return "connected"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
    finally:
        s.close()


v4 = [attempt(socket.AF_INET, a) for a in (("1.1.1.1", 53), ("9.9.9.9", 443), ("10.0.2.2", 80))]
try:
    v6 = attempt(socket.AF_INET6, ("2606:4700:4700::1111", 443, 0, 0))
except OSError as e:
    v6 = errno.errorcode.get(e.errno, str(e.errno))
print("IPv4:", v4, "IPv6:", v6)
if set(v4) == {"ENETUNREACH"} and v6 in ("ENETUNREACH", "EAFNOSUPPORT", "EADDRNOTAVAIL", "EHOSTUNREACH"):
    print("RESULT: ENETUNREACH", flush=True)
else:
    print(f"RESULT: v4={','.join(v4)};v6={v6}", flush=True)
