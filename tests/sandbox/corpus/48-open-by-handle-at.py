#!/usr/bin/python3
"""open_by_handle_at, the "shocker" escape: a forged handle (inode 2, the root
directory of the file system /usr lives on) opens a directory outside every
bind mount and chroot. Refused by the filter. Also with a NULL handle
(EFAULT from an unfiltered kernel). If the forged handle opened, nothing is
read through it: "opened" is the failure.
Expected: RESULT: EPERM
"""
import ctypes
import errno
import os
import struct

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_open_by_handle_at = 304
AT_FDCWD = -100
FILEID_INO32_GEN = 1


def open_by_handle(mount_fd, handle_addr):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(SYS_open_by_handle_at), ctypes.c_long(mount_fd),
                     ctypes.c_void_p(handle_addr), ctypes.c_long(os.O_RDONLY | os.O_DIRECTORY))
    e = ctypes.get_errno()
    if r >= 0:
        os.close(r)
        return "opened"
    return errno.errorcode.get(e, str(e))


res = {"NULL handle": open_by_handle(AT_FDCWD, None)}
# struct file_handle { unsigned int handle_bytes; int handle_type; unsigned char f_handle[8]; }
forged = ctypes.create_string_buffer(struct.pack("=Ii", 8, FILEID_INO32_GEN) + struct.pack("=II", 2, 0))
usr = os.open("/usr", os.O_RDONLY | os.O_DIRECTORY)
res["forged root handle"] = open_by_handle(usr, ctypes.addressof(forged))
os.close(usr)
print(res)
vals = set(res.values())
print("RESULT: " + (vals.pop() if len(vals) == 1 else ";".join(f"{k.replace(' ', '_')}={v}" for k, v in res.items())),
      flush=True)
