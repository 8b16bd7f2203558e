#!/usr/bin/env bash
# Fuzz every target in parallel for a given time, keep what they find, and
# print a summary. Meant for a nightly job or a spare machine:
#
#   fuzz/overnight.sh                 # 8 hours
#   fuzz/overnight.sh 600             # ten minutes
#   fuzz/overnight.sh 3600 --planted  # with the planted-bug catalogue built in
#
# With a nightly toolchain the targets run under AddressSanitizer
# (`cargo +nightly fuzz run`); otherwise without a sanitizer (`-s none`).
# Each target grows its own working corpus under fuzz/corpus-overnight/
# (seeded from the committed fuzz/corpus/), runs in fork mode so that a crash
# does not end the night, and keeps crashing inputs in fuzz/artifacts/TARGET/.
# Logs: fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-28800}
features=()
if [[ "${2:-}" == "--planted" ]]; then
    features=(--features planted-bugs)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    sanitizer=(-s address)
    mode="AddressSanitizer (nightly)"
else
    fuzz=(cargo fuzz)
    sanitizer=(-s none)
    mode="no sanitizer (stable)"
fi
targets=$("${fuzz[@]}" list)
echo "overnight fuzzing: $(echo $targets | wc -w) targets for ${seconds} s each, in parallel, ${mode}${features:+, planted bugs built in}"
"${fuzz[@]}" build "${sanitizer[@]}" --release "${features[@]}"

mkdir -p logs corpus-overnight artifacts
pids=()
for target in $targets; do
    mkdir -p "corpus-overnight/$target" "artifacts/$target"
    if [[ -d "corpus/$target" ]]; then
        cp -n corpus/"$target"/* "corpus-overnight/$target/" 2>/dev/null || true
    fi
    dict=()
    if [[ -f "dict/$target.dict" ]]; then
        dict=(-dict="dict/$target.dict")
    fi
    "${fuzz[@]}" run "${sanitizer[@]}" --release "${features[@]}" "$target" "corpus-overnight/$target" -- \
        -max_total_time="$seconds" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -artifact_prefix="artifacts/$target/" -print_final_stats=1 "${dict[@]}" \
        >"logs/$target.log" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do
    wait "$pid" || true
done

echo
echo "summary (fuzz/logs/ has everything):"
printf '%-14s %12s %10s %8s %8s\n' target execs exec/s corpus crashes
for target in $targets; do
    log="logs/$target.log"
    # The last status line of the run: "#N ... cov: C ... exec/s: E ...".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
    corpus=$(find "corpus-overnight/$target" -type f | wc -l)
    crashes=$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    printf '%-14s %12s %10s %8s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes"
done
plan_crashes=$(find artifacts/plan -type f -name 'crash-*' 2>/dev/null | sort || true)
if [[ -n "$plan_crashes" ]]; then
    echo
    echo "plan crashes (each replays as a saved plan; minimise first with cargo fuzz tmin):"
    replay="cargo sim replay"
    if [[ ${#features[@]} -gt 0 ]]; then
        replay="cargo sim-planted replay"
    fi
    for artifact in $plan_crashes; do
        echo "  $replay --fuzz-artifact fuzz/$artifact"
    done
fi
