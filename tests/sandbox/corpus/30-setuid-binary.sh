#!/bin/sh
# A setuid-root binary made inside the sandbox, run by an unprivileged user
# (nobody, 65534): no_new_privs (and a nosuid build disk) must keep the
# effective uid at 65534.
# Expected: RESULT: euid=65534
cp /usr/bin/id /mnt/build/suid-id || { echo "RESULT: cannot-copy"; exit 0; }
chmod 4755 /mnt/build/suid-id
ls -ln /mnt/build/suid-id
grep ' /mnt/build ' /proc/self/mountinfo
euid=$(/usr/bin/python3 -c '
import os
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
os.execv("/mnt/build/suid-id", ["suid-id", "-u"])
' 2>/tmp/err)
rc=$?
cat /tmp/err
if [ "$rc" != 0 ]; then
    echo "RESULT: drop-failed-$rc"
else
    echo "RESULT: euid=$euid"
fi
