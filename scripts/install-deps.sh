#!/bin/sh
# Installs the Debian packages debate needs to build, run and test, when
# they are missing. Idempotent: does nothing (and needs no network) when
# everything is there; runs `apt-get update` once otherwise.
set -eu

PACKAGES="build-essential pkg-config libh2o-evloop-dev libjansson-dev libssl-dev zlib1g-dev libpq-dev
postgresql postgresql-client curl openssl python3 python3-pytest ca-certificates
mmdebstrap xorriso squashfs-tools grub-efi-amd64-bin grub-pc-bin grub-common isolinux syslinux-common
mtools dosfstools zstd kmod xz-utils qemu-system-x86 ovmf faketime libseccomp-dev e2fsprogs iproute2"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

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
