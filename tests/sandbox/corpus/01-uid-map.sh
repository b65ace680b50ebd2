#!/bin/sh
# Positive check: root inside is host uid/gid 100000 (range 65536), so no
# capability the hook holds applies outside its own user namespace.
# Expected: RESULT: mapped
set -- $(cat /proc/self/uid_map)
uid="$*"
set -- $(cat /proc/self/gid_map)
gid="$*"
echo "uid_map: $uid"
echo "gid_map: $gid"
echo "id: $(id -u):$(id -g)"
if [ "$uid" = "0 100000 65536" ] && [ "$gid" = "0 100000 65536" ]; then
    echo "RESULT: mapped"
else
    echo "RESULT: unmapped"
fi
