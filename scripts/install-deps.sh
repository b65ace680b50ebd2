#!/bin/sh
# Installs the Debian packages debate needs to build, run and test, when
# they are missing. Idempotent: does nothing (and needs no network) when
# everything is there; runs `apt-get update` once otherwise.
#
# With --test, also the Debian packages only the tests use (clang for the
# fuzz targets, Caddy, the Debian package's tools), and the npm packages the
# browser and API-document tests use (each tests/*/package.json, installed
# exactly as its package-lock.json pins them, with the machine's own
# Node.js), again only when missing.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="build-essential pkg-config libh2o-evloop-dev libjansson-dev libssl-dev zlib1g-dev libpq-dev
postgresql postgresql-client curl openssl python3 python3-pytest ca-certificates
mmdebstrap xorriso squashfs-tools grub-efi-amd64-bin grub-pc-bin grub-common isolinux syslinux-common
mtools dosfstools zstd kmod xz-utils qemu-system-x86 ovmf faketime libseccomp-dev e2fsprogs iproute2
libcurl4-openssl-dev liblzma-dev python3-jsonschema chromium fonts-dejavu-core"
# Only the tests need these: clang and its libFuzzer and sanitizer runtimes
# for the fuzz targets `make test` replays; Caddy in front (test_caddy.py);
# the Debian package's build and check, systemd-analyze and man
# (test_deploy.py).
TEST_PACKAGES="clang libclang-rt-14-dev caddy debhelper dpkg-dev fakeroot lintian man-db systemd"
if [ "${1:-}" = "--test" ]; then
    PACKAGES="$PACKAGES $TEST_PACKAGES"
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "installing:$missing"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "need root (or sudo) to install:$missing" >&2; exit 1; }
        SUDO=sudo
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

[ "${1:-}" = "--test" ] || exit 0
for lock in tests/*/package-lock.json; do
    [ -f "$lock" ] || continue
    dir=$(dirname "$lock")
    # npm ci records what it installed; reinstall only when the lock changed.
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
        command -v npm >/dev/null 2>&1 || { echo "npm is needed for the tests in $dir (Node.js 18 or later)" >&2; exit 1; }
        echo "installing the npm packages of $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
done
