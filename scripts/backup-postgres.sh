#!/bin/sh
# Runs debate's database backup (or its restore test) for cron:
#
#   backup-postgres.sh [backup|restore-test] [more debate options...]
#
# The command defaults to backup. --config "$DEBATE_CONFIG" is passed when
# DEBATE_CONFIG is set; $DEBATE_BIN names the binary (default
# /usr/local/bin/debate). What debate prints goes to syslog (tag
# debate-backup, priority user.info, user.err on failure) when logger(1) is
# installed, else to standard error. A failure is also written to standard
# error, so that cron mails it. The exit status is debate's: non-zero on
# failure. See deploy/cron/debate-backup.
set -u
umask 077

DEBATE_BIN=${DEBATE_BIN:-/usr/local/bin/debate}
TAG=debate-backup

cmd=backup
case "${1:-}" in
backup | restore-test)
    cmd=$1
    shift
    ;;
esac
if [ -n "${DEBATE_CONFIG:-}" ]; then
    set -- "$cmd" --config "$DEBATE_CONFIG" "$@"
else
    set -- "$cmd" "$@"
fi

out=$(mktemp "${TMPDIR:-/tmp}/debate-backup.XXXXXX") || {
    echo "$TAG: cannot create a temporary file" >&2
    exit 1
}
trap 'rm -f "$out"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

"$DEBATE_BIN" "$@" >"$out" 2>&1
rc=$?
[ "$rc" -ne 0 ] && echo "debate $cmd failed (exit status $rc)" >>"$out"

if command -v logger >/dev/null 2>&1; then
    prio=user.info
    [ "$rc" -ne 0 ] && prio=user.err
    logger -t "$TAG" -p "$prio" -f "$out" || cat "$out" >&2
    [ "$rc" -ne 0 ] && cat "$out" >&2
else
    cat "$out" >&2
fi
exit "$rc"
