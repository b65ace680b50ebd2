#!/bin/sh
# Daemonize (setsid + double fork, stdio detached) to outlive the build; the
# daemon carries the marker "sleep 8765.31" the test looks for on the host
# after the sandbox has exited.
# Expected: RESULT: daemonized (exit 0), and no "sleep 8765.31" left on the host
setsid sh -c 'sleep 8765.31 </dev/null >/dev/null 2>&1 &' </dev/null >/dev/null 2>&1
sleep 0.5
ps -eo pid,ppid,sid,args 2>/dev/null
if pgrep -f 'sleep 8765.31' >/dev/null; then
    echo "RESULT: daemonized"
else
    echo "RESULT: no-daemon"
fi
exit 0
