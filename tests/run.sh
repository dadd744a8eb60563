#!/usr/bin/env bash
# The whole test suite (the test command of README.md, run by `make test` and .ci/run):
#   1. the release build: unit tests (the PostgreSQL catalog and S3 store ones against a
#      throwaway PostgreSQL cluster and s3rver on 127.0.0.1, started by tests/pg.sh and
#      tests/s3.sh), the Parquet files of test_parquet read back by DuckDB, arrow-rs
#      (parquet-wasm) and hyparquet and the Arrow IPC streams of test_arrow_ipc by apache-arrow
#      and arrow-rs (tests/readers), then black-box tests against build/ingot
#   2. ASan+UBSan build: unit tests and black-box tests against build/asan/ingot
#   3. TSan build: the unit tests (the WAL, buffer and schema ones are the concurrent ones)
#   4. libFuzzer targets (clang): a short run of each over its committed seed corpus
#   5. soak: tests/soak/soak.py against build/ingot for SOAK_SECONDS (default 45): mixed load,
#      rotations, hot persists, a failing object store; every acknowledged row once in Parquet
# Prints "N passed, N failed" per stage and a total as its last line. INGOT_TEST_STAGES picks
# stages (default "release asan tsan fuzz soak"); FUZZ_SECONDS sets each fuzz run (default 20).
set -u
cd "$(dirname "$0")/.."
STAGES=${INGOT_TEST_STAGES:-"release asan tsan fuzz soak"}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
SOAK_SECONDS=${SOAK_SECONDS:-45}
JOBS=${JOBS:-2}
total_pass=0
total_fail=0

tally() { # parse "N passed, N failed" lines from a log
    local p f
    p=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$1" | awk '{s+=$1} END {print s+0}')
    f=$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$1" | awk '{s+=$3} END {print s+0}')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

# Unit tests that need a service run inside the script that provides it.
service_for() {
    case $(basename "$1") in
    test_catalog_postgres) echo tests/pg.sh run ;;
    test_s3_store) echo tests/s3.sh run ;;
    esac
}

run_units() { # $1 = build dir
    local log=$1/unit.log
    : >"$log"
    for t in "$1"/tests/test_*; do
        [ -x "$t" ] || continue
        local one=$1/$(basename "$t").log
        # shellcheck disable=SC2046
        if ! $(service_for "$t") "$t" >"$one" 2>&1; then
            echo "FAILED: $t" >>"$one"
            # a crash prints no closing line: count the binary as one failure
            grep -q 'passed, [0-9]* failed' "$one" || echo "$(basename "$t"): 0 passed, 1 failed" >>"$one"
        fi
        cat "$one" >>"$log"
    done
    grep -E 'passed, [0-9]+ failed|FAIL|CHECK failed|ERROR: |runtime error' "$log"
    tally "$log"
}

run_blackbox() { # $1 = ingot binary, $2 = log
    INGOT_BIN=$1 python3 tests/blackbox/run.py >"$2" 2>&1
    local rc=$?
    grep -E '^(ok|FAIL) |passed, [0-9]+ failed' "$2"
    [ $rc -ne 0 ] && sed -n '/Traceback/,/^ok \|^FAIL /p' "$2" | head -80
    tally "$2"
}

# Sample files written by a unit test, read back value for value by real readers:
# $1 = name (verify_parquet, verify_arrow), $2 = test binary, $3 = its samples variable.
run_reader() {
    local dir log=build/$1.log
    dir=$(mktemp -d)
    if env "$3=$dir" "$2" >"$log" 2>&1 && node "tests/readers/$1.mjs" "$dir" >>"$log" 2>&1; then :; else
        grep -q "$1: [0-9]* passed" "$log" || echo "$1: 0 passed, 1 failed" >>"$log"
    fi
    grep -E "$1: [0-9]+ passed|FAIL|MISMATCH|mismatch" "$log" | head -20
    grep -E "$1: [0-9]+ passed, [0-9]+ failed" "$log" >"$log.tally"
    tally "$log.tally"
    rm -rf "$dir"
}

# Parquet samples: DuckDB, arrow-rs (parquet-wasm), hyparquet. Arrow IPC samples: apache-arrow, arrow-rs.
run_readers() {
    run_reader verify_parquet build/tests/test_parquet INGOT_PARQUET_SAMPLES
    run_reader verify_arrow build/tests/test_arrow_ipc INGOT_ARROW_SAMPLES
}

for stage in $STAGES; do
    echo "=== stage: $stage"
    case $stage in
    release)
        make -j"$JOBS" all || { echo "release: 0 passed, 1 failed (build)"; total_fail=$((total_fail + 1)); continue; }
        run_units build
        run_readers
        run_blackbox build/ingot build/blackbox.log
        ;;
    asan)
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        make -j"$JOBS" BUILD=build/asan SAN=address,undefined all || { total_fail=$((total_fail + 1)); continue; }
        run_units build/asan
        run_blackbox build/asan/ingot build/asan/blackbox.log
        unset ASAN_OPTIONS UBSAN_OPTIONS
        ;;
    tsan)
        make -j"$JOBS" BUILD=build/tsan SAN=thread all || { total_fail=$((total_fail + 1)); continue; }
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_units build/tsan
        ;;
    fuzz)
        make -j"$JOBS" fuzz || { total_fail=$((total_fail + 1)); continue; }
        for f in build/fuzz/fuzz_*; do
            name=$(basename "$f" | sed 's/^fuzz_//')
            corpus=fuzz/corpus/$name
            work=$(mktemp -d)
            [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
            if "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 "$work" >build/fuzz/$name.log 2>&1; then
                echo "fuzz_$name: 1 passed, 0 failed ($FUZZ_SECONDS s)"
                total_pass=$((total_pass + 1))
            else
                echo "fuzz_$name: 0 passed, 1 failed"; tail -40 build/fuzz/$name.log
                total_fail=$((total_fail + 1))
            fi
            rm -rf "$work"
        done
        ;;
    soak)
        make -j"$JOBS" build/ingot || { echo "soak: 0 passed, 1 failed (build)"; total_fail=$((total_fail + 1)); continue; }
        INGOT_BIN=build/ingot python3 tests/soak/soak.py --seconds "$SOAK_SECONDS" >build/soak.log 2>&1
        rc=$?
        grep -E '^(ok|FAIL) |^  |^soak: [0-9]+ passed' build/soak.log
        # a crash of the script prints no closing line: count it as one failure
        if ! grep -qE '^soak: [0-9]+ passed, [0-9]+ failed' build/soak.log; then
            tail -40 build/soak.log
            echo "soak: 0 passed, 1 failed" >>build/soak.log
            echo "soak: 0 passed, 1 failed"
        elif [ $rc -ne 0 ]; then
            tail -30 build/soak.log
        fi
        grep -E '^soak: [0-9]+ passed, [0-9]+ failed' build/soak.log >build/soak.log.tally
        tally build/soak.log.tally
        ;;
    *) echo "unknown stage $stage"; total_fail=$((total_fail + 1)) ;;
    esac
done
echo "all: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
