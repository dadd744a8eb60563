#!/usr/bin/env bash
# bench/compare.sh: ingot against VictoriaMetrics and InfluxDB 1.x, in one run, on the same data,
# with the same client (../shared/bench: gen_lp.py + wrk + lpload.lua, interleaved run by run),
# on loopback; writes bench/RESULTS.md.
#
#   bench/compare.sh [--quick]
#
# 1. builds build/ingot; generates the TSBS cpu datasets (1,000 hosts, 1M rows, batches of 5,000
#    and of 1,000 lines) under /tmp/lpdata unless they are there;
# 2. runs ../shared/bench/compare.sh on each (CONNS="8 32", RUNS=3; --quick: one dataset, RUNS=1,
#    CONNS=8, 10 s runs), ingot with its default flags, every acknowledged write fsynced;
# 3. checks ingot's durability the way the harness cannot: the harness counts stored rows through
#    /api/v1/query_table, which serves only what ingot still buffers, so rows ingot persisted
#    during the load look missing ("SHORT"). Here every batch is sent exactly once to a fresh
#    ingot with default flags, ingot is stopped gracefully, and the distinct (hostname, time) rows
#    in its Parquet files are counted with DuckDB: they must equal the dataset's rows;
# 4. writes bench/RESULTS.md: the machine, the commit, the harness's tables and RATIO lines, the
#    p50/p99 request latency of each peer (bench/p99_table.py), and the Parquet check.
# Needs the packages of ../shared/bench/README.md (wrk, victoria-metrics, influxdb). Do not build
# or run anything else meanwhile: the machine's 2 cores are shared by all three servers and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SHARED_BENCH:-../shared/bench}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=${OUT:-/tmp/lpbench-results}
RESULTS=bench/RESULTS.md

make -j2 build/ingot >/dev/null
export INGOT_BIN=$PWD/build/ingot
datasets=(h1000-r1M-b5000)
[ $QUICK = 0 ] && datasets+=(h1000-r1M-b1000)
for d in "${datasets[@]}"; do
    batch=${d##*-b}
    [ -f /tmp/lpdata/$d/manifest.json ] ||
        python3 $B/gen_lp.py --hosts 1000 --rows 1000000 --seed 123 --batch "$batch" --out /tmp/lpdata/$d
done
if [ $QUICK = 1 ]; then
    export RUNS=1 CONNS=8 DURATION=10s WARMUP=3s
else
    export RUNS=${RUNS:-3} CONNS=${CONNS:-"8 32"}
fi

# the exactly-once pass against ingot with default flags, checked in its Parquet files
parquet_check() { # $1 = dataset dir; prints one markdown line
    local dir tmp pid port=18680 acked check
    dir=$1
    tmp=$(mktemp -d /tmp/ingot-compare.XXXXXX)
    "$INGOT_BIN" serve --data-dir "$tmp/data" --http-bind 127.0.0.1:$port --grpc-bind 127.0.0.1:18682 \
        >"$tmp/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do curl -sf 127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
    acked=$(python3 $B/lpcheck.py send-once --url http://127.0.0.1:$port \
        --path '/api/v2/write?bucket=bench&org=o&precision=ns' --dir "$dir" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["lines_acked"])')
    kill -TERM $pid
    wait $pid || true
    check=$(node tests/readers/count_parquet.mjs hostname "$tmp/data/objects")
    local wal_left
    wal_left=$(find "$tmp/data/wal" -name '*.wal' | wc -l)
    echo "| $(basename "$dir") | $acked | $check | $wal_left |"
    rm -rf "$tmp"
}

{
    echo "# ingot vs VictoriaMetrics vs InfluxDB 1.x"
    echo
    echo "Written by \`bench/compare.sh$([ $QUICK = 1 ] && echo ' --quick')\` on $(date -u +%Y-%m-%dT%H:%MZ)," \
        "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)."
    echo "Harness: \`../shared/bench/compare.sh\` (wrk + lpload.lua, TSBS cpu, 1,000 hosts, 1M rows), RUNS=$RUNS, CONNS=\"$CONNS\";"
    echo "ingot with its default flags (every write fsynced, persisting while it ingests)."
    echo
} >"$RESULTS.tmp"

for d in "${datasets[@]}"; do
    log=$(mktemp)
    OUT=$OUT $B/compare.sh /tmp/lpdata/$d | tee "$log" || true
    dir=$(sed -n 's/.*compare: results in \(.*\)$/\1/p' "$log" | head -1)
    {
        echo "## $d"
        echo
        sed -n '/^|/,$p' "$log"
        echo
        echo "Request latency (median over the timed runs of each peer):"
        echo
        python3 bench/p99_table.py "$dir/results.jsonl"
        echo
    } >>"$RESULTS.tmp"
    rm -f "$log"
done

{
    echo "## Durability check of ingot (exactly-once pass, then its Parquet files)"
    echo
    echo "The harness counts ingot's stored rows through \`/api/v1/query_table\`, which serves only"
    echo "what ingot still holds in memory; rows persisted during the load show as \"SHORT\" there."
    echo "This check sends every batch once to a fresh ingot (default flags), stops it (SIGTERM:"
    echo "everything persisted, WAL emptied) and counts the distinct (hostname, time) rows in its"
    echo "Parquet files with DuckDB."
    echo
    echo "| dataset | lines acknowledged | Parquet files / rows / distinct rows | WAL segments left |"
    echo "|---|---:|---|---:|"
    for d in "${datasets[@]}"; do parquet_check /tmp/lpdata/$d; done
} >>"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
echo "wrote $RESULTS"
