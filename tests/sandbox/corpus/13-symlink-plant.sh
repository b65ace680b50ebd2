#!/bin/sh
# Plant symlinks in the build directory that point at host paths, for a
# careless host-side step that would later follow them (the test checks the
# host paths are unchanged). The write through "victim" goes to a directory
# the test owns on the host ($1), never to a real host file.
# Expected: RESULT: planted
victim_dir="$1"
cd /mnt/build || { echo "RESULT: no-build-dir"; exit 0; }
ln -s /etc/shadow out
ln -s ../../../../../../../etc/passwd passwd-link
ln -s "$victim_dir/victim" victim
mkdir -p nested && ln -s / nested/host-root
ln -s /proc/1/root/etc proc-root-etc
# Inside the sandbox the targets do not exist (or are read-only).
if (echo pwned > victim) 2>/dev/null; then wrote=yes; else wrote=no; fi
if cat out >/dev/null 2>&1; then shadow=readable; else shadow=unreadable; fi
ls -l /mnt/build
if [ -L out ] && [ -L passwd-link ] && [ -L victim ] && [ "$wrote" = no ] && [ "$shadow" = unreadable ]; then
    echo "RESULT: planted"
else
    echo "RESULT: wrote-$wrote-shadow-$shadow"
fi
