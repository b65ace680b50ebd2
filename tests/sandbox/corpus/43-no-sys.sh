#!/bin/sh
# /sys (kernel objects, cgroup files, device attributes) is not there.
# Expected: RESULT: ENOENT
if [ -e /sys ] || [ -L /sys ]; then
    ls -la /sys 2>&1 | head -20
    echo "RESULT: present"
else
    echo "RESULT: ENOENT"
fi
