#!/bin/sh
# DNS through the C library's resolver (getent): there is no network and no
# name server, so a real name must not resolve.
# Expected: RESULT: no-dns
grep -s nameserver /etc/resolv.conf && echo "resolv.conf names a server"
out=$(timeout 20 getent hosts deb.debian.org 2>&1)
rc=$?
echo "getent hosts deb.debian.org: exit $rc: $out"
out6=$(timeout 20 getent ahosts debian.org 2>&1)
rc6=$?
echo "getent ahosts debian.org: exit $rc6: $out6"
if [ "$rc" = 2 ] && [ "$rc6" = 2 ]; then
    echo "RESULT: no-dns"
elif [ "$rc" = 0 ] || [ "$rc6" = 0 ]; then
    echo "RESULT: resolved"
else
    echo "RESULT: getent-exit-$rc-$rc6"
fi
