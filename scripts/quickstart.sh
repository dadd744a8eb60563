#!/usr/bin/env bash
# A newcomer's first command: install the dependencies, build, and start `ingot serve` on its
# embedded defaults (HTTP on 127.0.0.1:8080, data in ./ingot-data). Extra arguments go to serve.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
make -j"$(nproc)"
exec build/ingot serve "$@"
