#!/usr/bin/env bash
# bootstrap.sh: install every Debian package blocksim uses, if any is missing.
#
# Run as root it installs what is missing with apt-get and exits 0.
# Run as another user with something missing, it prints the exact apt-get
# line to run and exits 2. With nothing missing it exits 0 at once, so
# `make` targets may call it on every run.
set -eu

packages="build-essential pkg-config check libsubunit-dev libjansson-dev
libxxhash-dev zlib1g-dev clang libclang-rt-14-dev valgrind lcov qemu-utils
libnbd-dev libnbd-bin python3-libnbd nbdkit python3 fio qemu-system-x86 afl++
slurm-wlm munge help2man bash-completion chromium"

missing=""
for p in $packages; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: missing Debian packages:$missing" >&2
    echo "bootstrap: run as root: apt-get update && $line" >&2
    exit 2
fi

echo "bootstrap: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
