#!/bin/sh
# Runs inside the cgroup v2 machine of test_cgroup2.py, from
# debate-cgroup2.service (root, Delegate=yes), with the test disk on /mnt/t
# and its output on the serial console. Every line the host checks starts
# with CGROUP2-; the last one is the marker CGROUP2-DONE. Results and logs
# also go to /mnt/t/out.
T=/mnt/t
OUT=$T/out
mkdir -p "$OUT" "$T/tmp" "$T/data"
# The console's getty would hang up the serial line under this script:
# stop it, then run again with the output on the line and in a file.
if [ -z "$CGROUP2_CONSOLE" ]; then
    systemctl stop serial-getty@ttyS0.service
    CGROUP2_CONSOLE=1 sh "$0" 2>&1 | tee "$OUT/console.log" > /dev/ttyS0
    exit 0
fi
export TMPDIR="$T/tmp" DEBATE_DATA_DIR="$T/data"
DEBATE="$T/build/debate"

say() {
    echo "$*"
    echo "$*" >> "$OUT/summary"
}

# phase NAME: prints the seconds since the last phase, so slow parts show.
last=$(date +%s)
phase() {
    now=$(date +%s)
    say "CGROUP2-TIME $1 $((now - last))"
    last=$now
}

# The machine: the unified hierarchy only, with the controllers at its root.
say "CGROUP2-FSTYPE $(stat -fc %T /sys/fs/cgroup)"
say "CGROUP2-CONTROLLERS $(cat /sys/fs/cgroup/cgroup.controllers)"
say "CGROUP2-V1-MOUNTS $(awk '$3 == "cgroup" { n++ } END { print n + 0 }' /proc/mounts)"
say "CGROUP2-SELF $(cut -d: -f3 /proc/self/cgroup)"
say "CGROUP2-KERNEL $(uname -r) systemd $(systemctl --version | head -n 1 | cut -d' ' -f2)"

# probe NAME COMMAND...: runs COMMAND (a debate sandbox holding
# /mnt/in/hold.sh), and while the payload sleeps prints the cgroup it is in
# and the cgroups of the debate processes with what each hands out.
probe() {
    name=$1
    shift
    "$@" > "$OUT/probe-$name.log" 2>&1 &
    bg=$!
    pid=
    tries=0
    while [ -z "$pid" ] && [ $tries -lt 600 ] && kill -0 $bg 2> /dev/null; do
        sleep 0.2
        pid=$(pgrep -f 'sleep 15.3' | head -n 1)
        tries=$((tries + 1))
    done
    if [ -n "$pid" ]; then
        say "CGROUP2-PROBE $name payload $(cut -d: -f3 /proc/$pid/cgroup)"
        cgroup_state "/sys/fs/cgroup$(dirname "$(cut -d: -f3 /proc/$pid/cgroup)")"
        for d in $(pgrep -f "^$DEBATE sandbox"); do
            cg=$(cut -d: -f3 /proc/$d/cgroup)
            say "CGROUP2-PROBE $name debate $cg"
            say "CGROUP2-PROBE $name control $cg [$(cat "/sys/fs/cgroup$cg/cgroup.subtree_control")]"
        done
    fi
    wait $bg
    say "CGROUP2-PROBE $name exit $?"
    cat "$OUT/probe-$name.log"
}

# cgroup_state DIR: what a cgroup offers, hands out and holds (for a failure's diagnosis).
cgroup_state() {
    echo "cgroup $1: controllers [$(cat "$1/cgroup.controllers")]" \
        "subtree_control [$(cat "$1/cgroup.subtree_control")] procs [$(cat "$1/cgroup.procs" | tr '\n' ' ')]"
}

# unit NAME DELEGATE EXEC: a service of systemd's made for a probe, in /run
# (systemd-run needs D-Bus, which the image leaves out).
unit() {
    cat > "/run/systemd/system/$1.service" << UNIT
[Service]
Type=oneshot
Delegate=$2
Environment=DEBATE_DATA_DIR=$DEBATE_DATA_DIR
StandardOutput=append:$OUT/$1.log
StandardError=append:$OUT/$1.log
ExecStart=$3
UNIT
}

HOLD="--in $T/probe --disk 64 --timeout 300 -- /mnt/in/hold.sh"
# Path (2) of sandbox_prepare_cgroups: debate alone in a delegated service.
unit debate-leaf-probe yes "$DEBATE sandbox $HOLD"
# Path (3): debate beside a shell in a cgroup of systemd's that is not
# delegated, as from a login session's scope.
unit debate-session-probe no "/bin/sh -c '$DEBATE sandbox $HOLD; exit \$?'"
systemctl daemon-reload
cgroup_state /sys/fs/cgroup
probe leaf systemctl start debate-leaf-probe.service
cat "$OUT/debate-leaf-probe.log"
probe session systemctl start debate-session-probe.service
cat "$OUT/debate-session-probe.log"
cgroup_state /sys/fs/cgroup
phase probes

cgroup_state /sys/fs/cgroup/system.slice/debate-cgroup2.service
# The C unit tests of the sandbox (sandbox_run's verdicts), from this
# service's cgroup, which holds this shell.
"$T/build/tests/test_sandbox" > "$OUT/unit.log" 2>&1
say "CGROUP2-UNIT-RC $?"
say "CGROUP2-UNIT-SUMMARY $(tail -n 1 "$OUT/unit.log")"
cat "$OUT/unit.log"
cgroup_state /sys/fs/cgroup
cgroup_state /sys/fs/cgroup/system.slice/debate-cgroup2.service
phase unit

# The escape corpus and the limits, through debate sandbox.
cd "$T/tests/integration" || exit 1
DEBATE_BIN="$DEBATE" DEBATE_TEST_CORPUS_BIN="$T/corpus-bin" \
    python3 -m pytest -q -rfEs -p no:cacheprovider test_sandbox.py > "$OUT/pytest.log" 2>&1
say "CGROUP2-PYTEST-RC $?"
say "CGROUP2-PYTEST-SUMMARY $(tail -n 1 "$OUT/pytest.log")"
grep -E '^(FAILED|ERROR|SKIPPED)' "$OUT/pytest.log" | head -n 40
phase pytest

# What the runs left: no build cgroup anywhere.
say "CGROUP2-LEFT $(find /sys/fs/cgroup -name 'debate-sandbox-*' -type d | wc -l)"
say "CGROUP2-BUILDS $(ls -d /sys/fs/cgroup/debate-builds 2> /dev/null)"
sync
say "CGROUP2-DONE"
