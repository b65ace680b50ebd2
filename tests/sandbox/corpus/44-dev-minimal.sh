#!/bin/sh
# /dev holds only null zero full random urandom pts ptmx shm fd stdin stdout
# stderr: no host disks (sda, vda, nvme, loop*), no mem/kmem/port/kmsg, and no
# block device anywhere below it.
# Expected: RESULT: minimal
ls -la /dev
allowed=" null zero full random urandom pts ptmx shm fd stdin stdout stderr "
extra=""
for e in /dev/* /dev/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e#/dev/}
    case "$allowed" in
        *" $n "*) ;;
        *) extra="$extra,$n" ;;
    esac
done
blk=$(find /dev -type b 2>/dev/null | tr '\n' ',')
if [ -z "$extra" ] && [ -z "$blk" ]; then
    echo "RESULT: minimal"
elif [ -n "$blk" ]; then
    echo "RESULT: block-devices:$blk"
else
    echo "RESULT: extra:${extra#,}"
fi
