#!/usr/bin/env bash
# Installs what ingot needs to build, run and test on Debian 12 (as root, or with sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config clang libclang-rt-14-dev \
    libmicrohttpd-dev libsqlite3-dev zlib1g-dev \
    python3 curl sqlite3 ca-certificates
