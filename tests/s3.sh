#!/usr/bin/env bash
# tests/s3.sh run CMD...: run CMD with an S3-compatible server for it.
#
# Starts s3rver (npm, installed by tests/readers' package.json into tests/readers/node_modules;
# this script installs nothing) on 127.0.0.1 and a free port, with a fresh data directory and a
# bucket "ingot-test", exports
#   INGOT_TEST_S3_ENDPOINT=http://127.0.0.1:PORT  INGOT_TEST_S3_BUCKET=ingot-test
#   AWS_ACCESS_KEY_ID=S3RVER  AWS_SECRET_ACCESS_KEY=S3RVER
# runs CMD, stops the server and exits with CMD's status. S3RVER overrides the s3rver binary.
# If s3rver is missing it says so and exits 2 without running CMD.
set -u
cd "$(dirname "$0")/.." || exit 2
if [ "${1:-}" != run ] || [ $# -lt 2 ]; then
    echo "usage: tests/s3.sh run CMD..." >&2
    exit 2
fi
shift
S3RVER_BIN=${S3RVER:-tests/readers/node_modules/.bin/s3rver}
if [ ! -x "$S3RVER_BIN" ]; then
    echo "tests/s3.sh: $S3RVER_BIN not found (npm install in tests/readers)" >&2
    exit 2
fi
data_dir=$(mktemp -d /tmp/ingot-s3rver-XXXXXX) || exit 2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
bucket=ingot-test
# s3rver makes ListObjectsV2 continuation tokens with DES: Node 20's OpenSSL 3 needs its legacy
# provider for that (else every truncated listing is a 500).
NODE_OPTIONS="${NODE_OPTIONS:-} --openssl-legacy-provider" "$S3RVER_BIN" -d "$data_dir" -a 127.0.0.1 -p "$port" --silent --configure-bucket "$bucket" \
    >"$data_dir.log" 2>&1 &
server_pid=$!
stop() {
    kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$data_dir" "$data_dir.log"
}
trap stop EXIT
# wait (up to 15 s) until the bucket answers
ready=0
for _ in $(seq 1 150); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/$bucket', timeout=1)" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ $ready -ne 1 ]; then
    echo "tests/s3.sh: s3rver did not start:" >&2
    cat "$data_dir.log" >&2
    exit 2
fi
export INGOT_TEST_S3_ENDPOINT=http://127.0.0.1:$port INGOT_TEST_S3_BUCKET=$bucket
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
"$@"
exit $?
