#!/bin/sh
# Installs the Debian packages Tessera builds against, only those missing.
# Detects with dpkg first; runs apt-get only when something is absent.
# --check: print the missing ones (space-separated, nothing when all are there
# or when this is not a dpkg system) and install nothing; the Makefile's
# pre-build check uses it.
set -e
# libmicrohttpd + cJSON: tessera serve (server/); libcurl: the load driver (bench/).
need="gcc make libopenblas-pthread-dev libhwloc-dev libnuma-dev libpcre2-dev \
libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev"
command -v dpkg >/dev/null 2>&1 || exit 0
missing=""
for p in $need; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ "$1" = "--check" ]; then
    [ -n "$missing" ] && echo "$missing"
    exit 0
fi
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
