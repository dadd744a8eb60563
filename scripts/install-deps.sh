#!/usr/bin/env bash
# Installs what ingot needs to build, run and test on Debian 12 (as root, or with sudo):
# the C libraries and tools from Debian (gRPC core and protobuf-c among them), PostgreSQL (a
# throwaway cluster for the catalog tests), Node.js + npm and the npm test clients of
# tests/readers (DuckDB, arrow-rs via parquet-wasm, apache-arrow, hyparquet, s3rver,
# @grpc/grpc-js), installed exactly as package-lock.json pins them.
set -eu
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config clang libclang-rt-14-dev \
    libmicrohttpd-dev libsqlite3-dev zlib1g-dev libzstd-dev libpq-dev libcurl4-openssl-dev libssl-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler \
    postgresql python3 curl sqlite3 ca-certificates
command -v npm >/dev/null || $SUDO apt-get install -y -q --no-install-recommends nodejs npm
(cd tests/readers && npm ci --no-audit --no-fund --loglevel=error)
