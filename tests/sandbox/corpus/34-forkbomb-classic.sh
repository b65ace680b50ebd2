#!/bin/sh
# The classic shell fork bomb, re-lit forever: the sandbox's process limit
# (--pids) must stop the whole tree. The ulimit is a seat belt that keeps it
# finite on a broken sandbox (RLIMIT_NPROC, "ulimit -p" in dash, also binds
# root inside a user namespace).
# Expected: exit 125, "process limit of N reached"
ulimit -p 2048 2>/dev/null || ulimit -u 2048 2>/dev/null
bomb() { bomb | bomb & }
bomb
while :; do
    bomb 2>/dev/null
    sleep 1 2>/dev/null
done
echo "RESULT: survived"
