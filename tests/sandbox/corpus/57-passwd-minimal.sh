#!/bin/sh
# Positive check: /etc/passwd and /etc/group are the sandbox's own (root,
# apt's _apt and nobody), not the host's.
# Expected: RESULT: minimal
users=$(cut -d: -f1 /etc/passwd | sort | tr '\n' ' ')
groups=$(cut -d: -f1 /etc/group | sort | tr '\n' ' ')
u=$(echo $users | tr ' ' ',')
g=$(echo $groups | tr ' ' ',')
echo "users: $users"
echo "groups: $groups"
case "$groups" in
    "nobody root "|"nogroup root ") gok=yes ;;
    *) gok=no ;;
esac
if [ "$users" = "_apt nobody root " ] && [ "$gok" = yes ]; then
    echo "RESULT: minimal"
else
    echo "RESULT: users=$u;groups=$g"
fi
