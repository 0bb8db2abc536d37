#!/bin/sh
# Installs the Debian packages Tessera builds against, only those missing.
# Detects with dpkg first; runs apt-get only when something is absent.
set -e
need="gcc make libopenblas-pthread-dev libhwloc-dev libnuma-dev libpcre2-dev"
missing=""
for p in $need; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
