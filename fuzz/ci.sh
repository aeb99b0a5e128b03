#!/usr/bin/env bash
# A short run of every fuzz target from the committed seeds, as CI does it (tests/fuzz.rs):
# fails on any crash or failed check, and prints each target's executions and coverage.
# FUZZ_SECONDS sets the time per target (default 30). Needs `cargo install --locked cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
# Each target with its dictionary.
targets=(request_head:http publish_params:params frame_roundtrip:sse c_publish:sse history_record:none conn_input:http jwt:none access_token:none matchers:params)
# The flags of every run, so that a short run finds what a long one would.
build_flags=(--sanitizer none --debug-assertions)
max_len=16384 # above the 8 KiB head limit

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build "${build_flags[@]}"
for entry in "${targets[@]}"; do
    target=${entry%%:*}
    dict=dict/${entry##*:}.dict
    dict_flag=()
    [ -f "$dict" ] && dict_flag=(-dict="$dict")
    # New inputs go to a scratch corpus; the seeds are only read.
    corpus=$scratch/$target
    log=$scratch/$target.log
    mkdir -p "$corpus"
    if ! cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "seeds/$target" -- \
        "${dict_flag[@]}" -max_len="$max_len" -max_total_time="$seconds" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz: $target FAILED; the input that failed is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -Eo '[0-9]+' | head -n 1)
    coverage=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
    echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, ${coverage:-no stats}, no failure"
done
