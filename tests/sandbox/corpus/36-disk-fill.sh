#!/bin/sh
# Fill the build disk: 256 MiB of zeros into a 64 MiB disk (bounded, so a
# broken sandbox costs the host at most 256 MiB in the debate work directory).
# Expected: exit 125, "disk limit of 64 MiB reached" (the hook itself sees ENOSPC)
dd if=/dev/zero of=/mnt/build/fill bs=1M count=256 2>/tmp/dd.err
rc=$?
cat /tmp/dd.err
if grep -q "No space left" /tmp/dd.err; then
    echo "RESULT: ENOSPC"
else
    echo "RESULT: wrote-256MiB"
fi
exit $rc
