#!/usr/bin/env bash
# make fuzz: coverage-guided fuzzing (libFuzzer) of every decoder that reads untrusted input.
# Each target runs FUZZ_SECONDS (default 60) from its committed seed corpus (Tests/Fuzz/corpus,
# copied so the committed one stays small); prints `fuzz TARGET: N executions, C crashes` and
# keeps crash inputs in .build-fuzz/crashes/TARGET. Exit 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-json ndjson bundle capability outcome search control config}"
EHR_SYNC_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize=fuzzer --product Fuzz >/dev/null
binary=".build-fuzz/debug/Fuzz"
failed=0
for target in $targets; do
    work=".build-fuzz/corpus/$target"
    crashes=".build-fuzz/crashes/$target"
    mkdir -p "$work" "$crashes"
    cp -n Tests/Fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
    log=".build-fuzz/$target.log"
    set +e
    SWIFT_BACKTRACE=enable=no EHR_SYNC_FUZZ_TARGET="$target" "$binary" "$work" -max_total_time="$seconds" -max_len=65536 \
        -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    found=$(find "$crashes" -type f | wc -l)
    echo "fuzz $target: ${runs:-0} executions, $found crashes"
    if [ "$found" -gt 0 ]; then failed=1; fi
done
exit $failed
