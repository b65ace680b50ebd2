#!/usr/bin/python3
"""Make device nodes for the host's disk (block 8:0, sda) and memory (char
1:1, /dev/mem): needs CAP_MKNOD in the host's user namespace. Harmless if
allowed: the nodes are never opened.
Expected: RESULT: EPERM
"""
import errno
import os
import stat

res = {}
for path, kind, dev in (("/mnt/build/sda", stat.S_IFBLK, os.makedev(8, 0)),
                        ("/tmp/sda", stat.S_IFBLK, os.makedev(8, 0)),
                        ("/mnt/build/mem", stat.S_IFCHR, os.makedev(1, 1))):
    try:
        os.mknod(path, kind | 0o600, dev)
        res[path] = "made"
    except OSError as e:
        res[path] = errno.errorcode.get(e.errno, str(e.errno))
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k}={v}" for k, v in res.items())), flush=True)
