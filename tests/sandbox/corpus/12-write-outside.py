#!/usr/bin/python3
"""Write outside the build directory: /usr, /usr/bin, /etc, /, /mnt/in (the
host directory given with --in, read-only), and open existing host files for
writing (nothing is ever written to them). Marker names are unique so the test
can find (and remove) them on the host if anything got through.
Expected: RESULT: blocked
"""
import errno
import os

MARK = ".debate-sandbox-escape-marker"
outcome = {}
for d in ("/usr", "/usr/bin", "/usr/lib", "/etc", "/", "/mnt/in", "/mnt"):
    path = os.path.join(d, MARK)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"escaped\n")
        os.close(fd)
        outcome[path] = "wrote"
    except OSError as e:
        outcome[path] = errno.errorcode.get(e.errno, str(e.errno))
for path in ("/etc/passwd", "/usr/bin/id", "/mnt/in/01-uid-map.sh"):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.close(fd)
        outcome["open-for-write " + path] = "opened"
    except OSError as e:
        outcome["open-for-write " + path] = errno.errorcode.get(e.errno, str(e.errno))
for path in ("/usr/debate-sandbox-dir", "/debate-sandbox-dir", "/mnt/in/debate-sandbox-dir"):
    try:
        os.mkdir(path)
        os.rmdir(path)
        outcome["mkdir " + path] = "made"
    except OSError as e:
        outcome["mkdir " + path] = errno.errorcode.get(e.errno, str(e.errno))
for k, v in outcome.items():
    print(f"{k}: {v}")
bad = [k for k, v in outcome.items() if v not in ("EROFS", "EACCES", "EPERM")]
print("RESULT: " + ("blocked" if not bad else "not-blocked:" + ",".join(bad)), flush=True)
