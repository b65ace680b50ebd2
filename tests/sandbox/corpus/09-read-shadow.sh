#!/bin/sh
# Read the host's secrets: /etc/shadow (and its friends) must not exist in
# the sandbox's /etc, which is a minimal one of its own.
# Expected: RESULT: ENOENT
res=ENOENT
for f in /etc/shadow /etc/gshadow /etc/shadow- /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_rsa_key \
         /etc/ssl/private; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        if cat "$f" >/dev/null 2>&1; then
            echo "$f: readable"
            res=readable
        else
            echo "$f: exists but is not readable"
            [ "$res" = ENOENT ] && res=exists
        fi
    else
        echo "$f: absent"
    fi
done
echo "RESULT: $res"
