#!/bin/sh
# Positive check: no_new_privs is set and a seccomp filter is installed.
# Expected: RESULT: nnp1-seccomp2
nnp=$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)
sec=$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status)
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
echo "RESULT: nnp${nnp:-none}-seccomp${sec:-none}"
