#!/bin/sh
# Positive check: the working directory is /mnt/build, a writable disk of
# --disk MB (64 here); /tmp is writable; /mnt/in (the corpus) is readable.
# Expected: RESULT: writable
ok=yes
cwd=$(pwd)
[ "$cwd" = /mnt/build ] || { echo "cwd is $cwd"; ok=no; }
echo hello > /mnt/build/probe && [ "$(cat /mnt/build/probe)" = hello ] || { echo "/mnt/build not writable"; ok=no; }
echo hello > /tmp/probe && [ "$(cat /tmp/probe)" = hello ] || { echo "/tmp not writable"; ok=no; }
[ -r "/mnt/in/$(basename "$0")" ] || { echo "/mnt/in not readable"; ok=no; }
set -- $(stat -f -c '%b %S' /mnt/build)
kib=$(( $1 * $2 / 1024 ))
echo "/mnt/build: $kib KiB"
if [ "$kib" -gt 65536 ] || [ "$kib" -lt 32768 ]; then
    echo "/mnt/build is not a 64 MiB disk"
    ok=no
fi
if [ "$ok" = yes ]; then echo "RESULT: writable"; else echo "RESULT: broken"; fi
