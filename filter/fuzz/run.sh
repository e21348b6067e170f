#!/usr/bin/env bash
# Fuzzes each target (all by default) for a bounded time, one after another, with libFuzzer on
# the stable toolchain (no sanitizer: the policy code has no `unsafe`; overflow checks and debug
# assertions are on). New inputs go to a scratch directory, never into the committed corpora.
#   filter/fuzz/run.sh [SECONDS] [TARGET...]      (default: 60 s per target)
# Needs `cargo install cargo-fuzz`. A failing input lands in filter/fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
work="${FUZZ_WORK:-${TMPDIR:-/tmp}/edge-fuzz}"
status=0
for target in "${targets[@]}"; do
    mkdir -p "$work/$target"
    dict=()
    [ -f "dict/$target.dict" ] && dict=("-dict=dict/$target.dict")
    log="$work/$target.log"
    cargo fuzz run --sanitizer none "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    rc=$?
    runs=$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ $rc -eq 0 ]; then
        echo "$target: ${runs:-?} executions, no failure"
    else
        status=1
        echo "$target: FAILED after ${runs:-?} executions (log: $log)"
        grep -m1 -A3 'panicked at' "$log" | sed 's/^/    /'
        grep -m1 'Test unit written to' "$log" | sed 's/^/    /'
    fi
done
exit $status
