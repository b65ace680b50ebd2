#!/bin/sh
# No host /home, /root, /run, /var, /srv, /opt, /boot, /media, /sys: the root
# holds only usr, etc, dev, proc, tmp, mnt and the usr-merge symlinks; any
# other entry must be an empty directory. /mnt holds only build and in.
# Expected: RESULT: no-host-dirs
ls -la /
bad=""
for e in /* /.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e#/}
    case "$n" in
        usr|etc|dev|proc|tmp|mnt) continue ;;
    esac
    if [ -L "$e" ]; then
        case "$(readlink "$e")" in
            usr/*|/usr/*) continue ;;
        esac
        bad="$bad,$n"
    elif [ -d "$e" ] && [ -z "$(ls -A "$e" 2>/dev/null)" ]; then
        continue
    else
        bad="$bad,$n"
    fi
done
for e in /mnt/*; do
    case "$e" in
        /mnt/build|/mnt/in) ;;
        *) [ -e "$e" ] && bad="$bad,$e" ;;
    esac
done
if [ -z "$bad" ]; then echo "RESULT: no-host-dirs"; else echo "RESULT: host-dirs:${bad#,}"; fi
